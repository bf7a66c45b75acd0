"""`OUTPUT.lock`: one kd-keras run writes an output at a time.

The lock file names its holder (pid, host, start time) and the holder keeps
an OS lock (`flock`) on it while it lives, which the OS drops however the
process ends. So a lock whose `flock` is free and that says it was taken
with one (`"flock": 1`) is stale, and exactly one of several runs that find
it takes it over. A lock written without one (by an earlier kd_keras) is
taken over only when the process it names is gone from this host.

The lock file is opened without following a symlink and must be a regular
file; anything else, or a file this user cannot open, is one line.

Example:

>>> import os, tempfile
>>> out = os.path.join(tempfile.mkdtemp(), "run")
>>> acquire_lock(out) == out + ".lock"
True
>>> release_lock(out); os.path.exists(out + ".lock")
False
"""

import errno
import fcntl
import json
import os
import stat
import time

from kd_keras.errors import UsageError
from kd_keras.files.json_files import read_json
from kd_keras.files.processes import is_gone
from kd_keras.files.processes import owner

LOCK_SUFFIX = ".lock"
_HELD = {}  # Lock path -> the open file this process holds its `flock` through.


def acquire_lock(output, what="output"):
    """Creates `OUTPUT.lock`, naming this process, or refuses when another
    live kd-keras process holds it (a stale lock is taken over).

    Args:
        output: the folder the run writes.
        what: how messages name it (`"output"`, `"out_dir"`).

    Returns:
        The lock file's path.

    Raises:
        UsageError: naming the process that holds the lock, or what is wrong
            with the lock file.
    """
    path = _lock_path(output)
    # The lock sits beside OUTPUT: its parent (e.g. `runs/` in a fresh
    # clone) is created, as publishing OUTPUT would create it anyway.
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    if path in _HELD:  # Taken again by its holder: the old handle goes.
        os.close(_HELD.pop(path))
    for _ in range(3):
        fd = _open(path, what)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            _refuse(path, output, _read_lock(path), True, what)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # Released (removed) between open and flock.
            same = False
        if not same:
            os.close(fd)
            continue
        if os.fstat(fd).st_size:
            other = _read_lock(path)
            if not _stale(other):
                os.close(fd)
                _refuse(path, output, other, False, what)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({**owner(), "started": time.time(), "flock": 1}).encode())
        _HELD[path] = fd
        return path
    raise UsageError(f"{what}: cannot take the lock {path}")


def _lock_path(output):
    """`OUTPUT.lock`, beside `output` even when it is given as `out/`."""
    return f"{os.path.normpath(output)}{LOCK_SUFFIX}"


def _open(path, what):
    """The lock file opened for writing (created if missing), never through
    a symlink, and only when it is a regular file."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UsageError(f"{what}: the lock file {path} is a symlink; remove it "
                             "yourself") from None
        raise UsageError(f"{what}: cannot open the lock file {path} ({e.strerror}); remove "
                         "it yourself if no kd-keras run is writing there") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{what}: the lock file {path} is not a regular file; remove it "
                         "yourself")
    return fd


def _stale(other):
    """Whether a lock whose `flock` is free may be taken over: one taken with
    a `flock` (its holder would hold it), or one whose process is gone."""
    if not isinstance(other.get("pid"), int):
        return False
    if other.get("flock") == 1:
        return True
    return {k: other.get(k) for k in ("pid", "host")} == owner() or is_gone(other)


def _refuse(path, output, other, held, what):
    """The one-line refusal of a lock another run holds (or may hold)."""
    pid = other.get("pid")
    if not isinstance(pid, int):
        if held:
            raise UsageError(f"{what}: {output} is being written by another kd-keras run "
                             f"(lock file {path})") from None
        raise UsageError(
            f"{what}: the lock file {path} names no process (empty or damaged), so "
            f"no live kd-keras run is known to hold it; if none is writing {output}, "
            f"remove {path} and run again") from None
    raise UsageError(
        f"{what}: {output} is being written by another kd-keras run (pid {pid} on "
        f"{other.get('host', '?')}, lock file {path}); wait for it to finish, or write "
        f"elsewhere{' (--output)' if what == 'output' else ''}") from None


def _read_lock(path):
    """A lock file's JSON object, `{}` when it is empty or damaged; read
    twice, since a new lock is empty for the moment before its owner writes."""
    for attempt in range(2):
        try:
            other = read_json(path)
            if isinstance(other, dict):
                return other
        except (OSError, ValueError, RecursionError):
            pass
        if attempt == 0:
            time.sleep(0.2)
    return {}


def release_lock(output):
    """Removes `OUTPUT.lock` if this process holds it.

    Args:
        output: the folder the run wrote.
    """
    path = _lock_path(output)
    try:
        if not os.path.islink(path) and read_json(path).get("pid") == os.getpid():
            os.remove(path)
    except (OSError, ValueError, AttributeError):
        pass
    if path in _HELD:  # Closed after the removal: no other run can flock it meanwhile.
        os.close(_HELD.pop(path))
