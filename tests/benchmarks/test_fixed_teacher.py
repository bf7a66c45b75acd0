"""Tests for benchmarks/fixed_teacher.py: the saved outputs of a fixed
teacher (`save_outputs`, `load_outputs`, `outputs_key`), no training."""

import os
import types

import numpy as np
import pytest

from conftest import REPO_ROOT
from conftest import load_benchmark

RECIPE = os.path.join(REPO_ROOT, "configs", "demo.yaml")
fixed_teacher = load_benchmark("fixed_teacher")


def _outputs():
    rng = np.random.default_rng(0)
    logits = {"train": rng.normal(size=(5, 2)).astype(np.float32),
              "validation": rng.normal(size=(2, 2)).astype(np.float32),
              "test": rng.normal(size=(3, 2)).astype(np.float32)}
    features = {s: {"classifier/pooling": rng.normal(size=(len(v), 4)).astype(np.float32)}
                for s, v in logits.items()}
    return logits, features


def _data(logits, texts=None):
    texts = texts or {s: [f"{s} text {i}" for i in range(len(v))] for s, v in logits.items()}
    return types.SimpleNamespace(dataset=types.SimpleNamespace(texts=texts),
                                 labels={s: np.arange(len(v)) % 2 for s, v in texts.items()})


def test_outputs_come_back_bit_for_bit(tmp_path):
    logits, features = _outputs()
    path = str(tmp_path / "teachers" / "sst2-abc.npz")
    os.makedirs(tmp_path / "teachers")
    fixed_teacher.save_outputs(path, logits, features, _data(logits))
    assert os.listdir(tmp_path / "teachers") == ["sst2-abc.npz"]  # no temporary file left
    got_logits, got_features = fixed_teacher.load_outputs(path, _data(logits),
                                                          ["classifier/pooling"])
    assert set(got_logits) == set(logits) and set(got_features) == set(features)
    for split in logits:
        np.testing.assert_array_equal(got_logits[split], logits[split])
        np.testing.assert_array_equal(got_features[split]["classifier/pooling"],
                                      features[split]["classifier/pooling"])


def test_outputs_on_other_texts_are_refused(tmp_path):
    logits, _ = _outputs()
    path = str(tmp_path / "t.npz")
    fixed_teacher.save_outputs(path, logits, None, _data(logits))
    same_rows = _data(logits)
    same_rows.dataset.texts["train"] = same_rows.dataset.texts["train"][::-1]  # reordered
    with pytest.raises(SystemExit, match=r"t\.npz: the saved teacher labelled other texts"):
        fixed_teacher.load_outputs(path, same_rows)
    relabelled = _data(logits)
    relabelled.labels["test"] = 1 - relabelled.labels["test"]
    with pytest.raises(SystemExit, match="other texts or labels"):
        fixed_teacher.load_outputs(path, relabelled)


def test_missing_feature_layers_and_damaged_files_get_one_line(tmp_path):
    logits, features = _outputs()
    path = str(tmp_path / "t.npz")
    fixed_teacher.save_outputs(path, logits, features, _data(logits))
    with pytest.raises(SystemExit, match=r"no other/layer for the 5 train rows"):
        fixed_teacher.load_outputs(path, _data(logits), ["other/layer"])
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"not an npz file")
    with pytest.raises(SystemExit, match=r"damaged\.npz: not a saved teacher") as e:
        fixed_teacher.load_outputs(str(damaged), _data(logits))
    assert "\n" not in str(e.value)


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
