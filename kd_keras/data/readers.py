"""Readers for labelled text files: TSV, CSV and JSONL.

Each reader returns the texts and the raw (string) labels of one file; turning
labels into class indices happens in `kd_keras.data.text_dataset`, once every
split has been read, so that all splits share one label list.
"""

import csv
import json
import os

FORMATS = ("tsv", "csv", "jsonl")


class DataError(ValueError):
    """A data file that cannot be read as configured (one-line message)."""


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


def _column_index(column, header, path, what):
    """Resolves a column given by index or name against a header row."""
    if isinstance(column, int):
        return column
    if header is None:
        raise DataError(
            f"{what}: column {column!r} is a name but {path} is read without a "
            "header (set `header: true` or give the column index)"
        )
    if column not in header:
        raise DataError(
            f"{what}: column {column!r} does not exist in {path} "
            f"(columns: {', '.join(header)})"
        )
    return header.index(column)


def _read_delimited(path, delimiter, header, text_column, label_column):
    with open(path, newline="", encoding="utf-8") as f:
        if delimiter == "\t":
            rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            rows = csv.reader(f, delimiter=delimiter)
        names = None
        if header:
            names = next(rows, None)
            if names is None:
                raise DataError(f"{path}: the file is empty")
        text_index = _column_index(text_column, names, path, "data.text_column")
        label_index = _column_index(
            label_column, names, path, "data.label_column"
        )
        texts, labels = [], []
        for line_number, row in enumerate(rows, start=2 if header else 1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            for index, key in ((text_index, "text"), (label_index, "label")):
                if index >= len(row) or index < -len(row):
                    raise DataError(
                        f"data.{key}_column: column {index} does not exist in "
                        f"{path} (line {line_number} has {len(row)} columns)"
                    )
            texts.append(row[text_index])
            labels.append(row[label_index].strip())
    return texts, labels


def _read_jsonl(path, text_column, label_column):
    for key, value in (("text", text_column), ("label", label_column)):
        if not isinstance(value, str):
            raise DataError(
                f"data.{key}_column: JSONL records are read by key, so the "
                f"column must be a name, got {value!r}"
            )
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}: line {line_number} is not valid JSON ({e.msg})"
                ) from None
            for key, value in (("text", text_column), ("label", label_column)):
                if not isinstance(record, dict) or value not in record:
                    raise DataError(
                        f"data.{key}_column: key {value!r} does not exist in "
                        f"{path} (line {line_number})"
                    )
            texts.append(str(record[text_column]))
            labels.append(str(record[label_column]).strip())
    return texts, labels


def read_examples(
    path, format=None, header=False, text_column=0, label_column=1
):
    """Reads `(texts, labels)` from a TSV, CSV or JSONL file.

    Args:
        path: the file to read.
        format: `"tsv"`, `"csv"` or `"jsonl"`; inferred from the extension
            when `None`.
        header: whether the first row of a TSV/CSV file holds column names.
        text_column: index or name of the text column (a key for JSONL).
        label_column: index or name of the label column (a key for JSONL).

    Returns:
        A tuple `(texts, labels)` of two lists of strings, in file order.

    Raises:
        FileNotFoundError: when `path` does not exist.
        DataError: (a `ValueError`) when a column or key does not exist, or
            a line cannot be parsed; the message names the file.

    Example:

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp(); p = os.path.join(d, "t.tsv")
    >>> _ = open(p, "w").write("good film\\tpos\\nbad film\\tneg\\n")
    >>> read_examples(p)
    (['good film', 'bad film'], ['pos', 'neg'])
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: {path}")
    format = format or infer_format(path)
    if format not in FORMATS:
        raise DataError(
            f"data.format: cannot tell the format of {path}; set it to one of "
            f"{', '.join(FORMATS)}"
        )
    try:
        if format == "jsonl":
            texts, labels = _read_jsonl(path, text_column, label_column)
        else:
            delimiter = "\t" if format == "tsv" else ","
            texts, labels = _read_delimited(
                path, delimiter, header, text_column, label_column
            )
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None
    except csv.Error as e:
        raise DataError(f"{path}: cannot be parsed as {format} ({e})") from None
    if not texts:
        raise DataError(f"{path}: no examples found")
    return texts, labels
