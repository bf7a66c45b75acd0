"""`as_dataset`: the cached logits, joined to their examples, as `tf.data`.

Each element is `(x_batch, {"labels": y_batch, "teacher_logits":
logits_batch})`, or with sample weights `(x_batch, {...}, weight_batch)`:
the offline data interface of `kd_keras.Distiller(teacher=None, ...)`.
A cache of teacher features adds `"teacher_features": {name: batch}` (in
the cache's `feature_dtype`; the Distiller computes in float32).

How the logits follow their examples:

- Array inputs (or a dict of arrays): the pipeline runs over example
  *indices*. The indices are shuffled (if asked), batched, and one NumPy
  call per batch gathers the inputs, the labels and the logits of exactly
  those indices (logits from memory-mapped shards). With `shuffle=False`
  the batches are the inputs in order, the same batches `fit(x, y,
  shuffle=False)` would see.
- A `tf.data.Dataset` of inputs: the dataset is zipped, example by example,
  with the logits read shard by shard in cache order, then shuffled with a
  buffer of `shuffle_buffer` elements (the logits travel with their
  example).

Either way only one batch (or one shard, plus the shuffle buffer) of logits
is in memory at a time: the pages a batch read are released after it
(`TeacherCache`), so training from a cache of any size holds one batch of
its values.

With `epoch=` (an int64 `tf.Variable` that `kd_keras.callbacks.
EpochCounter` sets), array inputs come in an order fixed by `(seed,
epoch)` (`kd_keras.cache.epoch_order`): a resumed `fit` sees exactly the
batches of an uninterrupted one, and the order costs 8 bytes a row instead
of a shuffle buffer. This is how `kd-keras distill` trains.
"""

import numpy as np
import tensorflow as tf

from kd_keras.cache.epoch_order import index_batches
from kd_keras.cache.inputs import Inputs
from kd_keras.distillation.targets import LABELS_KEY
from kd_keras.distillation.targets import TEACHER_FEATURES_KEY
from kd_keras.distillation.targets import TEACHER_LOGITS_KEY
from kd_keras.errors import UsageError
from kd_keras.number_checks import is_int


def _per_example(name, value, count):
    if value is None:
        return None
    if isinstance(value, tf.data.Dataset):
        return value
    value = np.asarray(value)
    if value.ndim == 0 or len(value) != count:
        raise UsageError(
            f"{name}: has {0 if value.ndim == 0 else len(value)} entries; the "
            f"cache and x have {count} examples"
        )
    return value


def _tf_dtype(array):
    if array.dtype.kind in ("U", "S", "O"):
        return tf.string
    return tf.as_dtype(array.dtype)


def _to_tf_compatible(array):
    if array.dtype.kind == "U":
        return np.char.encode(array, "utf-8")
    return np.ascontiguousarray(array)


def _structure(batch, labels, logits, weights, names=(), features=()):
    targets = {LABELS_KEY: labels, TEACHER_LOGITS_KEY: logits}
    if names:
        targets[TEACHER_FEATURES_KEY] = dict(zip(names, features))
    if weights is None:
        return batch, targets
    return batch, targets, weights


def make_dataset(
    cache,
    x,
    y=None,
    sample_weight=None,
    batch_size=64,
    shuffle=False,
    seed=None,
    shuffle_buffer=10000,
    drop_remainder=False,
    verify=True,
    features=None,
    epoch=None,
    views=None,
):
    """Builds the batched dataset of examples, labels and cached logits:
    `TeacherCache.as_dataset`, whose docstring gives the arguments.

    Args:
        cache: a `TeacherCache`.
        x, y, sample_weight, batch_size, shuffle, seed, shuffle_buffer,
            drop_remainder, verify, features, epoch, views: as
            `TeacherCache.as_dataset` takes them.

    Returns:
        A `tf.data.Dataset`.
    """
    if not is_int(batch_size) or batch_size < 1:
        raise UsageError(f"batch_size: must be a positive integer, got {batch_size!r}")
    if shuffle and (not is_int(shuffle_buffer) or shuffle_buffer < 1):
        raise UsageError(
            f"shuffle_buffer: must be a positive integer, got {shuffle_buffer!r}")
    names = _feature_names(cache, features)
    inputs = Inputs(x)
    if views is not None and epoch is None:
        raise UsageError("views: needs epoch, the variable that says which copy "
                         "an epoch takes")
    if verify:
        cache.check_inputs(x)
    elif inputs.count is not None and inputs.count != cache.count:
        raise UsageError(
            f"x: has {inputs.count} examples; the cache in {cache.directory} "
            f"holds {cache.count}"
        )
    y = _per_example("y", y, cache.count)
    sample_weight = _per_example("sample_weight", sample_weight, cache.count)
    streamed = ["x"] * inputs.is_dataset + [
        name for name, value in (("y", y), ("sample_weight", sample_weight))
        if isinstance(value, tf.data.Dataset)]
    if streamed and epoch is not None:
        raise UsageError(f"epoch: orders array inputs; {streamed[0]} is a tf.data.Dataset, "
                         "which keeps its own order")
    if streamed:
        ds = _zipped(cache, inputs, x, y, sample_weight, shuffle, seed, shuffle_buffer,
                     names)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    else:
        if epoch is not None:
            order = index_batches(cache.count, batch_size, epoch, seed or 0, shuffle,
                                  views, drop_remainder)
        else:
            order = tf.data.Dataset.range(cache.count)
            if shuffle:
                order = order.shuffle(cache.count, seed=seed, reshuffle_each_iteration=True)
            order = order.batch(batch_size, drop_remainder=drop_remainder)
        ds = _indexed(cache, inputs, y, sample_weight, order, batch_size, drop_remainder,
                      names)
    return ds.prefetch(tf.data.AUTOTUNE)


def _feature_names(cache, features):
    """The cached features to yield, checked against the cache."""
    from kd_keras.distillation.features import feature_names

    if features is None:
        return cache.feature_names
    names = feature_names(features)
    for name in names:
        cache.gather_features(name, [])  # A UsageError for an unknown name.
    return names


def _indexed(cache, inputs, y, sample_weight, order, batch_size, drop_remainder, names=()):
    """Batches gathered by the row numbers that `order` yields."""
    leaves = inputs.arrays
    keys = sorted(leaves)
    if y is None:
        y = np.full((cache.count,), -1, np.int32)
    columns = [leaves[k] for k in keys] + [y]
    if sample_weight is not None:
        columns.append(sample_weight)

    def load(indices):
        # Consecutive indices (shuffle=False) read as slices; a shuffled
        # batch whose ends happen to be len - 1 apart must not. A slice is
        # copied: `numpy_function` hands TensorFlow the array's own memory,
        # which an op may reuse for its output (the caller's arrays would
        # change under a strategy).
        if len(indices) and np.all(np.diff(indices) == 1):
            lo, hi = int(indices[0]), int(indices[-1]) + 1
            picked = [np.array(c[lo:hi]) for c in columns]
        else:
            picked = [np.asarray(c[indices]) for c in columns]
        picked = [_to_tf_compatible(p) for p in picked]
        return picked + [cache.gather(indices)] + [
            np.ascontiguousarray(cache.gather_features(name, indices)) for name in names]

    feature_dtype = tf.as_dtype(cache.feature_dtype)
    touts = [_tf_dtype(np.asarray(c[:1])) for c in columns] + [tf.float32]
    touts += [feature_dtype] * len(names)
    shapes = [tuple(np.asarray(c[:1]).shape[1:]) for c in columns]
    shapes.append((cache.num_classes,))
    shapes += [tuple(cache.feature_shapes[name]) for name in names]
    batch_dim = batch_size if drop_remainder else None

    def to_batch(indices):
        tensors = tf.numpy_function(load, [indices], touts, stateful=False)
        tensors = [
            tf.ensure_shape(t, (batch_dim,) + s) for t, s in zip(tensors, shapes)
        ]
        n, m = len(keys), len(columns)
        batch = dict(zip(keys, tensors[:n]))
        batch = inputs.structure(batch)
        weights = tensors[n + 1] if sample_weight is not None else None
        return _structure(batch, tensors[n], tensors[m], weights, names, tensors[m + 1:])

    return order.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _column_dataset(value, count):
    if isinstance(value, tf.data.Dataset):
        return value
    return tf.data.Dataset.from_tensor_slices(_to_tf_compatible(value))


def _zipped(cache, inputs, x, y, sample_weight, shuffle, seed, shuffle_buffer, names=()):
    if inputs.is_dataset:
        x_ds = x
    else:
        x_ds = tf.data.Dataset.from_tensor_slices(
            inputs.structure({k: _to_tf_compatible(v) for k, v in inputs.arrays.items()})
        )
    if y is None:
        y_ds = tf.data.Dataset.from_tensors(np.int32(-1)).repeat(cache.count)
    else:
        y_ds = _column_dataset(y, cache.count)

    def read(index):
        return [cache.shard_logits(index)] + [
            cache.shard_features(name, index) for name in names]

    def read_shard(index):
        arrays = tf.numpy_function(
            read, [index], [tf.float32] + [tf.as_dtype(cache.feature_dtype)] * len(names))
        shapes = [(cache.num_classes,)] + [cache.feature_shapes[n] for n in names]
        return tuple(tf.ensure_shape(a, (None, *s)) for a, s in zip(arrays, shapes))

    # Each element: (logits, *features) of one example.
    teacher_ds = (
        tf.data.Dataset.range(len(cache.metadata.shards))
        .map(read_shard)
        .unbatch()
    )
    parts = [x_ds, y_ds, teacher_ds]
    if sample_weight is not None:
        parts.append(_column_dataset(sample_weight, cache.count))
    ds = tf.data.Dataset.zip(tuple(parts)).apply(
        tf.data.experimental.assert_cardinality(cache.count)
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)

    def restructure(*elem):
        weights = elem[3] if len(elem) == 4 else None
        logits, *features = elem[2]
        return _structure(elem[0], elem[1], logits, weights, names, features)

    return ds.map(restructure)
