"""Reading an export folder without trusting it.

An export folder may come from anyone, so nothing in it is taken on trust:
a path read from `report.json` or found by listing the folder may be
absolute, climb out with `..`, be a symlink out of the folder, or be a FIFO
or a device whose read never ends; a JSON file may be huge or nested
deeply enough to exhaust the parser. `kd-keras verify` and `kd-keras
predict` (through `report`, `verify`, `inventory` and `runtimes`) read the
folder only through these functions:

- `resolve_path(out_dir, path, what)`: a relative path from a report,
  joined onto the folder and checked with `check_inside`;
- `check_inside(root, path, what)`: the real path (symlinks followed)
  stays inside `root` and holds only regular files and folders;
- `read_json_file(path, root)`: a JSON object of at most `MAX_JSON_BYTES`,
  a damaged one turned into one line.
"""

import json
import os
import re
import stat

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import one_line

# The largest JSON file read from an export folder (report.json, a TFLite
# sidecar): far more than an export writes, far less than would stall a read.
MAX_JSON_BYTES = 16 << 20


def resolve_path(out_dir, path, what):
    """Joins a relative artifact path from a report onto the report's folder.

    Args:
        out_dir: the folder holding `report.json`.
        path: the stored path, relative, with `/` (or `\\`) separators.
        what: how the message names the value (file and key).

    Returns:
        `out_dir` joined with the path's parts.

    Raises:
        DataError: for an empty, absolute or `..` path, one holding a NUL
            character, or one whose real path (symlinks followed) leaves
            `out_dir` or is not a regular file or folder (never trusted;
            see `check_inside`).

    Example:

    >>> resolve_path("out", "tflite/model.tflite", "report.json: path")
    'out/tflite/model.tflite'
    >>> resolve_path("out", "../etc/passwd", "report.json: path")
    Traceback (most recent call last):
    ...
    kd_keras.errors.DataError: report.json: path: '../etc/passwd' is not a relative path inside the export folder
    """
    parts = re.split(r"[\\/]", path) if isinstance(path, str) else []
    kept = [p for p in parts if p not in ("", ".")]
    if (
        not kept
        or os.path.isabs(path)
        or re.match(r"^[A-Za-z]:", path)
        or parts[0] == ""
        or ".." in parts
        or "\0" in path
    ):
        raise DataError(
            f"{what}: {path!r} is not a relative path inside the export folder"
        )
    return check_inside(out_dir, os.path.join(out_dir, *kept), f"{what}: {path!r}")


def check_inside(root, path, what, root_name="the export folder"):
    """Checks that `path`, symlinks followed, stays inside `root` and holds
    only regular files and folders.

    A path read from a file or found by listing a folder is never trusted:
    a symlink out of the export folder would be read (and reported on) as
    if it were part of it, and a FIFO or a device (`/dev/zero`) would make
    a read that never ends. A folder is checked entry by entry, through
    symlinked sub-folders too. A path that does not exist passes: the
    caller reports it as missing.

    Args:
        root: the export folder.
        path: a path under `root`.
        what: how the message names `path`.
        root_name: how the message names `root`.

    Returns:
        `path`.

    Raises:
        DataError: naming the entry that leaves `root` or is not a regular
            file or folder.

    Example:

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> os.symlink("/dev/null", os.path.join(root, "model.tflite"))
    >>> check_inside(root, os.path.join(root, "model.tflite"), "model.tflite")
    Traceback (most recent call last):
    ...
    kd_keras.errors.DataError: model.tflite: leads outside the export folder (to /dev/null)
    """
    real_root = os.path.realpath(root)
    pending, seen = [(path, what)], set()
    while pending:
        current, label = pending.pop()
        real = _real_entry(real_root, current, label, root_name)
        if real is None or real in seen:  # A file, nothing, or a folder seen.
            continue
        seen.add(real)
        try:
            names = os.listdir(current)
        except OSError as e:
            raise DataError(f"{label}: cannot be read ({e.strerror})") from None
        for name in sorted(names, reverse=True):
            pending.append((os.path.join(current, name),
                            f"{what}: {os.path.relpath(os.path.join(current, name), path)!r}"))
    return path


def _real_entry(real_root, path, what, root_name):
    """The real path of a folder inside `real_root`; None for a regular
    file there or nothing at all; a `DataError` for anything else."""
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root:
        raise DataError(f"{what}: leads outside {root_name} (to {real})")
    try:
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise DataError(f"{what}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(mode):
        return real
    if not stat.S_ISREG(mode):
        raise DataError(f"{what}: not a regular file (a FIFO, device or socket)")
    return None


def read_json_file(path, root=None):
    """Reads a JSON object from an export folder, trusting nothing in it.

    Args:
        path: the file (`report.json`, a TFLite sidecar).
        root: the folder it must stay inside, symlinks followed (default:
            the file's own folder).

    Returns:
        The parsed dict.

    Raises:
        MissingFileError: no such file.
        DataError: a path out of `root` or not a regular file (see
            `check_inside`), a file over `MAX_JSON_BYTES`, or one that is not
            a UTF-8 JSON object (nested too deeply included).
    """
    check_inside(os.path.dirname(path) if root is None else root, path, path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise MissingFileError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None
    if len(data) > MAX_JSON_BYTES:
        raise DataError(
            f"{path}: larger than {MAX_JSON_BYTES} bytes; not a file an export writes")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise DataError(f"{path}: not a readable JSON file ({one_line(e)})") from None
    except RecursionError:
        raise DataError(f"{path}: not a readable JSON file (damaged: nested too deeply)") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value
