"""The steps of a cache build, for builders that compute shards elsewhere.

`cache_teacher_outputs` runs these steps in one process. A distributed
builder (one task per shard, say) runs them itself and gets the same cache,
byte for byte:

1. `start_build` (driver): opens the cache in a directory or starts a new
   one; returns its `CacheMetadata`. An unfinished build keeps its shards,
   so the driver can skip them (`metadata.shards`).
2. `shard_ranges` (driver): the rows `[start, stop)` of every shard.
3. `write_shard` (worker): writes shard `i` for the teacher logits of rows
   `[start, stop)` (and, for a cache of features, the teacher's features
   of those rows) and returns a `ShardResult`. A worker only writes that
   shard's own files; it never touches `metadata.json`.
4. `record_shard` (driver): adds a finished shard to `metadata.json`
   (atomically), so a killed build resumes from it.
5. `finalize` (driver): once shards `0..k-1` are recorded, computes the
   inputs fingerprint, marks the cache complete and removes shard files past
   the end. `kd_keras.cache.load(directory)` then opens it.

Example:

>>> import numpy as np, tempfile
>>> d = tempfile.mkdtemp()
>>> x = np.arange(10, dtype="float32").reshape(5, 2)
>>> m = start_build(d, teacher_fingerprint="my-teacher", shard_size=2)
>>> shard_ranges(len(x), m.shard_size)
[(0, 2), (2, 4), (4, 5)]
>>> for i, (a, b) in enumerate(shard_ranges(len(x), m.shard_size)):
...     result = write_shard(d, i, x[a:b], logits=x[a:b] * 2.0)  # on a worker
...     m = record_shard(d, m, result)                           # on the driver
>>> m = finalize(d, m)
>>> m.complete, m.count, m.num_classes
(True, 5, 2)
"""

import dataclasses
import os

import numpy as np

from kd_keras.cache import fingerprint as fp
from kd_keras.cache import metadata as meta
from kd_keras.cache import metadata_reader
from kd_keras.cache import store
from kd_keras.cache.inputs import Inputs
from kd_keras.errors import UsageError
from kd_keras.errors import first_of
from kd_keras.number_checks import is_int


@dataclasses.dataclass(frozen=True)
class ShardResult:
    """What a worker hands back after writing one shard.

    Attributes:
        shard: the `Shard` entry for `metadata.json`.
        input_spec: `fingerprint.chunk_spec` of its inputs.
        num_classes: the teacher's number of classes.
        features: the `FeatureSpec`s (names and per-example shapes) of the
            features it holds, in order; `()` for logits only.
        feature_dtype: how they are stored.
    """

    shard: meta.Shard
    input_spec: dict
    num_classes: int
    features: tuple = ()
    feature_dtype: str = meta.FEATURE_DTYPES[0]


def check_positive(name, value):
    """Raises `UsageError` unless `value` is a positive integer."""
    if not is_int(value) or value < 1:
        raise UsageError(f"{name}: must be a positive integer, got {value!r}")


def shard_ranges(count, shard_size):
    """The rows `[start, stop)` of each shard of a cache of `count` examples.

    Example:

    >>> shard_ranges(5, 2)
    [(0, 2), (2, 4), (4, 5)]
    """
    check_positive("count", count)
    check_positive("shard_size", shard_size)
    return [(a, min(a + shard_size, count)) for a in range(0, count, shard_size)]


def _short(digest):
    return digest[:12] + "…"


def check_features(features, feature_dtype):
    """Validates the names of the features to cache and their dtype.

    Args:
        features: a sequence of distinct, non-empty strings.
        feature_dtype: one of `metadata.FEATURE_DTYPES`.

    Returns:
        The names as a tuple.

    Example:

    >>> check_features(["t_hidden"], "float16")
    ('t_hidden',)
    """
    if isinstance(features, (str, bytes)) or not isinstance(features, (list, tuple)):
        raise UsageError(f"features: expected a list of layer names, got {features!r}")
    for i, name in enumerate(features):
        if not isinstance(name, str) or not name.strip(":/"):
            raise UsageError(f"features[{i}]: expected a layer name or path, got {name!r}")
        if name in features[:i]:
            raise UsageError(f"features[{i}]: {name!r} is listed twice")
    if feature_dtype not in meta.FEATURE_DTYPES:
        known = ", ".join(repr(d) for d in meta.FEATURE_DTYPES)
        raise UsageError(f"feature_dtype: must be one of {known}, got {feature_dtype!r}")
    return tuple(features)


def _describe_features(names, dtype):
    return f"features={list(names)} ({dtype})" if names else "no features"


def _check_same_build(directory, metadata, teacher_fingerprint, shard_size,
                      features=(), feature_dtype=meta.FEATURE_DTYPES[0]):
    """Refuses to reuse a cache made by another teacher or other settings."""
    if metadata.teacher_fingerprint != teacher_fingerprint:
        raise UsageError(
            f"{directory}: the cache there was built from another teacher (teacher "
            f"fingerprint {_short(metadata.teacher_fingerprint)}, this teacher "
            f"{_short(teacher_fingerprint)}); use another directory or pass overwrite=True"
        )
    if metadata.shard_size != shard_size:
        raise UsageError(
            f"{directory}: the cache there was built with shard_size={metadata.shard_size}, "
            f"not shard_size={shard_size}; pass the same shard_size, or overwrite=True to "
            "rebuild")
    cached = (metadata.feature_names, metadata.feature_dtype if metadata.features else None)
    if cached != (tuple(features), feature_dtype if features else None):
        raise UsageError(
            f"{directory}: the cache there was built with "
            f"{_describe_features(*cached)}, not {_describe_features(features, feature_dtype)}; "
            "pass the same features and feature_dtype, or overwrite=True to rebuild")


def start_build(directory, teacher_fingerprint, shard_size, overwrite=False,
                features=(), feature_dtype=meta.FEATURE_DTYPES[0]):
    """Opens the cache in `directory` for building, or starts a new one.

    Args:
        directory: the cache directory (created if missing).
        teacher_fingerprint: the teacher's `fingerprint()`.
        shard_size: examples per shard.
        overwrite: delete an existing cache there first (only the files a
            cache writes).
        features: the names of the teacher features to store next to the
            logits (the keys of `targets["teacher_features"]`), in order.
        feature_dtype: `"float32"` or `"float16"`, how they are stored.

    Returns:
        The `CacheMetadata` to build on: the existing one (complete, or an
        unfinished build to resume) or a new, empty one, written at once
        so that a build killed before its first shard leaves a folder that
        is known to be the cache's.

    Raises:
        UsageError: bad arguments, `directory` is a file, it holds a
            cache of another teacher, `shard_size`, features or
            `feature_dtype`, or files named like a cache's without its
            `metadata.json`.
        DataError: its `metadata.json` is damaged (even with `overwrite`:
            a folder whose metadata is not the cache's own is left alone).
    """
    check_positive("shard_size", shard_size)
    features = check_features(features, feature_dtype)
    if not isinstance(teacher_fingerprint, str) or not teacher_fingerprint:
        raise UsageError(
            f"teacher_fingerprint: must be a non-empty string, got {teacher_fingerprint!r}")
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"{directory}: exists and is not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{directory}: cannot create the cache folder ({e.strerror})") from None
    metadata = metadata_reader.read(directory)
    if metadata is None:
        _check_no_lookalikes(directory)
    if metadata is not None and (overwrite or not (metadata.shards or metadata.complete)):
        store.remove_cache_files(directory)  # Rebuilt, or a build killed before a shard.
        metadata = None
    store.remove_stale_temp_files(directory)
    if metadata is not None:
        _check_same_build(directory, metadata, teacher_fingerprint, shard_size,
                          features, feature_dtype)
        return metadata
    metadata = meta.CacheMetadata(
        teacher_fingerprint=teacher_fingerprint, shard_size=int(shard_size),
        features=tuple(meta.FeatureSpec(name) for name in features),
        feature_dtype=feature_dtype if features else meta.FEATURE_DTYPES[0])
    store.write_metadata(directory, metadata)  # The folder's cache files are ours from now.
    return metadata


def _check_no_lookalikes(directory):
    """Refuses a folder without `metadata.json` that holds files named like
    a cache's: kd_keras did not write them, so it may not delete or replace
    them."""
    found = sorted(n for n in os.listdir(directory) if store.is_cache_file_name(n))
    if found:
        raise UsageError(
            f"{directory}: holds {first_of(found)}, named like a cache's files, but no "
            f"{meta.METADATA}: kd_keras did not write them; choose another folder or move "
            "them out")


def _feature_arrays(features, feature_dtype, count):
    """`(FeatureSpec with shape, array in feature_dtype)` per feature."""
    if not isinstance(features, dict):
        raise UsageError(f"features: expected a dict {{name: array}}, got "
                         f"{type(features).__name__}")
    check_features(list(features), feature_dtype)
    out = []
    for name, array in features.items():
        array = np.asarray(array)
        if array.ndim < 2 or array.shape[0] != count or array.dtype.kind != "f":
            raise UsageError(
                f"features[{name!r}]: {array.dtype} {list(array.shape)} for {count} rows; "
                f"expected floats [{count}, ...] with at least one axis per example")
        if 0 in array.shape[1:]:
            raise UsageError(f"features[{name!r}]: empty shape {list(array.shape)}")
        with np.errstate(over="ignore"):
            stored = array.astype(feature_dtype, copy=False)
        if not np.array_equal(np.isfinite(stored), np.isfinite(array)):
            raise UsageError(
                f"features[{name!r}]: values beyond {feature_dtype}'s range (largest "
                f"{float(np.nanmax(np.abs(array[np.isfinite(array)]))):.4g}); use "
                "feature_dtype='float32'")
        out.append((meta.FeatureSpec(name, tuple(int(d) for d in array.shape[1:])), stored))
    return out


def write_shard(directory, index, rows, logits, inputs_sha256=None, features=None,
                feature_dtype=meta.FEATURE_DTYPES[0]):
    """Writes shard `index` of a cache: the teacher logits of some rows.

    Args:
        directory: the cache directory (from `start_build`).
        index: the shard number; its rows are `shard_ranges(...)[index]`.
        rows: those rows of the inputs `x`: an array, or a flat dict of
            arrays as `x` is (a dict `{"x": rows}` equals a plain array).
        logits: the teacher's logits for them, `[len(rows), num_classes]`.
        inputs_sha256: `fingerprint.chunk_digest` of the rows, if already
            computed.
        features: for a cache of features, `{name: array}` with the
            teacher's features of those rows (`[len(rows), ...]`, float), in
            the order of the cache's `features`; `None` for logits only.
        feature_dtype: the cache's `feature_dtype`; the features are cast
            to it (`UsageError` if a value overflows float16).

    Returns:
        A `ShardResult` for `record_shard`.
    """
    if not is_int(index) or index < 0:
        raise UsageError(f"index: must be a non-negative integer, got {index!r}")
    inputs = Inputs(rows, name="rows")
    if inputs.is_dataset:
        raise UsageError("rows: must be an array or a dict of arrays, not a tf.data.Dataset")
    leaves = {k: np.asarray(v) for k, v in inputs.arrays.items()}
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != inputs.count or inputs.count == 0:
        raise UsageError(
            f"logits: shape {list(logits.shape)} for {inputs.count} rows; expected "
            f"[{inputs.count}, num_classes] with at least one row")
    num_classes = int(logits.shape[1])
    logits = logits.astype(np.float32, copy=False)
    stored = _feature_arrays(features or {}, feature_dtype, inputs.count)
    arrays = {meta.LOGITS_ARRAY: logits}
    arrays.update((meta.feature_array(j), a) for j, (_, a) in enumerate(stored))
    files = store.write_arrays(directory, int(index), arrays)
    shard = meta.Shard(
        index=int(index), count=inputs.count,
        inputs_sha256=inputs_sha256 or fp.chunk_digest(leaves), files=files)
    return ShardResult(shard=shard, input_spec=fp.chunk_spec(leaves), num_classes=num_classes,
                       features=tuple(spec for spec, _ in stored),
                       feature_dtype=feature_dtype if stored else meta.FEATURE_DTYPES[0])


def record_shard(directory, metadata, result):
    """Adds a written shard to `metadata.json` (atomically).

    Args:
        directory: the cache directory.
        metadata: the `CacheMetadata` so far.
        result: what `write_shard` returned.

    Returns:
        The new `CacheMetadata` (not complete until `finalize`).

    Raises:
        UsageError: if the shard's inputs spec, class count, size or
            features do not fit the cache.
    """
    shard = result.shard
    where = f"{directory}: shard {shard.index}"
    if shard.count > metadata.shard_size:
        raise UsageError(f"{where}: {shard.count} rows, more than shard_size "
                         f"{metadata.shard_size}")
    if metadata.input_spec is not None and result.input_spec != metadata.input_spec:
        raise UsageError(f"{where}: input spec {result.input_spec} differs from the "
                         f"cached {metadata.input_spec}")
    if metadata.num_classes is not None and result.num_classes != metadata.num_classes:
        raise UsageError(f"{where}: the teacher returned {result.num_classes} classes; "
                         f"the cache holds {metadata.num_classes}")
    names = tuple(f.name for f in result.features)
    if names != metadata.feature_names or (
            names and result.feature_dtype != metadata.feature_dtype):
        raise UsageError(
            f"{where}: holds {_describe_features(names, result.feature_dtype)}; the cache "
            f"holds {_describe_features(metadata.feature_names, metadata.feature_dtype)}")
    for cached, given in zip(metadata.features, result.features):
        if cached.shape is not None and cached.shape != given.shape:
            raise UsageError(f"{where}: feature {given.name!r} has the per-example shape "
                             f"{list(given.shape)}; the cache holds {list(cached.shape)}")
    shards = {s.index: s for s in metadata.shards}
    shards[shard.index] = shard
    metadata = dataclasses.replace(
        metadata, complete=False, input_spec=result.input_spec,
        num_classes=result.num_classes, features=result.features,
        shards=tuple(shards[i] for i in sorted(shards)))
    store.write_metadata(directory, metadata)
    return metadata


def finalize(directory, metadata, num_shards=None):
    """Marks a cache complete once all its shards are recorded.

    Args:
        directory: the cache directory.
        metadata: the `CacheMetadata` with every shard recorded.
        num_shards: the number of shards of the inputs; recorded shards past
            it are dropped (default: all recorded shards are kept).

    Returns:
        The complete `CacheMetadata`, also written to `metadata.json`.

    Raises:
        UsageError: if a shard is missing or one before the last is not full.
    """
    shards = tuple(s for s in metadata.shards if num_shards is None or s.index < num_shards)
    expected = len(shards) if num_shards is None else num_shards
    missing = sorted(set(range(expected)) - {s.index for s in shards})
    if missing or not shards:
        raise UsageError(f"{directory}: cannot finalize: shards {missing or [0]} "
                         "are not recorded")
    short = [s.index for s in shards[:-1] if s.count != metadata.shard_size]
    if short:
        raise UsageError(f"{directory}: cannot finalize: shard {short[0]} has fewer "
                         f"than shard_size={metadata.shard_size} rows and is not the last")
    count = sum(s.count for s in shards)
    metadata = dataclasses.replace(
        metadata, shards=shards, count=count, complete=True,
        inputs_fingerprint=fp.inputs_fingerprint(
            metadata.input_spec, count, [s.inputs_sha256 for s in shards]))
    store.write_metadata(directory, metadata)
    store.remove_shards_from(directory, len(shards))
    return metadata
