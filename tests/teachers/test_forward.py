"""`run_teacher` on a text teacher: only the named outputs, batches bucketed
by length for pooled outputs, the padded width for per-token ones; the
values equal Keras's own padded forward pass, in the texts' order.
`teacher_logits` gives any `Teacher`'s outputs over a whole array."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.teachers import build_text_teacher
from kd_keras.teachers import forward
from kd_keras.teachers import as_teacher
from kd_keras.teachers.embeddings import EmbeddingTeacher
from kd_keras.teachers.forward import run_teacher
from kd_keras.teachers.forward import teacher_logits
from tests.teachers.test_transfer import _sentiment_task

POOLED = "pooling"
BLOCK = "backbone/transformer_layer_0"


@pytest.fixture
def teacher(small_init_bert_dir):
    return build_text_teacher(small_init_bert_dir, num_classes=3, sequence_length=16)


def _padded(teacher, texts, name):
    """The teacher's hook on every text padded to the full sequence length
    (it computes every intermediate output): Keras's own padded path,
    independent of `run_teacher`'s view and bucketing."""
    logits, features = teacher.call_with_features(tf.constant(list(texts)))
    return logits.numpy(), np.asarray(features[name])


def test_pooled_outputs_are_bucketed_and_equal_the_padded_pass(teacher, rng, monkeypatch):
    monkeypatch.setattr(forward, "TOKENIZE_CHUNK", 16)  # several chunks, sorted in each
    texts, _ = _sentiment_task(rng, 45)
    texts[5] = "Good " * 30  # longer than the sequence length: truncated
    name = f"{teacher.classifier.name}/{POOLED}"

    out = run_teacher(teacher, texts, [name], batch_size=4)

    logits, pooled = _padded(teacher, texts, name)
    np.testing.assert_allclose(out.logits, logits, atol=1e-5)
    np.testing.assert_allclose(out.layers[name], pooled, atol=1e-5)
    assert out.logits.dtype == np.float32 and out.layers[name].shape == (45, pooled.shape[1])


def test_per_token_outputs_keep_the_padded_width(teacher, rng):
    texts, _ = _sentiment_task(rng, 9)
    name = f"{teacher.classifier.name}/{BLOCK}"
    out = run_teacher(teacher, texts, [name], batch_size=4, feature_dtype="float16")
    logits, hidden = _padded(teacher, texts, name)
    assert out.layers[name].shape == hidden.shape == (9, 16, hidden.shape[-1])
    np.testing.assert_allclose(out.logits, logits, atol=1e-5)
    np.testing.assert_allclose(out.layers[name], hidden, rtol=2.0 ** -11 * 1.001, atol=1e-6)


def test_logits_alone_and_no_texts(teacher):
    empty = run_teacher(teacher, np.asarray([], object), [])
    assert empty.logits.shape == (0,) and empty.layers == {}
    texts = np.asarray(["a fine film", "dull"], object)
    np.testing.assert_allclose(run_teacher(teacher, texts).logits,
                               teacher(tf.constant(list(texts))).numpy(), atol=1e-5)


def test_teacher_logits_cover_every_row_in_order(teacher, rng):
    texts, _ = _sentiment_task(rng, 11)
    logits = teacher_logits(as_teacher(teacher), texts, batch_size=4, desc="t")
    expected, _ = _padded(teacher, texts, f"{teacher.classifier.name}/{POOLED}")
    assert logits.shape == (11, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    # A teacher with its own predict_on_batch (the backbone's embeddings) too.
    embedder = EmbeddingTeacher(teacher)
    embedded = teacher_logits(embedder, texts, batch_size=3)
    np.testing.assert_allclose(embedded, embedder.predict_on_batch(texts), atol=1e-5)
