"""What a run prints besides its own output: no Keras warning about
`shuffle`, no TensorFlow native log lines unless `--verbose`, and the demo's
errors are one line, as the commands' are."""

import os
import re
import subprocess
import sys
import warnings

import pytest

from conftest import REPO_ROOT
from pipeline import tiny_run

NATIVE_LOG = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+|WARNING: All log messages before)"
                        r"|cuInit", re.MULTILINE)


def test_a_run_gives_keras_no_reason_to_warn_about_shuffle(capsys, tmp_path):
    """Every `fit` kd_keras calls reads a `tf.data.Dataset` it has already
    shuffled; Keras warns when such a fit is also asked to shuffle."""
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "run.yaml", base)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, lines = tiny_run.run_cli(capsys, "distill", config)
    assert status == 0, lines
    shuffle = [str(w.message) for w in caught if "shuffle" in str(w.message)]
    assert not shuffle, shuffle
    assert os.path.isfile(os.path.join(base["output"], "student.keras"))


def _without_log_level():
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


@pytest.mark.slow
def test_the_demo_hides_native_log_lines_and_its_errors_are_one_line(tmp_path):
    """The demo imports TensorFlow (whose start-up lines go to descriptor 2
    from C++) and then refuses to replace a file it did not write."""
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    done = subprocess.run([sys.executable, "-m", "kd_keras.demo", "--output", str(mine)],
                          env=_without_log_level(), cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert not NATIVE_LOG.search(done.stderr), done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"python -m kd_keras.demo: error: output: {mine} is a file"), lines
    assert mine.read_text() == "mine"


@pytest.mark.slow
def test_a_command_hides_the_lines_of_tensorflow_s_device_set_up(tmp_path):
    """A command that initialises TensorFlow's devices (the `E0000 ...
    cuInit` line on a machine without a GPU) and then refuses its input."""
    import keras

    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")]
                     ).save(str(tmp_path / "probabilities.keras"))
    done = subprocess.run(
        [sys.executable, "-m", "kd_keras", "export", str(tmp_path / "probabilities.keras"),
         str(tmp_path / "out")], env=_without_log_level(), capture_output=True, text=True,
        timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert not NATIVE_LOG.search(done.stderr), done.stderr[-3000:]
    assert len(done.stderr.splitlines()) == 1, done.stderr[-3000:]
