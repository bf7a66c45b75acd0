"""Labelled text splits: seeded splits, size caps and class checks
(label encoding is in `kd_keras.data.labels`)."""

import dataclasses
import numpy as np

from kd_keras.data.labels import encode_files
from kd_keras.data.labels import encode_labels  # noqa: F401  (re-exported)
from kd_keras.data.readers import read_labelled_file
from kd_keras.errors import DataError
from kd_keras.errors import UsageError
from kd_keras.number_checks import is_finite
from kd_keras.number_checks import is_int

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class TextDataset:
    """Train / validation / test texts with integer labels.

    Attributes:
        texts: dict split name -> list of strings.
        labels: dict split name -> int32 array of class indices (`-1` marks
            an unlabeled example).
        label_names: the class names, in index order.

    Example:

    >>> ds = TextDataset(
    ...     texts={"train": ["a", "b"], "validation": ["c"], "test": ["d"]},
    ...     labels={k: np.zeros(n, "int32") for k, n in
    ...             [("train", 2), ("validation", 1), ("test", 1)]},
    ...     label_names=["neg", "pos"])
    >>> ds.num_classes, ds.sizes()
    (2, {'train': 2, 'validation': 1, 'test': 1})
    """

    texts: dict
    labels: dict
    label_names: list

    @property
    def num_classes(self):
        return len(self.label_names)

    def sizes(self):
        return {name: len(self.texts[name]) for name in SPLITS}

    def with_label_fraction(self, fraction, seed=0):
        """Returns a copy keeping the train labels of a seeded, stratified
        `fraction` of the examples; the rest become unlabeled (`-1`)."""
        labels = np.array(self.labels["train"], copy=True)
        rng = np.random.default_rng(seed)
        keep = np.zeros(len(labels), bool)
        for c in range(self.num_classes):
            idx = np.flatnonzero(labels == c)
            n = max(1, int(round(fraction * len(idx)))) if len(idx) else 0
            keep[rng.choice(idx, n, replace=False)] = True
        labels[~keep] = -1
        new_labels = dict(self.labels, train=labels)
        return dataclasses.replace(self, labels=new_labels)


def split_indices(n, fractions, seed=0):
    """Seeded shuffled split of `range(n)` into consecutive parts.

    Args:
        n: number of examples.
        fractions: fractions summing to 1, e.g. `(0.8, 0.1, 0.1)`.
        seed: the shuffle seed.

    Returns:
        A list of index arrays, one per fraction.

    Example:

    >>> [len(p) for p in split_indices(10, (0.8, 0.1, 0.1))]
    [8, 1, 1]
    """
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.round(np.cumsum(fractions)[:-1] * n).astype(int)
    return np.split(order, bounds)


def cap_examples(texts, labels, max_examples, seed):
    """Keeps a seeded random subset of at most `max_examples`, in file order.

    Args:
        texts: list of strings.
        labels: int array, one label per text.
        max_examples: the cap, or `None` for no cap.
        seed: seed of the subset.

    Returns:
        A tuple `(texts, labels)`.

    Example:

    >>> t, y = cap_examples(list("abcde"), np.arange(5), 3, seed=0)
    >>> len(t), [t[i] == "abcde"[y[i]] for i in range(3)]
    (3, [True, True, True])
    """
    if max_examples is None or len(texts) <= max_examples:
        return texts, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(texts))[:max_examples])
    return [texts[i] for i in keep], labels[keep]


def min_examples_to_split(fractions):
    """The fewest examples from which `split_indices` leaves no part empty
    (and neither does any larger number).

    Args:
        fractions: positive fractions summing to 1.

    Returns:
        An int.

    Example:

    >>> min_examples_to_split((0.8, 0.1, 0.1)), min_examples_to_split((0.9, 0.1))
    (8, 5)
    """
    # With n * fraction >= 2 a part cannot round to nothing; below that, look.
    high = int(np.ceil(2 / min(fractions)))
    if high > 10**7:
        return high
    n = np.arange(1, high + 1)
    bounds = np.round(np.outer(n, np.cumsum(fractions)[:-1])).astype(int)
    edges = np.concatenate([np.zeros((high, 1), int), bounds, n[:, None]], axis=1)
    failing = np.flatnonzero((np.diff(edges, axis=1) < 1).any(axis=1))
    return int(failing[-1]) + 2 if len(failing) else 1


def _check_arguments(train, split, max_examples, labels, seed):
    if not train:
        raise UsageError(f"train: a training file is needed, got {train!r}")
    if not is_int(seed) or seed < 0:
        raise UsageError(f"seed: expected an integer >= 0, got {seed!r}")
    ok = isinstance(split, (tuple, list)) and len(split) == 3 and all(
        is_finite(f) and f > 0 for f in split)
    if not ok or abs(sum(split) - 1) > 1e-6:
        raise UsageError(
            f"split: expected three positive fractions summing to 1 (train, validation, "
            f"test), got {split!r}")
    if max_examples is not None and (not is_int(max_examples) or max_examples < 1):
        raise UsageError(f"max_examples: expected a positive integer or None, got "
                         f"{max_examples!r}")
    if labels is not None and (isinstance(labels, str) or not hasattr(labels, "__len__")):
        raise UsageError(f"labels: expected a list of class names, got {labels!r}")


def _check_training_file(files, y, label_names):
    """At least 2 classes in the training file, and every class in it."""
    train = files["train"]
    present = set(np.unique(y["train"]).tolist())
    if len(present) < 2:
        shown = ", ".join(repr(label_names[c]) for c in sorted(present))
        raise DataError(
            f"{train.path}: {len(present)} class in the training labels ({shown}); at "
            "least 2 are needed")
    for c, name in enumerate(label_names):
        if c in present:
            continue
        for split in ("validation", "test"):
            if split in files and c in y[split]:
                i = int(np.flatnonzero(y[split] == c)[0])
                raise DataError(
                    f"{files[split].where(i)}: class {name!r} is in the {split} split but "
                    f"not in the training file {train.path}")
        raise DataError(
            f"{train.path}: class {name!r} of data.labels has no example in the "
            "training file")


def _cut(train, y, parts, fractions, seed, label_names):
    """Cuts the training file into `parts` (split names) by `fractions`."""
    n = len(train.texts)
    indices = split_indices(n, fractions, seed)
    for name, idx in zip(parts, indices):
        if len(idx) == 0:
            fix = (f"a data.{name} file" if len(parts) == 2
                   else "data.validation and data.test files")
            raise DataError(
                f"{train.path}: {n} example(s) are too few to cut a {name} split (fractions "
                f"{', '.join(f'{f:g}' for f in fractions)}); give at least "
                f"{min_examples_to_split(fractions)}, or {fix}")
    in_train = set(y[indices[0]].tolist())
    for name, idx in zip(parts[1:], indices[1:]):
        for c in sorted(set(y[idx].tolist()) - in_train):
            raise DataError(
                f"{train.path}: class {label_names[c]!r} ({int((y == c).sum())} example(s)) "
                f"gets none in the train split and some in the {name} split (seed {seed}); "
                f"give it more examples or a data.{name} file")
    return {name: ([train.texts[i] for i in idx], y[idx]) for name, idx in zip(parts, indices)}


def load_text_dataset(
    train,
    test=None,
    validation=None,
    format=None,
    header=None,
    text_column=0,
    label_column=1,
    labels=None,
    max_examples=None,
    split=(0.8, 0.1, 0.1),
    seed=0,
):
    """Reads labelled text files into a `TextDataset`.

    Missing splits are cut from the training file with a seeded shuffle:
    train only -> `split` (80/10/10 by default); train + test -> the
    validation set takes `split[1]` of the training file (train +
    validation -> the test set takes `split[2]`).

    The data is checked before it is trusted (see `encode_files` for the
    labels): the training file must hold at least 2 classes and every class
    of the other files (and of `labels`); each split must get at least one
    example and the train split every class; `max_examples` must keep an
    example of every class in the train split. Each failure is a one-line
    `DataError` naming the file (and line, class or split).

    Args:
        train: path of the training file.
        test: optional path of the test file.
        validation: optional path of the validation file.
        format: `"tsv"`, `"csv"`, `"jsonl"` or `None` to infer it.
        header: whether TSV/CSV files start with a header row; `None`:
            when a column is given by name.
        text_column: index or name of the text column.
        label_column: index or name of the label column.
        labels: optional list of class names fixing their order.
        max_examples: optional cap per split (a seeded random subset).
        split: train/validation/test fractions used to cut missing splits.
        seed: seed of the splits and caps.

    Returns:
        A `TextDataset`.

    Raises:
        MissingFileError: a file does not exist.
        DataError: bad data, as above.
        UsageError: a bad `train`, `split`, `max_examples`, `labels` or `seed`
            argument.

    Example:

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> rows = [f"text {i},{'ab'[i % 2]}\\n" for i in range(20)]
    >>> _ = open(p, "w").write("".join(rows))
    >>> load_text_dataset(p).sizes()
    {'train': 16, 'validation': 2, 'test': 2}
    >>> _ = open(p, "w").write("".join(rows[:4]))
    >>> load_text_dataset(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    kd_keras.errors.DataError: ...t.csv: 4 example(s) are too few to cut a test split (fractions 0.8, 0.1, 0.1); give at least 8, or data.validation and data.test files
    """
    _check_arguments(train, split, max_examples, labels, seed)
    read = dict(format=format, header=header, text_column=text_column,
                label_column=label_column)
    paths = {"train": train, "validation": validation, "test": test}
    files = {k: read_labelled_file(p, **read) for k, p in paths.items() if p}
    label_names, encoded = encode_files(list(files.values()),
                                        None if labels is None else list(labels))
    y = dict(zip(files, encoded))
    _check_training_file(files, y, label_names)

    data = {k: (list(files[k].texts), y[k]) for k in files}
    if "test" in files and "validation" not in files:
        data.update(_cut(files["train"], y["train"], ("train", "validation"),
                         (1 - split[1], split[1]), seed, label_names))
    elif "validation" in files and "test" not in files:
        data.update(_cut(files["train"], y["train"], ("train", "test"),
                         (1 - split[2], split[2]), seed, label_names))
    elif "test" not in files:
        data.update(_cut(files["train"], y["train"], SPLITS, tuple(split), seed, label_names))
    for i, k in enumerate(SPLITS):
        data[k] = cap_examples(*data[k], max_examples, seed + i)
    missing = sorted(set(range(len(label_names))) - set(data["train"][1].tolist()))
    if missing:
        raise DataError(
            f"data.max_examples: {max_examples} leaves no training example of class "
            f"{label_names[missing[0]]!r} (of {files['train'].path}); raise it")
    return TextDataset(
        texts={k: list(data[k][0]) for k in SPLITS},
        labels={k: np.asarray(data[k][1], np.int32) for k in SPLITS},
        label_names=label_names,
    )
