"""Datasets shipped inside the package.

`rt_polarity`: the 10,662 movie-review sentences of "Sentence polarity dataset
v1.0" (Pang & Lee, ACL 2005; see `builtin/CITATION.txt`), labels
`["neg", "pos"]`, in a seeded 80/10/10 train/validation/test split.
"""

import gzip
import os

import numpy as np

from kd_keras.data.text_dataset import SPLITS
from kd_keras.data.text_dataset import TextDataset
from kd_keras.data.text_dataset import _cap
from kd_keras.data.text_dataset import split_indices

BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin")
BUILTIN_DATASETS = ("rt_polarity",)


def _read_lines(filename):
    with gzip.open(os.path.join(BUILTIN_DIR, filename), "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def load_rt_polarity(max_examples=None, seed=0, split=(0.8, 0.1, 0.1)):
    """Loads the built-in movie-review sentiment data.

    Args:
        max_examples: optional cap per split (a seeded random subset).
        seed: seed of the split (the default 0 is the demo's split).
        split: train/validation/test fractions.

    Returns:
        A `TextDataset` with labels `["neg", "pos"]`.

    Example:

    >>> ds = load_rt_polarity()
    >>> ds.label_names, sum(ds.sizes().values())
    (['neg', 'pos'], 10662)
    """
    neg = _read_lines("rt-polarity.neg.gz")
    pos = _read_lines("rt-polarity.pos.gz")
    texts = neg + pos
    labels = np.array([0] * len(neg) + [1] * len(pos), np.int32)
    parts = split_indices(len(texts), split, seed)
    data = {}
    for i, (name, idx) in enumerate(zip(SPLITS, parts)):
        t, y = _cap([texts[j] for j in idx], labels[idx], max_examples, seed + i)
        data[name] = (list(t), np.asarray(y, np.int32))
    return TextDataset(
        texts={k: v[0] for k, v in data.items()},
        labels={k: v[1] for k, v in data.items()},
        label_names=["neg", "pos"],
    )


def load_builtin(name, **kwargs):
    """Loads a built-in dataset by name (`"rt_polarity"`).

    Raises:
        ValueError: for an unknown name, naming it and the known ones.
    """
    if name != "rt_polarity":
        raise ValueError(
            f"data.builtin: unknown dataset {name!r}; known: "
            f"{', '.join(BUILTIN_DATASETS)}"
        )
    return load_rt_polarity(**kwargs)
