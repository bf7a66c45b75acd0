"""The steps of a cache build, for builders that compute shards elsewhere.

`cache_teacher_outputs` runs these steps in one process. A distributed
builder (one task per shard, say) runs them itself and gets the same cache,
byte for byte:

1. `start_build` (driver): opens the cache in a directory or starts a new
   one; returns its `CacheMetadata`. An unfinished build keeps its shards,
   so the driver can skip them (`metadata.shards`).
2. `shard_ranges` (driver): the rows `[start, stop)` of every shard.
3. `write_shard` (worker): writes shard `i` for the teacher logits of rows
   `[start, stop)` and returns a `ShardResult`. A worker only writes that
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
from kd_keras.cache import store
from kd_keras.cache import topk as topk_lib
from kd_keras.cache.inputs import Inputs
from kd_keras.errors import UsageError


@dataclasses.dataclass(frozen=True)
class ShardResult:
    """What a worker hands back after writing one shard.

    Attributes:
        shard: the `Shard` entry for `metadata.json`.
        input_spec: `fingerprint.chunk_spec` of its inputs.
        num_classes: the teacher's number of classes.
    """

    shard: meta.Shard
    input_spec: dict
    num_classes: int


def check_positive(name, value, optional=False):
    """Raises `UsageError` unless `value` is a positive integer (or `None`
    when `optional`)."""
    if optional and value is None:
        return
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        wanted = "a positive integer or None" if optional else "a positive integer"
        raise UsageError(f"{name}: must be {wanted}, got {value!r}")


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


def _check_same_build(directory, metadata, teacher_fingerprint, shard_size, top_k):
    """Refuses to reuse a cache made by another teacher or other settings."""
    if metadata.teacher_fingerprint != teacher_fingerprint:
        raise UsageError(
            f"{directory}: the cache there was built from another teacher (teacher "
            f"fingerprint {_short(metadata.teacher_fingerprint)}, this teacher "
            f"{_short(teacher_fingerprint)}); use another directory or pass overwrite=True"
        )
    for name, cached, given in (("shard_size", metadata.shard_size, shard_size),
                                ("top_k", metadata.top_k, top_k)):
        if cached != given:
            raise UsageError(
                f"{directory}: the cache there was built with {name}={cached}, not "
                f"{name}={given}; pass the same {name}, or overwrite=True to rebuild"
            )


def start_build(directory, teacher_fingerprint, shard_size, top_k=None, overwrite=False):
    """Opens the cache in `directory` for building, or starts a new one.

    Args:
        directory: the cache directory (created if missing).
        teacher_fingerprint: the teacher's `fingerprint()`.
        shard_size: examples per shard.
        top_k: `None` for dense logits, else the top-k compression.
        overwrite: delete an existing cache there first (only the files a
            cache writes).

    Returns:
        The `CacheMetadata` to build on: the existing one (complete, or an
        unfinished build to resume) or a new, empty one (not yet written).

    Raises:
        UsageError: bad arguments, `directory` is a file, or it holds a
            cache of another teacher, `shard_size` or `top_k`.
        DataError: its `metadata.json` is damaged (even with `overwrite`:
            a folder whose metadata is not the cache's own is left alone).
    """
    check_positive("shard_size", shard_size)
    check_positive("top_k", top_k, optional=True)
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
    metadata = meta.read(directory)
    if metadata is not None and overwrite:
        store.remove_cache_files(directory)
        metadata = None
    store.remove_stale_temp_files(directory)
    if metadata is not None:
        _check_same_build(directory, metadata, teacher_fingerprint, shard_size, top_k)
        return metadata
    return meta.CacheMetadata(
        teacher_fingerprint=teacher_fingerprint, shard_size=int(shard_size),
        top_k=None if top_k is None else int(top_k))


def _compress(logits, top_k):
    if top_k is None:
        return {"logits": logits}
    return topk_lib.compress(logits, top_k)


def write_shard(directory, index, rows, logits, top_k=None, inputs_sha256=None):
    """Writes shard `index` of a cache: the teacher logits of some rows.

    Args:
        directory: the cache directory (from `start_build`).
        index: the shard number; its rows are `shard_ranges(...)[index]`.
        rows: those rows of the inputs `x`: an array, or a flat dict of
            arrays as `x` is (a dict `{"x": rows}` equals a plain array).
        logits: the teacher's logits for them, `[len(rows), num_classes]`.
        top_k: the cache's `top_k` (`None` for dense logits).
        inputs_sha256: `fingerprint.chunk_digest` of the rows, if already
            computed.

    Returns:
        A `ShardResult` for `record_shard`.
    """
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or index < 0:
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
    if top_k is not None:
        topk_lib.check_k(top_k, num_classes)
    logits = logits.astype(np.float32, copy=False)
    files = store.write_arrays(directory, int(index), _compress(logits, top_k))
    shard = meta.Shard(
        index=int(index), count=inputs.count,
        inputs_sha256=inputs_sha256 or fp.chunk_digest(leaves), files=files)
    return ShardResult(shard=shard, input_spec=fp.chunk_spec(leaves), num_classes=num_classes)


def record_shard(directory, metadata, result):
    """Adds a written shard to `metadata.json` (atomically).

    Args:
        directory: the cache directory.
        metadata: the `CacheMetadata` so far.
        result: what `write_shard` returned.

    Returns:
        The new `CacheMetadata` (not complete until `finalize`).

    Raises:
        UsageError: if the shard's inputs spec, class count or size do not
            fit the cache.
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
    shards = {s.index: s for s in metadata.shards}
    shards[shard.index] = shard
    metadata = dataclasses.replace(
        metadata, complete=False, input_spec=result.input_spec,
        num_classes=result.num_classes,
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
