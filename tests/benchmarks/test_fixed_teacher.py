"""Tests for benchmarks/fixed_teacher.py: the saved outputs of a fixed
teacher (`save_outputs`, `load_outputs`, `outputs_key`), no training."""

import os
import types

import numpy as np
import pytest

from conftest import REPO_ROOT
from conftest import load_benchmark

RECIPE = os.path.join(REPO_ROOT, "configs", "demo_augmented.yaml")
fixed_teacher = load_benchmark("fixed_teacher")


def _outputs():
    rng = np.random.default_rng(0)
    logits = {"train": rng.normal(size=(5, 2)).astype(np.float32),
              "validation": rng.normal(size=(2, 2)).astype(np.float32),
              "test": rng.normal(size=(3, 2)).astype(np.float32)}
    features = {s: {"classifier/pooling": rng.normal(size=(len(v), 4)).astype(np.float32)}
                for s, v in logits.items()}
    return logits, features


def _data(logits):
    return types.SimpleNamespace(labels={s: np.zeros(len(v)) for s, v in logits.items()})


def test_outputs_come_back_bit_for_bit(tmp_path):
    logits, features = _outputs()
    path = str(tmp_path / "teachers" / "sst2-abc.npz")
    fixed_teacher.save_outputs(path, logits, features)
    assert os.listdir(tmp_path / "teachers") == ["sst2-abc.npz"]  # no temporary file left
    got_logits, got_features = fixed_teacher.load_outputs(path, _data(logits))
    assert set(got_logits) == set(logits) and set(got_features) == set(features)
    for split in logits:
        np.testing.assert_array_equal(got_logits[split], logits[split])
        np.testing.assert_array_equal(got_features[split]["classifier/pooling"],
                                      features[split]["classifier/pooling"])


def test_outputs_for_other_data_are_refused(tmp_path):
    logits, _ = _outputs()
    path = str(tmp_path / "t.npz")
    fixed_teacher.save_outputs(path, logits)
    data = _data(dict(logits, train=np.zeros((6, 2))))
    with pytest.raises(SystemExit, match=r"t\.npz: the saved teacher has 5 rows for train, "
                                         r"the data 6"):
        fixed_teacher.load_outputs(path, data)


def test_the_key_follows_the_teacher_and_data_not_the_student():
    from kd_keras.config import load_config

    base = load_config(RECIPE)
    key = fixed_teacher.outputs_key(base)
    same_teacher = [load_config(RECIPE, {"student.options": {"filters": 200}}),
                    load_config(RECIPE, {"distill.alpha": 0.5, "distill.epochs": 3})]
    other_teacher = [load_config(RECIPE, {"teacher.fine_tune.epochs": 1}),
                     load_config(RECIPE, {"distill.augment.copies": 2}),
                     load_config(RECIPE, {"data.labels_fraction": 0.5}),
                     load_config(RECIPE, {"distill.feature_dtype": "float16"}),
                     load_config(RECIPE, {"seed": 1})]
    assert [fixed_teacher.outputs_key(c) for c in same_teacher] == [key, key]
    assert all(fixed_teacher.outputs_key(c) != key for c in other_teacher)
    assert fixed_teacher.outputs_key(base, max_train=10000) != key
