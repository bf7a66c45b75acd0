"""`kd_keras.files.lock`: the run lock is never followed through a symlink,
refuses what is not a regular file in one line, and a stale lock taken
with `flock` is taken over even when its pid now names a live process."""

import json
import os
import subprocess
import sys

import pytest

from kd_keras.errors import UsageError
from kd_keras.files.lock import acquire_lock
from kd_keras.files.lock import release_lock


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path):
    out = str(tmp_path / "run")
    target = tmp_path / "users_file"
    target.write_text("")
    os.symlink(target, out + ".lock")
    with pytest.raises(UsageError, match=r"lock file .*run.lock is a symlink"):
        acquire_lock(out)
    assert target.read_text() == ""
    os.remove(out + ".lock")
    os.symlink(tmp_path / "nowhere", out + ".lock")  # Dangling: never created.
    with pytest.raises(UsageError, match="is a symlink"):
        acquire_lock(out)
    assert not os.path.exists(tmp_path / "nowhere")


def test_a_folder_as_the_lock_is_one_line(tmp_path):
    out = str(tmp_path / "run")
    os.mkdir(out + ".lock")
    with pytest.raises(UsageError, match="(not a regular file|cannot open the lock file)"):
        acquire_lock(out)


def test_a_stale_flock_lock_naming_a_live_pid_is_taken_over(tmp_path):
    # After a container restart the dead holder's pid may name a live
    # process; its free flock says the lock is stale.
    out = str(tmp_path / "run")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with open(out + ".lock", "w") as f:
            json.dump({"pid": sleeper.pid, "host": __import__("socket").gethostname(),
                       "flock": 1}, f)
        assert acquire_lock(out) == out + ".lock"
        with open(out + ".lock") as f:
            assert json.load(f)["pid"] == os.getpid()
        release_lock(out)
        # Without the field (an earlier kd_keras), the live pid keeps it.
        with open(out + ".lock", "w") as f:
            json.dump({"pid": sleeper.pid, "host": __import__("socket").gethostname()}, f)
        with pytest.raises(UsageError, match=rf"another kd-keras run \(pid {sleeper.pid}"):
            acquire_lock(out)
    finally:
        sleeper.kill()
        sleeper.wait()



def test_a_folder_given_with_a_trailing_slash_is_locked_beside_it(tmp_path):
    # `out/` put the lock inside the folder it guards, as `out/.lock`.
    from kd_keras.files.lock import acquire_lock
    from kd_keras.files.lock import release_lock

    out = str(tmp_path / "out") + os.sep
    assert acquire_lock(out) == str(tmp_path / "out.lock")
    assert os.listdir(tmp_path) == ["out.lock"]
    release_lock(out)
    assert os.listdir(tmp_path) == []
