"""`kd_keras.config`: values that passed validation and then crashed the run,
keys that were silently ignored, and messages that lost their key.

Every bad value is refused while the config is read, as one line naming
the key, before anything is written."""

import os
import re
import threading

import pytest

from kd_keras.config import ConfigError
from kd_keras.config import load_config
from kd_keras.config import parse_config
from kd_keras.config import read_yaml
from kd_keras.config import to_dict
from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError

BASE = {"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"}}
MODEL = {"data": {"builtin": "rt_polarity"}, "teacher": {"model": "t.keras"}}


def _with(base=None, **sections):
    raw = {k: dict(v) for k, v in (base or BASE).items()}
    for section, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return raw


def _refused(raw, *expected):
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    message = str(e.value)
    assert "\n" not in message
    for text in expected:
        assert text in message, message
    return message


# Numbers that training needs as floats, and ranges training can run.

@pytest.mark.parametrize("value", [1, 10])
def test_an_integer_learning_rate_is_a_float_keras_takes(value):
    import keras

    cfg = parse_config(_with(distill={"learning_rate": value},
                             teacher={"fine_tune": {"learning_rate": value}}))
    assert type(cfg.distill.learning_rate) is float and cfg.distill.learning_rate == value
    assert type(cfg.teacher.fine_tune.learning_rate) is float
    keras.optimizers.Adam(cfg.distill.learning_rate)  # "should be float" before
    keras.optimizers.Adam(cfg.teacher.fine_tune.learning_rate)


def test_every_float_field_takes_an_integer_as_a_float():
    cfg = parse_config(_with(distill={"alpha": 1, "temperature": 2},
                             data={"labels_fraction": 1},
                             distribute={"cpus_per_worker": 2, "gpus_per_worker": 0}))
    for value in (cfg.distill.alpha, cfg.distill.temperature, cfg.data.labels_fraction,
                  cfg.distribute.cpus_per_worker, cfg.distribute.gpus_per_worker):
        assert type(value) is float
    assert (cfg.distill.alpha, cfg.distill.temperature) == (1.0, 2.0)


def test_an_integer_too_large_for_a_float_is_one_line():
    _refused(_with(distill={"learning_rate": 10**400}), "distill.learning_rate: must be")
    _refused(_with(distill={"alpha": 10**400}), "distill.alpha: must be")


@pytest.mark.parametrize("key", ["seed", "split_seed"])
def test_seeds_are_32_bit(key):
    raw = _with(seed=2**32) if key == "seed" else _with(data={"split_seed": 2**32})
    name = "seed" if key == "seed" else "data.split_seed"
    _refused(raw, f"{name}: must be", "4294967295", str(2**32))
    ok = _with(seed=2**32 - 1) if key == "seed" else _with(data={"split_seed": 2**32 - 1})
    parse_config(ok)


@pytest.mark.parametrize("value", [1e-300, 1e300, 0.001, 101])
def test_temperatures_training_cannot_use_are_refused(value):
    _refused(_with(distill={"temperature": value}), "distill.temperature: must be",
             "[0.01, 100]")


def test_temperature_bounds_are_inclusive():
    for value in (0.01, 100):
        assert parse_config(_with(distill={"temperature": value})).distill.temperature == value


@pytest.mark.parametrize("schedule", [
    {"type": "linear", "start": 4.0, "end": 1e-300},
    {"type": "cosine", "start": 1e300, "end": 1.0},
    {"type": "step", "values": [2.0, 1000.0], "boundaries": [0.5]},
    {"type": "constant", "value": 0},
    0,
])
def test_temperature_schedules_stay_in_the_same_bounds(schedule):
    _refused(_with(distill={"schedules": {"temperature": schedule}}),
             "distill.schedules.temperature: must be", "[0.01, 100]")


def test_alpha_schedules_stay_in_0_1():
    _refused(_with(distill={"schedules": {"alpha": {"type": "linear", "start": 2, "end": 0}}}),
             "distill.schedules.alpha: must be", "[0, 1]")
    cfg = parse_config(_with(distill={"schedules": {
        "alpha": {"type": "linear", "start": 1, "end": 0},
        "temperature": {"type": "linear", "start": 4, "end": 1}}}))
    assert cfg.distill.schedules["temperature"]["start"] == 4


@pytest.mark.parametrize("key", ["cpus_per_worker", "gpus_per_worker", "workers"])
@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_distribute_amounts_are_finite(key, value):
    _refused(_with(distribute={"engine": "ray", key: value}), f"distribute.{key}: must be")
    from kd_keras.distribute import RayCluster

    with pytest.raises(UsageError, match=f"distribute.{key}: must be"):
        RayCluster(**{key: value})


# Silent acceptance.

def test_duplicate_yaml_keys_are_refused_with_file_key_and_line(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("data: {builtin: rt_polarity}\nteacher: {backbone: minilm}\n"
                    "distill:\n  learning_rate: 0.1\n  epochs: 2\n  learning_rate: 0.01\n")
    with pytest.raises(ConfigError) as e:
        read_yaml(str(path))
    message = str(e.value)
    assert str(path) in message and "'learning_rate'" in message and "line 6" in message
    assert "line 4" in message  # where the first one is
    top = tmp_path / "top.yaml"
    top.write_text("seed: 1\ndata: {builtin: rt_polarity}\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"top.yaml: line 3: duplicate key 'seed'"):
        read_yaml(str(top))


def test_a_yaml_merge_key_is_not_a_duplicate(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("distill: {<<: {epochs: 2, alpha: 0.5}, epochs: 3}\n")
    assert read_yaml(str(path)) == {"distill": {"epochs": 3, "alpha": 0.5}}


def test_tilde_is_the_home_folder_in_every_path(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("train.tsv", "t.keras", "vocab.txt"):
        (home / name).write_text("x\n")
    (tmp_path / "c.yaml").write_text(
        "data: {train: ~/train.tsv, test: ~/train.tsv}\nteacher: {model: ~/t.keras}\n"
        "student: {vocabulary: ~/vocab.txt}\noutput: ~/runs/x\n")
    cfg = load_config(str(tmp_path / "c.yaml"))
    assert cfg.output == str(home / "runs" / "x")
    assert (cfg.data.train, cfg.data.test) == (str(home / "train.tsv"),) * 2
    assert cfg.teacher.model == str(home / "t.keras")
    assert cfg.student.vocabulary == str(home / "vocab.txt")
    assert load_config(str(tmp_path / "c.yaml"), {"output": "~/y"}).output == str(home / "y")
    (home / "bert").mkdir()
    cfg = parse_config(_with(teacher={"backbone": "~/bert"}, distill={"cache_dir": "~/cache"}),
                       base_dir=str(tmp_path))
    assert cfg.teacher.backbone == str(home / "bert")
    assert cfg.distill.cache_dir == str(home / "cache")


def test_embedding_init_is_a_backbone_found_as_teacher_backbone_is(tmp_path):
    # It was taken from the current folder, not the config's, and `true`
    # passed validation to fail only when the student was built, after the
    # teacher's stage.
    (tmp_path / "bert").mkdir()
    student = {"architecture": "dilated_cnn"}
    for given, found in (("bert", str(tmp_path / "bert")), ("minilm", "minilm"),
                         ("some_preset_en", "some_preset_en")):
        cfg = parse_config(_with(student={**student, "options": {"embedding_init": given}}),
                           base_dir=str(tmp_path))
        assert cfg.student.options["embedding_init"] == found
    for bad in (True, 3, "", ["minilm"]):
        _refused(_with(student={**student, "options": {"embedding_init": bad}}),
                 "student.options.embedding_init: must be a teacher backbone name")


@pytest.mark.parametrize("section,key", [("export", None),
                                         ("distill", "early_stopping")])
@pytest.mark.parametrize("value", [0, 0.0, 1, "", "no", []])
def test_only_null_and_false_switch_a_section_off(section, key, value):
    raw = _with(**{section: value}) if key is None else _with(**{section: {key: value}})
    name = section if key is None else f"{section}.{key}"
    _refused(raw, f"{name}: must be a mapping", "null or false", f"got {value!r}")


def test_null_false_and_true_still_switch_sections():
    cfg = parse_config(_with(export=None, distill={"early_stopping": False}))
    assert cfg.export is None and cfg.distill.early_stopping is None
    cfg = parse_config(_with(export=True, distill={"early_stopping": {"patience": 1}}))
    assert cfg.export is not None and cfg.distill.early_stopping.patience == 1


@pytest.mark.parametrize("teacher", [{"fine_tune": {"epochs": 1}},
                                     {"fine_tune": {"train_backbone": True}},
                                     {"pooling": "mean"}])
def test_teacher_options_a_ready_model_ignores_are_refused(teacher):
    key = next(iter(teacher))
    _refused(_with(MODEL, teacher=teacher), f"teacher.{key}: not used with teacher.model")
    parse_config(_with(teacher=teacher))  # A backbone uses them.


@pytest.mark.parametrize("raw, message", [
    (dict(teacher={"fine_tune": {"train_backbone": False, "top_layers": 1}}),
     "teacher.fine_tune.top_layers: not used with teacher.fine_tune.train_backbone: false"),
    (dict(teacher={"fine_tune": {"train_backbone": True, "top_layers": 0}}),
     "teacher.fine_tune.top_layers: must be a positive integer or null"),
    (dict(distribute={"address": "localhost:1"}),
     "distribute.address: not used with distribute.engine: local"),
    (dict(base=MODEL, distill={"cache_dir": "cache"}),
     "distill.cache_dir: not used with teacher.model"),
    (dict(distill={"augment": {"copies": 0, "per_epoch": True}}),
     "distill.augment.per_epoch: not used with distill.augment.copies: 0"),
    (dict(distill={"augment": {"copies": 0, "word_dropout": 0.5}}),
     "distill.augment.word_dropout: not used with distill.augment.copies: 0"),
])
def test_keys_another_keys_value_makes_unused_are_refused(raw, message):
    """Each ran without a word, its value ignored by the route chosen."""
    raw = dict(raw)
    _refused(_with(raw.pop("base", None), **raw), message)


def test_the_keys_are_taken_where_the_route_uses_them():
    parse_config(_with(teacher={"fine_tune": {"train_backbone": True, "top_layers": 1}},
                       distill={"cache_dir": "cache",
                                "augment": {"copies": 2, "per_epoch": True}}))
    parse_config(_with(distribute={"engine": "ray", "address": "localhost:1"}))
    parse_config(_with(distill={"augment": {"copies": 0, "word_dropout": 0.1}}))  # default


def test_a_ready_model_config_still_round_trips():
    cfg = parse_config(_with(MODEL, teacher={"pooling": None, "fine_tune": None}))
    assert parse_config(to_dict(cfg)) == cfg


@pytest.mark.parametrize("data", [{"test": "test.tsv"}, {"validation": "v.tsv"},
                                  {"format": "tsv"}, {"header": True},
                                  {"text_column": "text"}, {"label_column": 2},
                                  {"labels": ["neg", "pos"]}])
def test_file_options_the_builtin_route_ignores_are_refused(data):
    key = next(iter(data))
    _refused(_with(data=data), f"data.{key}: not used with data.builtin")


def test_builtin_options_it_uses_are_kept():
    cfg = parse_config(_with(data={"max_examples": 10, "split": [0.6, 0.2, 0.2],
                                   "split_seed": 3, "labels_fraction": 0.5,
                                   "test": None, "header": False}))
    assert (cfg.data.max_examples, cfg.data.split_seed) == (10, 3)


# Messages.

def test_yaml_booleans_as_labels_say_so_and_suggest_quotes(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {train: t.tsv, labels: [no, yes]}\nteacher: {model: t.keras}\n")
    with pytest.raises(ConfigError) as e:
        load_config(str(path))
    message = str(e.value)
    assert message.startswith("data.labels") and "boolean" in message
    assert "'no'" in message and "(False, True)" not in message


def _names(message, key):
    """Whether `message` starts with `key` or a key inside it."""
    return re.match(re.escape(key) + r"[.:\[]", message) is not None


def _term(**values):
    return dict({"teacher_layer": "a", "student_layer": "b"}, **values)


@pytest.mark.parametrize("field,value", [
    ("weight", {"type": [1]}),
    ("weight", {"type": "linear", "start": 1, "end": 2, 3: 4}),
    ("weight", 10**400),
    ("weight", {"type": "linear", "start": 1, "end": -1}),
    ("weight", {"type": "step", "values": [1], "boundaries": [0.5]}),
    ("projection", "conv"),
    ("loss", "nope"),
    ("name", ""),
    ("teacher_layer", ":"),
    ("student_layer", ""),
])
def test_feature_errors_name_the_whole_key(field, value):
    second = _term(student_layer="c")
    second[field] = value
    raw = _with(distill={"features": [_term(), second]})
    assert _names(_refused(raw), f"distill.features[1].{field}")


def test_feature_errors_without_a_field_still_name_the_term(monkeypatch):
    from kd_keras.distillation import features

    def odd(self):
        raise UsageError("something unexpected: about the term")

    monkeypatch.setattr(features.FeatureDistillation, "__post_init__", odd)
    assert _refused(_with(distill={"features": [_term()]})).startswith(
        "distill.features[0]: something unexpected")


@pytest.mark.parametrize("key", ["alpha", "temperature"])
@pytest.mark.parametrize("value", [{"type": [1]}, {"type": "linear", "start": 1, "end": 2, 3: 4},
                                   10**400, {"type": "linear", "start": 1}])
def test_schedule_errors_name_the_whole_key(key, value):
    assert _names(_refused(_with(distill={"schedules": {key: value}})),
                  f"distill.schedules.{key}")


def test_a_folder_or_fifo_config_is_not_reported_missing(tmp_path):
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    with pytest.raises(KdKerasError, match="folder.yaml: is a folder, not a config file"):
        read_yaml(str(folder))
    fifo = str(tmp_path / "fifo.yaml")
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            read_yaml(fifo)
        except KdKerasError as e:
            outcome.append(str(e))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # It opened the FIFO: unblock it, then fail.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
        pytest.fail("read_yaml opened a FIFO and waited for a writer")
    assert outcome and outcome[0] == f"{fifo}: is not a regular file"


# Through the command: one line, exit status 2, nothing written.

def _write(tmp_path, text, data="{builtin: rt_polarity}"):
    path = tmp_path / "c.yaml"
    # A missing vocabulary stops a config that passes validation before any work.
    path.write_text(f"data: {data}\nteacher: {{backbone: minilm}}\n"
                    f"student: {{vocabulary: no_such_vocab.txt}}\n"
                    f"output: {tmp_path / 'out'}\n{text}")
    return str(path)


@pytest.mark.parametrize("bad", ["a\0b", "\ud800"])
@pytest.mark.parametrize("section, key", [
    ("output", None), ("distill", "cache_dir"), ("data", "test"), ("teacher", "backbone"),
    ("student", "vocabulary")])
def test_a_path_the_os_cannot_take_is_refused_by_its_key(section, key, bad):
    # A NUL byte or a lone surrogate passed validation, then crashed with a
    # traceback (ValueError: embedded null byte; UnicodeEncodeError).
    raw = _with(**({section: bad} if key is None else {section: {key: bad}}))
    name = section if key is None else f"{section}.{key}"
    assert _refused(raw, f"{name}: must be a").endswith(repr(bad))


@pytest.mark.parametrize("text,data,expected", [
    ("distill: {temperature: 1.0e+300}\n", None, "distill.temperature: must be"),
    (f"distill: {{learning_rate: 1{'0' * 400}}}\n", None, "distill.learning_rate: must be"),
    ("seed: 4294967296\n", None, "seed: must be"),
    ("distribute: {cpus_per_worker: .inf}\n", None, "distribute.cpus_per_worker: must be"),
    ("export: 0\n", None, "export: must be a mapping"),
    ("seed: 1\nseed: 2\n", None, "duplicate key 'seed'"),
    ("", "{builtin: rt_polarity, test: t.tsv}", "data.test: not used with data.builtin"),
    ("teacher: {pooling: mean}\n", None, "duplicate key 'teacher'"),
])
def test_distill_refuses_in_one_line_and_writes_nothing(tmp_path, capsys, text, data,
                                                         expected):
    from kd_keras.cli import main

    path = _write(tmp_path, text, *([data] if data else []))
    status = main(["distill", path])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("kd-keras distill: error: ") and expected in err[0]
    assert os.listdir(tmp_path) == ["c.yaml"]


@pytest.mark.parametrize("output", ["", "   "])
def test_an_empty_output_flag_is_refused(tmp_path, capsys, output):
    from kd_keras.cli import main

    status = main(["distill", _write(tmp_path, ""), "--output", output])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1, err
    assert err[0].startswith("kd-keras distill: error: --output: ")
    assert os.listdir(tmp_path) == ["c.yaml"]
