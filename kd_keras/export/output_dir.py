"""The atomic export directory: build beside it, then rename into place.

`staging_dir(out_dir)` creates a hidden folder next to `out_dir` (same
filesystem, so the final rename is atomic), `.OUT.tmp-XXXXXXXX`, with the
usual umask permissions, and carries over what an earlier export left
there, except the files this export regenerates: earlier SavedModel
versions are hard-linked, never rewritten. `commit(tmp, out_dir)` records
every file of the new export in its marker `EXPORT_MARKER` and swaps it
in; on failure the caller removes `tmp` and nothing is left behind.

An existing `out_dir` is replaced only when kd_keras wrote all of it
(`kd_keras.files.ownership.check_replaceable`): a folder without the marker, a
file the marker does not list (a user's notes, a symlink), an edited
report or a symlinked `out_dir` stops the export before any work.

A staging folder holds the marker file `STAGING_MARKER` (the process that
made it) until it is committed. A folder left by a killed export is removed
by the next export into the same parent, recognised by that marker (never
by its name alone) and only when the process that made it is gone.
"""

import json
import os
import secrets
import shutil

from kd_keras.errors import UsageError
from kd_keras.export.layout import REPORT_FILE
from kd_keras.files.ownership import check_replaceable
from kd_keras.files.paths import check_writable_name
from kd_keras.files.ownership import write_marker
from kd_keras.files.processes import is_gone
from kd_keras.files.processes import owner

GENERATED = ("tflite", "onnx", "mediapipe", "verification", "rejected", REPORT_FILE,
             "report.md", "report.png")
STAGING_MARKER = ".kd_keras_export_staging"
EXPORT_MARKER = ".kd_keras_export"


def check_out_dir(out_dir):
    """`out_dir` as a string, refused when it names no folder of its own
    (`.`, `..`, `""`, `/`, or the current folder or one holding it by any
    other path): an export replaces the whole folder.

    Example:

    >>> check_out_dir(".")
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: out_dir: '.' is the current folder (or its parent, or the root), which an export would replace whole; give a folder of its own, e.g. out/
    """
    out_dir = check_writable_name(os.fspath(out_dir), "out_dir")
    norm = os.path.abspath(out_dir or ".")
    if os.path.normpath(out_dir or ".") in (".", "..") or norm == os.path.dirname(norm):
        raise UsageError(f"out_dir: {out_dir!r} is the current folder (or its parent, or the "
                         "root), which an export would replace whole; give a folder of its "
                         "own, e.g. out/")
    real, here = os.path.realpath(norm), os.path.realpath(os.getcwd())
    if here == real or here.startswith(real.rstrip(os.sep) + os.sep):
        raise UsageError(f"out_dir: {out_dir!r} is the current folder or holds it, which an "
                         "export would replace whole; give a folder of its own, e.g. out/")
    return out_dir


def make_parent(out_dir):
    """Creates the folder that holds `out_dir` (and its lock); returns it.

    Raises:
        UsageError: it cannot be created (a file stands in its way, or no
            permission).
    """
    parent = os.path.dirname(os.path.abspath(out_dir))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{out_dir}: output directory is not writable ({e.strerror})") from None
    return parent


def staging_dir(out_dir):
    """Returns a new temporary directory beside `out_dir`, seeded with the
    earlier export's SavedModel versions and extra files.

    Staging folders that killed exports left beside `out_dir` are removed
    first (`remove_abandoned`).

    Example:

    >>> tmp = staging_dir("out")  # doctest: +SKIP
    """
    out_dir = os.fspath(out_dir)
    check_replaceable(out_dir, EXPORT_MARKER, "out_dir")
    parent = make_parent(out_dir)
    base = os.path.basename(os.path.abspath(out_dir))
    try:
        remove_abandoned(parent, base)
        tmp = _new_folder(parent, f".{base}.tmp-")
    except OSError as e:
        raise UsageError(
            f"{out_dir}: output directory is not writable ({e.strerror})"
        ) from None
    if os.path.isdir(out_dir):  # Keep earlier SavedModel versions and extras.
        for entry in os.listdir(out_dir):
            if entry in GENERATED or entry in (STAGING_MARKER, EXPORT_MARKER):
                continue
            src, dst = os.path.join(out_dir, entry), os.path.join(tmp, entry)
            if os.path.isdir(src):
                shutil.copytree(src, dst, copy_function=_link_or_copy)
            else:
                _link_or_copy(src, dst)
    return tmp


def _new_folder(parent, prefix):
    """Creates `parent/prefix<random>` with the umask's permissions (unlike
    `tempfile.mkdtemp`, which makes it 0700) and the staging marker."""
    for _ in range(100):
        path = os.path.join(parent, prefix + secrets.token_hex(4))
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        with open(os.path.join(path, STAGING_MARKER), "w") as f:
            json.dump(owner(), f)
        return path
    raise FileExistsError(f"no free staging folder name in {parent}")


def _abandoned(path):
    """True when `path` is a staging folder whose process is gone."""
    try:
        with open(os.path.join(path, STAGING_MARKER)) as f:
            return is_gone(json.load(f))
    except (OSError, ValueError, RecursionError):
        return False  # Not ours, or not readable: never touched.


def remove_abandoned(parent, base):
    """Removes `.BASE.tmp-*` / `.BASE.old-*` folders in `parent` that carry
    the staging marker of a process that no longer runs.

    Returns:
        The removed paths.
    """
    removed = []
    for entry in sorted(os.listdir(parent)):
        if not entry.startswith((f".{base}.tmp-", f".{base}.old-")):
            continue
        path = os.path.join(parent, entry)
        if os.path.isdir(path) and not os.path.islink(path) and _abandoned(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _link_or_copy(src, dst):
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def commit(tmp, out_dir):
    """Replaces `out_dir` with `tmp` (two renames; the old tree is removed)."""
    marker = os.path.join(tmp, STAGING_MARKER)
    with open(marker) as f:
        owner = f.read()
    os.remove(marker)
    write_marker(tmp, EXPORT_MARKER, {"kd_keras_export": 1})
    check_replaceable(out_dir, EXPORT_MARKER, "out_dir")  # Nothing of a user's appeared since.
    if os.path.isdir(out_dir):
        head, base = os.path.split(tmp)
        old = os.path.join(head, base.replace(".tmp-", ".old-", 1))
        os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        with open(os.path.join(old, STAGING_MARKER), "w") as f:
            f.write(owner)  # Ours now: removable if this process is killed here.
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
