import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from kd_keras.cache import cache_teacher_outputs
from kd_keras.cache import load
from kd_keras.cache import metadata
from kd_keras.cache import metadata_reader
from kd_keras.cache import store

from .cache_helpers import LinearTeacher
from .cache_helpers import make_inputs


@pytest.fixture
def built(tmp_path):
    teacher, x = LinearTeacher(), make_inputs(75)
    cache_teacher_outputs(teacher, x, str(tmp_path), batch_size=10, shard_size=20, verbose=0)
    return load(tmp_path), teacher, x


def test_gather_any_order_and_ranges(built):
    cache, teacher, x = built
    assert len(cache) == 75 and "75 examples, 3 classes" in repr(cache)
    idx = np.random.default_rng(0).permutation(75)[:33]
    np.testing.assert_allclose(cache.gather(idx), teacher.reference(x[idx]), atol=1e-6)
    np.testing.assert_allclose(cache.logits(18, 43), teacher.reference(x[18:43]), atol=1e-6)
    np.testing.assert_allclose(cache.shard_logits(3), teacher.reference(x[60:]), atol=1e-6)
    assert cache.gather([]).shape == (0, 3)
    with pytest.raises(IndexError, match="75 examples"):
        cache.gather([75])


def test_check_inputs_streams_datasets(built):
    cache, _, x = built
    cache.check_inputs(tf.data.Dataset.from_tensor_slices(x))
    unsized = tf.data.Dataset.from_tensor_slices(x).filter(lambda _: True)
    cache.check_inputs(unsized)
    with pytest.raises(ValueError, match="x: has fewer"):
        cache.check_inputs(unsized.take(70))
    with pytest.raises(ValueError, match="x: has more"):
        cache.check_inputs(unsized.concatenate(unsized.take(30)))
    with pytest.raises(ValueError, match="examples 40..59 differ"):
        cache.check_inputs(np.concatenate([x[:40], x[40:60] + 1, x[60:]]))


def test_incomplete_cache_is_not_opened(built, tmp_path):
    meta = metadata_reader.read(str(tmp_path))
    store.write_metadata(str(tmp_path), dataclasses.replace(meta, complete=False))
    with pytest.raises(ValueError, match="incomplete .*resume"):
        load(tmp_path)
