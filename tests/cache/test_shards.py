"""The public build steps (`kd_keras.cache.shards`) give the same cache as
`cache_teacher_outputs`, whatever order the shards are written in."""

import json
import os

import numpy as np
import pytest

from kd_keras.cache import cache_teacher_outputs
from kd_keras.cache import load
from kd_keras.cache import shards
from kd_keras.errors import DataError
from kd_keras.errors import UsageError

from .cache_helpers import LinearTeacher
from .cache_helpers import make_inputs

X = make_inputs(100)


@pytest.mark.parametrize("count, size", [(100, 32), (64, 32), (1, 5), (7, 1)])
def test_shard_ranges_cover_every_row_once(count, size):
    ranges = shards.shard_ranges(count, size)
    rows = np.concatenate([np.arange(a, b) for a, b in ranges])
    np.testing.assert_array_equal(rows, np.arange(count))
    assert all(b - a == size for a, b in ranges[:-1]) and 0 < ranges[-1][1] - ranges[-1][0] <= size


def test_out_of_order_shards_equal_the_one_process_build(tmp_path):
    teacher = LinearTeacher(num_classes=4)
    reference = cache_teacher_outputs(teacher, X, str(tmp_path / "ref"), shard_size=32,
                                      verbose=0)
    d = str(tmp_path / "parts")
    m = shards.start_build(d, teacher.fingerprint(), 32)
    ranges = shards.shard_ranges(len(X), m.shard_size)
    results = [shards.write_shard(d, i, X[a:b], teacher.reference(X[a:b]))
               for i, (a, b) in reversed(list(enumerate(ranges)))]  # As workers finish.
    for result in results:
        m = shards.record_shard(d, m, result)
    with pytest.raises(DataError, match="incomplete cache"):
        load(d)
    m = shards.finalize(d, m)
    assert m == reference.metadata
    assert sorted(os.listdir(d)) == sorted(os.listdir(tmp_path / "ref"))
    for name in os.listdir(d):
        assert (tmp_path / "parts" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    np.testing.assert_array_equal(load(d).logits(), reference.logits())


def test_a_killed_distributed_build_resumes_with_the_missing_shard(tmp_path):
    teacher, d = LinearTeacher(), str(tmp_path)
    m = shards.start_build(d, teacher.fingerprint(), 32)
    for i in (0, 2, 3):  # Shard 1 never finished.
        a, b = shards.shard_ranges(len(X), 32)[i]
        m = shards.record_shard(d, m, shards.write_shard(d, i, X[a:b], teacher.reference(X[a:b])))
    assert [s["index"] for s in json.load(open(os.path.join(d, "metadata.json")))["shards"]] == [0, 2, 3]
    with pytest.raises(UsageError, match=r"cannot finalize: shards \[1\] are not recorded"):
        shards.finalize(d, m)
    resumed = LinearTeacher()
    cache = cache_teacher_outputs(resumed, X, d, batch_size=16, shard_size=32, verbose=0)
    assert resumed.calls == 2  # Shard 1 only: 32 examples, 16 a call.
    np.testing.assert_allclose(cache.logits(), teacher.reference(X), atol=1e-6)


def test_record_refuses_a_shard_that_does_not_fit(tmp_path):
    teacher, d = LinearTeacher(), str(tmp_path)
    m = shards.start_build(d, teacher.fingerprint(), 32)
    m = shards.record_shard(d, m, shards.write_shard(d, 0, X[:32], teacher.reference(X[:32])))
    other_classes = shards.write_shard(d, 1, X[32:64], np.zeros((32, 5), np.float32))
    with pytest.raises(UsageError, match=r"shard 1: the teacher returned 5 classes; the cache holds 3"):
        shards.record_shard(d, m, other_classes)
    other_spec = shards.write_shard(d, 1, X[32:64, :2], teacher.reference(X[32:64]))
    with pytest.raises(UsageError, match=r"shard 1: input spec .* differs"):
        shards.record_shard(d, m, other_spec)
    with pytest.raises(UsageError, match=r"^logits: shape \[3, 3\] for 32 rows"):
        shards.write_shard(d, 1, X[32:64], np.zeros((3, 3)))
    with pytest.raises(UsageError, match=r"^index: must be a non-negative integer, got -1"):
        shards.write_shard(d, -1, X[:32], teacher.reference(X[:32]))
