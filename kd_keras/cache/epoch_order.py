"""The rows each training epoch sees, in an order fixed by `(seed, epoch)`.

A `tf.data` shuffle buffer draws a new order every epoch from its own
state, so a `fit` that stops and resumes sees other batches than one that
ran through. Here the order of epoch `e` is
`stateless_shuffle(rows, seed=[seed, e])`, where `e` is read from a
`tf.Variable` that `kd_keras.callbacks.EpochCounter` sets at the start of
each epoch: a resumed run sees exactly the batches of an uninterrupted
one. The order is one int64 tensor of row numbers, so it costs 8 bytes a
row, not a buffer of elements.

With `views` (`distill.augment.per_epoch`) the rows are the originals
followed by `views` equal blocks of perturbed copies, and each epoch takes
the originals plus one copy (`epoch_rows`).

`index_batches` gives the row numbers batch by batch; the cache's dataset
(`kd_keras.cache.dataset.make_dataset(epoch=...)`) and the CLI's baseline
gather their examples by them.
"""

import tensorflow as tf

from kd_keras.errors import UsageError


def epoch_rows(n, views, epoch):
    """The rows one epoch trains on, before shuffling.

    Args:
        n: the number of rows, `views + 1` equal blocks when `views` is set:
            the original examples, then each perturbed copy of them.
        views: `None` (every row, every epoch) or the number of copies.
        epoch: the epoch (an int or an int64 tensor).

    Returns:
        An int64 tensor: `0..n-1`, or the originals plus copy
        `epoch % views + 1`.

    Example:

    >>> [int(i) for i in epoch_rows(6, 2, 1)]
    [0, 1, 4, 5]
    """
    rows = tf.range(n, dtype=tf.int64)
    if views is None:
        return rows
    if n % (views + 1):
        raise UsageError(f"views: {n} rows are not {views + 1} equal blocks")
    block = n // (views + 1)
    view = tf.math.floormod(tf.cast(epoch, tf.int64), views) + 1
    return tf.concat([rows[:block], view * block + rows[:block]], 0)


def index_batches(n, batch_size, epoch, seed=0, shuffle=True, views=None,
                  drop_remainder=False):
    """Batches of row numbers whose order depends only on `(seed, epoch)`.

    Args:
        n: the number of rows.
        batch_size: rows per batch.
        epoch: an int64 `tf.Variable` holding the epoch (set by
            `kd_keras.callbacks.EpochCounter`), read each time the dataset
            is iterated.
        seed: the shuffle seed.
        shuffle: shuffle the rows; with `False` they come in order.
        views: `None`, or the number of perturbed copies that follow the
            originals (`epoch_rows`).
        drop_remainder: drop the last, smaller batch.

    Returns:
        A `tf.data.Dataset` of int64 vectors.

    Example:

    >>> epoch = tf.Variable(0, dtype=tf.int64)
    >>> first = [b.numpy().tolist() for b in index_batches(6, 4, epoch, seed=1)]
    >>> again = [b.numpy().tolist() for b in index_batches(6, 4, epoch, seed=1)]
    >>> first == again, sorted(sum(first, []))
    (True, [0, 1, 2, 3, 4, 5])
    """
    epoch_rows(n, views, 0)  # Refuses a layout that is not equal blocks.

    def order(_):
        rows = epoch_rows(n, views, epoch)
        if not shuffle:
            return rows
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        return tf.random.experimental.stateless_shuffle(rows, seed=key)

    return (tf.data.Dataset.range(1).map(order).unbatch()
            .batch(batch_size, drop_remainder=drop_remainder))
