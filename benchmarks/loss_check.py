"""The soft loss of `keras.distillation.LogitsDistillation` next to a NumPy
float64 reference: with its default `loss="kl_divergence"`, `keras.losses.get`
returns the plain `kl_divergence` function, which fails the `KLDivergence`
instance check, so that default applies KL to the (clipped) scaled logits
rather than to probabilities, and can even go negative.
`benchmarks/throughput.py` prints this comparison beside its timings.
"""

import keras
import numpy as np

import kd_keras


def numpy_soft_kl(teacher_logits, student_logits, temperature):
    """float64 reference: KL(softmax(t/T) || softmax(s/T)) * T**2 per example."""

    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    t = np.asarray(teacher_logits, np.float64) / temperature
    s = np.asarray(student_logits, np.float64) / temperature
    log_p, log_q = log_softmax(t), log_softmax(s)
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=-1) * temperature**2


def loss_comparison(teacher, student, x, temperature):
    """Soft losses at `temperature` of `keras.distillation.LogitsDistillation`'s
    default, its `KLDivergence()` form, kd_keras's and the NumPy reference,
    on the same teacher and student logits (dict case -> loss name -> mean)."""
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    default = keras.distillation.LogitsDistillation(temperature=temperature)
    instance = keras.distillation.LogitsDistillation(
        temperature=temperature, loss=keras.losses.KLDivergence()
    )
    # An untrained student too: far from the teacher, where the default's
    # logits-as-probabilities error is largest.
    far = np.random.default_rng(1).normal(0, 2, size=t.shape).astype("float32")
    # The teacher's logits plus a constant: the same softmax, so the true KL
    # is exactly 0, but the default compares the logits themselves.
    shifted = t + 3.0
    rows = {}
    cases = (("trained student", s), ("random logits", far),
             ("teacher logits + 3 (same softmax, KL = 0)", shifted))
    for label, student_logits in cases:
        rows[label] = {
            "numpy_float64_reference": float(
                numpy_soft_kl(t, student_logits, temperature).mean()),
            "kd_keras.losses.soft_target_kl": float(np.mean(
                kd_keras.losses.soft_target_kl(t, student_logits, temperature))),
            "keras LogitsDistillation() default": float(
                default.compute_loss(t, student_logits)),
            "keras LogitsDistillation(loss=KLDivergence())": float(
                instance.compute_loss(t, student_logits)),
        }
    return rows


def print_loss_comparison(rows, temperature, examples):
    """Prints `loss_comparison`'s rows."""
    print(f"soft loss at T={temperature} (mean over {examples} examples)")
    for label, row in rows.items():
        print(f"  {label}:")
        for name, value in row.items():
            print(f"    {name:<48}{value:>12.6f}")
