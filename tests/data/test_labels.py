"""Accuracy over labelled examples: the one function every score goes through."""

import numpy as np
import pytest

from kd_keras.data.labels import accuracy


def test_accuracy_counts_only_labelled_examples():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 4)).astype(np.float32)
    labels = rng.integers(-1, 4, size=200)
    labelled = labels >= 0
    # Independent reference: a Python loop over the labelled rows.
    hits = [int(np.argmax(row)) == int(y) for row, y in zip(logits, labels) if y >= 0]
    assert accuracy(logits, labels) == pytest.approx(sum(hits) / labelled.sum(), abs=0)


def test_accuracy_of_no_labelled_example_is_none():
    assert accuracy(np.zeros((3, 2)), [-1, -1, -1]) is None
    assert accuracy(np.zeros((0, 2)), []) is None


def test_accuracy_takes_a_column_of_labels():
    logits = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert accuracy(logits, np.array([[1], [1]])) == 0.5
