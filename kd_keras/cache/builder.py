"""`cache_teacher_outputs`: run a teacher once over the inputs, keep its logits.

The build streams: the inputs are read one shard at a time (`shard_size`
examples), the teacher runs on `batch_size` examples at a time, and each
shard's logits go to disk before the next shard is read. Memory use is bounded
by one shard, whatever the number of examples.

After every shard `metadata.json` is rewritten atomically, so a killed build
resumes from the last complete shard: the next call with the same teacher and
inputs re-hashes the inputs of the finished shards (no teacher call) and
computes only the rest. The result is byte-for-byte the same as an
uninterrupted build.

The steps (open, write a shard, record it, finalize) are public in
`kd_keras.cache.shards` for builders that compute shards elsewhere.
"""

import os

import numpy as np
from tqdm.auto import tqdm

from kd_keras.cache import fingerprint as fp
from kd_keras.cache import shards as shards_lib
from kd_keras.cache import store
from kd_keras.cache.inputs import Inputs
from kd_keras.cache.teacher_cache import TeacherCache
from kd_keras.errors import UsageError

DEFAULT_SHARD_SIZE = 16384


def _forward(teacher):
    """The teacher's batch function; a compiled one for plain Keras teachers.

    `KerasTeacher.predict_on_batch` calls the model eagerly, which for a
    transformer is several times slower than the graph the online Distiller
    runs; the same call under `tf.function` gives the same logits faster.
    Teachers with their own `predict_on_batch` are called as they are.
    """
    from kd_keras.teachers.base import KerasTeacher

    if type(teacher).predict_on_batch is not KerasTeacher.predict_on_batch:
        return teacher.predict_on_batch
    import tensorflow as tf

    model = teacher.model
    compiled = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: np.asarray(compiled(x), dtype=np.float32)


def _teacher_logits(forward, inputs, chunk, batch_size, num_classes, progress):
    n = len(next(iter(chunk.values())))
    outputs = []
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in chunk.items()}
        logits = np.asarray(forward(inputs.structure(batch)))
        rows = len(next(iter(batch.values())))
        if logits.ndim != 2 or logits.shape[0] != rows:
            raise UsageError(
                f"teacher: returned logits of shape {list(logits.shape)} for a batch "
                f"of {rows} examples; expected [{rows}, num_classes]"
            )
        if num_classes is not None and logits.shape[1] != num_classes:
            raise UsageError(
                f"teacher: returned {logits.shape[1]} classes; the cache holds {num_classes}"
            )
        num_classes = logits.shape[1]
        outputs.append(logits.astype(np.float32, copy=False))
        progress.update(rows)
    return np.concatenate(outputs, axis=0)


def _inputs_mismatch(directory, metadata, index, shard_size, count, spec):
    first = index * shard_size
    if spec != metadata.input_spec:
        what = f"the input spec {spec} differs from the cached {metadata.input_spec}"
    elif metadata.complete and index >= len(metadata.shards):
        what = f"x has more examples than the {metadata.count} the cache was built from"
    else:
        what = (
            f"examples {first}..{first + count - 1} differ from the ones the "
            "cache was built from (other or reordered inputs)"
        )
    return UsageError(
        f"{directory}: the cache there does not match x: {what}; use another "
        "directory or pass overwrite=True"
    )


def _count_mismatch(directory, metadata, count):
    return UsageError(
        f"{directory}: the cache there was built from {metadata.count} examples; x has "
        f"{count}; use another directory or pass overwrite=True"
    )


def cache_teacher_outputs(
    teacher,
    x,
    directory,
    batch_size=256,
    shard_size=DEFAULT_SHARD_SIZE,
    top_k=None,
    overwrite=False,
    verbose=1,
):
    """Runs `teacher` once over `x` and stores its logits in `directory`.

    Calling it again with the same teacher and inputs on a complete cache
    reads the cache instead of recomputing (the teacher is not called); on a
    cache whose build was interrupted, it resumes from the last complete
    shard. A shard whose file is truncated or corrupted is recomputed.

    Args:
        teacher: a `keras.Model` returning logits, or a
            `kd_keras.teachers.Teacher`.
        x: the teacher's inputs: an array, a flat dict of arrays, or an
            unbatched `tf.data.Dataset` (of tensors or flat dicts). It must
            iterate in the same order every time.
        directory: where to write the cache (created if missing).
        batch_size: examples per teacher call.
        shard_size: examples per shard file; memory use is about one shard
            of inputs and logits.
        top_k: `None` to keep dense logits, or keep only the `top_k` largest
            logits of each example plus the log-sum-exp of the rest (see
            `kd_keras.cache.topk` for the error this introduces).
        overwrite: delete an existing cache in `directory` and rebuild.
        verbose: 1 shows a progress bar with ETA, 0 shows nothing.

    Returns:
        A `TeacherCache`.

    Raises:
        UsageError: for bad arguments, or if `directory` holds a cache from
            another teacher, from other, reordered or fewer/more inputs, or
            with another `shard_size`/`top_k` (and `overwrite` is False).
        DataError: if `directory/metadata.json` is damaged (also with
            `overwrite`: only a folder the cache recognises as its own is
            cleared). Both are `ValueError`s.

    Example:

    >>> import keras, numpy as np, tempfile
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.rand(100, 4).astype("float32")
    >>> cache = cache_teacher_outputs(teacher, x, tempfile.mkdtemp(), verbose=0)
    >>> cache.count, cache.num_classes
    (100, 3)
    """
    from kd_keras.teachers.base import as_teacher

    shards_lib.check_positive("batch_size", batch_size)
    shards_lib.check_positive("shard_size", shard_size)
    shards_lib.check_positive("top_k", top_k, optional=True)
    teacher = as_teacher(teacher)
    inputs = Inputs(x)
    if inputs.count == 0:
        raise UsageError("x: has no examples; there is nothing to cache")
    directory = os.fspath(directory)
    metadata = shards_lib.start_build(
        directory, teacher.fingerprint(), shard_size, top_k, overwrite=overwrite
    )
    if metadata.complete:
        if inputs.count is not None and inputs.count != metadata.count:
            raise _count_mismatch(directory, metadata, inputs.count)
        # Check all inputs before touching any shard.
        _verify_inputs_only(directory, metadata, inputs)
        if all(store.check_shard(directory, s) is None for s in metadata.shards):
            return TeacherCache(directory, metadata, verify=False)
    metadata = _build(teacher, inputs, directory, metadata, batch_size, verbose)
    return TeacherCache(directory, metadata, verify=False)


def _verify_inputs_only(directory, metadata, inputs):
    shard_size, shards = metadata.shard_size, metadata.shards
    count = 0
    for index, chunk in enumerate(inputs.chunks(shard_size)):
        n = len(next(iter(chunk.values())))
        spec = fp.chunk_spec(chunk)
        if (
            spec != metadata.input_spec
            or index >= len(shards)
            or shards[index].inputs_sha256 != fp.chunk_digest(chunk)
        ):
            raise _inputs_mismatch(directory, metadata, index, shard_size, n, spec)
        count += n
    if count != metadata.count:
        raise _count_mismatch(directory, metadata, count)


def _build(teacher, inputs, directory, metadata, batch_size, verbose):
    """Computes the missing or damaged shards; returns the complete metadata."""
    shard_size = metadata.shard_size
    recorded = {s.index: s for s in metadata.shards}
    forward = _forward(teacher)
    progress = tqdm(
        total=inputs.count,
        unit="ex",
        desc="Caching teacher outputs",
        disable=not verbose,
        dynamic_ncols=True,
    )
    num_shards = 0
    with progress:
        for index, chunk in enumerate(inputs.chunks(shard_size)):
            n = len(next(iter(chunk.values())))
            chunk_spec = fp.chunk_spec(chunk)
            digest = fp.chunk_digest(chunk)
            old = recorded.get(index)
            if (metadata.input_spec is not None and chunk_spec != metadata.input_spec) or (
                old is not None and (old.inputs_sha256 != digest or old.count != n)
            ):
                raise _inputs_mismatch(directory, metadata, index, shard_size, n, chunk_spec)
            if old is not None and store.check_shard(directory, old) is None:
                progress.update(n)
            else:
                logits = _teacher_logits(
                    forward, inputs, chunk, batch_size, metadata.num_classes, progress
                )
                result = shards_lib.write_shard(
                    directory, index, chunk, logits, metadata.top_k, inputs_sha256=digest
                )
                metadata = shards_lib.record_shard(directory, metadata, result)
            num_shards = index + 1
    if num_shards == 0:
        raise UsageError("x: has no examples; there is nothing to cache")
    return shards_lib.finalize(directory, metadata, num_shards)
