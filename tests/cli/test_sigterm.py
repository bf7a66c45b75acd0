"""`kd-keras distill` stopped by SIGTERM (a scheduler, `docker stop`) keeps
its run as Ctrl-C does: the files recorded, the resume command printed, and
a plain run afterwards starts over on it."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from pipeline import tiny_run

# Seconds a stopped command may take to finish: generous, since the whole
# suite shares the machine; the stopping itself takes a second or two.
STOP_TIMEOUT = 300


def _env():
    # PYTHONFAULTHANDLER: a child that fails to stop prints its threads' stacks.
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), TF_CPP_MIN_LOG_LEVEL="2",
                PYTHONFAULTHANDLER="1")


def _stderr_after_stop(run):
    """The child's stderr once it has ended; one that hangs is aborted, and
    the test fails with where it hung rather than leaving it running."""
    try:
        return run.communicate(timeout=STOP_TIMEOUT)[1]
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGABRT)  # The fault handler dumps every thread.
        try:
            err = run.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            run.kill()
            err = run.communicate()[1]
        stacks = "\n".join(line for line in err.splitlines()
                           if not line.startswith("Extension modules:"))
        pytest.fail(f"still running {STOP_TIMEOUT} s after SIGTERM:\n{stacks[-8000:]}")


def _finished(partial, stage):
    try:
        with open(os.path.join(partial, "stages.json")) as f:
            return stage in json.load(f)
    except (OSError, ValueError):
        return False


def test_sigterm_keeps_the_run_resumable(tmp_path, capsys):
    base = tiny_run.make_world(tmp_path)
    # Long enough to be stopped in the middle of the distillation.
    config = tiny_run.write_config(tmp_path / "run.yaml", base,
                                   **{"distill.epochs": 3000})
    partial = base["output"] + ".partial"
    run = subprocess.Popen([sys.executable, "-m", "kd_keras", "distill", config],
                           stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 240
    while not _finished(partial, "teacher_outputs") and time.monotonic() < deadline:
        assert run.poll() is None, run.stderr.read()
        time.sleep(0.2)
    time.sleep(1.0)  # Into the training.
    run.send_signal(signal.SIGTERM)
    err = _stderr_after_stop(run)
    assert run.returncode == 143, err
    assert f"the unfinished run is kept in {partial}; continue it with: kd-keras distill " \
           f"{config} --resume" in err
    assert "Traceback" not in err
    # Its files are recorded: a run without --resume may start over on them.
    short = tiny_run.write_config(tmp_path / "short.yaml", base)
    status, lines = tiny_run.run_cli(capsys, "distill", short)
    assert status == 0, lines


def test_sigterm_during_an_export_leaves_no_staging_folder(tmp_path):
    import keras

    x = keras.Input((4,), name="features")
    keras.Model(x, keras.layers.Dense(3)(x)).save(str(tmp_path / "m.keras"))
    run = subprocess.Popen([sys.executable, "-m", "kd_keras", "export", "m.keras", "out"],
                           stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not any(n.startswith(".out.tmp-") for n in os.listdir(tmp_path)):
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)  # Converting: the staging folder is half-built.
    err = _stderr_after_stop(run)
    assert run.returncode == 143, err
    assert err.splitlines()[-1] == "kd-keras export: interrupted" and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]
