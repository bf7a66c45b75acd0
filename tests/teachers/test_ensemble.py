import keras
import numpy as np
import pytest

from kd_keras.teachers import EnsembleTeacher
from kd_keras.teachers import Teacher
from kd_keras.teachers import load_teacher


def _linear(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3)])


def _numpy_logits(model, x):
    kernel, bias = model.get_weights()
    return x.astype(np.float64) @ kernel + bias


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class _NumpyTeacher(Teacher):
    """An out-of-graph teacher (as ONNX or PyTorch ones are)."""

    def __init__(self, model):
        self.kernel, self.bias = model.get_weights()

    def predict_on_batch(self, x):
        return (x @ self.kernel + self.bias).astype(np.float32)

    def fingerprint(self):
        return "numpy-" + str(float(self.kernel.sum()))


@pytest.mark.parametrize("combine", ["logits", "probabilities"])
def test_ensemble_matches_numpy_reference(rng, combine):
    models = [_linear(s) for s in range(3)]
    weights = [0.5, 0.3, 0.2]
    x = rng.normal(size=(8, 4)).astype("float32")
    per_teacher = [_numpy_logits(m, x) for m in models]
    if combine == "logits":
        expected = sum(w * z for w, z in zip(weights, per_teacher))
    else:
        expected = np.log(sum(w * _softmax(z) for w, z in zip(weights, per_teacher)))

    ensemble = EnsembleTeacher(models, weights=[5, 3, 2], combine=combine)
    # Same maths when the members run outside the graph.
    offline = EnsembleTeacher(
        [_NumpyTeacher(m) for m in models], weights=weights, combine=combine
    )

    assert ensemble.in_graph and isinstance(ensemble.model, keras.Model)
    np.testing.assert_allclose(ensemble.predict_on_batch(x), expected, atol=1e-5)
    assert not offline.in_graph and offline.model is None
    np.testing.assert_allclose(offline.predict_on_batch(x), expected, atol=1e-5)
    if combine == "probabilities":
        probs = _softmax(ensemble.predict_on_batch(x).astype(np.float64))
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)


def test_ensemble_fingerprint_depends_on_members_weights_and_mode():
    a, b = _linear(0), _linear(1)
    base = EnsembleTeacher([a, b]).fingerprint()
    assert EnsembleTeacher([a, b]).fingerprint() == base
    assert EnsembleTeacher([a, b], weights=[2, 1]).fingerprint() != base
    assert EnsembleTeacher([a, b], combine="probabilities").fingerprint() != base
    assert EnsembleTeacher([a, _linear(2)]).fingerprint() != base


def test_bad_ensembles_are_refused():
    with pytest.raises(ValueError, match="2 teachers"):
        EnsembleTeacher([_linear(0), _linear(1)], weights=[1.0])
    with pytest.raises(ValueError, match="combine"):
        EnsembleTeacher([_linear(0)], combine="median")
    with pytest.raises(ValueError, match="non-negative"):
        EnsembleTeacher([_linear(0), _linear(1)], weights=[1.0, -1.0])
    five = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(5)])
    with pytest.raises(ValueError, match=r"^teachers: the members give \[3, 5\] classes"):
        EnsembleTeacher([_linear(0), five])
    probabilities = keras.Sequential([keras.Input((4,), name="x"),
                                      keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="^teacher: ends in a softmax"):
        load_teacher([_linear(0), probabilities])
    for weights in ([1.0, float("nan")], [float("inf"), 1.0], ["a", "b"]):
        with pytest.raises(ValueError, match=r"^weights: must be "):
            EnsembleTeacher([_linear(0), _linear(1)], weights=weights)


class _SoftmaxTeacher(_NumpyTeacher):
    def predict_on_batch(self, x):
        return _softmax(super().predict_on_batch(x).astype(np.float64)).astype(np.float32)


def test_out_of_graph_members_are_checked_on_their_outputs(rng):
    """ONNX or PyTorch members have no Keras layers to inspect: their first
    outputs are checked by value, each on its own."""
    x = rng.normal(size=(8, 4)).astype("float32")
    mixed = EnsembleTeacher([_NumpyTeacher(_linear(0)), _SoftmaxTeacher(_linear(1))])
    with pytest.raises(ValueError, match=r"^teachers\[1\]: outputs probabilities"):
        mixed.predict_on_batch(x)
    five = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(5)])
    wide = EnsembleTeacher([_NumpyTeacher(_linear(0)), _NumpyTeacher(five)])
    with pytest.raises(ValueError, match=r"^teachers: the members give logits of shapes "
                                         r"\[\[8, 3\], \[8, 5\]\]"):
        wide.predict_on_batch(x)


def test_in_graph_ensemble_saves_and_reloads_safely(tmp_path, rng):
    ensemble = load_teacher([_linear(0), _linear(1)], weights=[1, 3],
                            combine="probabilities")
    path = str(tmp_path / "ensemble.keras")
    ensemble.model.save(path)
    x = rng.normal(size=(5, 4)).astype("float32")

    reloaded = load_teacher(path)

    np.testing.assert_allclose(
        reloaded.predict_on_batch(x), ensemble.predict_on_batch(x), atol=1e-6
    )


def test_out_of_graph_ensemble_caches_like_a_single_teacher(tmp_path, rng):
    import kd_keras.cache

    models = [_linear(0), _linear(1)]
    x = rng.normal(size=(40, 4)).astype("float32")
    expected = np.log(
        0.25 * _softmax(_numpy_logits(models[0], x))
        + 0.75 * _softmax(_numpy_logits(models[1], x))
    )
    ensemble = EnsembleTeacher(
        [_NumpyTeacher(m) for m in models], weights=[1, 3], combine="probabilities"
    )

    cache = kd_keras.cache.cache_teacher_outputs(
        ensemble, x, str(tmp_path / "cache"), batch_size=16, verbose=0
    )
    np.testing.assert_allclose(cache.logits(), expected, atol=1e-5)

    other = EnsembleTeacher([_NumpyTeacher(m) for m in models], weights=[1, 1])
    with pytest.raises(ValueError):
        kd_keras.cache.cache_teacher_outputs(
            other, x, str(tmp_path / "cache"), batch_size=16, verbose=0
        )
