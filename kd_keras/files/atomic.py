"""`atomic_path`: write a file through a temporary file beside it, then rename.

A reader, or a run resumed after a crash, sees the old file or the new one,
never half of one. With `fsync=True` the new file's bytes reach the disk
before the rename (the cache asks for it), so a power loss cannot leave a
complete name over incomplete contents; by default nothing is synced. The
temporary file is `.NAME.tmp-XXXXXXXX` plus an optional suffix in the same
folder, so the rename stays on one filesystem; it is created with the usual
permissions (`0o666` less the umask, as `open` gives) and removed if the
write fails. A process killed mid-write leaves it behind: `remove_leftovers`
deletes such files from a folder that kd_keras owns (a resumed run folder),
and `leftover_target` tells which file one was for (the cache deletes only
its own). Every file kd_keras writes in place goes through here; a whole
export folder is staged and renamed by `kd_keras.export.output_dir`.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
>>> with atomic_path(path) as tmp:
...     with open(tmp, "w") as f:
...         _ = f.write("done")
>>> open(path).read(), os.listdir(os.path.dirname(path))
('done', ['notes.txt'])
"""

import contextlib
import os
import re
import secrets

_LEFTOVER = re.compile(r"\.(?P<target>.+)\.tmp-[0-9a-f]{8}(\.[A-Za-z0-9_.]+)?")


@contextlib.contextmanager
def atomic_path(path, suffix="", fsync=False):
    """Yields a new empty temporary path beside `path`, renamed onto `path`
    when the block ends; removed instead if the block raises.

    The temporary file is created, closed and reopened by name by the
    writer, so it belongs in a folder that only this user writes (a run
    folder, the results folder), not a shared one.

    Args:
        path: the file to write (its folder must exist).
        suffix: the temporary name's ending, for writers that choose the
            format from it (`".png"` for matplotlib, `".weights.h5"` for
            Keras); letters, digits, `_` and `.` only.
        fsync: flush the written file to disk before the rename (slower;
            for stores that must survive a power loss, like the cache).

    Returns:
        A context manager whose value is the temporary path.

    Raises:
        OSError: the folder is missing or cannot be written (before the
            block runs), or the rename fails (the temporary is removed).

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> try:
    ...     with atomic_path(path) as tmp:
    ...         raise ValueError("the writer failed")
    ... except ValueError:
    ...     pass
    >>> os.listdir(os.path.dirname(path))
    []
    """
    target = os.path.abspath(path)
    folder, name = os.path.split(target)
    while True:
        tmp = os.path.join(folder, f".{name}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        if fsync:
            _sync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _sync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def leftover_target(name):
    """The file name a leftover temporary file was written for.

    Args:
        name: a file name (no folder).

    Returns:
        `NAME` for `.NAME.tmp-XXXXXXXX` with an optional suffix, `None`
        for a name `atomic_path` does not give.

    Example:

    >>> leftover_target(".metadata.json.tmp-0a1b2c3d"), leftover_target("metadata.json")
    ('metadata.json', None)
    """
    match = _LEFTOVER.fullmatch(name)
    return match and match.group("target")


def is_leftover(name):
    """Whether a file name is one `atomic_path` gives its temporary files.

    Args:
        name: a file name (no folder).

    Returns:
        `True` for `.NAME.tmp-XXXXXXXX` with an optional suffix.

    Example:

    >>> is_leftover(".stages.json.tmp-0a1b2c3d"), is_leftover("stages.json")
    (True, False)
    """
    return leftover_target(name) is not None


def remove_leftovers(folder):
    """Deletes the temporary files that killed writers left anywhere under
    `folder`. Call it only on a folder kd_keras owns and holds the lock of.

    Args:
        folder: the folder to clean.

    Returns:
        The sorted paths removed.

    Example:

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in (".w.h5.tmp-0a1b2c3d.weights.h5", "w.h5", "notes.tmp"):
    ...     open(os.path.join(folder, name), "w").close()
    >>> [os.path.basename(p) for p in remove_leftovers(folder)], sorted(os.listdir(folder))
    (['.w.h5.tmp-0a1b2c3d.weights.h5'], ['notes.tmp', 'w.h5'])
    """
    removed = []
    for root, _, files in os.walk(folder):
        for name in files:
            if is_leftover(name):
                path = os.path.join(root, name)
                os.remove(path)
                removed.append(path)
    return sorted(removed)
