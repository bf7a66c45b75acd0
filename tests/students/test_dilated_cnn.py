"""`dilated_cnn` against a NumPy float64 forward pass written out here, its
parameter count, its receptive field and its one-line option errors."""

import numpy as np
import pytest

from kd_keras.errors import ConfigError
from kd_keras.students import FEATURES_LAYER
from kd_keras.students import build_student

SMALL = dict(vocab_size=50, sequence_length=12, embedding_dim=5, filters=4,
             kernel_sizes=(2, 3), deep_filters=6, dilations=(2, 3), deep_kernel=3)


def _conv_same(x, kernel, bias, rate):
    """A 'same'-padded dilated 1-D convolution plus ReLU, float64: output t
    sums `x[t - left + j * rate] @ kernel[j]` over the taps j, with zeros
    outside the sentence and `left = (span - 1) // 2` for a span of
    `(taps - 1) * rate + 1` positions."""
    taps = kernel.shape[0]
    left = ((taps - 1) * rate) // 2
    out = np.zeros((x.shape[0], x.shape[1], kernel.shape[2]))
    for t in range(x.shape[1]):
        for j in range(taps):
            s = t - left + j * rate
            if 0 <= s < x.shape[1]:
                out[:, t] += x[:, s] @ kernel[j]
    return np.maximum(out + bias, 0.0)


def _reference(model, ids, options):
    w = {layer.name: [np.asarray(v, np.float64) for v in layer.get_weights()]
         for layer in model.layers}
    x = w["embedding"][0][ids]
    h = np.concatenate([_conv_same(x, *w[f"conv_{k}"], 1) for k in options["kernel_sizes"]],
                       axis=-1)
    pooled = [h.max(axis=1)]
    for i, rate in enumerate(options["dilations"]):
        h = _conv_same(h, *w[f"dilated_conv_{i}"], rate)
        pooled.append(h.max(axis=1))
    features = np.concatenate(pooled, axis=-1)
    return features, features @ w["logits"][0] + w["logits"][1]


@pytest.mark.parametrize("options", [SMALL, dict(SMALL, dilations=()),
                                     dict(SMALL, kernel_sizes=(4,), deep_kernel=2)])
def test_matches_a_numpy_forward_pass(options):
    import keras

    keras.utils.set_random_seed(3)
    model = build_student("dilated_cnn", 3, **options)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # Non-zero biases, so the padding is tested too.
        layer.set_weights([rng.normal(size=v.shape) for v in layer.get_weights()])
    ids = rng.integers(0, 50, (7, 12)).astype("int32")
    probe = keras.Model(model.input, [model.get_layer(FEATURES_LAYER).output, model.output])
    features, logits = (np.asarray(t, np.float64) for t in probe(ids, training=False))
    want_features, want_logits = _reference(model, ids, options)
    np.testing.assert_allclose(features, want_features, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-4, atol=1e-4)


def test_parameter_count_and_default_size():
    grams = sum(k * 64 * 100 + 100 for k in (3, 4, 5))
    deep = (3 * 300 * 128 + 128) + (3 * 128 * 128 + 128)
    expected = 30522 * 64 + grams + deep + (300 + 2 * 128) * 2 + 2
    model = build_student("dilated_cnn", 2, sequence_length=64)
    assert model.count_params() == expected == 2_196_230
    assert model.input.shape == (None, 64) and model.input.dtype == "int32"
    # MiniLM-L6 (22,713,986 parameters) is more than 10x bigger.
    assert 22_713_986 / expected > 10


def test_a_token_reaches_the_features_from_its_receptive_field_only():
    """Changing the token at position 20 changes the top dilated level only
    at positions 14..26, a window of `max(kernel_sizes) + (deep_kernel - 1)
    * sum(dilations)` = 13 positions, and the n-gram level only at 19..21."""
    import keras

    model = build_student("dilated_cnn", 2, **dict(SMALL, sequence_length=40))
    level = keras.Model(model.input, model.get_layer("dilated_conv_1").output)
    ngrams = keras.Model(model.input, model.get_layer("ngrams").output)
    ids = np.full((1, 40), 7, "int32")
    changed = ids.copy()
    changed[0, 20] = 9
    moved = np.abs(np.asarray(level(changed)) - np.asarray(level(ids))).max(axis=-1)[0]
    near = np.abs(np.asarray(ngrams(changed)) - np.asarray(ngrams(ids))).max(axis=-1)[0]
    # n-grams of width 2 and 3 ('same': left pads 0 and 1) see position 20
    # from outputs 19..21; the two dilated levels (rates 2 and 3, 3 taps)
    # widen that by 2 and 3 positions on each side: 14..26.
    assert set(np.nonzero(near > 0)[0]) <= set(range(19, 22)) and near[19] > 0
    assert set(np.nonzero(moved > 0)[0]) <= set(range(14, 27))
    assert moved[14] > 0 or moved[26] > 0  # The stack does widen it.


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(deep_filters=0), "student.options.deep_filters: must be a positive integer, got 0"),
        (dict(dilations=[2, 0]),
         "student.options.dilations: must be a list of positive integers, got [2, 0]"),
        (dict(dilations="2"), "student.options.dilations: must be a list of positive integers, "
                              "got '2'"),
        (dict(deep_kernel=1.5),
         "student.options.deep_kernel: must be a positive integer, got 1.5"),
        (dict(kernel_sizes=[]), "student.options.kernel_sizes: must be a non-empty list of "
                                "positive integers, got []"),
        (dict(kernel_sizes=[3, 3]),
         "student.options.kernel_sizes: must not repeat a width, got [3, 3]"),
        (dict(dropout=1.0), "student.options.dropout: must be a number in [0, 1), got 1.0"),
    ],
)
def test_bad_options_get_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError) as info:
        build_student("dilated_cnn", 2, vocab_size=50, sequence_length=12, **kwargs)
    assert str(info.value) == message
