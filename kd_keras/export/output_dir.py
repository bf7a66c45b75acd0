"""The atomic export directory: build beside it, then rename into place.

`staging_dir(out_dir)` creates a temporary directory next to `out_dir`
(same filesystem, so the final rename is atomic) and carries over what an
earlier export left there, except the files this export regenerates:
earlier SavedModel versions are hard-linked, never rewritten.
`commit(tmp, out_dir)` swaps it in; on failure the caller removes `tmp` and
nothing is left behind.
"""

import os
import shutil
import tempfile

from kd_keras.errors import UsageError

GENERATED = ("tflite", "onnx", "verification", "report.json", "report.md", "report.png")


def staging_dir(out_dir):
    """Returns a new temporary directory beside `out_dir`, seeded with the
    earlier export's SavedModel versions and extra files.

    Example:

    >>> tmp = staging_dir("out")  # doctest: +SKIP
    """
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"{out_dir}: output directory exists and is a file")
    parent = os.path.dirname(os.path.abspath(out_dir))
    base = os.path.basename(os.path.abspath(out_dir))
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{base}.tmp-", dir=parent)
    except OSError as e:
        raise UsageError(
            f"{out_dir}: output directory is not writable ({e.strerror})"
        ) from None
    if os.path.isdir(out_dir):  # Keep earlier SavedModel versions and extras.
        for entry in os.listdir(out_dir):
            if entry in GENERATED:
                continue
            src, dst = os.path.join(out_dir, entry), os.path.join(tmp, entry)
            if os.path.isdir(src):
                shutil.copytree(src, dst, copy_function=_link_or_copy)
            else:
                _link_or_copy(src, dst)
    return tmp


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def commit(tmp, out_dir):
    """Replaces `out_dir` with `tmp` (two renames; the old tree is removed)."""
    if os.path.isdir(out_dir):
        head, base = os.path.split(tmp)
        old = os.path.join(head, base.replace(".tmp-", ".old-", 1))
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out_dir)


def size_bytes(path):
    """Size of a file, or of all files under a directory."""
    if os.path.isdir(path):
        return sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(path)
            for f in files
        )
    return os.path.getsize(path)
