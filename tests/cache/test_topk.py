"""Top-k compression against an exact NumPy float64 reference."""

import numpy as np
import pytest

from kd_keras.cache import topk

C = 100


def _softmax(z, temperature=1.0):
    z = np.asarray(z, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _kl(t, s, temperature):
    p, q = _softmax(t, temperature), _softmax(s, temperature)
    return (p * (np.log(p) - np.log(q))).sum(axis=1) * temperature**2


def _teacher_and_student(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(n, C)) * 3
    teacher[np.arange(n), rng.integers(0, C, n)] += 6
    student = 0.5 * teacher + rng.normal(size=teacher.shape)
    return teacher.astype(np.float32), student


def _roundtrip(logits, k):
    parts = topk.compress(logits, k)
    assert parts["values"].shape == (len(logits), k)
    return topk.decompress(parts["values"], parts["indices"], parts["lse_rest"], C)


def test_t1_top_k_probabilities_and_rest_mass_are_exact():
    teacher, _ = _teacher_and_student()
    k = 10
    p, p_rec = _softmax(teacher), _softmax(_roundtrip(teacher, k))
    top = np.argsort(-teacher, axis=1)[:, :k]
    np.testing.assert_allclose(
        np.take_along_axis(p_rec, top, 1), np.take_along_axis(p, top, 1), rtol=1e-5, atol=1e-7
    )
    rest = 1 - np.take_along_axis(p, top, 1).sum(1)
    rest_rec = 1 - np.take_along_axis(p_rec, top, 1).sum(1)
    np.testing.assert_allclose(rest_rec, rest, atol=1e-6)
    # The rest is spread uniformly.
    mask = np.ones_like(p, bool)
    np.put_along_axis(mask, top, False, 1)
    others = p_rec[mask].reshape(len(p), C - k)
    np.testing.assert_allclose(others, np.repeat(rest[:, None] / (C - k), C - k, 1), rtol=1e-4)


def test_t1_kl_error_within_documented_bound():
    teacher, student = _teacher_and_student()
    k = 10
    error = np.abs(_kl(_roundtrip(teacher, k), student, 1.0) - _kl(teacher, student, 1.0))
    top = np.argsort(-teacher, axis=1)[:, :k]
    mass = 1 - np.take_along_axis(_softmax(teacher), top, 1).sum(1)
    mask = np.ones(teacher.shape, bool)
    np.put_along_axis(mask, top, False, 1)
    log_q = np.log(_softmax(student))[mask].reshape(len(teacher), C - k)
    spread = log_q.max(1) - log_q.min(1)
    bound = mass * (np.log(C - k) + spread)
    assert np.all(error <= bound + 1e-5)
    assert error.max() > 0  # Not exact inside the rest.


@pytest.mark.parametrize(
    "k, temperature, documented",
    [(10, 1.0, 0.039), (10, 3.0, 0.214), (90, 3.0, 0.006), (90, 5.0, 0.019)],
)
def test_measured_kl_error_matches_documented_table(k, temperature, documented):
    teacher, student = _teacher_and_student()
    exact = _kl(teacher, student, temperature).mean()
    approx = _kl(_roundtrip(teacher, k), student, temperature).mean()
    relative = abs(approx - exact) / exact
    assert relative == pytest.approx(documented, abs=0.0015)


def test_top_values_are_exact_and_sorted():
    teacher, _ = _teacher_and_student(50)
    parts = topk.compress(teacher, 5)
    ref = -np.sort(-teacher, axis=1)[:, :5]
    np.testing.assert_array_equal(parts["values"], ref)
    np.testing.assert_array_equal(
        np.take_along_axis(teacher, parts["indices"], 1), ref
    )
    lse = np.log(np.exp(teacher.astype(np.float64)).sum(1) - np.exp(ref.astype(np.float64)).sum(1))
    np.testing.assert_allclose(parts["lse_rest"], lse, rtol=1e-5)


def test_bad_k():
    with pytest.raises(ValueError, match="top_k: 4 must be smaller"):
        topk.compress(np.zeros((2, 4)), 4)
    with pytest.raises(ValueError, match="positive integer"):
        topk.compress(np.zeros((2, 4)), 0)
