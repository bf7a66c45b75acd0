import os

import pytest

from kd_keras.config import ConfigError
from kd_keras.config import parse_config

BASE = {"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"}}


def _with(section, **values):
    cfg = {k: dict(v) for k, v in BASE.items()}
    cfg.setdefault(section, {}).update(values)
    return cfg


def test_defaults_filled_and_student_length_follows_teacher():
    cfg = parse_config(_with("teacher", sequence_length=32))
    # The default recipe's fixed part; its data-dependent keys stay unset.
    assert (cfg.distill.epochs, cfg.distill.alpha, cfg.distill.temperature) == (10, 0.1, 1.0)
    assert cfg.distill.early_stopping.patience == 3
    assert cfg.student.architecture is None and cfg.distill.features is None
    assert cfg.student_sequence_length == 32
    assert cfg.export.formats == ("saved_model", "tflite", "onnx")


def test_config_objects_are_frozen_and_round_trip():
    import dataclasses

    from kd_keras.config import to_dict

    cfg = parse_config(_with("distill", epochs=7))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.distill.epochs = 3
    assert parse_config(to_dict(cfg)) == cfg


@pytest.mark.parametrize("data,header", [
    ({"train": "t.csv", "text_column": "review"}, True),       # a name: there is a header
    ({"train": "t.csv", "label_column": "sentiment"}, True),
    ({"train": "t.csv"}, False),                               # indices: the first row is data
    ({"train": "t.csv", "text_column": "review", "header": False}, False),  # as written
    ({"train": "t.csv", "header": True}, True),
    ({"builtin": "rt_polarity"}, False),
    ({"builtin": "rt_polarity", "header": False}, False),      # as older versions wrote it
    ({"train": "t.jsonl", "text_column": "text", "label_column": "label"}, False),  # no header
    ({"train": "t.txt", "format": "jsonl", "text_column": "text"}, False),
])
def test_an_unset_header_is_read_when_a_column_is_named(data, header):
    from kd_keras.config import to_dict
    from kd_keras.config.parsing import header_resolved

    cfg = parse_config({**BASE, "data": data})
    assert cfg.data.header is data.get("header")  # as written: null is "not said"
    assert header_resolved(cfg.data).header is header
    assert parse_config(to_dict(cfg)) == cfg


def test_free_form_mappings_are_read_only_and_still_plain_values():
    import copy
    import dataclasses
    import json
    import pickle

    from kd_keras.config import StudentConfig
    from kd_keras.config import to_dict

    cfg = parse_config(_with("student", options={"filters": 32}))
    replaced = dataclasses.replace(cfg.student, options={"filters": 8})
    mappings = [cfg.student.options, cfg.distill.schedules, StudentConfig().options,
                StudentConfig(options={"filters": 8}).options, replaced.options]
    changes = [lambda m: m.__setitem__("filters", 64), lambda m: m.__delitem__("filters"),
               lambda m: m.update(filters=64), lambda m: m.setdefault("dropout", 0.5),
               lambda m: m.pop("filters"), lambda m: m.popitem(), lambda m: m.clear()]
    for mapping in mappings:
        for change in changes:
            with pytest.raises(TypeError, match=r"^a config mapping is read-only"):
                change(mapping)
    assert cfg.student.options == {"filters": 32} and replaced.options == {"filters": 8}
    with pytest.raises(TypeError, match=r"^a config mapping is read-only"):
        options = cfg.student.options
        options |= {"filters": 64}
    assert cfg.student.options == {"filters": 32}
    assert pickle.loads(pickle.dumps(cfg)) == cfg == copy.deepcopy(cfg)
    assert json.loads(json.dumps(to_dict(cfg)))["student"]["options"] == {"filters": 32}


@pytest.mark.parametrize(
    "section,values,message",
    [
        ("distill", {"epochs": -1}, "distill.epochs: must be a positive integer, got -1"),
        # 0 trained nothing, then failed with a traceback after the teacher.
        ("distill", {"epochs": 0}, "distill.epochs: must be a positive integer, got 0"),
        # A space failed TensorFlow's name scope at the first training step.
        ("student", {"options": {"name": "my model"}},
         "student.options.name: must be a name of letters, digits, '_', '.' and '-' (it "
         "names the model in TensorFlow and TF Serving), got 'my model'"),
        ("distill", {"epochs": 2.5}, "distill.epochs"),
        ("distill", {"alpha": 1.5}, "distill.alpha: must be a number in [0, 1], got 1.5"),
        ("distill", {"temperature": 0}, "distill.temperature"),
        ("distill", {"loss": "kl"}, "distill.loss: must be one of soft_target_kl"),
        ("distill", {"batch_size": "64"}, "distill.batch_size"),
        ("distill", {"epoch": 3}, "distill.epoch: unknown key"),
        ("student", {"architecture": "transformer9000"},
         "student.architecture: unknown student 'transformer9000'"),
        ("data", {"format": "xml"}, "data.format"),
        ("data", {"labels_fraction": 0}, "data.labels_fraction"),
        ("data", {"split": [0.5, 0.5]}, "data.split"),
        ("export", {"quantization": ["int4"]}, "export.quantization"),
        ("distribute", {"strategy": "tpu"}, "distribute.strategy"),
        ("distill", {"learning_rate": float("inf")}, "distill.learning_rate"),
        ("distill", {"learning_rate": float("nan")}, "distill.learning_rate"),
        ("export", {"formats": ["onnx", "onnx"]}, "export.formats"),
        ("student", {"options": {"bad key": 1}}, "student.options"),
        ("student", {"options": {"kernel_sizes_typo": 1}},
         "student.options.kernel_sizes_typo: not an option of dilated_cnn (the default "
         "student) (known: "),
        ("teacher", {"fine_tune": {"epochs": -2}}, "teacher.fine_tune.epochs"),
        # Numbers TensorFlow cannot count: a traceback in training, after the teacher.
        ("distill", {"batch_size": 2**63},
         f"distill.batch_size: must be at most 2147483647, got {2**63}"),
        ("teacher", {"fine_tune": {"batch_size": 2**31}},
         "teacher.fine_tune.batch_size: must be at most 2147483647"),
        ("distill", {"steps_per_execution": 2**40}, "distill.steps_per_execution: must be at most"),
        ("distill", {"epochs": 10**30}, "distill.epochs: must be at most"),
        ("teacher", {"fine_tune": {"epochs": 2**31}}, "teacher.fine_tune.epochs: must be an "
                                                      "integer in [0, 2147483647]"),
        ("teacher", {"fine_tune": {"lr": 1}}, "teacher.fine_tune.lr: unknown key"),
        ("distill", {"augment": {"copies": -1}}, "distill.augment.copies"),
        ("distill", {"augment": {"word_dropout": 1.0}}, "distill.augment.word_dropout"),
        ("distill", {"augment": {"mask": 0.1}}, "distill.augment.mask: unknown key"),
        ("distill", {"augment": {"replace_prob": 1.0}}, "distill.augment.replace_prob"),
        ("distill", {"augment": {"per_epoch": "yes"}}, "distill.augment.per_epoch"),
        ("distill", {"feature_dtype": "float64"},
         "distill.feature_dtype: must be one of float32, float16, got 'float64'"),
        ("student", {"prune_vocabulary": "yes"},
         "student.prune_vocabulary: must be true or false, got 'yes'"),
        ("student", {"architecture": "tiny_bert", "prune_vocabulary": True,
                     "options": {"embedding_dim": 8, "embedding_init": "minilm"}},
         "student.prune_vocabulary: cannot be combined with student.options.embedding_init"),
        ("student", {"architecture": "dilated_cnn", "prune_vocabulary": True,
                     "options": {"embedding_init": "minilm"}},
         "student.prune_vocabulary: cannot be combined with student.options.embedding_init"),
        ("student", {"tokenizer_min_count": 0},
         "student.tokenizer_min_count: must be an integer in [1, 1000000] or null, got 0"),
        ("student", {"tokenizer_min_count": True},
         "student.tokenizer_min_count: must be an integer in [1, 1000000] or null, got True"),
        ("student", {"architecture": "dilated_cnn", "tokenizer_min_count": 2,
                     "options": {"embedding_init": "minilm"}},
         "student.tokenizer_min_count: cannot be combined with student.options.embedding_init"),
        ("student", {"architecture": "text_cnn", "options": {"embedding_init": "minilm"}},
         "student.options.embedding_init: not an option of text_cnn (known: "),
    ],
)
def test_bad_values_name_the_key(section, values, message):
    with pytest.raises(ConfigError) as e:
        parse_config(_with(section, **values))
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_dilated_cnn_takes_a_teacher_embedding_init():
    cfg = parse_config(_with("student", architecture="dilated_cnn",
                             options={"embedding_init": "minilm"}))
    assert cfg.student.options == {"embedding_init": "minilm"}


def test_tokenizer_min_count_needs_a_teacher_that_reads_the_texts():
    cfg = parse_config(_with("student", tokenizer_min_count=2, prune_vocabulary=True))
    assert (cfg.student.tokenizer_min_count, parse_config(BASE).student.tokenizer_min_count) \
        == (2, None)
    with pytest.raises(ConfigError, match=r"^student.tokenizer_min_count: must be null unless "
                       r"teacher.backbone is set \(a teacher.model may read"):
        parse_config({"data": {"builtin": "rt_polarity"},
                      "teacher": {"model": "teacher.keras"},
                      "student": {"tokenizer_min_count": 2}})


def test_top_level_and_source_errors():
    with pytest.raises(ConfigError, match="outputs: unknown key"):
        parse_config(dict(BASE, outputs="x"))
    with pytest.raises(ConfigError, match="data: give exactly one of"):
        parse_config({"teacher": {"backbone": "minilm"}})
    with pytest.raises(ConfigError, match="teacher: give exactly one of"):
        parse_config({"data": {"builtin": "rt_polarity"}})
    with pytest.raises(ConfigError, match="data.builtin"):
        parse_config(_with("data", builtin="imdb"))
    with pytest.raises(ConfigError, match="distill.augment.replace_prob: must be 0 unless "
                                          "teacher.backbone is set"):
        parse_config({"data": {"builtin": "rt_polarity"}, "teacher": {"model": "t.keras"},
                      "distill": {"augment": {"copies": 1, "replace_prob": 0.2}}})


def test_export_and_early_stopping_switches():
    cfg = parse_config(dict(BASE, export=False, distill={"early_stopping": True}))
    assert cfg.export is None
    assert cfg.distill.early_stopping.patience == 3
    assert parse_config(dict(BASE, distill={"early_stopping": None})).distill.early_stopping is None


def test_the_demo_config_is_one_packaged_file():
    """`configs/demo.yaml` is the package's file (a link), which the wheel
    ships (package data) and `python -m kd_keras.demo` reads."""
    import fnmatch

    from setuptools.config.setupcfg import read_configuration

    from conftest import REPO_ROOT
    from kd_keras.config import load_config
    from kd_keras.demo import DEMO_CONFIG_PATH
    from kd_keras.demo import demo_config

    assert os.path.samefile(os.path.join(REPO_ROOT, "configs", "demo.yaml"), DEMO_CONFIG_PATH)
    package = os.path.dirname(os.path.abspath(__import__("kd_keras").__file__))
    shipped = read_configuration(os.path.join(REPO_ROOT, "setup.cfg"))["options"]["package_data"]
    relative = os.path.relpath(DEMO_CONFIG_PATH, package)
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in shipped["kd_keras"])
    # The demo runs what `kd-keras distill configs/demo.yaml` runs.
    assert demo_config() == load_config(DEMO_CONFIG_PATH, {"verbose": 1})


def test_agnews_changes_only_the_data_and_both_leave_the_recipe_to_the_default():
    import yaml

    from conftest import REPO_ROOT
    from kd_keras.config.recipe import unset_keys

    with open(os.path.join(REPO_ROOT, "configs", "demo.yaml")) as f:
        demo = yaml.safe_load(f)
    with open(os.path.join(REPO_ROOT, "configs", "agnews.yaml")) as f:
        agnews = yaml.safe_load(f)
    assert {k for k in demo if demo[k] != agnews.get(k)} == {"data", "output"}
    cfg = parse_config(agnews, base_dir=os.path.join(REPO_ROOT, "configs"))
    assert cfg.data.builtin == "ag_news"
    every_key = ["student.architecture", "student.sequence_length", "distill.features",
                 "distill.augment.copies", "distill.augment.replace_prob"]
    assert unset_keys(parse_config(demo)) == unset_keys(cfg) == every_key


def test_the_mobile_config_is_the_demo_data_and_teacher_with_its_own_measured_student():
    import yaml

    from conftest import REPO_ROOT
    from kd_keras.config.recipe import unset_keys

    with open(os.path.join(REPO_ROOT, "configs", "demo.yaml")) as f:
        demo = yaml.safe_load(f)
    with open(os.path.join(REPO_ROOT, "configs", "mobile.yaml")) as f:
        mobile = yaml.safe_load(f)
    assert {k for k in demo | mobile if demo.get(k) != mobile.get(k)} == {
        "student", "distill", "output"}
    # It sets the recipe's keys itself (no copies, so no word replacement).
    cfg = parse_config(mobile)
    assert unset_keys(cfg) == []
    assert (cfg.student.architecture, cfg.distill.augment.copies) == ("text_cnn", 0)
    assert (cfg.student.tokenizer_min_count, cfg.student.options) == (2, {"embedding_dim": 40})



@pytest.mark.parametrize("distribute", [{"engine": "ray"}, {"strategy": "multi_worker"}])
def test_steps_per_execution_is_one_under_multi_worker_training(distribute):
    """Keras 3.15's multi-step loop fails under MultiWorkerMirroredStrategy
    (Ray training uses it): one line naming the key, before anything runs."""
    raw = {"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
           "distill": {"steps_per_execution": 4}, "distribute": distribute}
    with pytest.raises(ConfigError, match=r"^distill.steps_per_execution: must be 1 with "
                                          r"distribute.engine: ray .*, got 4$"):
        parse_config(raw)
    assert parse_config(dict(raw, distill={"steps_per_execution": 1})).distill \
        .steps_per_execution == 1
    with pytest.raises(ConfigError, match=r"^distill.steps_per_execution: must be a positive "):
        parse_config(dict(raw, distribute={}, distill={"steps_per_execution": 0}))


def test_no_baseline_under_local_multi_worker_training():
    # Keras's fit of the student alone fails under MultiWorkerMirroredStrategy:
    # the run crashed with a traceback after the whole distillation. Ray
    # trains the baseline on the driver, where it runs.
    raw = {"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
           "distill": {"baseline": True}, "distribute": {"strategy": "multi_worker"}}
    with pytest.raises(ConfigError, match=r"^distill.baseline: must be false with "
                                          r"distribute.strategy: multi_worker .*, got True$"):
        parse_config(raw)
    assert parse_config(dict(raw, distribute={"engine": "ray"})).distill.baseline


@pytest.mark.parametrize("distribute", [{"engine": "ray"}, {"strategy": "multi_worker"}])
def test_precision_is_a_known_policy_and_float32_where_untested(distribute):
    raw = {"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"}}
    assert parse_config(raw).precision == "float32"
    assert parse_config(dict(raw, precision="mixed_bfloat16")).precision == "mixed_bfloat16"
    with pytest.raises(ConfigError, match=r"^precision: must be one of float32, "
                                          r"mixed_bfloat16, got 'float16'$"):
        parse_config(dict(raw, precision="float16"))
    with pytest.raises(ConfigError, match=r"^precision: must be float32 with "
                                          r"distribute.engine: ray .*, got 'mixed_bfloat16'$"):
        parse_config(dict(raw, precision="mixed_bfloat16", distribute=distribute))
