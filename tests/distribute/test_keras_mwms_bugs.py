"""Plain Keras still needs `kd_keras.distillation.replicas` under
`MultiWorkerMirroredStrategy`.

Each case runs a plain `keras.Sequential` in a local 2-worker cluster and
asserts that Keras still fails the way the workaround module documents. When
one of these tests fails, Keras has fixed that bug: delete the matching
workaround (and this test) instead of updating the expected error.
"""

import json

import pytest

from tests.distribute import cluster

DELETE_HINT = (
    "Keras no longer fails as kd_keras/distillation/replicas.py says "
    "({}): delete that workaround and this test. Worker results: {}")


def run_case(case, tmp_path):
    outputs = [str(tmp_path / f"{case}{index}.json") for index in range(2)]
    results = cluster.run_workers(
        "keras_bug_worker.py", lambda index: [case, outputs[index]])
    for returncode, out in results:
        assert returncode == 0, out[-3000:]
    reports = []
    for path in outputs:
        with open(path) as f:
            reports.append(json.load(f))
    assert all(r["replicas"] == 2 for r in reports), reports
    return reports


@pytest.mark.slow
def test_keras_symbolic_build_still_fails_on_collective_batches(tmp_path):
    reports = run_case("build", tmp_path)
    hint = DELETE_HINT.format("fix 1, DistributedFitMixin", reports)
    for report in reports:
        error = report["error"] or ""
        assert error.startswith("ValueError: Attempt to convert a value "
                                "(PerReplica"), hint
        assert "with an unsupported type" in error, hint


@pytest.mark.slow
def test_keras_log_reduction_still_fails_on_scalars(tmp_path):
    reports = run_case("logs", tmp_path)
    hint = DELETE_HINT.format("fix 2, per_replica_logs", reports)
    for report in reports:
        error = report["error"] or ""
        assert error.startswith("ValueError: Invalid reduction dimension 0 "
                                "for input with 0 dimensions"), hint
