"""Class labels as the data spells them: one class per spelling.

`encode_files` turns the raw labels of one or more `LabelledFile`s into
class indices and names. Two spellings that a reader would merge (`1` and
`01`, `1` and `1.0`, the number 1 and the string "1" in JSONL, `Pos` and
`pos`, a name with an invisible zero-width space) are an error that names
both, as is a label like `0.5` among integer labels.
"""

import decimal
import math
import re
import unicodedata

import numpy as np

from kd_keras.data.readers import LabelledFile
from kd_keras.errors import DataError
from kd_keras.errors import UsageError

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _key(value):
    """Distinct spellings stay distinct: `"1"`, `1` and `1.0` are three."""
    return type(value).__name__, value


def _name(value):
    """The class name of a raw label: a string as spelled, a number in
    decimal (`1`, `1.0`)."""
    return value if isinstance(value, str) else str(value)


def _shown(value):
    """A raw label in a message: `'01'` for a string, `1` for a number; a
    string in a decomposed Unicode form is shown escaped, to tell it apart."""
    if not isinstance(value, str):
        return str(value)
    return repr(value) if unicodedata.is_normalized("NFC", value) else ascii(value)


def _number(value):
    """The exact value of a number-like label (`Decimal`), else `None`."""
    if isinstance(value, str):
        return decimal.Decimal(value) if _NUMBER.fullmatch(value) else None
    return decimal.Decimal(value)


def _folded(name):
    """A label as a reader sees it: Unicode-normalized (NFKC), case-folded,
    without invisible characters (zero-width spaces, joiners, ...).

    >>> _folded("Pos\u200b") == _folded("pos")
    True
    """
    name = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in name if unicodedata.category(c) != "Cf")


def _same_class(files, a, b):
    (fa, ia), (fb, ib) = a, b
    other = files[fa].where(ia) if fa != fb else f"line {files[fa].lines[ia]}"
    value_a, value_b = files[fa].labels[ia], files[fb].labels[ib]
    return DataError(
        f"{files[fb].where(ib)}: label {_shown(value_b)} and label {_shown(value_a)} "
        f"({other}) are one class spelled two ways; use one spelling")


def _infer_names(files, first):
    """Class names sorted numerically (all labels whole numbers) or
    alphabetically (all labels names); mixing the two is an error."""
    values = {k: _number(files[f].labels[i]) for k, (f, i) in first.items()}
    counts = {}
    for f in files:
        for v in f.labels:
            kind = _number(v) is not None
            counts[kind] = counts.get(kind, 0) + 1
    if len(counts) == 2:
        minority = counts[True] < counts[False]
        odd = next(k for k in first if (values[k] is not None) == minority)
        usual = next(k for k in first if (values[k] is not None) != minority)
        (fo, io), (fu, iu) = first[odd], first[usual]
        kinds = ("a number", "a name") if minority else ("a name", "a number")
        raise DataError(
            f"{files[fo].where(io)}: label {_shown(files[fo].labels[io])} is {kinds[0]}, "
            f"but label {_shown(files[fu].labels[iu])} ({files[fu].where(iu)}) is "
            f"{kinds[1]}; labels must be all names or all whole numbers")
    if not counts.get(True):
        return sorted(first, key=lambda k: _name(files[first[k][0]].labels[first[k][1]]))
    by_value = {}
    for k, (f, i) in first.items():
        v = values[k]
        if v.adjusted() > 17:
            raise DataError(
                f"{files[f].where(i)}: label {_shown(files[f].labels[i])} is too large "
                "for a class index")
        if v != v.to_integral_value():
            raise DataError(
                f"{files[f].where(i)}: label {_shown(files[f].labels[i])} is not a whole "
                "number (number labels are class indices)")
        if int(v) in by_value:
            raise _same_class(files, first[by_value[int(v)]], (f, i))
        by_value[int(v)] = k
    return [by_value[v] for v in sorted(by_value)]


def encode_files(files, label_names=None):
    """Turns the raw labels of `LabelledFile`s into class indices.

    Label names are unique as the data spells them. Labels that are all
    whole numbers (`0`, `1`, `7`, or `1.0`) are sorted numerically, names
    are sorted alphabetically, unless `label_names` gives the classes and
    their order. A `DataError`, naming the file and line, stops two
    spellings of one class (`1` and `01`, `1` and `1.0`, JSON `1` and
    `"1"`), a number label that is not whole (`0.5`), a mix of names and
    numbers, a name with a line break, and a label outside `label_names`.

    Args:
        files: a list of `LabelledFile`s (one per split).
        label_names: optional list fixing the classes and their order.

    Returns:
        A tuple `(label_names, [int32 arrays])`, one array per file.

    Example:

    >>> from kd_keras.data.readers import LabelledFile
    >>> f = LabelledFile("a.tsv", ("x", "y", "z"), ("10", "2", "01"), (1, 2, 3))
    >>> names, (a,) = encode_files([f])
    >>> names, a.tolist()
    (['01', '2', '10'], [2, 1, 0])
    """
    first = {}
    for f_index, f in enumerate(files):
        for i, value in enumerate(f.labels):
            first.setdefault(_key(value), (f_index, i))
    for f, i in first.values():  # Before any work: the export lists names one a line.
        if any(c in _name(files[f].labels[i]) for c in "\r\n"):
            raise DataError(f"{files[f].where(i)}: class name {_shown(files[f].labels[i])} "
                            "holds a line break; the exported models list class names one "
                            "a line")
    by_name = {}
    for k, (f, i) in first.items():
        name = _name(files[f].labels[i])
        if name in by_name:
            raise _same_class(files, first[by_name[name]], (f, i))
        by_name[name] = k
    if label_names is None:  # Given names are the user's word; inferred ones are checked.
        folded = {}
        for name, k in by_name.items():
            other = folded.setdefault(_folded(name), k)
            if other != k:
                raise _same_class(files, first[other], first[k])
        label_names = [_name(files[first[k][0]].labels[first[k][1]])
                       for k in _infer_names(files, first)]
    else:
        label_names = [str(n) for n in label_names]
        for n in label_names:
            if label_names.count(n) > 1:
                raise DataError(f"data.labels: class {n!r} is listed twice")
            if "\n" in n or "\r" in n:
                raise DataError(f"data.labels: class {n!r} holds a line break; the exported "
                                "models list class names one a line")
        for k, (f, i) in first.items():
            if _name(files[f].labels[i]) not in label_names:
                raise DataError(
                    f"{files[f].where(i)}: label {_shown(files[f].labels[i])} is not one "
                    f"of data.labels ({', '.join(map(repr, label_names))})")
    index = {name: i for i, name in enumerate(label_names)}
    arrays = [np.array([index[_name(v)] for v in f.labels], np.int32).reshape(-1)
              for f in files]
    return label_names, arrays


def encode_labels(raw_labels, label_names=None):
    """Turns raw labels into class indices (see `encode_files`).

    Args:
        raw_labels: list of lists of labels (one list per split); in
            messages, split `k` is `labels[k]` and item `i` its line `i + 1`.
        label_names: optional list fixing the classes and their order.

    Returns:
        A tuple `(label_names, [int32 arrays])`.

    Example:

    >>> names, (a,) = encode_labels([["pos", "neg", "pos"]])
    >>> names, a.tolist()
    (['neg', 'pos'], [1, 0, 1])
    >>> encode_labels([["0", "1", "01"]])
    Traceback (most recent call last):
    ...
    kd_keras.errors.DataError: labels[0]: line 3: label '01' and label '1' (line 2) are one class spelled two ways; use one spelling
    """
    files = [
        LabelledFile(f"labels[{k}]", ("",) * len(split),
                     tuple(v.item() if isinstance(v, np.generic) else v for v in split),
                     tuple(range(1, len(split) + 1)))  # NumPy's scalars as Python's
        for k, split in enumerate(raw_labels)
    ]
    for f in files:
        for i, v in enumerate(f.labels):
            if isinstance(v, bool) or not isinstance(v, (str, int, float)) or (
                    isinstance(v, float) and not math.isfinite(v)):
                raise UsageError(f"{f.where(i)}: a label must be a string or a number, "
                                 f"got {v!r}")
    return encode_files(files, label_names)


def accuracy(logits, labels):
    """Top-1 accuracy of logits over the labelled examples.

    The one owner of accuracy: the run's results, the export's verification
    and the benchmarks all call it. A label of -1 marks an unlabelled
    example and is skipped.

    Args:
        logits: array `[examples, classes]`.
        labels: class indices `[examples]`, -1 for unlabelled.

    Returns:
        The fraction of labelled examples whose arg-max is their label, or
        `None` when none is labelled.

    Example:

    >>> accuracy(np.array([[0.1, 2.0], [3.0, 0.0], [0.0, 1.0]]), [1, 1, -1])
    0.5
    >>> accuracy(np.zeros((1, 2)), [-1]) is None
    True
    """
    labels = np.asarray(labels).reshape(-1)
    mask = labels >= 0
    if not mask.any():
        return None
    return float(np.mean(np.asarray(logits).argmax(-1)[mask] == labels[mask]))
