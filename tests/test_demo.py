"""`kd_keras.demo`: the command it suggests after the run can be pasted as
printed, in an environment that is not activated too."""

import os
import sys

from kd_keras.demo import command_path


def _environment(root):
    bin_dir = root / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("python", "kd-keras"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_kd_keras_beside_python_but_not_on_the_path_is_named_by_its_path(tmp_path,
                                                                         monkeypatch):
    # `make demo` runs .venv/bin/python without activating .venv: the demo
    # said "kd-keras predict ...", which the shell then could not find.
    bin_dir = _environment(tmp_path)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.chdir(tmp_path)
    assert command_path() == os.path.join("venv", "bin", "kd-keras")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert command_path() == str(bin_dir / "kd-keras")  # Not under the current folder.
    monkeypatch.setenv("PATH", str(bin_dir))
    assert command_path() == "kd-keras"
