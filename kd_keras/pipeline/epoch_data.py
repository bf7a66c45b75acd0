"""The rows each training epoch sees, in an order fixed by `(seed, epoch)`.

`epoch_shuffled_dataset` makes the `tf.data.Dataset` both student trainings
read (`training_stage.train_student`): its order is
`stateless_shuffle(seed=[seed, epoch])`, so a resumed run sees the same
batches as an uninterrupted one. With `distill.augment.per_epoch` the
training rows are the originals followed by equal blocks of perturbed
copies, and each epoch takes the originals plus one copy (`epoch_rows`).
"""

import tensorflow as tf


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
        raise ValueError(f"views: {n} rows are not {views + 1} equal blocks")
    block = n // (views + 1)
    view = tf.math.floormod(tf.cast(epoch, tf.int64), views) + 1
    return tf.concat([rows[:block], view * block + rows[:block]], 0)


def epoch_shuffled_dataset(x, targets, batch_size, seed, epoch_variable, views=None):
    """Batches of `(x, targets)` in an order that depends only on
    `(seed, epoch)`.

    Args:
        x: an array of inputs.
        targets: an array or a dict of arrays (one row per example).
        batch_size: the global batch size.
        seed: the shuffle seed.
        epoch_variable: an int64 `tf.Variable` holding the epoch.
        views: `None`, or the number of perturbed copies that follow the
            originals in `x` (`distill.augment.per_epoch`): each epoch then
            takes the originals and one copy (`epoch_rows`).

    Returns:
        A `tf.data.Dataset`.
    """
    n = len(x)
    x = tf.constant(x)
    targets = tf.nest.map_structure(tf.constant, targets)
    epoch_rows(n, views, 0)  # Refuses a layout that is not equal blocks.

    def order(_):
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch_variable, tf.int64)])
        rows = epoch_rows(n, views, epoch_variable)
        return tf.random.experimental.stateless_shuffle(rows, seed=key)

    def gather(idx):
        return tf.gather(x, idx), tf.nest.map_structure(lambda t: tf.gather(t, idx), targets)

    ds = tf.data.Dataset.range(1).map(order).unbatch().batch(batch_size).map(gather)
    return ds.prefetch(2)
