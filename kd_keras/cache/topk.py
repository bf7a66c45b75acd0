"""Top-k compression of teacher logits for many-class teachers.

A row of `C` logits `z` is stored as its `k` largest logits (values and class
indices) plus one number, the log-sum-exp of the other `C - k` logits:

    lse_rest = log(sum_{j not in top-k} exp(z_j))

On reading, every class outside the top-k gets the same logit

    r_j = lse_rest - log(C - k),

which spreads the rest's probability mass uniformly. The stored size per
example drops from `4 C` bytes to `8 k + 4`.

What is exact and what is not:

- At temperature 1 the reconstruction is exact for the probabilities of the
  top-k classes and for the total probability of the rest (`softmax(r)` and
  `softmax(z)` agree on both), because `sum_j exp(r_j) = exp(lse_rest)`.
- Inside the rest, the mass is uniform instead of following the teacher, so
  the soft-target KL at T = 1 changes by at most
  `m * (log(C - k) + spread)`, where `m` is the rest mass and `spread` the
  range of the student's log-probabilities over the rest classes (the
  entropy term moves by at most `m log(C - k)`, the cross-entropy term by at
  most `m * spread`).
- At a temperature T != 1 the rest mass is not preserved: since
  `sum_j q_j**(1/T)` over a distribution `q` is largest when `q` is uniform,
  the reconstructed rest has *more* mass for T > 1 (softer targets) and less
  for T < 1; the top-k probabilities shift accordingly. The error vanishes
  when the rest is uniform and grows with how spread out the rest logits are
  and with T, because high temperatures are exactly what bring the tail
  ("dark knowledge") into the soft targets.

Measured relative error of the batch-mean soft-target KL (reconstructed vs
exact, NumPy float64) for a 100-class teacher (logits 3 * N(0, 1), +6 on one
class), student logits 0.5 * teacher + N(0, 1); `tests/cache/test_topk.py`
checks the k = 10 and k = 90 rows:

    k  | T = 1 | T = 2 | T = 3 | T = 5
    10 | 3.9 % | 13 %  | 21 %  | 24 %
    20 | 1.2 % | 11 %  | 20 %  | 26 %
    50 | 0.1 % | 3.3 % | 9.2 % | 17 %
    90 | 0.0 % | 0.1 % | 0.6 % | 1.9 %

So top-k compression is safe at T near 1 or with a small rest mass; at the
usual T = 3 to 5 keep a large k (or dense logits) unless storage forces it.
"""

import numpy as np

from kd_keras.errors import UsageError


def check_k(k, num_classes):
    """Checks a top-k value against the number of classes.

    Raises:
        UsageError: (a `ValueError`) unless `1 <= k < num_classes`.
    """
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise UsageError(f"top_k: must be a positive integer, got {k!r}")
    if k >= num_classes:
        raise UsageError(
            f"top_k: {k} must be smaller than the number of classes "
            f"({num_classes}); use top_k=None to store dense logits"
        )


def compress(logits, k):
    """Keeps the top-k logits of each row and the log-sum-exp of the rest.

    Args:
        logits: float array `[n, C]`.
        k: number of logits to keep per row, `1 <= k < C`.

    Returns:
        A dict with `"values"` (float32 `[n, k]`, descending),
        `"indices"` (int32 `[n, k]`) and `"lse_rest"` (float32 `[n]`).

    Example:

    >>> import numpy as np
    >>> parts = compress(np.array([[0.0, 3.0, 1.0, 2.0]]), k=2)
    >>> parts["indices"].tolist(), parts["values"].tolist()
    ([[1, 3]], [[3.0, 2.0]])
    """
    logits = np.asarray(logits)
    n, num_classes = logits.shape
    check_k(k, num_classes)
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    top_values = np.take_along_axis(logits, top, axis=1)
    order = np.argsort(-top_values, axis=1, kind="stable")
    indices = np.take_along_axis(top, order, axis=1)
    values = np.take_along_axis(top_values, order, axis=1)

    rest = logits.astype(np.float64, copy=True)
    np.put_along_axis(rest, indices, -np.inf, axis=1)
    peak = rest.max(axis=1, keepdims=True)
    lse_rest = peak[:, 0] + np.log(np.exp(rest - peak).sum(axis=1))
    return {
        "values": values.astype(np.float32),
        "indices": indices.astype(np.int32),
        "lse_rest": lse_rest.astype(np.float32),
    }


def decompress(values, indices, lse_rest, num_classes):
    """Rebuilds dense logits from `compress`'s output.

    Args:
        values: float `[n, k]` top-k logits.
        indices: int `[n, k]` their class indices.
        lse_rest: float `[n]` log-sum-exp of the other logits.
        num_classes: `C`.

    Returns:
        float32 `[n, C]` logits: the top-k exactly, every other class
        `lse_rest - log(C - k)`.

    Example:

    >>> import numpy as np
    >>> z = np.array([[0.0, 3.0, 1.0, 2.0]])
    >>> parts = compress(z, k=2)
    >>> r = decompress(parts["values"], parts["indices"], parts["lse_rest"], 4)
    >>> r[0, [1, 3]].tolist()
    [3.0, 2.0]
    """
    values = np.asarray(values, dtype=np.float32)
    indices = np.asarray(indices)
    n, k = values.shape
    check_k(k, num_classes)
    fill = np.asarray(lse_rest, np.float64) - np.log(num_classes - k)
    dense = np.repeat(fill.astype(np.float32)[:, None], num_classes, axis=1)
    np.put_along_axis(dense, indices.astype(np.intp), values, axis=1)
    return dense
