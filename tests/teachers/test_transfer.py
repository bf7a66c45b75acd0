import numpy as np
import pytest
import tensorflow as tf
import torch

from kd_keras.errors import UsageError
from kd_keras.teachers import build_text_teacher
from kd_keras.teachers import fine_tune
from kd_keras.teachers import fit_head
from kd_keras.teachers import load_teacher
from kd_keras.teachers.transfer import sentence_embeddings

POSITIVE = "good great fun love brilliant funny".split()
NEGATIVE = "bad awful boring hate dull slow".split()
NEUTRAL = "the a film movie plot actor is was very story scene music".split()


def _sentiment_task(rng, count):
    """Short sentences whose label is the polarity of their one opinion word."""
    texts, labels = [], []
    for _ in range(count):
        label = int(rng.integers(2))
        words = list(rng.choice(NEUTRAL, size=int(rng.integers(2, 6))))
        words.insert(int(rng.integers(len(words) + 1)),
                     rng.choice(POSITIVE if label else NEGATIVE))
        texts.append(" ".join(words).capitalize() + ".")
        labels.append(label)
    return np.array(texts, dtype=object), np.array(labels)


def _hf_mean_pooled(path, texts, sequence_length):
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.BertModel.from_pretrained(path).eval()
    batch = tokenizer(list(texts), padding="max_length", truncation=True,
                      max_length=sequence_length, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.numpy()
    mask = batch["attention_mask"].numpy()[:, :, None]
    return (hidden * mask).sum(1) / mask.sum(1)


@pytest.fixture
def teacher(small_init_bert_dir):
    return build_text_teacher(small_init_bert_dir, num_classes=2,
                              sequence_length=12, pooling="mean")


def test_text_teacher_matches_transformers_tokenize_pool_and_head(
    teacher, small_init_bert_dir, rng
):
    texts, _ = _sentiment_task(rng, 6)
    pooled = _hf_mean_pooled(small_init_bert_dir, texts, 12)
    kernel, bias = teacher.classifier.get_layer("head").get_weights()

    np.testing.assert_allclose(sentence_embeddings(teacher, texts, verbose=0), pooled,
                               atol=1e-4)
    logits = teacher(tf.constant(list(texts))).numpy()
    np.testing.assert_allclose(logits, pooled @ kernel + bias, atol=1e-4)


def _accuracy(teacher, texts, labels):
    logits = teacher(tf.constant(list(texts))).numpy()
    return float((logits.argmax(-1) == labels).mean())


def test_fit_head_on_frozen_features_learns_the_task(teacher, rng, tmp_path):
    train_x, train_y = _sentiment_task(rng, 160)
    test_x, test_y = _sentiment_task(rng, 80)
    backbone = [w.copy() for w in teacher.classifier.get_layer("backbone").get_weights()]

    with pytest.raises(UsageError, match="^labels: 2 labels for 3 texts"):
        fit_head(teacher, ["a", "b", "c"], [0, 1], verbose=0)
    result = fit_head(teacher, train_x, train_y, verbose=0)

    after = teacher.classifier.get_layer("backbone").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(backbone, after))
    assert result["train_accuracy"] == _accuracy(teacher, train_x, train_y)
    assert _accuracy(teacher, test_x, test_y) >= 0.9

    path = str(tmp_path / "teacher.keras")
    teacher.save(path)
    reloaded = load_teacher(path)
    np.testing.assert_allclose(
        reloaded.predict_on_batch(tf.constant(list(test_x[:8]))),
        teacher(tf.constant(list(test_x[:8]))).numpy(),
        atol=1e-6,
    )


@pytest.mark.slow
def test_fine_tune_trains_only_the_top_layers(teacher, rng):
    train_x, train_y = _sentiment_task(rng, 32)
    backbone = teacher.classifier.get_layer("backbone")
    frozen = {
        name: [w.copy() for w in backbone.get_layer(name).get_weights()]
        for name in ("token_embedding", "transformer_layer_0", "transformer_layer_1")
    }

    result = fine_tune(teacher, train_x, train_y, epochs=1, train_backbone=True,
                       num_trainable_layers=1, learning_rate=1e-3, verbose=0)

    def unchanged(name):
        return all(np.array_equal(a, b) for a, b in
                   zip(frozen[name], backbone.get_layer(name).get_weights()))

    assert unchanged("token_embedding") and unchanged("transformer_layer_0")
    assert not unchanged("transformer_layer_1")
    assert not teacher.trainable  # a teacher is frozen again afterwards
    assert len(result["history"]["loss"]) == 1
