import numpy as np
import pytest
import tensorflow as tf

from kd_keras.errors import UsageError
from kd_keras.teachers import TopLayerTuner
from kd_keras.teachers import build_text_teacher
from kd_keras.teachers import fine_tune
from tests.teachers.test_transfer import _sentiment_task


@pytest.fixture(params=["mean", pytest.param("cls", marks=pytest.mark.slow),
                        pytest.param("pooled", marks=pytest.mark.slow)])
def teacher(request, small_init_bert_dir):
    return build_text_teacher(small_init_bert_dir, num_classes=2,
                              sequence_length=12, pooling=request.param)


def _full_logits(teacher, texts):
    """The teacher on raw strings, padded to its sequence length: an
    independent path from the tuner's bucketed, split computation."""
    return teacher(tf.constant(list(texts))).numpy()


@pytest.mark.slow
def test_predict_from_the_cache_equals_the_teacher_on_raw_strings(teacher, rng):
    texts, labels = _sentiment_task(rng, 40)
    texts[3] = "Good " * 20  # longer than the sequence length: truncated
    tuner = TopLayerTuner(teacher, num_trainable_layers=1, batch_size=8)
    assert tuner.add("train", texts, verbose=0) == 40

    np.testing.assert_allclose(tuner.predict("train"), _full_logits(teacher, texts),
                               atol=1e-5)
    tuner.fit("train", labels, epochs=1, learning_rate=1e-3, verbose=0)
    # Same after training: the tuned layers are the teacher's own.
    np.testing.assert_allclose(tuner.predict("train"), _full_logits(teacher, texts),
                               atol=1e-5)


@pytest.mark.slow
def test_fit_trains_only_the_top_blocks_and_learns_the_task(small_init_bert_dir, rng):
    teacher = build_text_teacher(small_init_bert_dir, 2, sequence_length=12,
                                 pooling="mean")
    train_x, train_y = _sentiment_task(rng, 160)
    test_x, test_y = _sentiment_task(rng, 80)
    backbone = teacher.classifier.get_layer("backbone")
    before = {layer.name: [w.copy() for w in layer.get_weights()]
              for layer in backbone.layers}

    tuner = TopLayerTuner(teacher, num_trainable_layers=1, batch_size=16)
    tuner.add("train", train_x, verbose=0)
    tuner.add("test", test_x, verbose=0)
    tuner.fit_head("train", train_y)
    history = tuner.fit("train", train_y, epochs=4, learning_rate=1e-3,
                        validation=("test", test_y), verbose=0)

    def changed(name):
        after = backbone.get_layer(name).get_weights()
        return any(not np.array_equal(a, b) for a, b in zip(before[name], after))

    assert changed("transformer_layer_1")
    assert not any(changed(name) for name in
                   ("token_embedding", "embeddings_layer_norm", "transformer_layer_0"))
    assert not teacher.trainable  # a teacher is frozen again afterwards
    assert len(history["loss"]) == 4 and len(history["val_accuracy"]) == 4
    assert history["loss"][-1] < history["loss"][0]
    test_accuracy = (_full_logits(teacher, test_x).argmax(-1) == test_y).mean()
    assert test_accuracy >= 0.9


@pytest.mark.slow
def test_unlabeled_texts_are_skipped(small_init_bert_dir, rng):
    teacher = build_text_teacher(small_init_bert_dir, 2, sequence_length=12)
    texts, labels = _sentiment_task(rng, 48)
    tuner = TopLayerTuner(teacher, num_trainable_layers=2, batch_size=8)
    tuner.add("train", texts, verbose=0)
    partial = labels.copy()
    partial[::2] = -1
    history = tuner.fit("train", partial, epochs=1, learning_rate=1e-3, verbose=0)
    assert np.isfinite(history["loss"][0])
    # 24 labeled texts in batches of 8: 3 steps, not 6.
    assert int(tuner.top_model.optimizer.iterations.numpy()) == 3


def test_bad_arguments_are_named(teacher, rng):
    texts, labels = _sentiment_task(rng, 8)
    with pytest.raises(UsageError, match=r"^num_trainable_layers: must be 1\.\.2.*got 3"):
        TopLayerTuner(teacher, num_trainable_layers=3)
    with pytest.raises(UsageError, match="^num_trainable_layers: must be 1..2.*got 0"):
        TopLayerTuner(teacher, num_trainable_layers=0)
    tuner = TopLayerTuner(teacher, num_trainable_layers=1)
    with pytest.raises(UsageError, match="^train: no cached texts by that name"):
        tuner.predict("train")
    tuner.add("train", texts, verbose=0)
    with pytest.raises(UsageError, match=r"^train: 8 texts but labels have shape \(7,\)"):
        tuner.fit("train", labels[:7], verbose=0)
    with pytest.raises(UsageError, match=r"^train: labels must lie in \[0, 2\).*got 5"):
        tuner.fit("train", np.full(8, 5), verbose=0)
    with pytest.raises(UsageError, match="^train: no labeled texts"):
        tuner.fit_head("train", np.full(8, -1))


@pytest.mark.slow
def test_fine_tune_with_top_layers_goes_through_the_tuner(small_init_bert_dir, rng):
    teacher = build_text_teacher(small_init_bert_dir, 2, sequence_length=12)
    texts, labels = _sentiment_task(rng, 32)
    result = fine_tune(teacher, texts, labels, epochs=2, train_backbone=True,
                       num_trainable_layers=1, learning_rate=1e-3,
                       validation_data=(texts[:8], labels[:8]), verbose=0)
    assert len(result["history"]["loss"]) == 2
    assert "val_accuracy" in result["history"]
    assert result["head"]["num_examples"] == 32
