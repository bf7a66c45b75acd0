"""`solve_head`: the exact head, checked for optimality in NumPy float64."""

import keras
import numpy as np
import pytest

from kd_keras.errors import UsageError
from kd_keras.teachers.head import solve_head


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _task(rng, n, d, k):
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + rng.normal(size=d)
    w = rng.normal(size=(d, k))
    y = (x @ w + rng.normal(scale=2.0, size=(n, k))).argmax(1)
    return x.astype(np.float32), y


def _newton(z, y, num_classes, c, steps=30):
    """Class probabilities at the minimiser of scikit-learn's objective,
    c * sum(log-loss) + |w|^2 / 2 (intercepts not penalised), by Newton's
    method in float64: an independent reference for `solve_head`. Two
    classes have one weight vector (a logistic regression), more have one
    per class (multinomial)."""
    n, d = z.shape
    zt = np.hstack([z, np.ones((n, 1))])
    reg = np.eye(d + 1)
    reg[d, d] = 0.0
    if num_classes == 2:
        w = np.zeros(d + 1)
        for _ in range(steps):
            p = 1 / (1 + np.exp(-zt @ w))
            grad = reg @ w + c * zt.T @ (p - y)
            hess = reg + c * (zt * (p * (1 - p))[:, None]).T @ zt
            w = w - np.linalg.solve(hess, grad)
        p = 1 / (1 + np.exp(-zt @ w))
        return np.stack([1 - p, p], axis=1)
    k, size = num_classes, (d + 1) * num_classes
    theta, onehot = np.zeros((d + 1, k)), np.eye(k)[y]
    for _ in range(steps):
        p = _softmax(zt @ theta)
        grad = reg @ theta + c * zt.T @ (p - onehot)
        s = np.einsum("ia,ab->iab", p, np.eye(k)) - np.einsum("ia,ib->iab", p, p)
        hess = (c * np.einsum("iab,ic,ie->caeb", s, zt, zt)
                + np.einsum("ce,ab->caeb", reg, np.eye(k)))
        # Singular along "the same constant on every intercept": least squares.
        step = np.linalg.lstsq(hess.reshape(size, size), grad.reshape(size), rcond=None)[0]
        theta = theta - step.reshape(d + 1, k)
    return _softmax(zt @ theta)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_the_head_is_the_regularised_optimum(rng, num_classes):
    """The solved head gives the class probabilities of the optimum on
    standardised features, found here by Newton's method."""
    x, y = _task(rng, 80, 5, num_classes)
    head = keras.layers.Dense(num_classes)
    head.build((None, 5))
    result = solve_head(head, x, y, l2=0.5)
    kernel, bias = (w.astype(np.float64) for w in head.get_weights())

    x64 = x.astype(np.float64)
    z = (x64 - x64.mean(0)) / (x64.std(0) + 1e-6)
    probabilities = _softmax(x64 @ kernel + bias)
    np.testing.assert_allclose(probabilities, _newton(z, y, num_classes, 0.5), atol=2e-3)
    predicted = probabilities.argmax(1)
    assert result["train_accuracy"] == pytest.approx((predicted == y).mean())
    assert result["num_examples"] == 80 and result["l2"] == 0.5


def test_bad_labels_are_usage_errors(rng):
    head = keras.layers.Dense(2)
    head.build((None, 3))
    x = rng.normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(UsageError, match="^labels: fitting a head needs .* two classes"):
        solve_head(head, x, [1, 1, 1, 1])
    with pytest.raises(UsageError, match=r"^labels: must lie in \[0, 2\)"):
        solve_head(head, x, [0, 1, 2, 1])
    with pytest.raises(UsageError, match=r"^features: shape \(4, 3\) does not match 3"):
        solve_head(head, x, [0, 1, 1])


@pytest.mark.parametrize("present", [(0, 1), (0, 2), (0, 1, 3)])
def test_a_class_no_label_names_gets_no_probability(rng, present):
    # With two classes present the third had logit 0 beside -z/2 and +z/2:
    # a mean probability of 0.23 for a class never seen.
    num_classes = 3 if len(present) == 2 else 4
    features = rng.normal(size=(60, 5))
    labels = np.array(present)[rng.integers(0, len(present), 60)]
    head = keras.layers.Dense(num_classes)
    head.build((None, 5))
    solve_head(head, features, labels, l2=1.0)
    logits = np.asarray(head(features.astype("float32")), np.float64)
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    absent = sorted(set(range(num_classes)) - set(present))
    assert probabilities[:, absent].max() < 1e-6
