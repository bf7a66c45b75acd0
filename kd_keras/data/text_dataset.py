"""Labelled text splits: label encoding, seeded splits and size caps."""

import dataclasses

import numpy as np

from kd_keras.data.readers import DataError
from kd_keras.data.readers import read_examples

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


def encode_labels(raw_labels, label_names=None):
    """Turns raw string labels into class indices.

    Integer labels (every value parses as an int) are sorted numerically;
    string labels are sorted alphabetically unless `label_names` gives the
    order.

    Args:
        raw_labels: list of lists of strings (one list per split).
        label_names: optional list fixing the classes and their order.

    Returns:
        A tuple `(label_names, [int32 arrays])`.

    Example:

    >>> names, (a,) = encode_labels([["pos", "neg", "pos"]])
    >>> names, a.tolist()
    (['neg', 'pos'], [1, 0, 1])
    """
    values = sorted({v for split in raw_labels for v in split})
    if label_names is None:
        try:
            label_names = [str(v) for v in sorted(int(v) for v in values)]
            values = [str(int(v)) for v in values]
            raw_labels = [[str(int(v)) for v in split] for split in raw_labels]
        except ValueError:
            label_names = values
    label_names = [str(n) for n in label_names]
    unknown = sorted(set(values) - set(label_names))
    if unknown:
        raise DataError(
            f"data.labels: label {unknown[0]!r} found in the data is not one "
            f"of {label_names}"
        )
    index = {name: i for i, name in enumerate(label_names)}
    arrays = [np.array([index[v] for v in split], np.int32) for split in raw_labels]
    return label_names, arrays


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


def _cap(texts, labels, max_examples, seed):
    if max_examples is None or len(texts) <= max_examples:
        return texts, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(texts))[:max_examples])
    return [texts[i] for i in keep], labels[keep]


def load_text_dataset(
    train,
    test=None,
    validation=None,
    format=None,
    header=False,
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
    validation set takes `split[1]` of the training file.

    Args:
        train: path of the training file.
        test: optional path of the test file.
        validation: optional path of the validation file.
        format: `"tsv"`, `"csv"`, `"jsonl"` or `None` to infer it.
        header: whether TSV/CSV files start with a header row.
        text_column: index or name of the text column.
        label_column: index or name of the label column.
        labels: optional list of class names fixing their order.
        max_examples: optional cap per split (a seeded random subset).
        split: train/validation/test fractions used to cut missing splits.
        seed: seed of the splits and caps.

    Returns:
        A `TextDataset`.

    Example:

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> rows = "".join(f"text {i},{'ab'[i % 2]}\\n" for i in range(20))
    >>> _ = open(p, "w").write(rows)
    >>> load_text_dataset(p).sizes()
    {'train': 16, 'validation': 2, 'test': 2}
    """
    read = dict(format=format, header=header, text_column=text_column,
                label_column=label_column)
    files = {"train": train, "validation": validation, "test": test}
    raw = {k: read_examples(p, **read) for k, p in files.items() if p}
    names = list(raw)
    label_names, encoded = encode_labels([raw[k][1] for k in names], labels)
    data = {k: (raw[k][0], encoded[i]) for i, k in enumerate(names)}

    texts, y = data.pop("train")
    if "validation" in data and "test" in data:
        data["train"] = (texts, y)
    else:
        if "test" in data:
            fractions = (1 - split[1], split[1])
            parts = dict(zip(("train", "validation"), split_indices(len(texts), fractions, seed)))
        elif "validation" in data:
            fractions = (1 - split[2], split[2])
            parts = dict(zip(("train", "test"), split_indices(len(texts), fractions, seed)))
        else:
            parts = dict(zip(SPLITS, split_indices(len(texts), split, seed)))
        for k, idx in parts.items():
            data[k] = ([texts[i] for i in idx], y[idx])
    for i, k in enumerate(SPLITS):
        data[k] = _cap(*data[k], max_examples, seed + i)
    return TextDataset(
        texts={k: list(data[k][0]) for k in SPLITS},
        labels={k: np.asarray(data[k][1], np.int32) for k in SPLITS},
        label_names=label_names,
    )
