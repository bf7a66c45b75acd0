"""Text of one item a line: sentences, class names, WordPiece tokens.

One reader for the small line-oriented inputs kd_keras takes beside its
data files: `kd-keras export`'s `--text-data` and `--labels` files, a
`vocab.txt`, and the sentences `kd-keras predict` reads from standard
input. Each is UTF-8, a byte-order mark at the start is not text, and an
error is one line naming the source and the line.
"""

import os
import re

import numpy as np

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError


def decode_lines(raw_lines, source, what):
    """The lines of a binary stream as text, without their line ends.

    Args:
        raw_lines: an iterable of `bytes` lines (a file opened `"rb"`,
            `sys.stdin.buffer`).
        source: what the message names (a path, `"standard input"`).
        what: what the lines hold, for the message (`"sentences"`).

    Returns:
        A list of strings, one a line, blank ones included (a line's
        number is its index + 1).

    Raises:
        DataError: a line that is not UTF-8, naming `source` and the line.

    Example:

    >>> decode_lines([b"\\xef\\xbb\\xbfgood\\r\\n", b"bad"], "stdin", "sentences")
    ['good', 'bad']
    >>> decode_lines([b"ok\\n", b"caf\\xe9\\n"], "t.txt", "sentences")
    Traceback (most recent call last):
    ...
    kd_keras.errors.DataError: t.txt: line 2: not valid UTF-8 text (at byte 3); sentences must be UTF-8
    """
    lines = []
    for number, line in enumerate(raw_lines, 1):
        try:
            line = line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeError as e:
            raise DataError(f"{source}: line {number}: not valid UTF-8 text (at byte "
                            f"{e.start}); {what} must be UTF-8") from None
        lines.append(line.rstrip("\r\n"))
    return lines


def check_regular_file(path, what):
    """Refuses a `path` that is missing, a folder, a FIFO, a device or a
    socket, before it is opened (a FIFO would block the read for ever).

    Args:
        path: the file.
        what: what it should be, for the messages (`"a data file"`).

    Raises:
        MissingFileError: no such file.
        DataError: not a regular file.

    Example:

    >>> check_regular_file(".", "a data file")
    Traceback (most recent call last):
    ...
    kd_keras.errors.DataError: .: is a folder, not a data file
    """
    if not os.path.exists(path):
        raise MissingFileError(f"{path}: not found ({what})")
    if os.path.isdir(path):
        raise DataError(f"{path}: is a folder, not {what}")
    if not os.path.isfile(path):
        raise DataError(f"{path}: not a regular file (a FIFO, device or socket), not {what}")


def read_lines(path, what):
    """The lines of the UTF-8 text file `path` (`decode_lines`).

    Args:
        path: the file; a folder, FIFO or device is refused (a FIFO would
            block the read for ever).
        what: what the lines hold, for the messages (`"class names
            (--labels)"`).

    Returns:
        A list of strings, one a line, blank ones included.

    Raises:
        MissingFileError: no such file.
        DataError: not a regular file, unreadable, or not UTF-8.

    Example:

    >>> read_lines("missing.txt", "sentences")
    Traceback (most recent call last):
    ...
    kd_keras.errors.MissingFileError: missing.txt: not found (a file of sentences)
    """
    check_regular_file(path, f"a file of {what}")
    try:
        with open(path, "rb") as f:
            return decode_lines(f, path, what)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None


def read_text_data(path, labels=None, num_classes=None):
    r"""Sentences and their labels: one sentence a line, optionally `TAB label`.

    What `kd-keras export --text-data` verifies the raw-text artifacts on.

    Args:
        path: a UTF-8 file; blank lines are skipped.
        labels: the class names, or None (labels are class ids).
        num_classes: the model's classes, or None; a class id must be less.

    Returns:
        `(texts, y)`: a list of strings, and an int array of labels or None
        when no line has one.

    Raises:
        DataError: naming the file and line (not UTF-8, no sentence, a label
            on some lines only, an unknown label).

    Example:

    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(path, "w").write("good film\tpos\n\nbad film\tneg\n")
    >>> read_text_data(path, ["neg", "pos"])
    (['good film', 'bad film'], array([1, 0]))
    """
    lines = read_lines(path, "sentences (--text-data)")
    rows = [(i, line.split("\t")) for i, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise DataError(f"{path}: no sentences (--text-data)")
    texts, y = [], []
    index = {name: i for i, name in enumerate(labels or ())}
    limit = len(labels) if labels else num_classes
    for number, parts in rows:
        if len(parts) > 2 or (len(parts) == 2) != (len(rows[0][1]) == 2):
            raise DataError(f"{path}: line {number}: expected a sentence, or a sentence, a "
                            "TAB and a label, the same on every line")
        texts.append(parts[0])
        if len(parts) == 2:
            label = parts[1].strip()
            if label in index:
                y.append(index[label])
            elif re.fullmatch("[0-9]+", label) and (limit is None or int(label) < limit):
                y.append(int(label))
            else:
                known = (f" (known: {', '.join(labels)})" if labels else
                         f" (class ids 0..{limit - 1})" if limit else "")
                raise DataError(f"{path}: line {number}: unknown label {label!r}{known}")
    return texts, (np.array(y) if y else None)
