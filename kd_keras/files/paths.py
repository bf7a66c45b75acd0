"""Folder paths kd_keras can write a SavedModel under.

TensorFlow reads a SavedModel's variables through a path it treats as a
file pattern: under a folder named `runs/lr[1e-3]` (or holding `*`, `?`, or
a Windows `\\`) the export's own check fails, after the whole training.
Such output paths are refused before any work.

Example:

>>> check_writable_name("runs/demo", "output")
'runs/demo'
>>> check_writable_name("runs/lr[1e-3]", "output")
Traceback (most recent call last):
...
kd_keras.errors.UsageError: output: 'runs/lr[1e-3]' holds '[', which TensorFlow reads as a pattern in a SavedModel's path; choose a folder name without [ ] * ? or \\
"""

import os

from kd_keras.errors import UsageError

PATTERN_CHARACTERS = "[]*?\\"
"""Characters TensorFlow's checkpoint reader takes for a glob pattern."""
NAME_MAX = 255
"""The longest file name, in bytes, of the usual file systems."""
SUFFIX_ROOM = 32
"""Bytes kd_keras may add to a folder's name for the names it writes beside
it (`OUTPUT.partial`, `OUTPUT.lock`, `OUTPUT.old-PID-TIME`,
`.OUT.tmp-XXXXXXXX`)."""


def check_writable_name(path, what):
    """Refuses a folder path TensorFlow would read as a pattern.

    Args:
        path: the folder kd_keras will write (an output or export folder).
        what: how the message names it (`"output"`, `"OUT_DIR"`).

    Returns:
        `path`.

    Raises:
        UsageError: naming `what`, the path and the first such character
            (a backslash is named as a Windows path), or a last component
            too long for the names kd_keras writes beside it.
    """
    size = len(os.fsencode(os.path.basename(os.path.normpath(str(path)))))
    if size > NAME_MAX - SUFFIX_ROOM:
        raise UsageError(f"{what}: {path}: its name is {size} bytes long; kd_keras writes "
                         f"beside it under names up to {SUFFIX_ROOM} bytes longer (its "
                         "working copy, its lock, the copy it replaces), so keep it to "
                         f"{NAME_MAX - SUFFIX_ROOM}")
    found = next((c for c in str(path) if c in PATTERN_CHARACTERS), None)
    if found == "\\":
        raise UsageError(f"{what}: {str(path)!r} holds a backslash (a Windows path?); "
                         "write the folder with / instead, without [ ] * ? or \\")
    if found is not None:
        raise UsageError(f"{what}: {str(path)!r} holds {found!r}, which TensorFlow reads as a "
                         "pattern in a SavedModel's path; choose a folder name without "
                         "[ ] * ? or \\")
    return path
