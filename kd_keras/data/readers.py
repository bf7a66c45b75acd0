"""Readers for labelled text files: TSV, CSV and JSONL.

Each reader returns the texts and the raw labels of one file, with the line
of each example; turning labels into class indices happens in
`kd_keras.data.text_dataset`, once every split has been read, so that all
splits share one label list.

Nothing is dropped or repaired silently: a row whose column count differs
from the header's (or the first row's), an empty label, a JSONL line that is
not an object, a text column that is empty on every line or a file without
examples is a `DataError` whose one-line message names the file and line, as
is a first line that looks like a header when `header` was not set
(`_check_first_line`: its label is on no other line, every other label is
on two or more).
Only blank lines are skipped; surrounding whitespace is not part of a label.
A byte-order mark at the start of a file is not part of the text (files are
read as `utf-8-sig`). TSV fields are not quoted (a `"` is a character).
"""

import collections
import contextlib
import csv
import dataclasses
import itertools
import json
import math
import os

from kd_keras.data.text_lines import check_regular_file
from kd_keras.errors import DataError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line

FORMATS = ("tsv", "csv", "jsonl")

HEADER_CHECK_LINES = 10  # examples a file needs before its first line is checked
_ENCODING = "utf-8-sig"  # A leading BOM is not part of the first column name.
_FIELD_LIMIT = 2**31 - 1  # The csv module's default (128 KiB) refuses long texts.
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "true/false",
               int: "a number", float: "a number", type(None): "null"}


@dataclasses.dataclass(frozen=True)
class LabelledFile:
    """The examples of one data file.

    Attributes:
        path: the file, as given.
        texts: tuple of strings.
        labels: tuple of raw labels: stripped strings (TSV/CSV; JSONL
            strings) or numbers (JSONL `int` or finite `float`), spelled as
            in the file.
        lines: tuple of the 1-based line on which each example starts.

    Example:

    >>> f = LabelledFile("a.tsv", ("good",), ("pos",), (3,))
    >>> f.where(0)
    'a.tsv: line 3'
    """

    path: str
    texts: tuple
    labels: tuple
    lines: tuple

    def where(self, index):
        """`"PATH: line N"` of the example at `index`, for messages."""
        return f"{self.path}: line {self.lines[index]}"


def infer_format(path):
    """Guesses `tsv`, `csv` or `jsonl` from a file name.

    Args:
        path: a file path.

    Returns:
        The format name, or `None` when the extension is not known.

    Example:

    >>> infer_format("reviews/train.jsonl")
    'jsonl'
    """
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    return {"tsv": "tsv", "txt": "tsv", "csv": "csv", "jsonl": "jsonl",
            "json": "jsonl", "ndjson": "jsonl"}.get(ext)


def reads_header(header, text_column, label_column, format=None):
    """Whether a file is read with a header row: `header` as given, or, when
    it is `None`, whether a column is given by name (a name can only come
    from a header). A JSONL file (`format="jsonl"`) names its keys on every
    line and has no header row.

    Example:

    >>> reads_header(None, "review", "sentiment"), reads_header(None, 0, 1)
    (True, False)
    >>> reads_header(False, "review", 1), reads_header(None, "text", "label", "jsonl")
    (False, False)
    """
    if header is not None or format == "jsonl":
        return bool(header)
    return any(isinstance(c, str) for c in (text_column, label_column))


def _column_index(column, header, width, path, what):
    """Resolves a column given by index or name; `width` is the number of
    columns of the header (or of the first row)."""
    if isinstance(column, bool) or not isinstance(column, (int, str)) or (
            isinstance(column, int) and column < 0):
        raise DataError(f"{what}: must be a column index (>= 0) or name, got {column!r}")
    if isinstance(column, int):
        if column >= width:
            raise DataError(
                f"{what}: column {column} does not exist in {path} (it has {width} "
                f"column{'s' if width != 1 else ''})")
        return column
    if header is None:
        raise DataError(
            f"{what}: column {column!r} is a name but {path} is read without a "
            "header (remove `header: false` or give the column index)")
    if column not in header:
        raise DataError(
            f"{what}: column {column!r} does not exist in {path} "
            f"(columns: {', '.join(map(repr, header))})")
    if header.count(column) > 1:
        raise DataError(
            f"{what}: column {column!r} appears {header.count(column)} times in the header "
            f"of {path}; give the column index")
    return header.index(column)


@contextlib.contextmanager
def _long_fields():
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, _FIELD_LIMIT))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _rows(f, delimiter):
    """`(first line, row)` of each non-blank record of a delimited file."""
    if delimiter == "\t":
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
    else:
        reader = csv.reader(f, delimiter=delimiter, strict=True)
    line = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            fmt = "tsv" if delimiter == "\t" else "csv"
            raise DataError(
                f"{f.name}: line {line + 1}: cannot be parsed as {fmt} ({e})") from None
        start, line = line + 1, reader.line_num
        if row and not (len(row) == 1 and not row[0].strip()):
            yield start, row


def _check_first_line(path, labels, lines):
    """Refuses a first line that looks like a header read as an example (the
    header was not set and the columns are indices): in a file of at least
    `HEADER_CHECK_LINES` examples, its label is on no other line while every
    other label is on two or more. (A smaller file's header would be a class
    of its own, which `kd_keras.data.encode_files` refuses unless the
    training file has it too.)"""
    counts = collections.Counter(labels[1:])
    if (len(labels) >= HEADER_CHECK_LINES and labels[0] not in counts
            and min(counts.values()) >= 2):
        raise DataError(
            f"{path}: line {lines[0]} looks like a header (its label {labels[0]!r} is on no "
            "other line); set data.header: true or name the columns, or data.header: false "
            "to keep it as an example")


def _read_delimited(path, delimiter, header, text_column, label_column):
    """A `LabelledFile` from a TSV or CSV file; `header` may be `None`
    (`reads_header`)."""
    guessed, header = header is None, reads_header(header, text_column, label_column)
    fmt = "tsv" if delimiter == "\t" else "csv"
    texts, labels, lines = [], [], []
    with open(path, newline="", encoding=_ENCODING) as f:
        rows = _rows(f, delimiter)
        first = next(rows, None)
        if first is None:
            raise DataError(f"{path}: the file is empty")
        names = first[1] if header else None
        width = len(first[1])
        text_index = _column_index(text_column, names, width, path, "data.text_column")
        label_index = _column_index(label_column, names, width, path, "data.label_column")
        if text_index == label_index:
            raise DataError(
                f"{path}: data.text_column and data.label_column are the same column "
                f"({text_index})")
        for line, row in rows if header else itertools.chain([first], rows):
            if "\x00" in "".join(row):
                raise DataError(f"{path}: line {line}: holds a NUL byte (a binary file?)")
            if len(row) != width:
                hint = ""
                if fmt == "tsv" and '"' in "".join(row + first[1]):
                    hint = " (TSV fields are not quoted: a tab inside a text splits it)"
                source = "in the header" if header else f"as on line {first[0]}"
                raise DataError(f"{path}: line {line}: expected {width} columns ({source}), "
                                f"found {len(row)}{hint}")
            label = row[label_index].strip()
            if not label:
                raise DataError(f"{path}: line {line}: empty label (column {label_index})")
            texts.append(row[text_index])
            labels.append(label)
            lines.append(line)
    if not texts:
        raise DataError(f"{path}: no examples found (only a header row)")
    if not any(t.strip() for t in texts):
        raise DataError(f"{path}: the text column ({text_index}) is empty on every line")
    if guessed and not header:
        _check_first_line(path, labels, lines)
    return LabelledFile(path, tuple(texts), tuple(labels), tuple(lines))


def _json_label(value, path, line, key):
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, str):
        raise DataError(f"{path}: line {line}: empty label ({key!r})")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    found = "not a finite number" if isinstance(value, float) else _JSON_TYPES[type(value)]
    raise DataError(
        f"{path}: line {line}: label {key!r} must be a string or a whole number, "
        f"found {found}")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs):
    """`json.loads`'s object hook: a key given twice is an error (the last
    value would silently win)."""
    record = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKey(key)
        record[key] = value
    return record


def _read_jsonl(path, text_column, label_column):
    """A `LabelledFile` from a JSONL file (one JSON object per line)."""
    for key, value in (("text", text_column), ("label", label_column)):
        if not isinstance(value, str):
            raise DataError(
                f"data.{key}_column: JSONL records are read by key, so the "
                f"column must be a name, got {value!r}")
    if text_column == label_column:
        raise DataError(
            f"{path}: data.text_column and data.label_column are the same key "
            f"({text_column!r})")
    texts, labels, lines = [], [], []
    # Lines end at "\n" alone, as JSON Lines defines them: a carriage return
    # is JSON whitespace between tokens (and ignored before a "\n"), so it
    # must not split a record; inside a string the parser names it.
    with open(path, encoding=_ENCODING, newline="\n") as f:
        for line, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as e:
                if e.msg == "Extra data" and "\r" in raw[:e.pos]:
                    raise DataError(
                        f"{path}: line {line} holds several records separated by carriage "
                        "returns; JSONL ends each line with a line feed (\\n or "
                        "\\r\\n)") from None
                if e.msg.startswith("Invalid control character"):
                    raise DataError(
                        f"{path}: line {line}, column {e.colno}: a raw control character "
                        f"{raw[e.pos]!r} inside a JSON string; JSON writes it as an escape "
                        "such as \\n, \\r or \\t") from None
                raise DataError(
                    f"{path}: line {line} is not valid JSON ({e.msg}; JSONL holds one "
                    "object per line)") from None
            except RecursionError:
                raise DataError(f"{path}: line {line}: JSON nested too deeply") from None
            except _DuplicateKey as e:
                raise DataError(f"{path}: line {line}: key {e.args[0]!r} is given twice; "
                                "give each key once") from None
            except ValueError as e:  # e.g. an integer of more digits than Python reads
                raise DataError(f"{path}: line {line}: {one_line(e)}") from None
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}: line {line}: expected a JSON object, found "
                    f"{_JSON_TYPES.get(type(record), type(record).__name__)}")
            for key, value in (("text", text_column), ("label", label_column)):
                if value not in record:
                    raise DataError(
                        f"data.{key}_column: key {value!r} does not exist in "
                        f"{path} (line {line})")
            text = record[text_column]
            if not isinstance(text, str):
                raise DataError(
                    f"{path}: line {line}: text {text_column!r} must be a string, found "
                    f"{_JSON_TYPES.get(type(text), type(text).__name__)}")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise DataError(f"{path}: line {line}: text {text_column!r} holds a lone "
                                "surrogate escape (\\ud800-\\udfff), which is no "
                                "character") from None
            if "\x00" in text:  # As in TSV and CSV: the tokenizer stops at it.
                raise DataError(f"{path}: line {line}: text {text_column!r} holds a NUL "
                                "character (\\u0000), where the tokenizer would cut it")
            texts.append(text)
            labels.append(_json_label(record[label_column], path, line, label_column))
            lines.append(line)
    if not texts:
        raise DataError(f"{path}: no examples found (the file is empty)")
    if not any(t.strip() for t in texts):
        raise DataError(f"{path}: the text {text_column!r} is empty on every line")
    return LabelledFile(path, tuple(texts), tuple(labels), tuple(lines))


def read_labelled_file(path, format=None, header=None, text_column=0, label_column=1):
    """Reads one TSV, CSV or JSONL file into a `LabelledFile`.

    Args:
        path: the file to read.
        format: `"tsv"`, `"csv"` or `"jsonl"`; inferred from the extension
            when `None`.
        header: whether the first row of a TSV/CSV file holds column names;
            `None`: when a column is given by name (`reads_header`).
        text_column: index or name of the text column (a key for JSONL).
        label_column: index or name of the label column (a key for JSONL).

    Returns:
        A `LabelledFile`.

    Raises:
        MissingFileError: (a `FileNotFoundError`) when `path` does not exist.
        DataError: (a `ValueError`) for a file that cannot be read as
            configured; the one-line message names the file (and line).

    Example:

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.jsonl")
    >>> _ = open(p, "w").write('{"t": "good", "y": 1}\\n\\n{"t": "bad", "y": "0"}\\n')
    >>> f = read_labelled_file(p, text_column="t", label_column="y")
    >>> f.texts, f.labels, f.lines
    (('good', 'bad'), (1, '0'), (1, 3))
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise UsageError(f"path: expected a file path, got {path!r}") from None
    check_regular_file(path, "a data file")
    format = format or infer_format(path)
    if format not in FORMATS:
        raise DataError(
            f"data.format: cannot tell the format of {path}; set it to one of "
            f"{', '.join(FORMATS)}")
    try:
        with _long_fields():
            if format == "jsonl":
                return _read_jsonl(path, text_column, label_column)
            return _read_delimited(path, "\t" if format == "tsv" else ",", header,
                                   text_column, label_column)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason}); save it as UTF-8") from None
    except csv.Error as e:
        raise DataError(f"{path}: cannot be parsed as {format} ({one_line(e)})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None


def read_examples(path, format=None, header=None, text_column=0, label_column=1):
    """Reads `(texts, labels)` from a TSV, CSV or JSONL file.

    Args:
        path: the file to read.
        format: `"tsv"`, `"csv"` or `"jsonl"`; inferred from the extension
            when `None`.
        header: whether the first row of a TSV/CSV file holds column names;
            `None`: when a column is given by name (`reads_header`).
        text_column: index or name of the text column (a key for JSONL).
        label_column: index or name of the label column (a key for JSONL).

    Returns:
        A tuple `(texts, labels)` of two lists of strings, in file order
        (JSONL numbers as their decimal spelling).

    Raises:
        MissingFileError: (a `FileNotFoundError`) when `path` does not exist.
        DataError: (a `ValueError`) when a column or key does not exist, or
            a line cannot be parsed; the message names the file.

    Example:

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "t.tsv")
    >>> _ = open(p, "w").write("good film\\tpos\\nbad film\\tneg\\n")
    >>> read_examples(p)
    (['good film', 'bad film'], ['pos', 'neg'])
    """
    f = read_labelled_file(path, format=format, header=header, text_column=text_column,
                           label_column=label_column)
    return list(f.texts), [str(v) for v in f.labels]
