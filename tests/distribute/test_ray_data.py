"""The Ray actor checks a shard's teacher outputs as the local builder does
(the actor's method runs here without a cluster)."""

import itertools

import numpy as np
import pytest

from kd_keras.errors import UsageError

pytest.importorskip("ray")

from kd_keras.distribute.ray_data import ShardWriter  # noqa: E402


def _writer(forward, is_dict=False):
    writer = ShardWriter.__new__(ShardWriter)  # No Ray: only the shard loop runs.
    writer.forward, writer.is_dict, writer.batch_size, writer.error = forward, is_dict, 4, None
    return writer


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_logits_are_the_teachers_for_every_row():
    x = np.random.default_rng(0).normal(size=(10, 3))
    weights = np.random.default_rng(1).normal(size=(3, 5))
    logits = _writer(lambda batch: batch @ weights).logits({"x": x})
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits, x @ weights, rtol=1e-6)
    named = _writer(lambda batch: batch["a"] + batch["b"], is_dict=True)
    np.testing.assert_array_equal(named.logits({"a": x, "b": x}), (2 * x).astype("float32"))


@pytest.mark.parametrize("forward, message", [
    (lambda batch: _softmax(batch), r"^teacher: outputs probabilities"),
    (lambda batch: batch[:, 0], r"^teacher: returned logits of shape \[4\] for a batch of 4"),
    (lambda batch, calls=itertools.count(): batch[:, : 3 if next(calls) == 0 else 2],
     r"^teacher: returned 2 classes; the cache holds 3"),
], ids=["probabilities", "one-axis", "classes-change"])
def test_a_bad_teacher_is_refused_on_an_actor_as_locally(forward, message):
    x = np.random.default_rng(2).normal(size=(12, 4))
    with pytest.raises(UsageError, match=message):
        _writer(forward).logits({"x": x})
