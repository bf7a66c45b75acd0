"""`student.architecture: package.module:function` that is not a student
builder: one line naming `student.architecture`, before the work where the
signature tells, and as soon as the student is built otherwise."""

import os
import textwrap

import pytest

from kd_keras.errors import ConfigError
from kd_keras.students import build_student
from kd_keras.students import get_student
from pipeline import tiny_run

BUILDERS = '''
import keras


def three_logits(num_classes, vocab_size=100, sequence_length=8, **options):
    return keras.Sequential([keras.Input((sequence_length,), dtype="int32"),
                             keras.layers.Embedding(vocab_size, 4),
                             keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])


def a_dict(num_classes, vocab_size=100, sequence_length=8, **options):
    return {"num_classes": num_classes}


def good(num_classes, vocab_size=100, sequence_length=8, **options):
    return keras.Sequential([keras.Input((sequence_length,), dtype="int32"),
                             keras.layers.Embedding(vocab_size, 4),
                             keras.layers.GlobalAveragePooling1D(),
                             keras.layers.Dense(num_classes)])


def no_vocabulary(num_classes):
    return good(num_classes)
'''


@pytest.fixture
def builders(tmp_path, monkeypatch):
    """A module of builders, importable under a name unique to the test."""
    name = f"user_students_{os.getpid()}_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(BUILDERS))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.mark.parametrize("architecture, found", [
    ("os:getcwd", "takes ()"),
    ("builtins:dict", "no Python signature"),
])
def test_a_function_that_is_not_a_builder_is_refused_by_its_signature(architecture, found):
    with pytest.raises(ConfigError) as info:
        get_student(architecture)
    message = str(info.value)
    assert message.startswith(f"student.architecture: {architecture}: not a student builder")
    assert found in message and "\n" not in message


def test_a_builder_without_vocab_size_is_refused(builders):
    with pytest.raises(ConfigError, match="not a student builder"):
        get_student(f"{builders}:no_vocabulary")
    assert get_student(f"{builders}:good").__name__ == "good"


@pytest.mark.parametrize("architecture", ["os:getcwd", "builtins:dict"])
def test_the_config_refuses_them_before_any_work(capsys, tmp_path, architecture):
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base,
                                   **{"student.architecture": architecture})
    status, lines = tiny_run.run_cli(capsys, "distill", config)
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith(
        f"kd-keras distill: error: student.architecture: {architecture}: not a student builder")


def test_build_student_checks_what_the_builder_returns(builders):
    with pytest.raises(ConfigError, match=rf"^student.architecture: {builders}:a_dict: "
                                          "did not return a keras.Model \\(got dict\\)$"):
        build_student(f"{builders}:a_dict", 2)
    with pytest.raises(ConfigError, match=rf"^student.architecture: {builders}:three_logits: "
                                          "returns 3 logits but the data has 2 classes$"):
        build_student(f"{builders}:three_logits", 2)
    assert build_student(f"{builders}:good", 2).outputs[0].shape == (None, 2)


@pytest.mark.parametrize("function, message", [
    ("a_dict", "did not return a keras.Model (got dict)"),
    ("three_logits", "returns 3 logits but the data has 2 classes"),
])
def test_a_run_with_such_a_builder_is_one_line(capsys, tmp_path, builders, function, message):
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base, **{
        "student.architecture": f"{builders}:{function}", "student.options": {}})
    status, lines = tiny_run.run_cli(capsys, "distill", config)
    assert status == 2 and len(lines) == 1, lines
    assert lines[0] == (f"kd-keras distill: error: student.architecture: "
                        f"{builders}:{function}: {message}")
    assert not os.path.exists(base["output"] + ".partial")
