import os

import numpy as np
import pytest

from conftest import SHARED_DATA
from kd_keras.data import load_builtin
from kd_keras.data import load_rt_polarity
from kd_keras.data.builtin import BUILTIN_DIR


def test_rt_polarity_matches_shared_files_and_split():
    ds = load_rt_polarity()
    assert ds.label_names == ["neg", "pos"]
    assert ds.sizes() == {"train": 8530, "validation": 1066, "test": 1066}
    # Independent reference: the original files.
    by_label = {}
    for label, name in ((0, "rt-polarity.neg"), (1, "rt-polarity.pos")):
        with open(os.path.join(SHARED_DATA, "rt-polarity", name), encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    by_label[line.strip()] = label
    texts = sum((ds.texts[k] for k in ("train", "validation", "test")), [])
    assert sorted(texts) == sorted(
        line.strip()
        for name in ("rt-polarity.neg", "rt-polarity.pos")
        for line in open(os.path.join(SHARED_DATA, "rt-polarity", name), encoding="utf-8")
        if line.strip()
    )
    for t, y in zip(ds.texts["test"], ds.labels["test"]):
        assert by_label[t] == y
    again = load_rt_polarity()
    assert ds.texts["test"] == again.texts["test"]
    assert np.array_equal(ds.labels["train"], again.labels["train"])


def test_citation_shipped_and_unknown_builtin():
    with open(os.path.join(BUILTIN_DIR, "CITATION.txt")) as f:
        assert "Pang" in f.read()
    with pytest.raises(ValueError, match="data.builtin: unknown dataset 'imdb'"):
        load_builtin("imdb")
