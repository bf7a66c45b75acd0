"""Runs worker scripts as a local `MultiWorkerMirroredStrategy` cluster:
one process per worker, `TF_CONFIG` on loopback ports."""

import json
import os
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def free_ports(n):
    """Returns `n` free TCP ports on 127.0.0.1."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(script, args_of, workers=2, timeout=240):
    """Runs `script` once per worker and waits for all of them.

    Args:
        script: a file name in this folder, or a module to run as
            `python -m` (a name with no `.py`, e.g. `"kd_keras"`).
        args_of: `fn(index)` returning the worker's command-line arguments.
        workers: the cluster's size.
        timeout: seconds to wait for each worker.

    Returns:
        Each worker's `(returncode, output)`.
    """
    addresses = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    procs = []
    for index in range(workers):
        env = dict(os.environ, TF_CONFIG=json.dumps({
            "cluster": {"worker": addresses},
            "task": {"type": "worker", "index": index}}),
            PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""),
            TF_CPP_MIN_LOG_LEVEL="2")
        procs.append(subprocess.Popen(
            [sys.executable, *(["-m", script] if not script.endswith(".py")
                               else [os.path.join(HERE, script)]), *args_of(index)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    results = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        results.append((p.returncode, out.decode(errors="replace")))
    return results
