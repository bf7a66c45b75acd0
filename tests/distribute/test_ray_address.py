"""`distribute.address` naming a port that is open but is not Ray's: one line
within seconds, instead of `ray.init` retrying forever."""

import os
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from conftest import REPO_ROOT
from kd_keras.distribute import ray_cluster
from kd_keras.errors import UsageError


@pytest.fixture
def silent_port():
    """A port on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def other_grpc_port():
    """A gRPC server without Ray's services."""
    from concurrent import futures

    grpc = pytest.importorskip("grpc")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(None)


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_a_silent_port_is_refused_within_the_timeout(silent_port, scheme):
    ray = pytest.importorskip("ray")
    address = f"{scheme}127.0.0.1:{silent_port}"
    threads = threading.active_count()
    start = time.monotonic()
    with pytest.raises(UsageError) as info:
        ray_cluster._check_speaks_ray(address, timeout=1)
    assert time.monotonic() - start < 5
    assert str(info.value) == (
        f"distribute.address: {address} does not answer as a Ray cluster (no answer within "
        "1 s); give a head node's GCS address (HOST:6379) or ray://HOST:10001, or use "
        "address: auto")
    assert not ray.is_initialized() and threading.active_count() == threads


def test_a_server_without_ray_s_services_is_refused(other_grpc_port):
    pytest.importorskip("ray")
    with pytest.raises(UsageError, match=r"does not answer as a Ray cluster \(unimplemented\)"):
        ray_cluster._check_speaks_ray(f"127.0.0.1:{other_grpc_port}", timeout=5)


@pytest.mark.slow
def test_a_run_whose_address_is_not_ray_stops_within_30_s(silent_port, tmp_path):
    """The whole `kd-keras distill`: exit 2, one line, nothing written."""
    pytest.importorskip("ray")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"builtin": "rt_polarity", "max_examples": 50},
        "teacher": {"backbone": "minilm"},
        "distribute": {"engine": "ray", "address": f"127.0.0.1:{silent_port}"},
        "output": str(tmp_path / "out"),
        "verbose": 0,
    }))
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kd_keras", "distill", str(config)],
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    elapsed = time.monotonic() - start
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        f"kd-keras distill: error: distribute.address: 127.0.0.1:{silent_port} does not "
        "answer as a Ray cluster"), done.stderr[-3000:]
    assert elapsed < 30
    assert not os.path.exists(tmp_path / "out") and not os.path.exists(tmp_path / "out.partial")


def test_auto_checks_the_address_ray_address_names(silent_port, monkeypatch):
    """`address: auto` connects where `RAY_ADDRESS` points first."""
    ray = pytest.importorskip("ray")
    ray.shutdown()
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{silent_port}")
    start = time.monotonic()
    with pytest.raises(UsageError) as info:
        ray_cluster.connect(ray_cluster.RayCluster(), timeout=1)
    assert time.monotonic() - start < 5 and not ray.is_initialized()
    assert str(info.value) == (
        f"distribute.address: auto (RAY_ADDRESS=127.0.0.1:{silent_port}) does not answer as "
        "a Ray cluster (no answer within 1 s); set RAY_ADDRESS to a running cluster's "
        "address, or unset it")
