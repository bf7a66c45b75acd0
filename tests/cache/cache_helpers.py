"""Tiny deterministic teachers for the cache tests.

`LinearTeacher` computes `x @ W + b` in NumPy, so its logits are an
independent reference for what the cache stores; it counts its calls.
"""

import hashlib
import time

import numpy as np

from kd_keras.teachers import Teacher


class LinearTeacher(Teacher):
    def __init__(self, in_dim=6, num_classes=3, seed=0, delay=0.0):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=(in_dim, num_classes)).astype(np.float32)
        self.b = rng.normal(size=(num_classes,)).astype(np.float32)
        self.delay = delay
        self.calls = 0

    def reference(self, x):
        return (np.asarray(x, np.float32) @ self.w + self.b).astype(np.float32)

    def predict_on_batch(self, x):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return self.reference(x)

    def fingerprint(self):
        return hashlib.sha256(self.w.tobytes() + self.b.tobytes()).hexdigest()


def make_inputs(count=320, in_dim=6, seed=1):
    return np.random.default_rng(seed).normal(size=(count, in_dim)).astype(np.float32)


DELETE = object()  # `json_edit`'s value that deletes the key


def json_edit(*path, value=DELETE):
    """Returns a function that sets `raw[path...] = value` in parsed JSON
    (`DELETE` deletes the key), for damaging a cache's metadata.

    Example:

    >>> raw = {"a": [{"b": 1}]}
    >>> json_edit("a", 0, "b", value=2)(raw); raw
    {'a': [{'b': 2}]}
    >>> json_edit("a", 0, "b")(raw); raw
    {'a': [{}]}
    """

    def edit(raw):
        *parents, last = path
        for key in parents:
            raw = raw[key]
        if value is DELETE:
            del raw[last]
        else:
            raw[last] = value

    return edit
