"""The `"features"` layer of the text students, the unchanged layouts of the
existing configs, and one-line errors for bad builder options."""

import keras
import numpy as np
import pytest

from kd_keras.errors import ConfigError
from kd_keras.students import FEATURES_LAYER
from kd_keras.students import build_student

SMALL = dict(vocab_size=120, sequence_length=10)
FEATURE_STUDENTS = [
    ("text_cnn", dict(SMALL), 3 * 100),
    ("dilated_cnn", dict(SMALL, deep_filters=8), 3 * 100 + 2 * 8),
    ("bigru", dict(SMALL, units=8), 16),
    ("tiny_bert", dict(SMALL, hidden_dim=16, intermediate_dim=32), 16),
    ("tiny_bert", dict(SMALL, hidden_dim=16, intermediate_dim=32, embedding_dim=4), 16),
    ("mlp", dict(SMALL, hidden_units=(12, 8)), 8),
    ("mlp", dict(SMALL, hidden_units=(), embedding_dim=6), 6),
]


@pytest.mark.parametrize("name, kwargs, width", FEATURE_STUDENTS)
def test_features_layer_feeds_the_classifier(name, kwargs, width):
    """In inference mode the logits are `features @ W + b` of the head,
    computed here in float64."""
    model = build_student(name, 3, **kwargs)
    layer = model.get_layer(FEATURES_LAYER)
    assert layer.output.shape == (None, width) and not layer.weights
    probe = keras.Model(model.input, [layer.output, model.output])
    ids = np.random.default_rng(0).integers(0, 120, (6, 10)).astype("int32")
    features, logits = (np.asarray(t, np.float64) for t in probe(ids, training=False))
    kernel, bias = (np.asarray(w, np.float64) for w in model.get_layer("logits").weights)
    np.testing.assert_allclose(logits, features @ kernel + bias, atol=1e-5, rtol=0)


def test_tiny_bert_hidden_states_are_nameable():
    plain, factorised = (build_student("tiny_bert", 2, **kwargs)
                         for name, kwargs, _ in FEATURE_STUDENTS if name == "tiny_bert")
    for model, block in ((plain, "transformer_layer_1"), (factorised, "group_1_inner_layer_0")):
        layer = model.get_layer("tiny_bert_backbone").get_layer(block)
        # The backbone's own inputs have no fixed length.
        assert layer.output.shape == (None, None, 16)


def _old_text_cnn(num_classes, vocab_size, sequence_length, embedding_dim=64, filters=100,
                  kernel_sizes=(3, 4, 5), dropout=0.5):
    """text_cnn as it was before the features layer, written out here."""
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    pooled = []
    for k in kernel_sizes:
        h = keras.layers.Conv1D(filters, k, activation="relu", name=f"conv_{k}")(x)
        pooled.append(keras.layers.GlobalMaxPooling1D(name=f"max_pool_{k}")(h))
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="concat")(pooled)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(ids, logits, name="text_cnn")


def _old_bigru(num_classes, vocab_size, sequence_length, embedding_dim=64, units=64,
               dropout=0.3):
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")(ids)
    x = keras.layers.Bidirectional(keras.layers.GRU(units, unroll=True), name="bigru")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(ids, logits, name="bigru")


@pytest.mark.parametrize(
    "name, old, kwargs",
    [
        ("text_cnn", _old_text_cnn, dict(vocab_size=30522, sequence_length=48)),
        ("text_cnn", _old_text_cnn, dict(vocab_size=120, sequence_length=10,
                                         kernel_sizes=(3,))),
        ("bigru", _old_bigru, dict(vocab_size=120, sequence_length=10)),
    ],
)
def test_same_seed_gives_the_same_weights_as_before(name, old, kwargs):
    keras.backend.clear_session()  # Same auto-generated names for both.
    keras.utils.set_random_seed(0)
    new_model = build_student(name, 2, **kwargs)
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    old_model = old(2, **kwargs)
    assert new_model.count_params() == old_model.count_params()
    assert [w.path for w in new_model.weights] == [w.path for w in old_model.weights]
    for a, b in zip(new_model.weights, old_model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_default_text_cnn_count_matches_the_readme():
    """2,031,110 = embedding 30522*64 + convs sum(k*64*100 + 100) + head 300*2 + 2."""
    expected = 30522 * 64 + sum(k * 64 * 100 + 100 for k in (3, 4, 5)) + 300 * 2 + 2
    assert build_student("text_cnn", 2, sequence_length=48).count_params() == expected
    assert expected == 2_031_110


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("text_cnn", dict(SMALL, filters=0),
         "student.options.filters: must be a positive integer, got 0"),
        ("text_cnn", dict(SMALL, embedding_dim=True),
         "student.options.embedding_dim: must be a positive integer, got True"),
        ("text_cnn", dict(SMALL, kernel_sizes=[]),
         "student.options.kernel_sizes: must be a non-empty list of positive integers, got []"),
        ("text_cnn", dict(SMALL, kernel_sizes=[3, 12]),
         "student.options.kernel_sizes: must be at most sequence_length (10), got [3, 12]"),
        ("text_cnn", dict(SMALL, dropout=-0.1),
         "student.options.dropout: must be a number in [0, 1), got -0.1"),
        ("text_cnn", dict(vocab_size=120, sequence_length=0),
         "student.sequence_length: must be a positive integer, got 0"),
        ("bigru", dict(SMALL, units=-1),
         "student.options.units: must be a positive integer, got -1"),
        ("bigru", dict(SMALL, embedding_dim=2.5),
         "student.options.embedding_dim: must be a positive integer, got 2.5"),
        ("mlp", dict(input_shape=(4,), hidden_units=[8, -1]),
         "student.options.hidden_units: must be a list of positive integers, got [8, -1]"),
        ("small_cnn", dict(input_shape=(8, 8)),
         "student.options.input_shape: must be (height, width, channels), got [8, 8]"),
        ("small_cnn", dict(filters="16"),
         "student.options.filters: must be a non-empty list of positive integers, got '16'"),
    ],
)
def test_bad_options_get_one_line_errors(name, kwargs, message):
    with pytest.raises(ConfigError) as info:
        build_student(name, 2, **kwargs)
    assert str(info.value) == message


def test_bad_class_count_names_num_classes():
    with pytest.raises(ConfigError, match=r"^student.num_classes: must be a positive integer, "
                                          r"got 0$"):
        build_student("bigru", 0, **SMALL)
