import numpy as np
import pytest

from conftest import write_agnews_tsv
from kd_keras.data import DataError
from kd_keras.data import encode_labels
from kd_keras.data import load_text_dataset
from kd_keras.data import split_indices


def test_string_labels_sorted_and_integer_labels_numeric():
    names, (a, b) = encode_labels([["pos", "neg"], ["neg"]])
    assert names == ["neg", "pos"] and a.tolist() == [1, 0] and b.tolist() == [0]
    names, (a,) = encode_labels([["10", "2", "2"]])
    assert names == ["2", "10"] and a.tolist() == [1, 0, 0]
    names, (a,) = encode_labels([["pos", "neg"]], label_names=["pos", "neg"])
    assert a.tolist() == [0, 1]
    with pytest.raises(DataError, match="'meh'"):
        encode_labels([["meh"]], label_names=["pos", "neg"])


def test_split_is_seeded_partition():
    a = split_indices(101, (0.8, 0.1, 0.1), seed=3)
    b = split_indices(101, (0.8, 0.1, 0.1), seed=3)
    c = split_indices(101, (0.8, 0.1, 0.1), seed=4)
    assert [len(p) for p in a] == [81, 10, 10]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert sorted(np.concatenate(a).tolist()) == list(range(101))


def _write_rows(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"text number {i}\t{'ab'[i % 2]}\n")


def test_train_only_splits_and_texts_stay_with_labels(tmp_path):
    p = str(tmp_path / "t.tsv")
    _write_rows(p, 50)
    ds = load_text_dataset(p, seed=1)
    assert ds.sizes() == {"train": 40, "validation": 5, "test": 5}
    assert ds.label_names == ["a", "b"]
    all_texts = sum((ds.texts[k] for k in ("train", "validation", "test")), [])
    assert sorted(all_texts) == sorted(f"text number {i}" for i in range(50))
    for k in ds.texts:  # each text keeps its own label
        for text, y in zip(ds.texts[k], ds.labels[k]):
            assert y == int(text.split()[-1]) % 2


def test_train_and_test_cut_validation_from_train_and_cap(tmp_path):
    tr, te = str(tmp_path / "tr.tsv"), str(tmp_path / "te.tsv")
    _write_rows(tr, 100)
    _write_rows(te, 30)
    ds = load_text_dataset(tr, te)
    assert ds.sizes() == {"train": 90, "validation": 10, "test": 30}
    capped = load_text_dataset(tr, te, max_examples=8)
    assert capped.sizes() == {"train": 8, "validation": 8, "test": 8}


def test_label_fraction_keeps_stratified_labels(tmp_path):
    tr = str(tmp_path / "tr.tsv")
    _write_rows(tr, 200)
    ds = load_text_dataset(tr).with_label_fraction(0.1, seed=0)
    y = ds.labels["train"]
    assert (y >= 0).sum() == 16 and (y == -1).sum() == 144
    assert (y == 0).sum() == 8 and (y == 1).sum() == 8


def test_agnews_four_string_classes(tmp_path):
    train, test = write_agnews_tsv(tmp_path)
    ds = load_text_dataset(train, test, max_examples=50)
    assert ds.label_names == ["Business", "Sci/Tech", "Sports", "World"]
    assert ds.sizes() == {"train": 50, "validation": 50, "test": 50}
    assert set(ds.labels["train"].tolist()) == {0, 1, 2, 3}
