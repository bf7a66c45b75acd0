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

from kd_keras.errors import UsageError

PATTERN_CHARACTERS = "[]*?\\"
"""Characters TensorFlow's checkpoint reader takes for a glob pattern."""


def check_writable_name(path, what):
    """Refuses a folder path TensorFlow would read as a pattern.

    Args:
        path: the folder kd_keras will write (an output or export folder).
        what: how the message names it (`"output"`, `"OUT_DIR"`).

    Returns:
        `path`.

    Raises:
        UsageError: naming `what`, the path and the first such character
            (a backslash is named as a Windows path).
    """
    found = next((c for c in str(path) if c in PATTERN_CHARACTERS), None)
    if found == "\\":
        raise UsageError(f"{what}: {str(path)!r} holds a backslash (a Windows path?); "
                         "write the folder with / instead, without [ ] * ? or \\")
    if found is not None:
        raise UsageError(f"{what}: {str(path)!r} holds {found!r}, which TensorFlow reads as a "
                         "pattern in a SavedModel's path; choose a folder name without "
                         "[ ] * ? or \\")
    return path
