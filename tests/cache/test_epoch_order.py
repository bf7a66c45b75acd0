"""`epoch_order`, and the cache's dataset with `epoch=`: which rows each
epoch sees, in which order, and that every row keeps its own teacher
outputs."""

import numpy as np
import pytest
import tensorflow as tf

from kd_keras.cache import save_teacher_outputs
from kd_keras.cache.epoch_order import epoch_rows
from kd_keras.cache.epoch_order import index_batches
from kd_keras.errors import UsageError


def _rows(ds, epoch_variable, epoch):
    epoch_variable.assign(epoch)
    return np.concatenate([b.numpy() for b in ds])


def test_every_row_every_epoch_in_the_stateless_order():
    epoch = tf.Variable(0, dtype=tf.int64)
    ds = index_batches(10, 4, epoch, seed=3)
    first, second = _rows(ds, epoch, 0), _rows(ds, epoch, 1)
    assert sorted(first) == sorted(second) == list(range(10))
    assert list(first) != list(second)  # reshuffled per epoch
    for e, got in ((0, first), (1, second)):  # the order is a function of (seed, epoch)
        expected = tf.random.experimental.stateless_shuffle(
            tf.range(10, dtype=tf.int64), seed=[3, e]).numpy()
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(_rows(ds, epoch, 0), first)  # a resumed epoch 0


@pytest.mark.parametrize("views", [1, 3])
def test_per_epoch_views_take_the_originals_and_one_fresh_copy(views):
    n = 5  # originals; copy k of original i is row k * n + i
    epoch = tf.Variable(0, dtype=tf.int64)
    ds = index_batches(n * (views + 1), 3, epoch, seed=0, views=views)
    for e in range(2 * views + 1):
        copy = e % views + 1
        expected = list(range(n)) + list(range(copy * n, (copy + 1) * n))
        assert sorted(_rows(ds, epoch, e)) == expected


def test_views_must_divide_the_rows():
    with pytest.raises(UsageError, match="7 rows are not 3 equal blocks"):
        epoch_rows(7, 2, 0)


def test_cache_dataset_in_epoch_order_keeps_each_row_with_its_outputs(tmp_path):
    n, views = 12, 2
    x = np.arange(n, dtype=np.int32)[:, None] * 10
    logits = np.stack([np.arange(n), -np.arange(n)], 1).astype(np.float32)
    pooled = np.arange(n, dtype=np.float32)[:, None] + np.zeros((1, 3), np.float32)
    cache = save_teacher_outputs(tmp_path, x, logits, "t", features={"p": pooled},
                                 shard_size=5)
    y = np.arange(n) % 2
    epoch = tf.Variable(0, dtype=tf.int64)
    ds = cache.as_dataset(x, y, batch_size=3, shuffle=True, seed=7, epoch=epoch,
                          views=views, verify=False)
    for e in range(3):
        epoch.assign(e)
        rows = []
        for xb, targets in ds:
            row = xb.numpy()[:, 0] // 10
            np.testing.assert_array_equal(targets["labels"].numpy(), row % 2)
            np.testing.assert_array_equal(targets["teacher_logits"].numpy(), logits[row])
            np.testing.assert_array_equal(targets["teacher_features"]["p"].numpy(),
                                          pooled[row])
            rows.extend(row)
        expected = tf.random.experimental.stateless_shuffle(
            epoch_rows(n, views, e), seed=[7, e]).numpy()
        np.testing.assert_array_equal(rows, expected)


def test_epoch_order_needs_array_inputs(tmp_path):
    x = np.zeros((4, 2), np.float32)
    cache = save_teacher_outputs(tmp_path, x, np.zeros((4, 2)), "t")
    epoch = tf.Variable(0, dtype=tf.int64)
    with pytest.raises(UsageError, match="epoch: orders array inputs; x is a tf.data"):
        cache.as_dataset(tf.data.Dataset.from_tensor_slices(x), epoch=epoch, verify=False)
    with pytest.raises(UsageError, match="views: needs epoch"):
        cache.as_dataset(x, views=1, verify=False)
