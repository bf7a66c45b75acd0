"""Labels as class ids (whole numbers in `[0, num_classes)`, and -1 for an
unlabeled example) and the names of the classes.

`label_problem` is the one check of an array of labels. The Distiller makes
it on the labels `fit` and `evaluate` are given, the exporter on its
validation labels; each puts the name of its argument in front of the
message. Whole floats and booleans are class ids; fractions, one-hot rows,
strings and ids outside the classes are not. `check_class_names` checks the
names an export gives the classes.
"""

import unicodedata

import numpy as np

from kd_keras.errors import UsageError

UNLABELED = -1
"""The label of an example without one (it gets the teacher's loss only)."""


def out_of_range(label, num_classes, example=None):
    """The message for a label outside `[-1, num_classes)`.

    Args:
        label: the bad label.
        num_classes: the number of classes, or `None` (no upper bound).
        example: the label's position, when known.

    Returns:
        One line.

    Example:

    >>> out_of_range(4, 3)
    'label 4 is out of range: labels must be -1 (unlabeled) or in [0, 2]'
    """
    where = "" if example is None else f" (example {example})"
    allowed = f"in [0, {num_classes - 1}]" if num_classes else ">= 0"
    return f"label {label}{where} is out of range: labels must be -1 (unlabeled) or {allowed}"


def label_problem(labels, num_classes=None):
    """What is wrong with an array of class-id labels, if anything.

    Args:
        labels: an array-like of labels, one per example (`[n]` or
            `[n, 1]`).
        num_classes: the number of classes, or `None` to check the values
            are whole numbers `>= -1` only.

    Returns:
        `None` when every label is a class id or -1, else one line naming
        the first bad label and its example.

    Example:

    >>> label_problem([0, 1, -1], num_classes=2) is None
    True
    >>> label_problem([0, 1, 2], num_classes=2)
    'label 2 (example 2) is out of range: labels must be -1 (unlabeled) or in [0, 1]'
    >>> label_problem([1.0, 0.5])
    'label 0.5 (example 1) is not a whole number: labels are integer class ids (-1 = unlabeled)'
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biuf":
        shown = labels.reshape(-1)[:3].tolist()
        return f"labels must be integer class ids, got {labels.dtype} values such as {shown}"
    if labels.ndim == 2 and labels.shape[1] > 1 and labels.shape[1] == num_classes:
        return (f"labels of shape {labels.shape} look one-hot: give integer class ids, "
                "one per example (np.argmax(y, axis=1); -1 = unlabeled)")
    flat = labels.reshape(-1)
    if labels.dtype.kind == "f":
        whole = np.isfinite(flat) & (np.mod(flat, 1) == 0)
        if not whole.all():
            at = int(np.argmin(whole))
            return (f"label {flat[at].item()!r} (example {at}) is not a whole number: "
                    "labels are integer class ids (-1 = unlabeled)")
    ids = flat.astype(np.int64)
    bad = (ids < UNLABELED) | (ids >= num_classes if num_classes else False)
    if bad.any():
        at = int(np.argmax(bad))
        return out_of_range(int(ids[at]), num_classes, example=at)
    return None


def check_class_names(names, num_classes):
    """The names of a model's classes, checked for the files that list them
    one a line (TFLite's `labels.txt`, MediaPipe's metadata).

    Args:
        names: one name per class, in class-id order.
        num_classes: the model's number of classes.

    Returns:
        The names as a list of strings.

    Raises:
        UsageError: naming the first bad name: a count other than
            `num_classes`, an empty name, one with a line break or a
            control character, or one given twice.

    Example:

    >>> check_class_names(["neg", "pos"], 2)
    ['neg', 'pos']
    >>> check_class_names(["neg", "neg"], 2)
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: labels: 'neg' is given twice (classes 0 and 1); each class needs its own name
    """
    names = [str(n) for n in names]
    if len(names) != num_classes:
        raise UsageError(f"labels: {len(names)} names but the model outputs {num_classes} classes")
    seen = {}
    for i, name in enumerate(names):
        if not name.strip() or name.splitlines() != [name] or any(
                unicodedata.category(c) == "Cc" for c in name):
            raise UsageError(f"labels: class {i}'s name {name!r} is empty or holds a line "
                             "break or a control character (a tab, say); names are listed "
                             "one a line, and predict prints them in tab-separated columns")
        if name in seen:
            raise UsageError(f"labels: {name!r} is given twice (classes {seen[name]} and {i}); "
                             "each class needs its own name")
        seen[name] = i
    return names
