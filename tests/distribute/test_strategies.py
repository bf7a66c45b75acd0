"""The Distiller gives the single-device result under tf.distribute."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.distribute import setup_case

HERE = os.path.dirname(os.path.abspath(__file__))


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


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_mirrored_strategy_matches_single_device(
        single_device, tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    repo = os.path.dirname(os.path.dirname(HERE))
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({
            "cluster": {"worker": workers},
            "task": {"type": "worker", "index": index}}),
            PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""),
            TF_CPP_MIN_LOG_LEVEL="2")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(HERE, "mwms_worker.py"),
             str(tmp_path / f"worker{index}.npz")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        try:
            out, _ = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, out.decode()[-3000:]
    for index in range(2):
        result = np.load(tmp_path / f"worker{index}.npz")
        assert int(result["replicas"]) == 2
        weights = [result[f"arr_{i}"] for i in range(4)]
        history = json.loads(str(result["history"]))
        assert_same((weights, history), single_device)
