"""`kd_keras.config.loading`: reading a YAML file safely, overrides and the
input-file checks."""

import os

import pytest

from kd_keras.config import ConfigError
from kd_keras.config import load_config
from kd_keras.config import parse_config
from kd_keras.errors import MissingFileError

BASE = {"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"}}


def test_load_config_resolves_paths_and_reports_yaml_errors(tmp_path):
    (tmp_path / "train.tsv").write_text("a\tb\n")
    good = tmp_path / "good.yaml"
    good.write_text("data: {train: train.tsv}\nteacher: {model: t.keras}\n")
    with pytest.raises(MissingFileError, match="teacher.model: file not found: .*t.keras"):
        load_config(str(good))
    (tmp_path / "t.keras").write_text("")
    cfg = load_config(str(good), overrides={"output": "elsewhere"})
    assert cfg.data.train == os.path.join(str(tmp_path), "train.tsv")
    assert cfg.output == "elsewhere"
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: cannot parse YAML \(line"):
        load_config(str(bad))
    with pytest.raises(MissingFileError, match="missing.yaml: config file not found"):
        load_config(str(tmp_path / "missing.yaml"))


def test_yaml_aliases_and_huge_files_are_refused(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x","x","x","x","x","x","x","x"]\n'
                    'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
                    'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n')
    with pytest.raises(ConfigError) as e:
        load_config(str(bomb))
    assert "aliases are not supported" in str(e.value) and len(str(e.value)) < 200
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(str(big))


def test_a_bom_before_the_config_is_ignored(tmp_path):
    (tmp_path / "t.keras").write_text("")
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffdata: {builtin: rt_polarity}\nteacher: {model: t.keras}\n".encode())
    assert load_config(str(path)).data.builtin == "rt_polarity"


def test_changed_keys_and_overrides():
    from kd_keras.config import apply_overrides
    from kd_keras.config import changed_keys
    from kd_keras.config import to_dict

    a = parse_config(BASE)
    b = parse_config(apply_overrides(BASE, {"distill.alpha": 0.5, "teacher.fine_tune.epochs": 1}))
    assert changed_keys(to_dict(a), to_dict(b)) == ["distill.alpha", "teacher.fine_tune.epochs"]


def test_deep_nesting_and_numbers_yaml_reads_as_text_are_one_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("data: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(ConfigError, match=r"deep.yaml: cannot parse YAML: nested too deeply$"):
        load_config(str(deep))
    text_number = tmp_path / "lr.yaml"
    text_number.write_text("data: {builtin: rt_polarity}\nteacher: {backbone: minilm}\n"
                           "distill: {learning_rate: 1e-3}\n")
    with pytest.raises(ConfigError, match=r"^distill.learning_rate: must be .*, got '1e-3' "
                                          r"\(YAML reads 1e-3 as text; write 1\.0e-3 or "
                                          r"0\.001\)$"):
        load_config(str(text_number))


def _minimal_config(path, line):
    """Writes a config of the built-in data, MiniLM and `line` (its line 3)."""
    path.write_text(f"data: {{builtin: rt_polarity}}\nteacher: {{backbone: minilm}}\n{line}\n")
    return path


@pytest.mark.parametrize("value, problem", [
    ("2024-02-30", "day is out of range for month"),
    ("!!int abc", "invalid literal for int()"),
    ("!!float abc", "could not convert string to float"),
    ("9" * 5001, "Exceeds the limit"),
])
def test_values_yaml_cannot_build_are_one_line(tmp_path, value, problem):
    # The YAML reader's ValueError went through as a traceback.
    path = _minimal_config(tmp_path / "values.yaml", f"seed: {value}")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: cannot parse YAML: a value cannot be read (")
    assert problem in message and "\n" not in message


@pytest.mark.parametrize("value, shown", [
    ("010", "010 is 8 in YAML (octal); write 8 for that number, or quote it for a text"),
    ("1:30", "1:30 is 90 in YAML (base 60); write 90 for that number, or quote it for a "
             "text"),
])
def test_integers_yaml_reads_unlike_most_readers_are_refused(tmp_path, value, shown):
    # `epochs: 010` trained 8 epochs without a word.
    path = _minimal_config(tmp_path / "c.yaml", f"distill: {{epochs: {value}}}")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value) == f"{path}: line 3: {shown}"
    for fine, epochs in (("10", 10), ("0x20", 32), ("1_000", 1000), ("+7", 7)):
        _minimal_config(path, f"distill: {{epochs: {fine}}}")
        assert load_config(str(path)).distill.epochs == epochs


def test_a_windows_path_in_double_quotes_gets_a_hint(tmp_path):
    import pytest

    from kd_keras.config import load_config
    from kd_keras.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text('data:\n  train: "C:\\Users\\me\\data\\train.tsv"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"cannot parse YAML \(line 2, column \d+\): .*escape.* "
                                          r"\(a backslash in double quotes starts an escape"):
        load_config(str(path))


@pytest.mark.parametrize("key, text", [("data.train", "data: {train: folder}"),
                                       ("student.vocabulary",
                                        "data: {train: t.tsv}\nstudent: {vocabulary: folder}")])
def test_a_folder_where_a_file_belongs_names_its_key(tmp_path, key, text):
    from kd_keras.errors import DataError

    (tmp_path / "folder").mkdir()
    (tmp_path / "t.tsv").write_text("a\tb\n")
    config = tmp_path / "c.yaml"
    config.write_text(text + "\nteacher: {backbone: minilm}\n")
    with pytest.raises(DataError, match=rf"^{key}: .*folder is a folder, not a file$"):
        load_config(str(config))
