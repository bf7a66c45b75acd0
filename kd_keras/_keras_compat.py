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
  (see `kd_keras.distillation.replicas` for the Keras bug it works around),
  and under any strategy whose first batch splits unevenly over replicas.
  `is_multi_worker` (public TensorFlow API only) is here beside it.
- `SymbolicBuildHook`: lets a model build what only a batch can size
  before Keras builds its optimizer.
- `AtomicBackupMixin`: `BackupAndRestore`'s two files each written whole.
- `loss_tracker`: the `Mean` behind a compiled model's `"loss"` log.
- `is_functional`, `run_graph`, `producer`, `call_arguments`: walking a
  Functional model's graph.
- `output_spec`: the symbolic outputs of a function, without running it.
- `silenced_deprecations`, `set_custom_op_registerers`: TensorFlow's
  deprecation notices and TFLite calibration with custom ops.
- `set_feedforward_activation`, `wordpiece_pretokenize`: KerasHub's
  `TransformerEncoder` and WordPiece pre-tokenization (imported only there).

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
from keras.src.backend import compute_output_spec

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
    """Mixed into a `keras.Model` (before it) so that `fit` and `evaluate`
    work under any strategy of several replicas: the model is built from
    the first local replica's batch instead of Keras's cross-replica mean of
    the batch, which fails under `MultiWorkerMirroredStrategy`, and under
    `MirroredStrategy` when the first batch does not split evenly (15
    examples on 2 replicas: "Inputs to operation AddN ... [8,5] != [7,5]").

    It overrides the private `Trainer._maybe_symbolic_build` of Keras's
    TensorFlow trainer, reads the private `_distribute_strategy` (the
    strategy the model was created under, or `None`: Keras's own test, kept
    the same) and calls the private `_symbolic_build`.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if strategy is None or strategy.num_replicas_in_sync == 1:
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


class AtomicBackupMixin:
    """Mixed into `keras.callbacks.BackupAndRestore` (before it) so that its
    weights and epoch files are each written beside the old one and renamed
    over it (`kd_keras.files.atomic`), never half-written in place.

    It overrides the private `BackupAndRestore._save_model` and reads the
    private `_weights_path`, `_training_metadata_path`, `_current_epoch`
    and `_last_batch_seen`, writing what Keras's own method writes.
    """

    def _save_model(self):
        import os

        from kd_keras.files.atomic import atomic_path
        from kd_keras.files.json_files import write_json

        os.makedirs(self.backup_dir, exist_ok=True)
        with atomic_path(self._weights_path, suffix=".weights.h5") as tmp:
            self.model.save_weights(tmp, overwrite=True)
        write_json(self._training_metadata_path,
                   {"epoch": self._current_epoch, "batch": self._last_batch_seen})


class SymbolicBuildHook:
    """Mixed into a `keras.Model` (before it) so that Keras calls
    `self._build_for_batch(data_batch)` before it builds the model, its
    metrics and its optimizer from symbolic tensors shaped like a batch.

    Under a `tf.distribute` strategy Keras builds the optimizer before the
    first step, so any weight that only a batch can size (the `Distiller`'s
    feature projections) must be built first. Keras has no public hook at
    that point: this overrides the private `Trainer._symbolic_build`, which
    Keras calls with the batch (`data_batch`) or an epoch iterator.
    `data_batch` is `None` when Keras passed only an iterator.
    """

    def _build_for_batch(self, data_batch):
        """Builds what `data_batch` can size; the default builds nothing."""

    def _symbolic_build(self, iterator=None, data_batch=None):
        self._build_for_batch(data_batch)
        super()._symbolic_build(iterator=iterator, data_batch=data_batch)


def loss_tracker(model):
    """The `keras.metrics.Mean` that a compiled model reports as `"loss"`.

    A `train_step` that computes its own loss updates it, as Keras's own
    `train_step` does; a second tracker named `"loss"` would clash with it
    in the logs. Keras keeps it in the private `Trainer._loss_tracker` (it
    is also the first of `model.metrics`, which is not promised).

    Args:
        model: a compiled `keras.Model`.

    Returns:
        The tracker (a `keras.metrics.Mean` named `"loss"`).
    """
    return model._loss_tracker


def resumed_epoch(model):
    """The epoch a `keras.callbacks.BackupAndRestore` restored for the
    current `fit` (None when it restored none), which `fit` then starts
    from instead of its `initial_epoch`. Keras keeps it in the private
    `Trainer._initial_epoch`, set by the callback's `on_train_begin`.

    Args:
        model: the model being trained.

    Returns:
        An int, or None.
    """
    return getattr(model, "_initial_epoch", None)


def is_functional(model):
    """Whether `model` is a Functional model (built from `keras.Input`s and
    layer calls, KerasHub's models included): a `keras.Model` that is also a
    `keras.Function`, how Keras's private `Functional` class is made.

    Example:

    >>> x = keras.Input((4,))
    >>> is_functional(keras.Model(x, keras.layers.Dense(2)(x)))
    True
    >>> is_functional(keras.Sequential([keras.Input((4,))]))
    False
    """
    return isinstance(model, keras.Model) and isinstance(model, keras.Function)


def run_graph(model, inputs, call):
    """Runs a Functional model's graph on `inputs`, calling
    `call(operation, *args, **kwargs)` at each node instead of the operation.

    This is how `kd_keras.distillation.feature_views` records intermediate tensors and
    inlines nested models. Keras runs its graph the same way in `call`, but
    only through the private `Functional._standardize_inputs` (the inputs in
    the model's order, as tensors) and `Function._run_through_graph`.

    Args:
        model: a Functional model (`is_functional`).
        inputs: inputs in any structure the model accepts.
        call: `call(operation, *args, **kwargs) -> outputs`.

    Returns:
        The outputs, in the structure of the model's outputs.
    """
    flat = model._standardize_inputs(inputs)
    return model._run_through_graph(flat, call_fn=call)


def producer(tensor):
    """The operation (layer) whose call produced a symbolic tensor (for a
    `keras.Input`, its `InputLayer`), or `None` for anything but a
    `KerasTensor`. Keras records it in the
    private `KerasTensor._keras_history`; `layer.output` goes the other way
    and fails for a layer called more than once.

    Example:

    >>> dense = keras.layers.Dense(2)
    >>> producer(dense(keras.Input((4,)))) is dense
    True
    """
    return getattr(getattr(tensor, "_keras_history", None), "operation", None)


def call_arguments(operation):
    """The symbolic tensors passed to each call of `operation` in the graphs
    it was called in: one list per call, in argument order. Keras keeps the
    calls in the private `Operation._inbound_nodes`.

    Example:

    >>> x = keras.Input((4,))
    >>> dense = keras.layers.Dense(2)
    >>> _ = dense(x)
    >>> [[t is x for t in args] for args in call_arguments(dense)]
    [[True]]
    """
    return [list(getattr(getattr(node, "arguments", None), "keras_tensors", ()))
            for node in getattr(operation, "_inbound_nodes", ())]


def output_spec(fn, *args, **kwargs):
    """The `KerasTensor` outputs of `fn(*args, **kwargs)` on `KerasTensor`
    arguments, traced without running the computation (how Keras infers a
    layer's output shapes). Keras exports it only as the private
    `keras.src.backend.compute_output_spec`.

    Example:

    >>> output_spec(lambda x: keras.ops.concatenate([x, x]), keras.KerasTensor((2, 3))).shape
    (4, 3)
    """
    return compute_output_spec(fn, *args, **kwargs)


def silenced_deprecations():
    """A context in which TensorFlow prints no deprecation notices (the
    TF1 `Session` and `saved_model.loader` that the SavedModel runtime uses
    on purpose). TensorFlow offers this only as the private
    `tensorflow.python.util.deprecation.silence`."""
    from tensorflow.python.util import deprecation

    return deprecation.silence()


def set_custom_op_registerers(target_spec, registerers):
    """Makes a `tf.lite.TFLiteConverter`'s calibration interpreter register
    custom ops (e.g. TF-Text's tokenizer ops), through the private
    `TargetSpec._experimental_custom_op_registerers`: the converter has no
    public setting for them.

    Args:
        target_spec: `converter.target_spec`.
        registerers: registerer names or functions (e.g.
            `tensorflow_text.tflite_registrar.SELECT_TFTEXT_OPS`).
    """
    target_spec._experimental_custom_op_registerers = list(registerers)


def tfsm_signatures(layer):
    """The signatures of the SavedModel a `keras.layers.TFSMLayer` loaded,
    read from its private `_reloaded_obj` (the layer keeps the loaded
    object there and has no public accessor); `{}` without any.

    Args:
        layer: a `keras.layers.TFSMLayer`.

    Returns:
        A mapping signature name -> concrete function.
    """
    return getattr(layer._reloaded_obj, "signatures", {})


def set_feedforward_activation(block, activation):
    """Sets the activation of a KerasHub `TransformerEncoder`'s feed-forward
    block. The encoder copies its `activation` into the private
    `_feedforward_intermediate_dense` layer when built, so setting
    `block.activation` alone changes nothing in a built encoder.

    Args:
        block: a built `keras_hub.layers.TransformerEncoder`.
        activation: a callable activation.
    """
    block.activation = activation
    block._feedforward_intermediate_dense.activation = activation


def wordpiece_pretokenize(tokenizer, texts):
    """Runs a KerasHub `WordPieceTokenizer`'s own pre-tokenization (split,
    accent stripping, case folding) on `texts`, a string tensor; returns
    the words as a ragged string tensor. KerasHub keeps it in the private
    `keras_hub.src.tokenizers.word_piece_tokenizer.pretokenize` (imported
    here only, so the core does not import KerasHub)."""
    from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize

    return pretokenize(texts, tokenizer.lowercase, tokenizer.strip_accents,
                       tokenizer.split, tokenizer.split_on_cjk)
