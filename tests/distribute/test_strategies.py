"""The Distiller gives the single-device result under tf.distribute."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.distribute import cluster
from tests.distribute import setup_case


@pytest.fixture(scope="module")
def single_device():
    return setup_case.train(tf.distribute.get_strategy())


def assert_same(result, reference):
    weights, history = result
    ref_weights, ref_history = reference
    for got, want in zip(weights, ref_weights):
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert set(history) == set(ref_history) == {
        "loss", "student_loss", "distillation_loss",
        "sparse_categorical_accuracy"}
    for key in ref_history:
        np.testing.assert_allclose(history[key], ref_history[key], atol=1e-4)


def test_mirrored_strategy_matches_single_device(single_device):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2
    strategy = tf.distribute.MirroredStrategy(devices)
    assert strategy.num_replicas_in_sync == 2
    assert_same(setup_case.train(strategy), single_device)


@pytest.mark.slow
def test_multi_worker_mirrored_strategy_matches_single_device(
        single_device, tmp_path):
    results = cluster.run_workers(
        "mwms_worker.py", lambda index: [str(tmp_path / f"worker{index}.npz")])
    for returncode, out in results:
        assert returncode == 0, out[-3000:]
    for index in range(2):
        result = np.load(tmp_path / f"worker{index}.npz")
        assert int(result["replicas"]) == 2
        weights = [result[f"arr_{i}"] for i in range(4)]
        history = json.loads(str(result["history"]))
        assert_same((weights, history), single_device)
