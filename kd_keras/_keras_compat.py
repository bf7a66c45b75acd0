"""The one place where kd_keras relies on Keras internals.

Each function or class here depends on something Keras does not promise: a
private method, a private attribute, or how a public object works inside.
They were written for Keras `WRITTEN_FOR` (3.15.1, with TensorFlow 2.21),
and `tests/test_keras_compat.py` has one canary test per dependency, so that
a Keras upgrade that changes one fails there, naming the dependency, rather
than somewhere deep in a training run. Where Keras has a public hook, the
code uses it and is not here.

- `seed_generator_states` and `reseed_for_epoch`: the state of every
  `keras.random.SeedGenerator` in a model (dropout and other random layers),
  written so that an epoch's randomness depends only on the epoch, which
  makes a resumed run equal an uninterrupted one.
- `DistributedFitMixin`: `fit` under `tf.distribute.MultiWorkerMirroredStrategy`
  (see `kd_keras.distribute.workarounds` for the Keras bug it works around),
  for the strategies `is_multi_worker` picks (that test uses public
  TensorFlow API only; it is here because the mixin needs it).

Example:

>>> import keras
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5, seed=3)])
>>> [state] = seed_generator_states(model)
>>> reseed_for_epoch(state, 2)
>>> [int(v) for v in keras.ops.convert_to_numpy(state.value)]
[3, 2097152]
"""

import keras
import numpy as np
import tensorflow as tf

WRITTEN_FOR = "3.15.1"

# The name `keras.random.SeedGenerator` gives its state variable.
SEED_STATE_NAME = "seed_generator_state"


def seed_generator_states(model):
    """The state variables of the seed generators in `model`.

    `model.variables` is public and documented to include "random seeds"
    (each `SeedGenerator`'s state, from every layer, nested ones too); they
    are told apart from the weights by the name Keras gives them.

    Args:
        model: a Keras model or layer.

    Returns:
        A list of variables, each of shape `(2,)`.
    """
    return [v for v in model.variables if v.name == SEED_STATE_NAME]


def reseed_for_epoch(state, epoch):
    """Sets a seed generator's state so that its draws depend only on its
    seed and `epoch`.

    A `SeedGenerator` state is `[seed, counter]`, and each draw uses the
    state and then adds 1 to the counter (the internals this relies on).
    The counter is set to `epoch * 2**20`, so epochs of fewer than about a
    million draws never overlap.

    Args:
        state: a variable from `seed_generator_states`.
        epoch: the epoch number (from 0).
    """
    value = np.asarray(keras.ops.convert_to_numpy(state.value))
    state.assign(np.array([value[0], epoch * 2**20], dtype=value.dtype))


def is_multi_worker(strategy):
    """Whether `strategy` runs collectives across workers (not only across
    this worker's devices). Public API only: such a strategy has more
    replicas than this worker has devices.

    Example:

    >>> is_multi_worker(tf.distribute.get_strategy())
    False
    """
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and (
        strategy.num_replicas_in_sync > len(strategy.extended.worker_devices))


class DistributedFitMixin:
    """Mixed into a `keras.Model` (before it) so that `fit` works under
    `MultiWorkerMirroredStrategy`: the model is built from the first local
    replica's batch instead of Keras's cross-replica mean of the batch,
    which fails under the collective strategy.

    It overrides the private `Trainer._maybe_symbolic_build` of Keras's
    TensorFlow trainer, reads the private `_distribute_strategy` (the
    strategy the model was created under, or `None`: Keras's own test, kept
    the same) and calls the private `_symbolic_build`.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or not is_multi_worker(strategy):
            return super()._maybe_symbolic_build(
                iterator=iterator, data_batch=data_batch)
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = next(it)
                break

        def first_local(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        data_batch = keras.tree.map_structure(first_local, data_batch)
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)
