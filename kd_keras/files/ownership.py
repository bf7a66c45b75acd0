"""What kd_keras wrote in a folder, so that replacing it never loses a user's file.

A folder that kd_keras publishes (a run's `OUTPUT`, an export folder) holds a
marker file. When the folder is complete, `write_marker` records in it every
file under the folder with its size and modification time. Before kd_keras
replaces such a folder, `check_replaceable` compares the folder with its
record: a folder without the marker, a file the record does not list (a
user's notes, a symlink, a FIFO), or a listed file that changed since (an
edited `report.md`) stops the command with one line, before any work, and
nothing is touched. A folder given as a symlink is refused too: replacing it
by a rename would turn the link into a real folder.

Example:

>>> import os, tempfile
>>> folder = os.path.join(tempfile.mkdtemp(), "out")
>>> os.mkdir(folder)
>>> with open(os.path.join(folder, "model.bin"), "w") as f:
...     _ = f.write("weights")
>>> write_marker(folder, ".owner")
>>> foreign_files(folder, ".owner")
[]
>>> with open(os.path.join(folder, "notes.txt"), "w") as f:
...     _ = f.write("mine")
>>> foreign_files(folder, ".owner")
['notes.txt']
"""

import json
import os
import stat

from kd_keras.errors import UsageError
from kd_keras.errors import first_of
from kd_keras.files.atomic import atomic_path

_MAX_MARKER_BYTES = 64 << 20
_MARKER_PREFIX = ".kd_keras_"  # Every kd_keras marker's name starts so.


def _listing(folder, marker):
    """`{relative path: (size, mtime_ns)}` of the regular files under
    `folder`, the sorted relative paths of everything else (symlinks,
    FIFOs, devices), the marker left out, and the sorted relative paths of
    the sub-folders. Symlinks are never followed."""
    files, others, folders = {}, [], []
    for root, dirs, names in os.walk(folder):
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)):
                dirs.remove(name)  # os.walk would not enter it; it is listed below.
                names.append(name)
            else:
                folders.append(
                    os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if rel == marker:
                continue
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode):
                files[rel] = (info.st_size, info.st_mtime_ns)
            else:
                others.append(rel)
    return files, sorted(others), sorted(folders)


def write_marker(folder, marker, content=None, keep=None):
    """Writes `folder/marker`, recording every file and sub-folder now under
    `folder`.

    Args:
        folder: a folder that kd_keras wrote in full.
        marker: the marker's file name (`.kd_keras_run`, `.kd_keras_export`).
        content: other JSON-ready fields to keep in the marker.
        keep: `relative path -> bool`, what to record; None records all.
            What it leaves out (files kd_keras cannot tell it wrote) stays
            foreign, so nothing later deletes it.

    Returns:
        None.
    """
    files, _, folders = _listing(folder, marker)
    keep = keep or (lambda rel: True)
    record = dict(content or {})
    record["files"] = {rel: list(v) for rel, v in sorted(files.items()) if keep(rel)}
    record["folders"] = [rel for rel in folders if keep(rel)]
    with atomic_path(os.path.join(folder, marker)) as tmp, open(tmp, "w") as f:
        json.dump(record, f)


def read_marker(folder, marker):
    """The marker's record, or `None` when `folder` has no readable marker
    (a plain file, not a symlink, holding a JSON object).

    Example:

    >>> import tempfile
    >>> read_marker(tempfile.mkdtemp(), ".owner") is None
    True
    """
    path = os.path.join(folder, marker)
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_MARKER_BYTES:
            return None
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


def foreign_files(folder, marker):
    """What under `folder` kd_keras did not write, by the marker's record.

    Args:
        folder: an existing folder.
        marker: the marker's file name.

    Returns:
        The relative paths that the record does not list or that are not
        regular files (added; a sub-folder too, an empty one included),
        sorted, then the listed files whose size or
        modification time changed, sorted; `None` when the folder has no
        marker or its marker has no record of files (it was not written by
        this kd_keras, or it is damaged).
    """
    record = read_marker(folder, marker)
    written = record.get("files") if record is not None else None
    if not isinstance(written, dict):
        return None
    files, others, folders = _listing(folder, marker)
    added = [rel for rel in files if rel not in written] + others
    known_folders = record.get("folders")
    if isinstance(known_folders, list):  # Markers of earlier versions list files only.
        known = set(known_folders)
        new = [rel for rel in folders if rel not in known]
        # A new folder is named by what it holds; an empty one by itself.
        added += [rel for rel in new
                  if not any(other.startswith(rel + "/") for other in added + new)]
    changed = [rel for rel, v in files.items() if rel in written and written[rel] != list(v)]
    return sorted(added) + sorted(changed)


def check_replaceable(folder, marker, what):
    """Refuses a `folder` that kd_keras may not replace (see the module doc).

    Args:
        folder: the folder kd_keras is about to write; it may not exist.
        marker: the marker's file name.
        what: how the message names the folder (`"output"`, `"OUT_DIR"`).

    Raises:
        UsageError: `folder` is a symlink, a file, a folder without the
            marker (unless empty), or holds a file kd_keras did not write.

    Example:

    >>> import tempfile
    >>> check_replaceable(os.path.join(tempfile.mkdtemp(), "new"), ".owner", "output")
    """
    if os.path.islink(folder):
        raise UsageError(f"{what}: {folder} is a symlink; give the folder it points to "
                         f"({os.path.realpath(folder)}) or a new path")
    if not os.path.lexists(folder):
        return
    if not os.path.isdir(folder):
        raise UsageError(f"{what}: {folder} is a file, not a folder; choose a new path")
    if not os.listdir(folder):
        return  # An empty folder holds nothing to lose.
    foreign = foreign_files(folder, marker)
    if foreign is None:
        other = sorted(name for name in os.listdir(folder)
                       if name.startswith(_MARKER_PREFIX) and name != marker)
        if other:  # A run's `export/` given as a run's output, or the reverse.
            raise UsageError(f"{what}: {folder} holds another kind of kd_keras output "
                             f"({other[0]}, not {marker}); choose a new path")
        raise UsageError(f"{what}: {folder} is a folder that kd_keras did not write (no "
                         f"{marker} listing its files); choose a new path or remove it "
                         "yourself")
    if foreign:
        raise UsageError(f"{what}: {folder} holds {first_of(foreign)}, which kd_keras did "
                         "not write (or which changed since); move it out or choose a "
                         "new path: kd_keras replaces the whole folder")
