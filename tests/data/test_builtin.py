"""The built-in datasets against their shipped files, read independently
(gzip + NumPy), and the documented seeded splits."""

import collections
import gzip
import os

import numpy as np
import pytest

from kd_keras.data import BUILTIN_DATASETS
from kd_keras.data import load_builtin
from kd_keras.data import load_rt_polarity
from kd_keras.data.builtin import BUILTIN_DIR
from kd_keras.errors import ConfigError


def _gz_lines(filename):
    with gzip.open(os.path.join(BUILTIN_DIR, filename), "rb") as f:
        return f.read().decode("utf-8").split("\n")


def _gz_rows(filename):
    """(text, label) pairs of a shipped TSV: split on the one tab per line."""
    rows = [line.split("\t") for line in _gz_lines(filename) if line.strip()]
    assert all(len(r) == 2 for r in rows)
    return [(text, label) for text, label in rows]


def test_rt_polarity_matches_shipped_files_and_split():
    ds = load_rt_polarity()
    assert ds.label_names == ["neg", "pos"]
    assert ds.sizes() == {"train": 8530, "validation": 1066, "test": 1066}
    # Independent reference: the shipped files.
    lines = {
        label: [line.strip() for line in _gz_lines(name) if line.strip()]
        for label, name in ((0, "rt-polarity.neg.gz"), (1, "rt-polarity.pos.gz"))
    }
    assert len(lines[0]) == len(lines[1]) == 5331
    texts = sum((ds.texts[k] for k in ("train", "validation", "test")), [])
    assert sorted(texts) == sorted(lines[0] + lines[1])
    by_label = {t: label for label in (0, 1) for t in lines[label]}
    for t, y in zip(ds.texts["test"], ds.labels["test"]):
        assert by_label[t] == y
    again = load_rt_polarity()
    assert ds.texts["test"] == again.texts["test"]
    assert np.array_equal(ds.labels["train"], again.labels["train"])


@pytest.mark.parametrize("seed,validation", [(0, 0.1), (5, 0.25)])
def test_ag_news_matches_shipped_files_and_documented_split(seed, validation):
    ds = load_builtin("ag_news", seed=seed, split=(0.5, validation, 0.5))
    names = ["Business", "Sci/Tech", "Sports", "World"]
    assert ds.label_names == names
    train_rows = _gz_rows("ag_news.train.tsv.gz")
    test_rows = _gz_rows("ag_news.test.tsv.gz")
    assert (len(train_rows), len(test_rows)) == (10001, 7600)
    assert collections.Counter(label for _, label in test_rows) == {n: 1900 for n in names}

    def rows(split):
        return [(t, names[y]) for t, y in zip(ds.texts[split], ds.labels[split])]

    # The test split is the test file, in order; split[0] and split[2] are ignored.
    assert rows("test") == test_rows
    # Train / validation: a seeded permutation of the training file, the
    # first round((1 - split[1]) * n) rows being the train split.
    n = len(train_rows)
    order = np.random.default_rng(seed).permutation(n)
    n_train = int(np.round((1 - validation) * n))
    assert rows("train") == [train_rows[i] for i in order[:n_train]]
    assert rows("validation") == [train_rows[i] for i in order[n_train:]]
    assert len(ds.texts["validation"]) == n - n_train


def test_ag_news_max_examples_caps_each_split_with_a_seeded_subset():
    full = load_builtin("ag_news", seed=3)
    capped = load_builtin("ag_news", max_examples=40, seed=3)
    assert capped.sizes() == {"train": 40, "validation": 40, "test": 40}
    for i, split in enumerate(("train", "validation", "test")):
        keep = np.sort(np.random.default_rng(3 + i).permutation(len(full.texts[split]))[:40])
        assert capped.texts[split] == [full.texts[split][j] for j in keep]
        assert np.array_equal(capped.labels[split], full.labels[split][keep])
    assert load_builtin("ag_news", max_examples=40, seed=3).texts == capped.texts


def test_builtin_names_citation_and_unknown_name():
    assert BUILTIN_DATASETS == ("rt_polarity", "ag_news")
    for name in BUILTIN_DATASETS:
        assert load_builtin(name, max_examples=3).sizes()["test"] == 3
    with open(os.path.join(BUILTIN_DIR, "CITATION.txt")) as f:
        citation = f.read()
    assert "Pang" in citation and "Zhang, Xiang and Zhao, Junbo and LeCun, Yann" in citation
    with pytest.raises(ConfigError, match="data.builtin: unknown dataset 'imdb'; known: "
                                          "rt_polarity, ag_news"):
        load_builtin("imdb")
