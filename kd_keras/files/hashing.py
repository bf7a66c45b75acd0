"""`sha256_path`: the SHA-256 checksum of a file or a folder.

The cache records one for every shard file and the export report one for
every artifact (a SavedModel is a folder), so that `kd_keras.cache.load` and
`kd-keras verify` can tell a file that changed since it was written.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
>>> with open(path, "w") as f:
...     _ = f.write("abc")
>>> sha256_path(path)[:16]
'ba7816bf8f01cfea'
"""

import hashlib
import os
import stat

from kd_keras.errors import DataError

_BLOCK = 1 << 20  # Read 1 MiB at a time: any file size in bounded memory.


def sha256_path(path):
    """SHA-256 hex digest of a file, or of a folder's files.

    A folder's digest covers every file below it: its path relative to the
    folder and its own digest, in sorted order, so a renamed, added, removed
    or changed file changes it. Symlinked sub-folders are followed (a
    teacher's weights may sit behind one), each real folder once.

    Args:
        path: a regular file or a folder.

    Returns:
        The 64-character hex digest.

    Raises:
        DataError: `path` is a FIFO, device or socket (reading it might never
            end).
        FileNotFoundError: `path` does not exist.

    Example:

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.txt"), "w") as f:
    ...     _ = f.write("abc")
    >>> before = sha256_path(folder)
    >>> os.rename(os.path.join(folder, "a.txt"), os.path.join(folder, "b.txt"))
    >>> sha256_path(folder) == before
    False
    """
    digest = hashlib.sha256()
    if os.path.isdir(path):
        seen = set()
        for root, dirs, files in os.walk(path, followlinks=True):
            real = os.path.realpath(root)
            if real in seen:  # A link back to a folder already hashed.
                dirs[:] = []
                continue
            seen.add(real)
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                digest.update(os.fsencode(os.path.relpath(full, path)) + b"\0")
                digest.update(sha256_path(full).encode("ascii"))
        return digest.hexdigest()
    if not stat.S_ISREG(os.stat(path).st_mode):  # A FIFO or /dev/zero never ends.
        raise DataError(f"{path}: not a regular file (a FIFO, device or socket)")
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()
