"""benchmarks/loss_check.py: the soft-loss comparison against NumPy and SciPy."""

import numpy as np
from scipy.special import softmax
from scipy.stats import entropy

from conftest import load_benchmark

loss_check = load_benchmark("loss_check")
throughput = load_benchmark("throughput")


def test_numpy_reference_matches_scipy(rng):
    t = rng.normal(0, 4, size=(32, 10))
    s = rng.normal(0, 4, size=(32, 10))
    expected = entropy(softmax(t / 3.0, axis=-1), softmax(s / 3.0, axis=-1), axis=-1) * 9.0
    np.testing.assert_allclose(loss_check.numpy_soft_kl(t, s, 3.0), expected, rtol=1e-10)


def test_loss_comparison_rows(rng):
    teacher = throughput.mlp_teacher(16)
    student = throughput.mlp_student()
    x = rng.normal(size=(64, 64)).astype("float32")
    rows = loss_check.loss_comparison(teacher, student, x, 3.0)
    assert len(rows) == 3
    for row in rows.values():
        reference = row["numpy_float64_reference"]
        assert abs(row["kd_keras.losses.soft_target_kl"] - reference) <= 1e-5 * max(1, reference)
        assert abs(row["keras LogitsDistillation(loss=KLDivergence())"] - reference) <= 1e-4 * max(1, reference)
    shifted = rows["teacher logits + 3 (same softmax, KL = 0)"]
    assert abs(shifted["numpy_float64_reference"]) < 1e-9
    # The anchor's default compares logits, not probabilities.
    assert shifted["keras LogitsDistillation() default"] < 0.0
