"""`TeacherCache`: a complete cache on disk, read lazily; and `load`."""

import difflib
import os

import numpy as np

from kd_keras.cache import fingerprint as fp
from kd_keras.cache import metadata as meta
from kd_keras.cache import metadata_reader
from kd_keras.cache import store
from kd_keras.cache.inputs import Inputs
from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError


def load(directory, verify=True):
    """Opens an existing, complete teacher-output cache.

    Args:
        directory: a directory written by `cache_teacher_outputs`.
        verify: check every shard's SHA-256 checksum (reads every byte once).
            File sizes are always checked.

    Returns:
        A `TeacherCache`.

    Raises:
        MissingFileError: if `directory` holds no cache (a
            `FileNotFoundError`).
        DataError: if `metadata.json` is damaged, the build did not finish,
            or a shard is missing, truncated or corrupted (a `ValueError`).

    Example:

    >>> import keras, numpy as np, tempfile
    >>> from kd_keras.cache import cache_teacher_outputs
    >>> d = tempfile.mkdtemp()
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> _ = cache_teacher_outputs(teacher, np.ones((10, 4)), d, verbose=0)
    >>> load(d).logits(0, 2).shape
    (2, 3)
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise MissingFileError(f"{directory}: no such cache folder")
    metadata = metadata_reader.read(directory)
    if metadata is None:
        raise MissingFileError(
            f"{meta.metadata_path(directory)}: not found; {directory} holds no "
            "teacher-output cache"
        )
    return TeacherCache(directory, metadata, verify=verify)


class TeacherCache:
    """Teacher logits stored on disk by `cache_teacher_outputs`.

    Shards are memory-mapped: reading a batch of logits touches only those
    rows, and the pages read are released after each read
    (`store.ShardArrays.release`), so walking the whole cache keeps one
    batch in memory, not the cache. Get one with `kd_keras.cache.cache_teacher_outputs` or
    `kd_keras.cache.load`, rather than constructing it directly.

    Args:
        directory: the cache directory.
        metadata: its `CacheMetadata` (validated by `metadata_reader.read`).
        verify: check every shard's checksum now.

    Attributes:
        directory: the cache directory.
        metadata: its `CacheMetadata`; the attributes below come from it.
        count: the number of cached examples.
        num_classes: the width of the cached logits.
        shard_size: the number of examples per shard.
        teacher_fingerprint: the fingerprint of the teacher that wrote it.
        inputs_fingerprint: the fingerprint of the inputs it was built on.
        input_spec: the inputs' names, shapes and dtypes.
        feature_names: the cached teacher features' names (`()` for logits
            only); `feature_shapes`: `{name: per-example shape}`;
            `feature_dtype`: `"float32"` or `"float16"`.
    """

    def __init__(self, directory, metadata, verify=True):
        if not metadata.complete:
            raise DataError(
                f"{directory}: incomplete cache ({metadata.done} examples in "
                f"{len(metadata.shards)} shards); call cache_teacher_outputs again "
                "with the same teacher and inputs to resume the build"
            )
        self.directory = directory
        self.metadata = metadata
        self.count = metadata.count
        self.num_classes = metadata.num_classes
        self.shard_size = metadata.shard_size
        self.teacher_fingerprint = metadata.teacher_fingerprint
        self.inputs_fingerprint = metadata.inputs_fingerprint
        self.input_spec = metadata.input_spec
        self.feature_names = metadata.feature_names
        self.feature_shapes = {f.name: f.shape for f in metadata.features}
        self.feature_dtype = metadata.feature_dtype
        self._shards = metadata.shards
        for shard in self._shards:
            problem = store.check_shard(directory, shard, checksums=verify)
            if problem is not None:
                raise DataError(
                    f"damaged cache: {problem}; call cache_teacher_outputs again "
                    "to recompute that shard"
                )
        self._open = {}

    def __len__(self):
        return self.count

    def __repr__(self):
        features = (f", features={list(self.feature_names)} ({self.feature_dtype})"
                    if self.feature_names else "")
        return (
            f"<TeacherCache {self.directory!r}: {self.count} examples, "
            f"{self.num_classes} classes{features}>"
        )

    def _shard(self, index):
        arrays = self._open.get(index)
        if arrays is None:
            arrays = self._open[index] = store.open_shard(
                self.directory, self._shards[index], self.num_classes,
                self.metadata.features, self.feature_dtype,
            )
        return arrays

    def _feature_array(self, name):
        """The shard array name of feature `name`."""
        if name in self.feature_names:
            return meta.feature_array(self.feature_names.index(name))
        if not self.feature_names:
            raise UsageError(f"name: the cache in {self.directory} holds no teacher "
                             "features; build it with cache_teacher_outputs(..., "
                             "features=[...])")
        close = difflib.get_close_matches(str(name), self.feature_names, n=3, cutoff=0.5)
        raise UsageError(
            f"name: no feature {name!r} in the cache in {self.directory} (it holds: "
            f"{', '.join(close or self.feature_names)})")

    def _check_shard_index(self, index):
        index = int(index)
        if not 0 <= index < len(self._shards):
            raise IndexError(f"shard {index} out of range for a cache of "
                             f"{len(self._shards)} shards")
        return index

    def _read_shard(self, index, array):
        """A copy of one array of shard `index`; its pages are then released."""
        arrays = self._shard(self._check_shard_index(index))
        out = np.array(arrays[array])
        arrays.release()
        return out

    def shard_logits(self, index):
        """The float32 logits of one shard, `[shard count, C]`."""
        return self._read_shard(index, meta.LOGITS_ARRAY).astype(np.float32, copy=False)

    def shard_features(self, name, index):
        """Feature `name` of one shard, `[shard count, *shape]`, as stored
        (`feature_dtype`)."""
        return self._read_shard(index, self._feature_array(name))

    def features(self, name, start=0, stop=None):
        """The cached teacher feature `name` of examples `start` to `stop`.

        Args:
            name: one of `feature_names` (the layer spec as given to
                `cache_teacher_outputs`).
            start: first example.
            stop: one past the last example; default: the end.

        Returns:
            An array `[stop - start, *feature_shapes[name]]` in the cache's
            `feature_dtype`.

        Raises:
            UsageError: if the cache holds no feature `name`.
        """
        stop = self.count if stop is None else min(stop, self.count)
        return self.gather_features(name, np.arange(start, stop))

    def gather_features(self, name, indices):
        """Feature `name` of the examples at `indices` (any order), as
        stored; row i for indices[i]."""
        array = self._feature_array(name)
        return self._gather(
            indices, self.feature_shapes[name], self.feature_dtype,
            lambda arrays, rows: np.asarray(arrays[array][rows]))

    def logits(self, start=0, stop=None):
        """Dense float32 logits of examples `start` to `stop` (in order).

        Args:
            start: first example.
            stop: one past the last example; default: the end.

        Returns:
            float32 array `[stop - start, num_classes]`.
        """
        stop = self.count if stop is None else min(stop, self.count)
        return self.gather(np.arange(start, stop))

    def gather(self, indices):
        """Dense float32 logits of the examples at `indices` (any order).

        Args:
            indices: int array of example positions in the cached inputs.

        Returns:
            float32 array `[len(indices), num_classes]`, row i for indices[i].
        """
        return self._gather(
            indices, (self.num_classes,), np.float32,
            lambda arrays, rows: np.asarray(arrays[meta.LOGITS_ARRAY][rows], dtype=np.float32))

    def _gather(self, indices, shape, dtype, read):
        """`read(shard arrays, rows)` for the examples at `indices`."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.count):
            raise IndexError(
                f"Index out of range for a cache of {self.count} examples."
            )
        shard_ids = indices // self.shard_size
        rows = indices - shard_ids * self.shard_size
        first, last = (shard_ids[0], shard_ids[-1]) if len(indices) else (0, 0)
        if not len(indices):
            return np.zeros((0, *shape), dtype)
        if first == last and (len(indices) < 2 or np.all(np.diff(rows) == 1)):
            # One shard, consecutive rows: a slice, no fancy indexing.
            lo, arrays = int(rows[0]), self._shard(int(first))
            out = np.array(read(arrays, slice(lo, lo + len(rows))), dtype)
            arrays.release()
            return out
        out = np.empty((len(indices), *shape), dtype)
        for shard_id in np.unique(shard_ids):
            mask, arrays = shard_ids == shard_id, self._shard(int(shard_id))
            out[mask] = read(arrays, rows[mask])
            arrays.release()
        return out

    def check_inputs(self, x):
        """Raises `UsageError` (a `ValueError`) unless `x` are the cache's inputs.

        The check streams `x` shard by shard and compares each shard's
        inputs digest (a SHA-256 over every byte), so it catches other,
        reordered, fewer or more examples and names the first examples that
        differ. It reads `x` once; for in-memory arrays that costs about a
        second per GB.

        Args:
            x: an array, a dict of arrays or an unbatched `tf.data.Dataset`.
        """
        inputs = Inputs(x)
        if inputs.count is not None and inputs.count != self.count:
            raise UsageError(
                f"x: has {inputs.count} examples; the cache in {self.directory} "
                f"holds {self.count} (other inputs than the cache was built from)"
            )
        count = 0
        for index, chunk in enumerate(inputs.chunks(self.shard_size)):
            spec = fp.chunk_spec(chunk)
            if spec != self.input_spec:
                raise UsageError(
                    f"x: has the input spec {spec}; the cache in {self.directory} "
                    f"was built from {self.input_spec}"
                )
            n = len(next(iter(chunk.values())))
            if index >= len(self._shards):
                break
            if n != self._shards[index].count:
                count += n
                break
            digest = fp.chunk_digest(chunk)
            if digest != self._shards[index].inputs_sha256:
                first = index * self.shard_size
                raise UsageError(
                    f"x: examples {first}..{first + n - 1} differ from the ones "
                    f"the cache in {self.directory} was built from (other or "
                    "reordered inputs)"
                )
            count += n
        else:
            if count == self.count:
                return
        raise UsageError(
            f"x: has {'more' if count >= self.count else 'fewer'} examples than "
            f"the {self.count} the cache in {self.directory} holds"
        )

    def as_dataset(
        self,
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
        """A `tf.data.Dataset` of `(x, {"labels", "teacher_logits"})` batches
        (plus `"teacher_features"` when the cache holds features): the data
        to pass to `kd_keras.Distiller(teacher=None, ...).fit`.

        Args:
            x: the inputs the cache was built from, in the same order: an array,
                a flat dict of arrays, or an unbatched `tf.data.Dataset`.
            y: integer labels, one per example (array or unbatched dataset), or
                `None`: then every label is -1, which the Distiller treats as
                unlabeled (soft loss only).
            sample_weight: optional per-example weights (array or unbatched
                dataset); they become the third element of each batch.
            batch_size: examples per batch.
            shuffle: shuffle the examples (with their logits) every epoch.
                Array inputs get a full, uniform shuffle; a dataset gets a buffer
                shuffle of `shuffle_buffer` elements.
            seed: shuffle seed, for reproducible orders.
            shuffle_buffer: buffer size when `x` is a `tf.data.Dataset`.
            drop_remainder: drop the last, smaller batch.
            verify: stream `x` once and compare it with the cache's inputs
                digests (`TeacherCache.check_inputs`); a mismatch raises
                `UsageError` (a `ValueError`). With `False` only the example
                count is checked.
            features: which cached teacher features to yield under
                `"teacher_features"`: `None` for all the cache holds, or a list
                of their names or `kd_keras.FeatureDistillation` terms (their
                `teacher_layer`); `[]` for none.
            epoch: an int64 `tf.Variable` holding the epoch (pass the same one
                to a `kd_keras.callbacks.EpochCounter` in `fit`): the order of
                epoch `e` is then `stateless_shuffle(seed=[seed, e])` (with
                `shuffle`; in order without), the same in a resumed `fit`.
                Array inputs only.
            views: with `epoch`, the number of perturbed copies that follow the
                original examples in `x` as equal blocks: each epoch then
                trains on the originals and copy `epoch % views + 1`
                (`kd_keras.cache.epoch_order.epoch_rows`).

        Returns:
            A `tf.data.Dataset`.

        Example:

        >>> import keras, numpy as np, tempfile
        >>> from kd_keras.cache import cache_teacher_outputs
        >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        >>> x, y = np.ones((10, 4), "float32"), np.array([0, 1, -1, 2, 0, 1, 2, -1, 0, 1])
        >>> cache = cache_teacher_outputs(teacher, x, tempfile.mkdtemp(), verbose=0)
        >>> ds = cache.as_dataset(x, y, batch_size=4, shuffle=True, seed=0)
        >>> xb, targets = next(iter(ds))
        >>> sorted(targets), tuple(targets["teacher_logits"].shape)
        (['labels', 'teacher_logits'], (4, 3))
        """
        from kd_keras.cache.dataset import make_dataset

        return make_dataset(
            self,
            x,
            y=y,
            sample_weight=sample_weight,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            shuffle_buffer=shuffle_buffer,
            drop_remainder=drop_remainder,
            verify=verify,
            features=features,
            epoch=epoch,
            views=views,
        )
