import os
import subprocess
import sys

import pytest

import distill_helpers
from conftest import REPO_ROOT
from kd_keras.cli import main


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    return distill_helpers.shared_teacher(tmp_path_factory)


def _cases(tmp_path, teacher):
    out = str(tmp_path / "out")
    bad_yaml = tmp_path / "broken.yaml"
    bad_yaml.write_text("data:\n  train: [oops\nteacher: {model: x}\n")
    return {
        "missing file": (
            distill_helpers.write_config(
                tmp_path / "c1.yaml", teacher, out,
                data={"train": str(tmp_path / "no_such_train.tsv"), "test": None}),
            "no_such_train.tsv"),
        "unparsable yaml": (str(bad_yaml), "broken.yaml: cannot parse YAML"),
        "negative epochs": (
            distill_helpers.write_config(tmp_path / "c3.yaml", teacher, out, distill={"epochs": -1}),
            "distill.epochs: must be a positive integer, got -1"),
        "unknown student": (
            distill_helpers.write_config(tmp_path / "c4.yaml", teacher, out,
                                         student={"architecture": "resnet9000"}),
            "student.architecture: unknown student 'resnet9000'"),
        "missing label column": (
            distill_helpers.write_config(tmp_path / "c5.yaml", teacher, out,
                                         data={"label_column": 7}),
            "data.label_column: column 7 does not exist in"),
    }


@pytest.mark.parametrize("case", ["missing file", "unparsable yaml", "negative epochs",
                                  "unknown student", "missing label column"])
def test_bad_input_one_line_error_nothing_written(case, tmp_path, teacher_path, capsys):
    config, expected = _cases(tmp_path, teacher_path)[case]
    code = main(["distill", config])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("kd-keras distill: error: ")
    assert expected in err[0]
    out = str(tmp_path / "out")
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")


@pytest.mark.slow
def test_bad_input_in_a_subprocess_has_no_traceback(tmp_path, teacher_path):
    config, expected = _cases(tmp_path, teacher_path)["missing label column"]
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "kd_keras", "distill", config],
                          capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.startswith("kd-keras")]
    assert len(lines) == 1 and expected in lines[0]
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.partial")


def test_resume_without_partial_run_is_an_error(tmp_path, teacher_path, capsys):
    config = distill_helpers.write_config(tmp_path / "c.yaml", teacher_path, str(tmp_path / "o"))
    assert main(["distill", config, "--resume"]) == 2
    assert "--resume: no interrupted run" in capsys.readouterr().err


def test_help_describes_options(capsys):
    with pytest.raises(SystemExit):
        main(["distill", "--help"])
    text = capsys.readouterr().out
    assert "--resume" in text and "--output" in text and "CONFIG.yaml" in text


@pytest.mark.parametrize("error", ["ConfigError", "DataError", "UsageError", "MissingFileError",
                                   "MissingDependencyError", "VerificationError"])
def test_each_project_error_is_one_line_exit_2(error, tmp_path, teacher_path, monkeypatch,
                                               capsys):
    import kd_keras.errors
    import kd_keras.pipeline

    def fail(*args, **kwargs):
        raise getattr(kd_keras.errors, error)(f"some.key: bad value\nsecond line ({error})")

    monkeypatch.setattr(kd_keras.pipeline, "run_distill", fail)
    config = distill_helpers.write_config(tmp_path / "c.yaml", teacher_path, str(tmp_path / "o"))
    assert main(["distill", config]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # One line: kd_keras's own message whole, its line break (a value's) escaped.
    assert err == [f"kd-keras distill: error: some.key: bad value\\nsecond line ({error})"]


_BUG = """
import sys
import kd_keras.pipeline
def boom(*args, **kwargs):
    raise RuntimeError("an internal bug")
kd_keras.pipeline.run_distill = boom
from kd_keras.cli import main
sys.exit(main(["distill", sys.argv[1]]))
"""


@pytest.mark.slow
def test_an_unexpected_exception_keeps_its_traceback(tmp_path, teacher_path):
    config = distill_helpers.write_config(tmp_path / "c.yaml", teacher_path, str(tmp_path / "o"))
    env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", _BUG, config], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path))
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert "RuntimeError: an internal bug" in proc.stderr
    # A TensorFlow/Keras ValueError is a bug too, not a one-line user error.
    import kd_keras.pipeline

    def keras_value_error(*args, **kwargs):
        raise ValueError("Input 0 of layer 'dense' is incompatible")

    original = kd_keras.pipeline.run_distill
    kd_keras.pipeline.run_distill = keras_value_error
    try:
        with pytest.raises(ValueError, match="incompatible"):
            main(["distill", config])
    finally:
        kd_keras.pipeline.run_distill = original


def test_output_that_kd_keras_did_not_write_is_never_touched(tmp_path, teacher_path, capsys):
    users = tmp_path / "users_folder"
    users.mkdir()
    (users / "precious.txt").write_text("keep me")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me too")
    config = distill_helpers.write_config(tmp_path / "c.yaml", teacher_path, str(users))
    for target, why in ((users, "kd_keras did not write"), (a_file, "is a file, not a folder"),
                        (tmp_path, "kd_keras did not write")):
        assert main(["distill", config, "--output", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and why in err[0] and str(target) in err[0]
    assert (users / "precious.txt").read_text() == "keep me"
    assert a_file.read_text() == "keep me too"
    assert not os.path.exists(str(users) + ".partial")
