"""`kd_keras.teachers.base`: a Keras teacher's fingerprint follows its
weights, so a cache built before they changed is never taken for theirs."""

import keras
import numpy as np
import pytest

from kd_keras.cache import cache_teacher_outputs
from kd_keras.teachers import EnsembleTeacher
from kd_keras.teachers.base import KerasTeacher
from kd_keras.teachers.base import fingerprint_keras_model


def _model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def test_the_fingerprint_changes_when_the_wrapped_model_is_retrained():
    model = _model(0)
    teacher = KerasTeacher(model)
    ensemble = EnsembleTeacher([teacher, KerasTeacher(_model(1))])
    before, ensemble_before = teacher.fingerprint(), ensemble.fingerprint()
    weights = model.get_weights()
    model.set_weights([w + 1.0 for w in weights])
    assert teacher.fingerprint() != before
    assert ensemble.fingerprint() != ensemble_before
    model.set_weights(weights)
    assert teacher.fingerprint() == before  # The same weights, the same teacher.


def test_a_cache_of_the_old_weights_is_refused_for_the_new(tmp_path):
    model = _model(0)
    teacher = KerasTeacher(model)
    x = np.random.default_rng(0).random((20, 4)).astype("float32")
    cache_teacher_outputs(teacher, x, str(tmp_path), batch_size=8, verbose=0)
    model.set_weights([w * 2.0 for w in model.get_weights()])
    with pytest.raises(ValueError, match="built from another teacher"):
        cache_teacher_outputs(teacher, x, str(tmp_path), batch_size=8, verbose=0)


def test_freezing_the_teacher_keeps_its_fingerprint_and_its_cache(tmp_path):
    """`Distiller(teacher=...)` sets `trainable = False`, which changes no
    output: the cache built before still belongs to that teacher."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    x = np.random.default_rng(0).random((20, 4)).astype("float32")
    before = KerasTeacher(model).fingerprint()
    first = cache_teacher_outputs(model, x, str(tmp_path), batch_size=8, verbose=0)
    model.trainable = False
    assert KerasTeacher(model).fingerprint() == before
    again = cache_teacher_outputs(model, x, str(tmp_path), batch_size=8, verbose=0)
    np.testing.assert_array_equal(again.logits(), first.logits())
    # An architecture change still counts.
    model.layers[0].activation = keras.activations.relu
    assert KerasTeacher(model).fingerprint() != before


def test_a_model_never_frozen_keeps_the_fingerprint_earlier_versions_gave_it():
    import hashlib
    import json

    model = _model(0)
    digest = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True,
                                       default=str).encode("utf-8"))
    for index, weight in enumerate(model.get_weights()):
        digest.update(f"{index}{weight.dtype}{weight.shape}".encode("utf-8"))
        digest.update(weight.tobytes())
    assert KerasTeacher(model).fingerprint() == digest.hexdigest()


def test_a_tokenizer_s_vocabulary_is_part_of_the_fingerprint():
    # KerasHub's tokenizers leave their vocabulary out of get_config (it is
    # an asset): two teachers differing only there hashed alike, and one was
    # served the other's cached logits.
    import keras_hub

    def model(vocabulary):
        text = keras.Input((), dtype="string", name="text")
        ids = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocabulary, sequence_length=4, name="tokenizer")(text)
        out = keras.layers.Embedding(4, 2, embeddings_initializer="ones", name="e")(ids)
        return keras.Model(text, out, name="m")

    vocabulary = ["[PAD]", "[UNK]", "good", "bad"]
    swapped = ["[PAD]", "[UNK]", "bad", "good"]
    assert fingerprint_keras_model(model(vocabulary)) == fingerprint_keras_model(model(vocabulary))
    assert fingerprint_keras_model(model(vocabulary)) != fingerprint_keras_model(model(swapped))


def test_a_keras_teacher_with_several_outputs_is_one_line(tmp_path):
    # Accepted, then "ValueError: setting an array element with a sequence"
    # from NumPy when the cache ran it.
    from kd_keras.errors import UsageError

    x = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(4, name="h")(x)
    two = keras.Model(x, [keras.layers.Dense(2, name="a")(hidden), hidden])
    with pytest.raises(UsageError, match=r"^teacher: a Keras model with 2 outputs; a teacher "
                                         r"gives one, its logits"):
        KerasTeacher(two)

    class Pair(keras.Model):
        def call(self, x):
            return {"logits": x[:, :2], "rest": x}

    with pytest.raises(UsageError, match=r"^teacher: a Keras model with 2 outputs"):
        cache_teacher_outputs(Pair(), np.ones((4, 3), "float32"), tmp_path / "cache",
                              verbose=0)
    assert not (tmp_path / "cache").exists()
