"""The `distribute: {engine: ray}` switch: validation, a missing Ray, and a
cluster that cannot be reached (fast, one line, nothing written)."""

import os
import sys
import time

import numpy as np
import pytest

from kd_keras.config import parse_config
from kd_keras.distribute import RayCluster
from kd_keras.distribute import ray_cache_teacher_outputs
from kd_keras.errors import ConfigError
from kd_keras.errors import MissingDependencyError
from kd_keras.errors import UsageError
from tests.distribute.cluster import free_ports

BASE = {"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"}}


def _config(**distribute):
    return parse_config(dict(BASE, distribute=distribute))


def test_the_config_switch_and_its_python_equivalent():
    cfg = _config(engine="ray", address="ray://head:10001", workers=4, cpus_per_worker=2,
                  gpus_per_worker=0.5)
    assert RayCluster.from_config(cfg.distribute) == RayCluster(
        address="ray://head:10001", workers=4, cpus_per_worker=2, gpus_per_worker=0.5)
    assert _config().distribute.engine == "local"


@pytest.mark.parametrize("key, value, message", [
    ("engine", "spark", "distribute.engine: must be one of local, ray, got 'spark'"),
    ("workers", 0, "distribute.workers: must be a positive integer, got 0"),
    ("cpus_per_worker", 0, "distribute.cpus_per_worker: must be a positive number, got 0"),
    ("gpus_per_worker", -1, "distribute.gpus_per_worker: must be a non-negative number, got -1"),
    ("address", "head:99999", "distribute.address: must be"),
])
def test_bad_distribute_values_are_one_line(key, value, message):
    with pytest.raises(ConfigError) as info:
        _config(**{"engine": "ray", key: value})
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_without_ray_the_engine_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # As if Ray were not installed.
    with pytest.raises(MissingDependencyError,
                       match=r'^distribute.engine: ray needs ray: pip install "kd_keras\[ray\]"$'):
        ray_cache_teacher_outputs(lambda: None, np.zeros((4, 2), "float32"), tmp_path / "c",
                                  cluster=RayCluster(), fingerprint="f")
    assert not os.path.exists(tmp_path / "c")


def _unreachable():
    return f"127.0.0.1:{free_ports(1)[0]}"  # Nothing listens there.


def test_an_unreachable_address_fails_fast_and_writes_nothing(tmp_path):
    ray = pytest.importorskip("ray")
    ray.shutdown()
    address = _unreachable()
    start = time.monotonic()
    with pytest.raises(UsageError) as info:
        ray_cache_teacher_outputs(lambda: None, np.zeros((4, 2), "float32"), tmp_path / "c",
                                  cluster=RayCluster(address=address), fingerprint="f")
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert message.startswith(f"distribute.address: cannot reach a Ray cluster at {address}")
    assert "\n" not in message and not ray.is_initialized()
    assert not os.path.exists(tmp_path / "c")


@pytest.mark.slow
def test_a_run_whose_ray_address_is_unreachable_leaves_nothing(tmp_path):
    """The whole `kd-keras distill`: exit 2, one line, within 30 s, no output."""
    import subprocess

    import yaml

    from tests.pipeline import resume_helpers as rh

    pytest.importorskip("ray")
    rh.write_tsv(tmp_path / "train.tsv", rh.sentences(40, seed=0))
    rh.write_tsv(tmp_path / "test.tsv", rh.sentences(10, seed=1))
    import keras

    from kd_keras.data import WordPieceEncoder
    from kd_keras.teachers import minilm_dir

    vocab = WordPieceEncoder(os.path.join(minilm_dir(), "vocab.txt"), 12).vocab_size
    keras.Sequential([keras.Input((12,), dtype="int32"), keras.layers.Embedding(vocab, 4),
                      keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)]
                     ).save(str(tmp_path / "teacher.keras"))
    config = tmp_path / "run.yaml"
    rh.write_config(config, str(tmp_path), {"model": str(tmp_path / "teacher.keras")},
                    str(tmp_path / "out"), export=None,
                    distribute={"engine": "ray", "address": _unreachable()},
                    student={"architecture": "text_cnn", "sequence_length": 12},
                    distill={"epochs": 1, "batch_size": 16, "baseline": False})
    with open(config) as f:
        assert yaml.safe_load(f)["distribute"]["engine"] == "ray"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "kd_keras", "distill", str(config)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    elapsed = time.monotonic() - start
    errors = [line for line in proc.stderr.splitlines() if "distribute.address" in line]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and errors[0].endswith("or use address: auto")
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.partial")
    assert elapsed < 120  # The process; the connection attempt itself is bounded above.
