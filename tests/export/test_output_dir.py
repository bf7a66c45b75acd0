"""The export folder's staging: umask permissions, and folders left by a
killed export removed by the next one (only those kd_keras made)."""

import json
import os
import socket
import subprocess
import sys

import keras
import pytest

from kd_keras.export import export_model
from kd_keras.export.output_dir import STAGING_MARKER
from kd_keras.export.output_dir import staging_dir


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_export_folders_get_umask_permissions(tmp_path, umask_022):
    x = keras.Input((4,), name="features")
    out = tmp_path / "out"
    export_model(keras.Model(x, keras.layers.Dense(3)(x)), out, formats=("onnx",),
                 latency_runs=0)
    assert os.stat(out).st_mode & 0o777 == 0o755  # mkdtemp would give 0o700
    assert not os.path.exists(out / STAGING_MARKER)


def test_a_killed_exports_staging_folders_are_removed_by_the_next(tmp_path):
    host = socket.gethostname()
    killed = tmp_path / ".out.tmp-0badf00d"
    killed.mkdir()
    (killed / STAGING_MARKER).write_text(json.dumps({"pid": _dead_pid(), "host": host}))
    (killed / "report.json").write_text("{}")
    running = tmp_path / ".out.tmp-00c0ffee"  # Another export, still running.
    running.mkdir()
    (running / STAGING_MARKER).write_text(json.dumps({"pid": os.getppid(), "host": host}))
    user = tmp_path / ".out.tmp-mine"  # The right name, but not made by kd_keras.
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    other = tmp_path / ".elsewhere.tmp-0badf00d"  # Another export's folder.
    other.mkdir()
    (other / STAGING_MARKER).write_text(json.dumps({"pid": _dead_pid(), "host": host}))

    tmp = staging_dir(str(tmp_path / "out"))
    assert not killed.exists()
    assert running.exists() and (user / "notes.txt").exists() and other.exists()
    assert os.path.isfile(os.path.join(tmp, STAGING_MARKER))
