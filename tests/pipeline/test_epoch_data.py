"""`epoch_data.epoch_shuffled_dataset`: which rows each epoch sees."""

import numpy as np
import pytest
import tensorflow as tf

from kd_keras.pipeline.epoch_data import epoch_rows
from kd_keras.pipeline.epoch_data import epoch_shuffled_dataset


def _epoch(ds, epoch_variable, epoch):
    epoch_variable.assign(epoch)
    xs, ys = zip(*[(x.numpy(), y["t"].numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


def test_every_row_every_epoch_without_views():
    epoch = tf.Variable(0, dtype=tf.int64)
    x = np.arange(10) * 7
    ds = epoch_shuffled_dataset(x, {"t": np.arange(10)}, 4, 3, epoch)
    first, _ = _epoch(ds, epoch, 0)
    second, _ = _epoch(ds, epoch, 1)
    assert sorted(first) == sorted(second) == list(x)
    assert list(first) != list(second)  # reshuffled per epoch


@pytest.mark.parametrize("views", [1, 3])
def test_per_epoch_views_take_the_originals_and_one_fresh_copy(views):
    n = 5  # originals; copy k of original i is row k * n + i
    epoch = tf.Variable(0, dtype=tf.int64)
    rows = np.arange(n * (views + 1))
    x, t = rows * 10, rows + 100  # inputs and targets stay paired
    ds = epoch_shuffled_dataset(x, {"t": t}, 3, 0, epoch, views=views)
    for e in range(2 * views + 1):
        got_x, got_t = _epoch(ds, epoch, e)
        copy = e % views + 1
        expected = list(range(n)) + list(range(copy * n, (copy + 1) * n))
        assert sorted(got_x // 10) == expected
        np.testing.assert_array_equal(got_t, got_x // 10 + 100)


def test_views_must_divide_the_rows():
    with pytest.raises(ValueError, match="7 rows are not 3 equal blocks"):
        epoch_rows(7, 2, 0)
