"""Canaries for `kd_keras._keras_compat`: one test per Keras internal that
kd_keras relies on, each checking that the internal still behaves as it did
in the Keras version the code was written for. When one fails after a Keras
upgrade, its message names what changed: update `kd_keras/_keras_compat.py`
(and this test), nothing else."""

import inspect

import keras
import numpy as np
import tensorflow as tf

from kd_keras._keras_compat import WRITTEN_FOR
from kd_keras._keras_compat import DistributedFitMixin
from kd_keras._keras_compat import is_multi_worker
from kd_keras._keras_compat import reseed_for_epoch
from kd_keras._keras_compat import seed_generator_states


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
