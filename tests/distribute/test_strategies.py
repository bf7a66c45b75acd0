"""The Distiller gives the single-device result under tf.distribute."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras

from tests.distribute import cluster
from tests.distribute import setup_case


KEYS = {"loss", "student_loss", "distillation_loss",
        "sparse_categorical_accuracy"}
_SINGLE = {}


def single_device(features):
    """The single-device result (computed once per case)."""
    if features not in _SINGLE:
        _SINGLE[features] = setup_case.train(tf.distribute.get_strategy(),
                                             features=features)
    return _SINGLE[features]


def assert_same(result, reference, features):
    weights, history = result
    ref_weights, ref_history = reference
    assert len(weights) == len(ref_weights) == (6 if features else 4)
    for got, want in zip(weights, ref_weights):
        np.testing.assert_allclose(got, want, atol=1e-5)
    keys = KEYS | set(setup_case.FEATURE_KEYS if features else ())
    assert set(history) == set(ref_history) == keys
    for key in ref_history:
        np.testing.assert_allclose(history[key], ref_history[key], atol=1e-4)


@pytest.fixture
def mirrored(mirrored_strategy):
    return mirrored_strategy  # One per process: see tests/conftest.py.


@pytest.mark.parametrize("features", [False, True],
                         ids=["logits", "features"])
def test_mirrored_strategy_matches_single_device(mirrored, features):
    assert_same(setup_case.train(mirrored, features=features),
                single_device(features), features)


def test_a_first_batch_that_splits_unevenly_over_replicas(mirrored):
    # 15 examples on 2 replicas are 8 and 7: Keras's build from the mean of
    # the replicas' batches failed ("Inputs to operation AddN ... [8,6] !=
    # [7,6]").
    reference = setup_case.train(tf.distribute.get_strategy(), batch=15)
    assert_same(setup_case.train(mirrored, batch=15), reference, False)


@pytest.mark.slow
@pytest.mark.parametrize("features", [False, True],
                         ids=["logits", "features"])
def test_multi_worker_mirrored_strategy_matches_single_device(
        features, tmp_path):
    extra = ["features"] if features else []
    results = cluster.run_workers(
        "mwms_worker.py",
        lambda index: [str(tmp_path / f"worker{index}.npz"), *extra])
    for returncode, out in results:
        assert returncode == 0, out[-3000:]
    for index in range(2):
        result = np.load(tmp_path / f"worker{index}.npz")
        assert int(result["replicas"]) == 2
        weights = [result[f"arr_{i}"] for i in range(int(result["count"]))]
        history = json.loads(str(result["history"]))
        assert_same((weights, history), single_device(features), features)


def train_from_cached_features(strategy, prebuilt=False):
    """teacher=None: logits and features come with the data, so the
    projections are sized from the first batch (with `prebuilt`, by
    `build_for_batch`, called outside the strategy's scope, before `fit`)."""
    x, y, w = setup_case.data()
    with strategy.scope():
        online = setup_case.build_distiller(features=True)
    teacher = online.teacher
    targets = {"labels": y, "teacher_logits": teacher.predict(x, verbose=0),
               "teacher_features": {
                   key: keras.Model(teacher.inputs, teacher.get_layer(
                       key).output).predict(x, verbose=0)
                   for key in ("t_hidden", "t_logits")}}
    ds = tf.data.Dataset.from_tensor_slices((x, targets, w)).batch(
        setup_case.GLOBAL_BATCH)
    keras.utils.set_random_seed(11)
    with strategy.scope():
        distiller = kd_keras.Distiller(None, online.student,
                                       features=setup_case.feature_terms())
        assert not distiller.projections[0].built
        distiller.compile(optimizer=keras.optimizers.SGD(0.1), alpha=0.4)
    if prebuilt:  # As before restoring a checkpoint that holds the projections.
        distiller.build_for_batch(next(iter(ds)))
    history = distiller.fit(ds, epochs=1, verbose=0)
    return [v.numpy() for v in distiller.trainable_weights], history.history


@pytest.mark.slow
@pytest.mark.parametrize("prebuilt", [False, True], ids=["in_fit", "build_for_batch"])
def test_cached_features_under_mirrored_strategy(mirrored, prebuilt):
    want = train_from_cached_features(tf.distribute.get_strategy())
    got = train_from_cached_features(mirrored, prebuilt)
    assert len(got[0]) == 6
    for a, b in zip(got[0], want[0]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for key in want[1]:
        np.testing.assert_allclose(got[1][key], want[1][key], atol=1e-4)
