"""Canaries for `kd_keras._keras_compat`: one test per Keras internal that
kd_keras relies on, each checking that the internal still behaves as it did
in the Keras version the code was written for. When one fails after a Keras
upgrade, its message names what changed: update `kd_keras/_keras_compat.py`
(and this test), nothing else."""

import json
import ast
import inspect
import logging
import os
import re

import keras
import numpy as np
import tensorflow as tf

from kd_keras._keras_compat import WRITTEN_FOR
from kd_keras._keras_compat import DistributedFitMixin
from kd_keras._keras_compat import SymbolicBuildHook
from kd_keras._keras_compat import tfsm_signatures
from kd_keras._keras_compat import call_arguments
from kd_keras._keras_compat import is_functional
from kd_keras._keras_compat import is_multi_worker
from kd_keras._keras_compat import loss_tracker
from kd_keras._keras_compat import output_spec
from kd_keras._keras_compat import producer
from kd_keras._keras_compat import reseed_for_epoch
from kd_keras._keras_compat import resumed_epoch
from kd_keras._keras_compat import run_graph
from kd_keras._keras_compat import seed_generator_states
from kd_keras._keras_compat import set_custom_op_registerers
from kd_keras._keras_compat import set_feedforward_activation
from kd_keras._keras_compat import silenced_deprecations
from kd_keras._keras_compat import wordpiece_pretokenize


def changed(what):
    return (f"kd_keras/_keras_compat.py was written for Keras {WRITTEN_FOR}; in Keras "
            f"{keras.version()} {what}: update it there")


class Noisy(keras.layers.Layer):
    """A layer with its own `keras.random.SeedGenerator` (public API)."""

    def __init__(self, seed, **kwargs):
        super().__init__(**kwargs)
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, x):
        return x + keras.random.uniform(keras.ops.shape(x), seed=self.generator)


def _nested_model():
    inner = keras.Sequential([keras.Input((4,)), Noisy(11)], name="inner")
    x = keras.Input((4,))
    return keras.Model(x, Noisy(7)(inner(x))), inner


def test_seed_generator_states_are_listed_by_model_variables():
    model, inner = _nested_model()
    found = [id(v) for v in seed_generator_states(model)]
    expected = [id(model.layers[-1].generator.state), id(inner.layers[0].generator.state)]
    assert sorted(found) == sorted(expected), changed(
        "model.variables no longer lists each SeedGenerator's state, nested layers' "
        "too, under the variable name 'seed_generator_state'")


def test_a_seed_state_is_seed_then_a_counter_that_each_draw_advances():
    generator = keras.random.SeedGenerator(5)
    before = keras.ops.convert_to_numpy(generator.state.value).tolist()
    keras.random.uniform((3,), seed=generator)
    after = keras.ops.convert_to_numpy(generator.state.value).tolist()
    assert (before, after) == ([5, 0], [5, 1]), changed(
        f"a SeedGenerator's state went {before} -> {after} over one draw, not "
        "[seed, counter] -> [seed, counter + 1]")


def test_reseeding_makes_an_epoch_s_draws_depend_on_the_epoch_only():
    model, _ = _nested_model()
    x = np.zeros((2, 4), "float32")

    def epoch_draws(epoch, draws_before):
        for _ in range(draws_before):
            model(x)  # Earlier draws of the run: they must not matter.
        for state in seed_generator_states(model):
            reseed_for_epoch(state, epoch)
        return keras.ops.convert_to_numpy(model(x))

    first = epoch_draws(3, draws_before=0)
    assert np.array_equal(first, epoch_draws(3, draws_before=5)), changed(
        "setting a SeedGenerator's state no longer fixes its next draws")
    assert not np.array_equal(first, epoch_draws(4, draws_before=0)), changed(
        "a SeedGenerator's draws no longer depend on its state's counter")


def test_fit_builds_through_the_method_the_mixin_overrides():
    calls = []

    class Recorded(DistributedFitMixin, keras.Sequential):
        def _maybe_symbolic_build(self, iterator=None, data_batch=None):
            calls.append((iterator is not None, data_batch is not None))
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    parameters = list(inspect.signature(keras.Model._maybe_symbolic_build).parameters)
    assert parameters == ["self", "iterator", "data_batch"], changed(
        f"Trainer._maybe_symbolic_build takes {parameters}, not (iterator, data_batch)")
    model = Recorded([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((8, 4)), np.zeros((8, 2)), epochs=1, verbose=0)
    assert calls == [(True, False)], changed(
        f"fit calls _maybe_symbolic_build as {calls}, not once with the epoch iterator")


def test_symbolic_build_builds_a_model_from_one_batch():
    parameters = inspect.signature(keras.Model._symbolic_build).parameters
    assert "data_batch" in parameters, changed(
        f"Trainer._symbolic_build takes {list(parameters)}, without data_batch")
    model = keras.Sequential([keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model._symbolic_build(data_batch=(np.zeros((8, 4), "float32"),
                                      np.zeros((8, 2), "float32"), None))
    assert model.built and model.optimizer.built, changed(
        "_symbolic_build(data_batch=...) no longer builds the model and its optimizer")


def test_distribute_strategy_attribute_is_the_strategy_the_model_was_made_under():
    outside = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        inside = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    found = (getattr(outside, "_distribute_strategy", "missing"),
             getattr(inside, "_distribute_strategy", "missing"))
    assert found == (None, strategy), changed(
        f"a model's _distribute_strategy is {found}, not None outside a strategy "
        "scope and the strategy inside one")


def test_one_worker_strategies_are_not_multi_worker():
    # The multi-worker case runs in tests/distribute (a local 2-worker cluster).
    assert not is_multi_worker(tf.distribute.get_strategy())
    assert not is_multi_worker(tf.distribute.MirroredStrategy(["/cpu:0"]))


def test_symbolic_build_hook_runs_before_the_optimizer_is_built():
    calls = []

    class Recorded(SymbolicBuildHook, keras.Sequential):
        def _build_for_batch(self, data_batch):
            shapes = None if data_batch is None else [
                tuple(v.shape) for v in keras.tree.flatten(data_batch)]
            calls.append((shapes, self.optimizer.built))

    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        model = Recorded([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((8, 4), "float32"), np.zeros((8, 2), "float32"), batch_size=8,
              epochs=1, verbose=0)
    assert calls == [([(8, 4), (8, 2)], False)], changed(
        "fit under a strategy no longer calls Trainer._symbolic_build once, with the "
        f"first batch, before building the optimizer (the hook saw {calls})")


def test_loss_tracker_is_the_compiled_loss_log():
    class OwnLoss(keras.Sequential):
        def train_step(self, data):
            x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
            loss_tracker(self).update_state(3.0)
            return self.compute_metrics(x, y, self(x))

    model = OwnLoss([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    tracker = loss_tracker(model)
    assert isinstance(tracker, keras.metrics.Mean) and tracker.name == "loss", changed(
        f"Trainer._loss_tracker is {tracker!r}, not a Mean named 'loss'")
    history = model.fit(np.zeros((8, 4)), np.zeros((8, 2)), epochs=1, verbose=0).history
    assert history["loss"] == [3.0], changed(
        f"updating Trainer._loss_tracker gave the logs {history}, not loss 3.0")


def test_resumed_epoch_is_the_epoch_backup_and_restore_set_fit_to_start_from(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((4, 2), "float32"), np.ones((4, 1), "float32")
    assert resumed_epoch(model) is None, changed("a model holds a restored epoch unasked")

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("stop")

    backup = keras.callbacks.BackupAndRestore(str(tmp_path))
    try:
        model.fit(x, y, epochs=4, verbose=0, callbacks=[backup, Stop()])
    except RuntimeError:
        pass
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            seen.append(resumed_epoch(self.model))

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    model.fit(x, y, epochs=4, verbose=0,
              callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path)), Record()])
    assert seen == [2, 2, 3], changed(f"a restored fit began as {seen}, not [2, 2, 3]")


def test_functional_models_and_only_they_are_keras_functions():
    x = keras.Input((4,))
    functional = keras.Model(x, keras.layers.Dense(2)(x))

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    found = [is_functional(m) for m in (functional, keras.Sequential([x]), Subclassed())]
    assert found == [True, False, False], changed(
        "a Functional model is no longer a keras.Function, or Sequential or a subclassed "
        f"model is (functional, Sequential, subclassed: {found})")


def test_run_graph_calls_each_layer_and_gives_the_model_s_outputs():
    a, b = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    dense = keras.layers.Dense(3, name="dense")
    model = keras.Model({"a": a, "b": b},
                        dense(keras.layers.Concatenate(name="both")([a, b])))
    inputs = {"a": np.ones((2, 4), "float32"), "b": np.full((2, 4), 2.0, "float32")}
    seen = []

    def call(operation, *args, **kwargs):
        seen.append(operation.name)
        return operation(*args, **kwargs)

    outputs = keras.ops.convert_to_numpy(run_graph(model, inputs, call))
    assert seen == ["both", "dense"], changed(
        f"Function._run_through_graph called {seen}, not each layer once in order")
    assert np.allclose(outputs, keras.ops.convert_to_numpy(model(inputs))), changed(
        "Functional._standardize_inputs and _run_through_graph no longer give the "
        "model's outputs")


def test_producer_is_the_layer_that_made_a_tensor():
    x = keras.Input((4,))
    dense = keras.layers.Dense(2)
    inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    y = dense(x)
    z = inner(y)
    found = [producer(t) for t in (y, z, np.zeros(2))]
    assert found[0] is dense and found[1] is inner and found[2] is None, changed(
        f"KerasTensor._keras_history.operation is {found[:2]}, not the layer and the "
        "nested model that made the tensors")
    assert isinstance(producer(x), keras.layers.InputLayer), changed(
        f"a keras.Input's _keras_history.operation is {producer(x)!r}, not its InputLayer")


def test_call_arguments_list_each_call_s_tensors():
    a, b = keras.Input((4,)), keras.Input((4,))
    shared = keras.layers.Dense(2)
    both = keras.layers.Concatenate()
    both([shared(a), shared(b)])
    calls = call_arguments(shared)
    assert [[t is x for t in args] for args, x in zip(calls, (a, b))] == [[True], [True]], \
        changed(f"Operation._inbound_nodes gives the calls {calls} of a layer called on "
                "a, then b")
    [args] = call_arguments(both)
    assert [producer(t) for t in args] == [shared, shared], changed(
        "a node's arguments.keras_tensors no longer lists a list argument's tensors")


def test_output_spec_traces_without_running():
    ran = []

    def fn(x, y):
        ran.append(type(x))
        return {"sum": x + y, "rows": keras.ops.sum(x, axis=1)}

    spec = output_spec(fn, keras.KerasTensor((None, 3)), keras.KerasTensor((None, 3)))
    shapes = {k: tuple(v.shape) for k, v in spec.items()}
    assert shapes == {"sum": (None, 3), "rows": (None,)}, changed(
        f"keras.src.backend.compute_output_spec gave the shapes {shapes}")
    assert all(isinstance(v, keras.KerasTensor) for v in spec.values()), changed(
        "keras.src.backend.compute_output_spec no longer gives KerasTensors")


def test_deprecation_notices_are_silenced():
    from tensorflow.python.util import deprecation

    @deprecation.deprecated(None, "Use nothing.")
    def old():
        return 1

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # Other tests may have raised it.
    logger.addHandler(handler)
    try:
        with silenced_deprecations():
            old()
        inside = len(records)
        old()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert (inside, len(records)) == (0, 1), changed(
        "tensorflow.python.util.deprecation.silence() no longer hides the notice that "
        f"a deprecated function logs ({inside} inside, {len(records) - inside} after)")


def test_tflite_calibration_reads_the_custom_op_registerers():
    from tensorflow.lite.python import lite

    spec = tf.lite.TargetSpec()
    set_custom_op_registerers(spec, ("TFText_SomeRegisterer",))
    assert spec._experimental_custom_op_registerers == ["TFText_SomeRegisterer"]
    source = inspect.getsource(lite)
    assert "target_spec._experimental_custom_op_registerers" in source, changed(
        "the TFLite converter no longer reads TargetSpec._experimental_custom_op_registerers "
        "when it calibrates")


def test_tfsm_signatures_are_those_of_the_loaded_saved_model(tmp_path):
    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2)])
    model.export(str(tmp_path / "sm"), verbose=False)
    layer = keras.layers.TFSMLayer(str(tmp_path / "sm"), call_endpoint="serve")
    signatures = tfsm_signatures(layer)
    assert "serving_default" in signatures, changed(
        "TFSMLayer no longer keeps the loaded SavedModel in _reloaded_obj")
    assert signatures["serving_default"].structured_input_signature[1]


def test_feedforward_activation_of_a_built_encoder():
    import keras_hub

    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")

    def encoder(activation):
        layer = keras_hub.layers.TransformerEncoder(16, 2, activation=activation, dropout=0)
        layer.build((None, 5, 8))
        return layer

    relu, changed_one = encoder("relu"), encoder("gelu")
    changed_one.set_weights(relu.get_weights())
    set_feedforward_activation(changed_one, keras.activations.relu)
    found = np.abs(keras.ops.convert_to_numpy(changed_one(x) - relu(x))).max()
    assert found < 1e-6, changed(
        "setting TransformerEncoder._feedforward_intermediate_dense.activation no longer "
        f"changes a built encoder's activation (outputs differ by {found})")


def test_wordpiece_pretokenize_splits_strips_and_folds():
    import keras_hub

    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=["[UNK]", "hello"], lowercase=True, strip_accents=True)
    words = wordpiece_pretokenize(tokenizer, tf.constant(["Héllo, WORLD!"]))
    found = [w.decode() for w in words.flat_values.numpy()]
    assert found == ["hello", ",", "world", "!"], changed(
        f"keras_hub.src.tokenizers.word_piece_tokenizer.pretokenize gave {found}")


# ------------------------------------------------- no private access elsewhere

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "kd_keras")
COMPAT = os.path.join(PACKAGE, "_keras_compat.py")
PRIVATE_MODULES = re.compile(r"^(keras|keras_hub|tensorflow|tf_keras)\.(src|python)(\.|$)")
# Private names of other libraries than Keras and TensorFlow, each with its place.
OTHER_LIBRARIES = {"_base_exc"}  # Ray's wrapped exception (distribute/ray_cluster.py).


def _is_private(name):
    return name.startswith("_") and not name.startswith("__")


def _package_trees():
    trees = {}
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    trees[path] = ast.parse(f.read(), path)
    return trees


def _own_names(trees):
    """Every name kd_keras defines outside the compat module (whose private
    names are Keras's): functions, classes, variables, arguments, imports
    and attributes it sets on `self` or `cls`."""
    own = set()
    for path, tree in trees.items():
        if path == COMPAT:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                own.add(node.name)
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                  and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                own.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                own.add(node.id)
            elif isinstance(node, ast.alias):
                own.add(node.asname or node.name.split(".")[-1])
            elif isinstance(node, ast.arg):
                own.add(node.arg)
    return own


def _keras_private_methods():
    names = set()
    for folder, _, files in os.walk(os.path.join(os.path.dirname(keras.__file__), "src")):
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    names.update(re.findall(r"def (_[a-z]\w*)\(", f.read()))
    return names


def _keras_classes(trees):
    """Names of kd_keras classes that derive from a Keras class."""
    classes = [node for tree in trees.values() for node in ast.walk(tree)
               if isinstance(node, ast.ClassDef)]
    derived, grew = set(), True
    while grew:
        grew = False
        for node in classes:
            bases = [ast.unparse(b) for b in node.bases]
            if node.name not in derived and any(
                    b.startswith("keras.") or b.split(".")[-1] in derived for b in bases):
                derived.add(node.name)
                grew = True
    return derived


def private_accesses():
    """`"file:line: what"` for each use of a Keras, KerasHub or TensorFlow
    internal in kd_keras outside `_keras_compat.py`."""
    trees = _package_trees()
    own = _own_names(trees) | OTHER_LIBRARIES
    keras_methods, keras_classes = _keras_private_methods(), _keras_classes(trees)
    found = []
    for path, tree in trees.items():
        if path == COMPAT:
            continue
        where = os.path.relpath(path, os.path.dirname(PACKAGE))
        for node in ast.walk(tree):
            what = None
            if isinstance(node, ast.Import):
                what = next((a.name for a in node.names if PRIVATE_MODULES.match(a.name)), None)
            elif isinstance(node, ast.ImportFrom) and PRIVATE_MODULES.match(node.module or ""):
                what = node.module
            elif isinstance(node, ast.Attribute) and _is_private(node.attr) and (
                    node.attr not in own):
                what = node.attr
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr")
                  and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                  and isinstance(node.args[1].value, str)
                  and _is_private(node.args[1].value) and node.args[1].value not in own):
                what = f"getattr {node.args[1].value}"
            elif isinstance(node, ast.ClassDef) and node.name in keras_classes:
                what = next((f"override {m.name}" for m in node.body
                             if isinstance(m, ast.FunctionDef) and m.name in keras_methods),
                            None)
            if what:
                found.append(f"{where}:{node.lineno}: {what}")
    return sorted(found)


def test_keras_internals_are_used_only_in_the_compat_module():
    found = private_accesses()
    assert not found, (
        "kd_keras uses Keras or TensorFlow internals outside kd_keras/_keras_compat.py: "
        f"{found}; add a function there (with a canary test here) and call it")


def test_backup_and_restore_saves_through_the_method_the_mixin_overrides(tmp_path):
    # AtomicBackupMixin replaces BackupAndRestore._save_model and writes what
    # it writes, from the attributes it reads.
    calls = []

    class Recorded(keras.callbacks.BackupAndRestore):
        def _save_model(self):
            calls.append((self._weights_path, self._training_metadata_path,
                          self._current_epoch, self._last_batch_seen))
            super()._save_model()

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    folder = str(tmp_path)
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=2, verbose=0,
              callbacks=[Recorded(folder, delete_checkpoint=False)])
    paths = (os.path.join(folder, "latest.weights.h5"),
             os.path.join(folder, "training_metadata.json"))
    assert calls == [(*paths, 1, 0), (*paths, 2, 0)], changed(
        f"BackupAndRestore saved through _save_model with {calls}")
    with open(paths[1]) as f:
        assert json.load(f) == {"epoch": 2, "batch": 0}, changed(
            "BackupAndRestore's epoch file holds other keys than AtomicBackupMixin writes")
    assert sorted(os.listdir(folder)) == ["latest.weights.h5", "training_metadata.json"]
