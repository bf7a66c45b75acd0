import keras
import numpy as np
import pytest

from kd_keras.distillation import losses
from kd_keras.errors import UsageError


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_kl(t, s, temperature):
    t = np.asarray(t, np.float64) / temperature
    s = np.asarray(s, np.float64) / temperature
    lp, lq = np_log_softmax(t), np_log_softmax(s)
    return (np.exp(lp) * (lp - lq)).sum(-1) * temperature**2


@pytest.mark.parametrize("scale", [0.01, 0.1, 1.0, 10.0, 50.0])
@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 7.0, 10.0])
def test_soft_target_kl_matches_float64_reference(rng, scale, temperature):
    t = (rng.normal(size=(64, 10)) * scale).astype("float32")
    s = (rng.normal(size=(64, 10)) * scale).astype("float32")
    got = keras.ops.convert_to_numpy(losses.soft_target_kl(t, s, temperature))
    want = np_kl(t, s, temperature)
    assert got.shape == (64,)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert (got >= 0).all()


def test_soft_target_kl_is_zero_for_equal_logits_and_never_negative(rng):
    t = (rng.normal(size=(256, 7)) * 30).astype("float32")
    same = keras.ops.convert_to_numpy(losses.soft_target_kl(t, t, 3.0))
    assert (same == 0).all()
    near = t + rng.normal(size=t.shape).astype("float32") * 1e-6
    assert (keras.ops.convert_to_numpy(
        losses.soft_target_kl(t, near, 5.0)) >= 0).all()


def test_soft_target_kl_exact_for_large_logits():
    t = np.array([[100.0, -100.0, 0.0], [120.0, 119.0, -80.0]], "float32")
    s = np.array([[-100.0, 100.0, 3.0], [0.0, 1.0, 2.0]], "float32")
    got = keras.ops.convert_to_numpy(losses.soft_target_kl(t, s, 1.0))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_kl(t, s, 1.0), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_soft_target_kl_computes_in_float32_for_low_precision(rng, dtype):
    t = (rng.normal(size=(32, 5)) * 8).astype("float32")
    s = keras.ops.cast(rng.normal(size=(32, 5)) * 8, dtype)
    got = losses.soft_target_kl(t, s, 2.0)
    assert got.dtype == "float32"
    s64 = keras.ops.convert_to_numpy(keras.ops.cast(s, "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                               np_kl(t, s64, 2.0), rtol=1e-4, atol=1e-6)


def test_other_losses_match_numpy(rng):
    t = rng.normal(size=(16, 6)).astype("float32") * 3
    s = rng.normal(size=(16, 6)).astype("float32") * 3
    T = 2.5
    p = np.exp(np_log_softmax(t.astype(np.float64) / T))
    ce = -(p * np_log_softmax(s.astype(np.float64) / T)).sum(-1) * T**2
    np.testing.assert_allclose(
        losses.soft_target_cross_entropy(t, s, T), ce, rtol=1e-5)
    # Cross-entropy = KL + teacher entropy.
    ent = -(p * np.log(p)).sum(-1) * T**2
    np.testing.assert_allclose(ce - ent, np_kl(t, s, T), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        losses.logit_mse(t, s), ((t - s) ** 2).mean(-1), rtol=1e-5)
    cos = (t * s).sum(-1) / np.linalg.norm(t, axis=-1) / np.linalg.norm(
        s, axis=-1)
    np.testing.assert_allclose(
        losses.cosine_distance(t, s), 1 - cos, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cls", [losses.SoftTargetKL, losses.SoftTargetCrossEntropy,
            losses.LogitMSE, losses.CosineDistance])
def test_loss_classes_serialize_and_reduce(rng, cls):
    loss = cls(temperature=2.0)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is cls and restored.temperature == 2.0
    t = rng.normal(size=(8, 4)).astype("float32")
    s = rng.normal(size=(8, 4)).astype("float32")
    per_example = keras.ops.convert_to_numpy(cls.fn(t, s, 2.0))
    np.testing.assert_allclose(float(restored(t, s)), per_example.mean(),
                               rtol=1e-5)


def test_invalid_temperature_and_names():
    with pytest.raises(UsageError, match="^temperature: must be > 0, got 0$"):
        losses.soft_target_kl(np.zeros((1, 2)), np.zeros((1, 2)), 0)
    with pytest.raises(UsageError, match="^temperature: must be > 0"):
        losses.SoftTargetKL(temperature=-1.0)
    with pytest.raises(UsageError, match=r"^temperature: must be in \[0.01, 100\], got 1000.0$"):
        losses.SoftTargetKL(temperature=1000.0)  # the range Distiller.compile keeps
    with pytest.raises(UsageError, match=(
            "^distillation_loss_fn: unknown loss 'kll' .known: cosine, ")):
        losses.get("kll")
    with pytest.raises(UsageError, match="^distillation_loss_fn: expected"):
        losses.get(3)
    assert losses.get(None) is losses.soft_target_kl
    assert losses.get("kl_divergence") is keras.losses.kl_divergence


@pytest.mark.parametrize("temperature", [1.0, 3.0, 5.0])
@pytest.mark.parametrize("loss", [
    keras.losses.KLDivergence(), keras.losses.kl_divergence])
def test_keras_kl_divergence_gets_softened_probabilities(rng, loss,
                                                         temperature):
    t = (rng.normal(size=(32, 6)) * 2).astype("float32")
    s = (rng.normal(size=(32, 6)) * 2).astype("float32")
    got = keras.ops.convert_to_numpy(
        losses.per_example_fn(loss)(t, s, temperature))
    np.testing.assert_allclose(got, np_kl(t, s, temperature), rtol=1e-4,
                               atol=1e-6)
    # What Keras's loss gives on the raw logits: far off.
    raw = keras.ops.convert_to_numpy(keras.losses.KLDivergence().call(t, s))
    assert np.abs(raw - np_kl(t, s, temperature)).max() > 1.0


@pytest.mark.parametrize("from_logits", [False, True])
def test_keras_categorical_crossentropy_gets_teacher_probabilities(
        rng, from_logits):
    t = (rng.normal(size=(16, 5)) * 3).astype("float32")
    s = (rng.normal(size=(16, 5)) * 3).astype("float32")
    T = 2.0
    p = np.exp(np_log_softmax(t.astype(np.float64) / T))
    want = -(p * np_log_softmax(s.astype(np.float64) / T)).sum(-1) * T**2
    fn = losses.per_example_fn(
        keras.losses.CategoricalCrossentropy(from_logits=from_logits))
    np.testing.assert_allclose(fn(t, s, T), want, rtol=1e-5)


def test_other_callables_get_raw_logits(rng):
    t = rng.normal(size=(8, 3)).astype("float32")
    s = rng.normal(size=(8, 3)).astype("float32")
    mse = losses.per_example_fn(keras.losses.MeanSquaredError())
    np.testing.assert_allclose(mse(t, s, 4.0), ((t - s) ** 2).mean(-1),
                               rtol=1e-6)
    # A function with `temperature` gets it; one without does not.
    scaled = losses.per_example_fn(
        lambda a, b, temperature: (a - b).sum(-1) * temperature)
    np.testing.assert_allclose(scaled(t, s, 4.0), (t - s).sum(-1) * 4.0,
                               rtol=1e-6)
    plain = losses.per_example_fn(lambda a, b: (a - b).sum(-1))
    np.testing.assert_allclose(plain(t, s, 4.0), (t - s).sum(-1), rtol=1e-6)


@pytest.mark.parametrize("loss", [
    keras.losses.SparseCategoricalCrossentropy(),
    keras.losses.BinaryFocalCrossentropy(), keras.losses.CategoricalHinge(),
    keras.losses.MeanSquaredLogarithmicError(), keras.losses.Dice(),
    keras.losses.binary_crossentropy])
def test_keras_losses_that_cannot_take_logits_are_refused(loss):
    with pytest.raises(UsageError, match=(
            r"^distillation_loss_fn: keras\.losses\.\w+ .*not teacher "
            r"logits; pass ")) as info:
        losses.per_example_fn(loss)
    assert "\n" not in str(info.value)


def test_keras_kl_saturates_on_a_confident_mistake_where_soft_target_kl_stays_exact():
    """The porting guide's example: teacher [20, 0, 0], student [0, 20, 0]."""
    t, s = np.array([[20.0, 0.0, 0.0]]), np.array([[0.0, 20.0, 0.0]])

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    p = np.exp(log_softmax(t))
    exact = float((p * (log_softmax(t) - log_softmax(s))).sum())  # NumPy float64
    assert exact == pytest.approx(20.0, abs=1e-6)
    import tensorflow as tf

    keras_kl = losses.per_example_fn(keras.losses.KLDivergence())
    student = tf.Variable(s.astype("float32"))
    grads = []
    for fn, want in ((losses.soft_target_kl, exact), (keras_kl, -np.log(1e-7))):
        with tf.GradientTape() as tape:
            value = fn(t.astype("float32"), student, 1.0)[0]
        assert float(value) == pytest.approx(want, rel=1e-4)
        grads.append(tape.gradient(value, student).numpy()[0])
    np.testing.assert_allclose(grads[0], np.exp(log_softmax(s))[0] - p[0], atol=1e-6)
    assert np.abs(grads[1]).max() < 1e-6
