"""`write_json` and `read_json`: the JSON files kd_keras keeps for itself.

Run records (`stages.json`, a history, a lock file, an export report) are
written atomically through `kd_keras.files.atomic.atomic_path`, so a reader
or a resumed run sees the old file or the new one, never half of one.
`read_json` lets the reader's own errors through (`OSError`, `ValueError`):
each caller decides what a missing or damaged file means, for example
through `kd_keras.files.resume.resumed`.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "state.json")
>>> write_json(path, {"epochs": [1, 2]})
>>> read_json(path)
{'epochs': [1, 2]}
"""

import json

from kd_keras.files.atomic import atomic_path


def write_json(path, content, indent=2):
    """Writes JSON atomically (a temporary file, then a rename).

    Args:
        path: the file (its folder must exist).
        content: a JSON-ready value.
        indent: spaces per nesting level.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "r.json")
    >>> write_json(path, {"accuracy": 0.5})
    >>> read_json(path)
    {'accuracy': 0.5}
    """
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=indent)


def read_json(path):
    """Reads a JSON file.

    Args:
        path: the file.

    Returns:
        The parsed value.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not valid JSON (UTF-8).
    """
    with open(path, encoding="utf-8") as f:
        return json.load(f)


__all__ = ["read_json", "write_json"]
