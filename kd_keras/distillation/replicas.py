"""Cross-replica helpers for `Distiller`, and fixes for Keras under
`MultiWorkerMirroredStrategy`.

Keras 3.12 to 3.15.1 (the latest checked, Nov 2026) cannot `fit` a model
under `tf.distribute.MultiWorkerMirroredStrategy`:

1. `Trainer._maybe_symbolic_build` reduces the first distributed batch with
   `strategy.reduce("MEAN", batch, axis=None)`, which fails under the
   collective strategy ("Attempt to convert a value (PerReplica...)").
   `DistributedFitMixin._maybe_symbolic_build` builds from the first local
   replica's batch instead.
2. `reduce_per_replica(..., reduction="auto")` then reduces the step's logs
   with `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars.
   `per_replica_logs` gives each log a leading axis of size 1 under that
   strategy, so the reduction is a plain mean.

Epoch-level history does not depend on (2): Keras reads it from the metric
trackers, which `tf.distribute` aggregates over replicas and workers. Drop
this module's fixes once Keras's TensorFlow trainer handles the collective
strategy itself: `tests/distribute/test_keras_mwms_bugs.py` (marked `slow`)
checks that plain Keras still fails both ways, and fails the day it does not.
The mixin of fix (1) overrides private Keras methods, so it lives with
kd_keras's other uses of Keras internals in `kd_keras._keras_compat`.
"""

import tensorflow as tf

from kd_keras._keras_compat import is_multi_worker

__all__ = ["global_sum", "per_replica_logs"]


def global_sum(value):
    """Sums `value` over all replicas (identity on one replica).

    Args:
        value: a tensor, in a replica context (inside `train_step`).

    Returns:
        The sum over the global batch's replicas.

    Example (outside a strategy there is one replica):

    >>> float(global_sum(tf.constant(2.5)))
    2.5
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def per_replica_logs(logs):
    """Makes a step's logs reducible by Keras under multi-worker training."""
    if not is_multi_worker(tf.distribute.get_strategy()):
        return logs
    return {k: tf.reshape(v, [-1])[:1] for k, v in logs.items()}
