"""The teacher cache built on Ray Data equals the in-process one."""

import filecmp
import os

import keras
import numpy as np
import pytest

from kd_keras.cache import cache_teacher_outputs
from kd_keras.cache import load
from kd_keras.errors import UsageError
from tests.distribute import ray_faults

ray = pytest.importorskip("ray")

from kd_keras.distribute import RayCluster  # noqa: E402
from kd_keras.distribute import ray_cache_teacher_outputs  # noqa: E402

pytestmark = pytest.mark.slow
CLUSTER = RayCluster(workers=2, cpus_per_worker=1)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


def _teacher():
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((6,), name="x"),
                             keras.layers.Dense(16, activation="relu", name="hidden"),
                             keras.layers.Dense(4, name="logits")], name="teacher")


def _x(n=700):
    return np.random.default_rng(0).normal(size=(n, 6)).astype("float32")


def _same_files(a, b):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    assert "metadata.json" in names and len(names) == 1 + 6  # 700 rows / 128 -> 6 shards
    for name in names:
        assert filecmp.cmp(os.path.join(a, name), os.path.join(b, name), shallow=False), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The in-process cache and, independently, the teacher's logits."""
    folder = tmp_path_factory.mktemp("local")
    teacher, x = _teacher(), _x()
    cache_teacher_outputs(teacher, x, folder, batch_size=50, shard_size=128, verbose=0)
    return str(folder), np.asarray(teacher.predict(x, verbose=0), np.float64)


def test_ray_cache_equals_the_in_process_cache_and_skips_verified_shards(tmp_path, reference):
    folder, logits = reference
    teacher = _teacher()
    cache = ray_cache_teacher_outputs(teacher, _x(), tmp_path, cluster=CLUSTER,
                                      batch_size=50, shard_size=128, verbose=0)
    _same_files(folder, tmp_path)
    np.testing.assert_allclose(cache.logits(), logits, atol=1e-5)
    assert load(tmp_path).metadata == load(folder).metadata
    # A rerun rewrites only the shard whose file was damaged.
    stamps = {n: os.stat(tmp_path / n).st_mtime_ns for n in os.listdir(tmp_path)}
    with open(tmp_path / "logits-00003.npy", "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\0\0\0\0")
    reports = []
    ray_cache_teacher_outputs(teacher, _x(), tmp_path, cluster=CLUSTER, batch_size=50,
                              shard_size=128, verbose=0, on_shard=reports.append)
    assert [r.result.shard.index for r in reports] == [3]
    _same_files(folder, tmp_path)
    for name, stamp in stamps.items():
        if name not in ("logits-00003.npy", "metadata.json"):
            assert os.stat(tmp_path / name).st_mtime_ns == stamp, name


def test_an_actor_that_dies_mid_build_still_gives_the_identical_cache(tmp_path, reference):
    folder, _ = reference
    marker = str(tmp_path / "died")
    teacher = ray_faults.DyingTeacher(_teacher(), marker, die_at=4)
    out = tmp_path / "cache"
    ray_cache_teacher_outputs(teacher, _x(), out, cluster=CLUSTER, batch_size=50,
                              shard_size=128, verbose=0)
    assert os.path.exists(marker)  # An actor did die.
    _same_files(folder, out)


def test_a_teacher_loaded_per_actor_must_match_the_fingerprint(tmp_path):
    path = str(tmp_path / "t.keras")
    _teacher().save(path)
    import functools

    from kd_keras.teachers import load_teacher

    out = tmp_path / "cache"
    with pytest.raises(UsageError, match=r"^teacher: the copy loaded on a Ray worker differs "
                                         r"from the driver's .*same teacher files$"):
        ray_cache_teacher_outputs(functools.partial(load_teacher, path), _x(200), out,
                                  cluster=CLUSTER, shard_size=128, verbose=0,
                                  fingerprint="0" * 64)
