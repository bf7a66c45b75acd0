"""One worker of the test that plain Keras still needs the MWMS workarounds.

Usage: python keras_bug_worker.py CASE OUT.json  (with TF_CONFIG set by the
test). CASE is `build` (plain Keras, bug 1 of
`kd_keras.distillation.replicas`) or `logs` (bug 1 worked around, so that
bug 2 shows). Writes `{"error": "Type: message" or null, "replicas": n}`.
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

from kd_keras._keras_compat import DistributedFitMixin


class BuildFixedSequential(DistributedFitMixin, keras.Sequential):
    """Plain Keras with only the fix of bug 1, so that bug 2 shows."""


def main(case, out):
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = rng.integers(0, 2, size=32).astype("int32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    cls = keras.Sequential if case == "build" else BuildFixedSequential
    with strategy.scope():
        model = cls([keras.Input((3,)), keras.layers.Dense(2)])
        model.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    try:
        model.fit(dataset, epochs=1, shuffle=False, verbose=0)
        error = None
    except Exception as e:  # noqa: BLE001 (the test reads what was raised)
        error = f"{type(e).__name__}: {e}"
    with open(out, "w") as f:
        json.dump({"error": error,
                   "replicas": strategy.num_replicas_in_sync}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
