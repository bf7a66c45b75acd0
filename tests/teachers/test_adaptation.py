"""`adapt_text_teacher`: the one teacher-adaptation path (tiny random BERTs)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.teachers import Adaptation
from kd_keras.teachers import AdaptedTeacher
from kd_keras.teachers import MINILM_NAMES
from kd_keras.teachers import TopLayerTuner
from kd_keras.teachers import adapt_text_teacher
from kd_keras.teachers import build_text_teacher
from kd_keras.teachers import fine_tune
from kd_keras.teachers import resolve_backbone
from kd_keras.teachers.embeddings import EmbeddingTeacher
from tests.teachers.test_transfer import _hf_mean_pooled
from tests.teachers.test_transfer import _sentiment_task

SPLITS = ("train", "validation", "test")


def _splits(rng, sizes=(40, 12, 16)):
    texts, labels = _sentiment_task(rng, sum(sizes))
    out_texts, out_labels, start = {}, {}, 0
    for split, size in zip(SPLITS, sizes):
        out_texts[split] = list(texts[start:start + size])
        out_labels[split] = labels[start:start + size].astype(np.int32)
        start += size
    return out_texts, out_labels


def _build(path, seed=0, **kwargs):
    # Seeded before building: the dropout layers draw their seeds then.
    keras.utils.set_random_seed(seed)
    return build_text_teacher(path, 2, sequence_length=12, **kwargs)


def _raw_logits(teacher, texts):
    return teacher(tf.constant(list(texts))).numpy()


@pytest.mark.slow
def test_top_layers_route_reproduces_the_pipeline_sequence(small_init_bert_dir, rng):
    """The sequence `kd_keras.pipeline.teacher_stage.tune_top_layers` ran
    (which `make demo`'s 81.71% comes from), by hand, gives the same logits."""
    texts, labels = _splits(rng)
    by_hand = _build(small_init_bert_dir)
    tuner = TopLayerTuner(by_hand, 1, batch_size=16)
    for split in SPLITS:
        tuner.add(split, texts[split], verbose=0)
    tuner.fit_head("train", labels["train"])
    expected_history = tuner.fit("train", labels["train"], epochs=2, learning_rate=1e-3,
                                 validation=("validation", labels["validation"]),
                                 seed=0, verbose=0)
    expected = {split: tuner.predict(split) for split in SPLITS}

    teacher = _build(small_init_bert_dir)
    adapted = adapt_text_teacher(
        teacher, texts, labels,
        Adaptation("top_layers", top_layers=1, epochs=2, learning_rate=1e-3,
                   batch_size=16, seed=0), verbose=0)

    assert isinstance(adapted, AdaptedTeacher)
    assert adapted.route == "fine-tuned top 1 layers"
    assert list(adapted.logits) == list(SPLITS)
    for split in SPLITS:
        assert adapted.logits[split].dtype == np.float32
        np.testing.assert_allclose(adapted.logits[split], expected[split], rtol=1e-6,
                                   atol=1e-6)
        # And the tuned teacher, on raw strings, gives those logits.
        np.testing.assert_allclose(_raw_logits(teacher, texts[split]),
                                   adapted.logits[split], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adapted.history["loss"], expected_history["loss"], rtol=1e-6)
    assert len(adapted.history["val_accuracy"]) == 2
    assert not teacher.trainable


def test_head_route_logits_are_features_times_the_head(small_init_bert_dir, rng):
    texts, labels = _splits(rng, (60, 0, 10))
    teacher = _build(small_init_bert_dir, pooling="mean")
    adapted = adapt_text_teacher(teacher, texts, labels, Adaptation("head"), verbose=0)

    assert adapted.route == "frozen backbone + head" and adapted.history is None
    assert adapted.logits["validation"].shape == (0, 2)
    kernel, bias = (w.astype(np.float64)
                    for w in teacher.classifier.get_layer("head").get_weights())
    for split in ("train", "test"):
        # Features from `transformers` (PyTorch), the head in NumPy float64.
        pooled = _hf_mean_pooled(small_init_bert_dir, texts[split], 12).astype(np.float64)
        np.testing.assert_allclose(adapted.logits[split], pooled @ kernel + bias, atol=1e-4)
    accuracy = (adapted.logits["train"].argmax(-1) == labels["train"]).mean()
    assert accuracy >= 0.9
    assert not teacher.trainable


@pytest.mark.slow
def test_head_route_ignores_unlabeled_texts(small_init_bert_dir, rng):
    texts, labels = _splits(rng, (40, 0, 0))
    extra, _ = _sentiment_task(rng, 15)
    first = _build(small_init_bert_dir)
    adapt_text_teacher(first, texts, labels, Adaptation("head"), verbose=0)
    with_unlabeled = dict(texts, train=texts["train"] + list(extra))
    partial = dict(labels, train=np.concatenate([labels["train"], np.full(15, -1)]))
    second = _build(small_init_bert_dir)
    adapted = adapt_text_teacher(second, with_unlabeled, partial, Adaptation("head"),
                                 verbose=0)
    for a, b in zip(first.classifier.get_layer("head").get_weights(),
                    second.classifier.get_layer("head").get_weights()):
        np.testing.assert_array_equal(a, b)
    assert adapted.logits["train"].shape == (55, 2)


def test_head_route_reuses_the_feature_cache(small_init_bert_dir, rng, tmp_path,
                                            monkeypatch):
    texts, labels = _splits(rng, (30, 6, 6))
    cache = str(tmp_path / "features")
    first = adapt_text_teacher(_build(small_init_bert_dir), texts, labels,
                               Adaptation("head"), feature_cache_dir=cache, verbose=0)
    folders = sorted(os.listdir(cache))
    assert len(folders) == 3 and all(f.startswith("features-") for f in folders)

    def no_backbone_pass(self, x):
        raise AssertionError("the backbone ran although its features were cached")

    monkeypatch.setattr(EmbeddingTeacher, "predict_on_batch", no_backbone_pass)
    again = adapt_text_teacher(_build(small_init_bert_dir, seed=1), texts, labels,
                               Adaptation("head", seed=1), feature_cache_dir=cache,
                               verbose=0)
    assert sorted(os.listdir(cache)) == folders
    for split in SPLITS:
        np.testing.assert_array_equal(again.logits[split], first.logits[split])


@pytest.mark.slow
def test_full_route_trains_every_layer_with_a_seeded_shuffle(small_init_bert_dir, rng):
    texts, labels = _splits(rng, (32, 8, 8))

    def run(seed):
        teacher = _build(small_init_bert_dir)
        embeddings = teacher.classifier.get_layer("backbone").get_layer(
            "token_embedding").get_weights()[0].copy()
        adapted = adapt_text_teacher(
            teacher, texts, labels,
            Adaptation("full", epochs=1, learning_rate=1e-3, batch_size=8, seed=seed),
            verbose=0)
        return teacher, embeddings, adapted

    teacher, embeddings, adapted = run(seed=3)
    assert adapted.route == "fine-tuned all layers"
    assert len(adapted.history["loss"]) == 1
    assert len(adapted.history["val_sparse_categorical_accuracy"]) == 1
    after = teacher.classifier.get_layer("backbone").get_layer(
        "token_embedding").get_weights()[0]
    assert not np.array_equal(embeddings, after)  # the embeddings trained too
    assert not teacher.trainable
    for split in SPLITS:
        np.testing.assert_allclose(adapted.logits[split], _raw_logits(teacher, texts[split]),
                                   rtol=1e-5, atol=1e-5)
    same = run(seed=3)[2]
    other = run(seed=4)[2]
    np.testing.assert_allclose(same.logits["test"], adapted.logits["test"], atol=1e-6)
    assert np.abs(other.logits["test"] - adapted.logits["test"]).max() > 1e-4


@pytest.mark.slow
def test_fine_tune_is_the_same_path(small_init_bert_dir, rng):
    texts, labels = _splits(rng, (40, 0, 10))
    teacher = _build(small_init_bert_dir)
    result = fine_tune(teacher, texts["train"], labels["train"], verbose=0)
    assert result["history"] is None and result["head"]["num_examples"] == 40
    other = _build(small_init_bert_dir)
    adapt_text_teacher(other, texts, labels, Adaptation("head"), verbose=0)
    for a, b in zip(teacher.classifier.get_layer("head").get_weights(),
                    other.classifier.get_layer("head").get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(UsageError, match="^num_trainable_layers: must be a positive"):
        fine_tune(teacher, texts["train"], labels["train"], train_backbone=True,
                  num_trainable_layers=0, verbose=0)


@pytest.mark.slow
def test_validation_may_be_absent(small_init_bert_dir, rng):
    texts, labels = _splits(rng, (24, 0, 0))
    adapted = adapt_text_teacher(
        _build(small_init_bert_dir), {"train": texts["train"]}, {"train": labels["train"]},
        Adaptation("top_layers", top_layers=2, epochs=1, batch_size=8), verbose=0)
    assert list(adapted.logits) == ["train"]
    assert "val_loss" not in adapted.history


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="lora"), "^method: unknown method 'lora' .known: head, top_layers, full"),
    (dict(method="top_layers"), "^top_layers: must be a positive integer"),
    (dict(method="top_layers", top_layers=0), "^top_layers: must be a positive integer"),
    (dict(method="head", top_layers=2), "^top_layers: only used by method 'top_layers'"),
    (dict(epochs=-1), "^epochs: must be a non-negative integer, got -1"),
    (dict(epochs=1.5), "^epochs: "),
    (dict(learning_rate=0), "^learning_rate: must be a positive number"),
    (dict(batch_size=0), "^batch_size: must be a positive integer"),
    (dict(seed=-1), "^seed: must be a non-negative integer"),
])
def test_bad_adaptations_name_the_field(kwargs, message):
    with pytest.raises(UsageError, match=message):
        Adaptation(**kwargs)


def test_default_learning_rates():
    assert Adaptation("top_layers", top_layers=1).resolved_learning_rate == 1e-4
    assert Adaptation("full").resolved_learning_rate == 2e-5
    assert Adaptation("full", learning_rate=0.5).resolved_learning_rate == 0.5


def test_bad_inputs_are_one_line_usage_errors(small_init_bert_dir, rng):
    texts, labels = _splits(rng, (12, 4, 4))
    teacher = _build(small_init_bert_dir)
    head = Adaptation("head")

    def error(texts_, labels_, adaptation=head):
        with pytest.raises(UsageError) as info:
            adapt_text_teacher(teacher, texts_, labels_, adaptation, verbose=0)
        assert "\n" not in str(info.value)
        return str(info.value)

    five = dict(labels, test=np.array([0, 1, 4, 2]))
    assert error(texts, five).startswith(
        "teacher: has 2 classes but labels['test'] has class 4 (at least 5 classes)")
    assert error({"test": texts["test"]}, labels).startswith("texts, labels: both need")
    short = dict(labels, train=labels["train"][:5])
    assert error(texts, short).startswith("labels['train']: expected 12 integer labels")
    none = dict(labels, train=np.full(12, -1))
    assert error(texts, none).startswith("labels['train']: no labeled texts")
    assert error(texts, labels, Adaptation("top_layers", top_layers=3)).startswith(
        "top_layers: the backbone has 2 transformer blocks, got 3")
    assert error(texts, labels, "head").startswith("adaptation: must be")


def test_minilm_aliases(monkeypatch):
    import kd_keras.teachers.checkpoints as checkpoints

    assert "all-minilm-l6-v2" in MINILM_NAMES
    assert resolve_backbone("some/checkpoint") == "some/checkpoint"
    assert resolve_backbone(None) is None
    path = checkpoints.minilm_dir()
    if path is not None:
        assert resolve_backbone("All-MiniLM-L6-v2") == path
        assert os.path.isfile(os.path.join(path, "config.json"))
    monkeypatch.setattr(checkpoints, "minilm_dir", lambda: None)
    with pytest.raises(MissingFileError, match="^MiniLM: all-MiniLM-L6-v2 is not installed"):
        resolve_backbone("MiniLM")
