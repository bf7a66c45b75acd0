"""The task head of a text teacher: solved exactly on pooled features.

The head is a dense layer from pooled backbone features to logits.
`solve_head` sets it to the optimum of an L2-regularised softmax regression
(scikit-learn), so adapting a frozen backbone needs no epochs or learning
rate. `kd_keras.teachers.fit_head`, `TopLayerTuner.fit_head` and
`adapt_text_teacher` all end here.
"""

import warnings

import keras
import numpy as np

from kd_keras.errors import UsageError


def as_strings(texts):
    """Texts as a NumPy object array of strings (other values via `str`).

    Example:

    >>> as_strings(["a", 3]).tolist()
    ['a', '3']
    """
    return np.asarray([t if isinstance(t, (str, bytes)) else str(t) for t in texts],
                      dtype=object)


def solve_head(head, features, labels, l2="auto"):
    """Sets a dense logits layer to the L2-regularised softmax regression
    optimum on `features` (what `fit_head` does after embedding the texts).

    Args:
        head: a `keras.layers.Dense` with `num_classes` units; its weights
            are replaced.
        features: float array `[n, head_input_dim]`.
        labels: integer labels in `[0, num_classes)`, `[n]`.
        l2: scikit-learn's `C`, or `"auto"` (3-fold cross-validation on the
            log-loss among `1e-3 ... 10`).

    Returns:
        A dict `{"train_accuracy", "num_examples", "l2"}`.

    Example:

    >>> head = keras.layers.Dense(2); head.build((None, 3))
    >>> solve_head(head, np.eye(3), [0, 1, 1], l2=1.0)["num_examples"]
    3
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.linear_model import LogisticRegressionCV

    labels = np.asarray(labels).astype(np.int64)
    num_classes = head.units
    features = np.asarray(features)
    if features.ndim != 2 or len(features) != len(labels):
        raise UsageError(
            f"features: shape {features.shape} does not match {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(
            f"labels: must lie in [0, {num_classes}) (the head's {num_classes} classes); "
            f"got {labels.min()}..{labels.max()}")
    if len(np.unique(labels)) < 2:
        raise UsageError("labels: fitting a head needs examples of at least two classes")
    mean = features.mean(axis=0)
    std = features.std(axis=0) + 1e-6
    if l2 == "auto" and np.unique(labels, return_counts=True)[1].min() < 3:
        l2 = 1.0  # too few examples of a class for 3-fold cross-validation
    if l2 == "auto":
        regression = LogisticRegressionCV(
            Cs=np.logspace(-3, 1, 7), cv=3, scoring="neg_log_loss", max_iter=2000
        )
    else:
        regression = LogisticRegression(C=float(l2), max_iter=2000)
    with warnings.catch_warnings():  # scikit-learn's deprecation notices
        warnings.simplefilter("ignore", FutureWarning)
        regression.fit((features - mean) / std, labels)
    kernel = np.zeros((features.shape[1], num_classes))
    bias = np.zeros(num_classes)
    if len(regression.classes_) == 2:  # One score z: logits (-z/2, +z/2).
        low, high = regression.classes_
        kernel[:, low], kernel[:, high] = -regression.coef_[0] / 2, regression.coef_[0] / 2
        bias[low], bias[high] = -regression.intercept_[0] / 2, regression.intercept_[0] / 2
    else:
        kernel[:, regression.classes_] = regression.coef_.T
        bias[regression.classes_] = regression.intercept_
    # A class no label names gets no probability, with two classes present
    # as with more (it had logit 0 beside the two's -z/2 and +z/2).
    bias[np.setdiff1d(np.arange(num_classes), regression.classes_)] = -1e4
    kernel = kernel / std[:, None]
    bias = bias - mean @ kernel
    head.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    accuracy = float((regression.predict((features - mean) / std) == labels).mean())
    chosen = float(np.ravel(regression.C_)[0]) if l2 == "auto" else float(l2)
    return {"train_accuracy": accuracy, "num_examples": int(len(labels)), "l2": chosen}
