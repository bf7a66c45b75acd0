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
            "distill.epochs: must be a non-negative integer, got -1"),
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
