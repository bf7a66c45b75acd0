"""Datasets shipped inside the package (`BUILTIN_DATASETS`).

- `rt_polarity`: the 10,662 movie-review sentences of "Sentence polarity
  dataset v1.0" (Bo Pang and Lillian Lee, "Seeing stars: Exploiting class
  relationships for sentiment categorization with respect to rating scales",
  ACL 2005), labels `["neg", "pos"]`, in a seeded 80/10/10
  train/validation/test split.
- `ag_news`: a subset of the AG News topic-classification corpus (Xiang
  Zhang, Junbo Zhao and Yann LeCun, "Character-level Convolutional Networks
  for Text Classification", NeurIPS 2015): 10,001 training and 7,600 test
  news snippets, labels `["Business", "Sci/Tech", "Sports", "World"]`. The
  shipped test file is the test split; the validation split is cut from the
  training file with a seeded shuffle.

The files live in `builtin/` (gzip-compressed, otherwise unchanged; full
citations in `builtin/CITATION.txt`).
"""

import gzip
import os

import numpy as np

from kd_keras.data.text_dataset import SPLITS
from kd_keras.data.text_dataset import TextDataset
from kd_keras.data.text_dataset import cap_examples
from kd_keras.data.text_dataset import split_indices
from kd_keras.errors import ConfigError
from kd_keras.errors import UsageError

BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "builtin")
BUILTIN_DATASETS = ("rt_polarity", "ag_news")
AG_NEWS_LABELS = ("Business", "Sci/Tech", "Sports", "World")


def _read_lines(filename):
    with gzip.open(os.path.join(BUILTIN_DIR, filename), "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def rt_polarity_sentences():
    """The built-in movie reviews in file order: every negative sentence,
    then every positive one.

    Returns:
        `(texts, labels)`: a list of strings and an int32 array (0 neg, 1 pos).

    Example:

    >>> texts, labels = rt_polarity_sentences()
    >>> len(texts), int(labels.sum())
    (10662, 5331)
    """
    neg = _read_lines("rt-polarity.neg.gz")
    pos = _read_lines("rt-polarity.pos.gz")
    return neg + pos, np.array([0] * len(neg) + [1] * len(pos), np.int32)


def _read_tsv(filename):
    """Texts and label names of a shipped `text<TAB>label` file."""
    texts, labels = [], []
    with gzip.open(os.path.join(BUILTIN_DIR, filename), "rt", encoding="utf-8",
                   newline="\n") as f:
        for line in f:
            if line.strip():
                text, label = line.rstrip("\n").split("\t")
                texts.append(text)
                labels.append(label.strip())
    return texts, labels


def _dataset(parts, seed, max_examples, label_names):
    """A `TextDataset` from `{split: (texts, labels)}`, each split capped."""
    data = {}
    for i, name in enumerate(SPLITS):
        t, y = cap_examples(*parts[name], max_examples, seed + i)
        data[name] = (list(t), np.asarray(y, np.int32))
    return TextDataset(
        texts={k: v[0] for k, v in data.items()},
        labels={k: v[1] for k, v in data.items()},
        label_names=list(label_names),
    )


def load_rt_polarity(max_examples=None, seed=0, split=(0.8, 0.1, 0.1)):
    """Loads the built-in movie-review sentiment data.

    Args:
        max_examples: optional cap per split (a seeded random subset).
        seed: seed of the split (the default 0 is the demo's split).
        split: train/validation/test fractions of the 10,662 sentences.

    Returns:
        A `TextDataset` with labels `["neg", "pos"]`.

    Example:

    >>> ds = load_rt_polarity()
    >>> ds.label_names, sum(ds.sizes().values())
    (['neg', 'pos'], 10662)
    """
    texts, labels = rt_polarity_sentences()
    parts = {
        name: ([texts[j] for j in idx], labels[idx])
        for name, idx in zip(SPLITS, split_indices(len(texts), split, seed))
    }
    return _dataset(parts, seed, max_examples, ["neg", "pos"])


def load_ag_news(max_examples=None, seed=0, split=(0.8, 0.1, 0.1)):
    """Loads the built-in AG News topic data (4 classes).

    The test split is the shipped test file (7,600 snippets, in file order).
    `split` is read as train/validation/test fractions, but only `split[1]`
    is used: the training file's 10,001 snippets are shuffled with
    `numpy.random.default_rng(seed).permutation`, the first
    `round((1 - split[1]) * 10001)` of that order are the train split and
    the rest the validation split (9,001 / 1,000 with the default). This is
    what `load_text_dataset(train, test, split=split, seed=seed)` does with
    the same two files, so the result equals reading them as TSV.

    Args:
        max_examples: optional cap per split (a seeded random subset, seed
            `seed + i` for the i-th of train, validation, test).
        seed: seed of the validation cut and the caps.
        split: train/validation/test fractions; only `split[1]` applies.

    Returns:
        A `TextDataset` with labels `["Business", "Sci/Tech", "Sports",
        "World"]`.

    Example:

    >>> ds = load_ag_news()
    >>> ds.label_names, ds.sizes()
    (['Business', 'Sci/Tech', 'Sports', 'World'], {'train': 9001, 'validation': 1000, 'test': 7600})
    """
    if not 0 <= split[1] < 1:
        raise UsageError(f"split: the validation fraction must be in [0, 1), got {split[1]}")
    index = {name: i for i, name in enumerate(AG_NEWS_LABELS)}
    files = {}
    for name in ("train", "test"):
        texts, raw = _read_tsv(f"ag_news.{name}.tsv.gz")
        files[name] = (texts, np.array([index[v] for v in raw], np.int32))
    texts, labels = files["train"]
    train_idx, val_idx = split_indices(len(texts), (1 - split[1], split[1]), seed)
    parts = {
        "train": ([texts[j] for j in train_idx], labels[train_idx]),
        "validation": ([texts[j] for j in val_idx], labels[val_idx]),
        "test": files["test"],
    }
    return _dataset(parts, seed, max_examples, AG_NEWS_LABELS)


_LOADERS = {"rt_polarity": load_rt_polarity, "ag_news": load_ag_news}


def load_builtin(name, max_examples=None, seed=0, split=(0.8, 0.1, 0.1)):
    """Loads a built-in dataset by name (one of `BUILTIN_DATASETS`).

    Args:
        name: `"rt_polarity"` or `"ag_news"`.
        max_examples: optional cap per split (a seeded random subset).
        seed: seed of the split and the caps.
        split: train/validation/test fractions; see each loader for how
            they apply (`ag_news` uses only the validation fraction).

    Returns:
        A `TextDataset`.

    Raises:
        ConfigError: for an unknown name, naming it and the known ones.

    Example:

    >>> load_builtin("ag_news", max_examples=5).sizes()
    {'train': 5, 'validation': 5, 'test': 5}
    >>> load_builtin("imdb")
    Traceback (most recent call last):
    ...
    kd_keras.errors.ConfigError: data.builtin: unknown dataset 'imdb'; known: rt_polarity, ag_news
    """
    if name not in _LOADERS:
        raise ConfigError(
            f"data.builtin: unknown dataset {name!r}; known: "
            f"{', '.join(BUILTIN_DATASETS)}"
        )
    return _LOADERS[name](max_examples=max_examples, seed=seed, split=split)
