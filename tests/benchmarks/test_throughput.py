"""Tests for benchmarks/throughput.py and benchmarks/timing.py (not timings:
the helpers' bookkeeping)."""

import keras
import numpy as np

from conftest import load_benchmark

throughput = load_benchmark("throughput")
timing = load_benchmark("timing")


def test_interleaved_rounds_and_ratios():
    calls = []

    def method(name, seconds):
        def run():
            calls.append(name)
            return seconds
        return run

    methods = {"a": method("a", 1.0), "b": method("b", 2.0), "c": method("c", 4.0)}
    warmup, times = timing.time_methods(methods, rounds=3)
    assert warmup == {"a": 1.0, "b": 2.0, "c": 4.0}
    # Warm-up in order, then each round starts one method further along.
    assert calls == list("abc") + list("abc") + list("bca") + list("cab")
    assert times == {"a": [1.0] * 3, "b": [2.0] * 3, "c": [4.0] * 3}
    assert timing.median_ratio([1.0, 3.0, 10.0], [1.0, 1.0, 2.0]) == 3.0
    summary = timing.summarize({"a": [1.0, 2.0, 4.0]}, num_samples=100)
    assert summary["a"]["median_seconds"] == 2.0
    assert summary["a"]["samples_per_second"] == 50.0


def test_epoch_timer_records_each_epoch():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    timer = timing.EpochTimer()
    model.fit(np.zeros((8, 2)), np.zeros((8, 1)), epochs=3, verbose=0, callbacks=[timer])
    model.predict(np.zeros((8, 2)), verbose=0, callbacks=[timer])
    assert len(timer.times) == 4 and all(t > 0 for t in timer.times)


def test_feature_term_row(rng):
    teacher = throughput.mlp_teacher(32)
    x = rng.normal(size=(64, 64)).astype("float32")
    y = rng.integers(0, 10, size=64).astype("int32")
    methods, models = throughput.make_methods(
        teacher, throughput.mlp_student().get_weights(), x, y, 32)
    name = "kd_keras.Distiller + 1 feature term"
    assert methods[name]() > 0  # one epoch runs
    (projection,) = models["feature"].projections
    assert tuple(projection.inner.kernel.shape) == (128, 32)
    assert models["feature"].student.count_params() == models["plain"].count_params()
    times = {method: [1.0, 2.0, 4.0] for method in methods}
    times[name] = [1.5, 3.0, 4.4]
    ratios = throughput.paired_ratios(times)
    assert ratios["kd_keras + 1 feature term / kd_keras (logits only)"] == 1.5


def test_same_settings_pairs_and_the_teacher_only_floor(rng):
    teacher = throughput.mlp_teacher(32)
    x = rng.normal(size=(64, 64)).astype("float32")
    y = rng.integers(0, 10, size=64).astype("int32")
    methods, _ = throughput.make_methods(
        teacher, throughput.mlp_student().get_weights(), x, y, 32,
        steps_per_execution=2)
    pairs = [("kd_keras.Distiller" + s, "keras.distillation.Distiller" + s)
             for s in ("", ", jit_compile=True", ", steps_per_execution=2")]
    assert all(a in methods and b in methods for a, b in pairs)
    assert methods[throughput.TEACHER_ONLY]() > 0  # one epoch runs
    times = {method: [1.0, 2.0, 4.0] for method in methods}
    times["kd_keras.Distiller, steps_per_execution=2"] = [0.5, 1.0, 2.0]
    times[throughput.TEACHER_ONLY] = [0.9, 1.8, 3.2]
    ratios = throughput.paired_ratios(times, steps_per_execution=2)
    assert ratios["kd_keras / keras.distillation, both, steps_per_execution=2"] == 0.5
    assert ratios["kd_keras / keras.distillation, both, jit_compile=True"] == 1.0
    assert ratios["teacher forward only / keras.distillation"] == 0.9


def test_the_cached_row_trains_from_the_teacher_output_cache(rng, tmp_path):
    import kd_keras

    teacher = throughput.mlp_teacher(32)
    x = rng.normal(size=(64, 64)).astype("float32")
    y = rng.integers(0, 10, size=64).astype("int32")
    cache = kd_keras.cache.cache_teacher_outputs(teacher, x, str(tmp_path), verbose=0)
    np.testing.assert_allclose(cache.logits(), teacher.predict(x, verbose=0), atol=1e-6)
    methods, models = throughput.make_methods(
        teacher, throughput.mlp_student().get_weights(), x, y, 32, cache=cache)
    assert models["cached"].teacher is None  # the logits come from the batches
    before = [w.copy() for w in models["cached"].student.get_weights()]
    assert methods[throughput.CACHED]() > 0  # one epoch runs and trains the student
    assert any(not np.array_equal(a, b)
               for a, b in zip(before, models["cached"].student.get_weights()))
    times = {method: [1.0, 2.0, 4.0] for method in methods}
    times[throughput.CACHED] = [0.5, 0.5, 1.0]
    ratios = throughput.paired_ratios(times)
    assert ratios["kd_keras from the cache / keras.distillation"] == 0.25
    no_cache, _ = throughput.make_methods(
        teacher, throughput.mlp_student().get_weights(), x, y, 32)
    assert throughput.CACHED not in no_cache
