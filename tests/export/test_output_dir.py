"""The export folder's staging: umask permissions, and folders left by a
killed export removed by the next one (only those kd_keras made)."""

import json
import os
import socket
import subprocess
import sys

import keras
import pytest

from kd_keras.errors import UsageError
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


@pytest.mark.parametrize("name", ["here", "parent", "link"])
def test_the_current_folder_by_any_path_is_refused(tmp_path, monkeypatch, name):
    # An export replaces its folder whole: the shell's own folder would be
    # swapped out from under it.
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    os.symlink(work, tmp_path / "link")
    monkeypatch.chdir(work)
    out = {"here": work, "parent": tmp_path / "a", "link": tmp_path / "link"}[name]
    x = keras.Input((4,), name="features")
    with pytest.raises(UsageError, match=r"^out_dir: .* is the current folder or holds it"):
        export_model(keras.Model(x, keras.layers.Dense(3)(x)), str(out), formats=("onnx",))
    assert sorted(os.listdir(tmp_path)) == ["a", "link"] and os.listdir(work) == []
