"""State that an interrupted run reads back: a pipeline stage's files in
`OUTPUT.partial/`, the files of the resumable callbacks (`kd_keras.callbacks`).

They are written atomically (a temporary file, then a rename) and read back
through `resumed`, so a file deleted or damaged between the interruption
and `--resume` is a one-line `UsageError` that names it, not a traceback.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "student.npz")
>>> resumed(path, load_npz)
Traceback (most recent call last):
...
kd_keras.errors.UsageError: --resume: ...student.npz is missing or damaged; run without --resume to start over
"""

import zipfile

import numpy as np

from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError
from kd_keras.files.atomic import atomic_path

# What reading a missing, truncated or overwritten file raises: the OS,
# NumPy's and h5py's readers (OSError, ValueError, EOFError), a zip archive
# (.npz, .keras) and an .npz without the arrays it should hold (KeyError).
_DAMAGED = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, KdKerasError)


def save_npz(path, arrays):
    """Writes a dict of arrays as an `.npz`, atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_npz(path):
    """Reads an `.npz` (no pickled objects) into a dict of arrays."""
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def resumed(path, load):
    """Reads a file an interrupted run wrote, for `--resume`.

    Args:
        path: the file, inside `OUTPUT.partial/`.
        load: `path -> value`, e.g. `load_npz` or
            `kd_keras.files.json_files.read_json`.

    Returns:
        What `load` returns.

    Raises:
        UsageError: the file is missing or cannot be read; the message names
            it and says to run without `--resume`.
    """
    try:
        return load(path)
    except _DAMAGED:
        raise UsageError(f"--resume: {path} is missing or damaged; run without --resume "
                         "to start over") from None
