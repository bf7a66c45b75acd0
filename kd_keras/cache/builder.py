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
"""

import os

import numpy as np
from tqdm.auto import tqdm

from kd_keras.cache import fingerprint as fp
from kd_keras.cache import store
from kd_keras.cache import topk as topk_lib
from kd_keras.cache.inputs import Inputs
from kd_keras.cache.teacher_cache import TeacherCache

DEFAULT_SHARD_SIZE = 16384


def _short(digest):
    return digest[:12] + "…"


def _check_args(batch_size, shard_size, top_k):
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if top_k is not None and (
        not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k < 1
    ):
        raise ValueError(f"top_k must be a positive integer or None; got {top_k!r}.")


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
            raise ValueError(
                f"The teacher returned logits of shape {logits.shape} for a "
                f"batch of {rows} examples; expected [{rows}, num_classes]."
            )
        if num_classes is not None and logits.shape[1] != num_classes:
            raise ValueError(
                f"The teacher returned {logits.shape[1]} classes; the cache "
                f"holds {num_classes}."
            )
        num_classes = logits.shape[1]
        outputs.append(logits.astype(np.float32, copy=False))
        progress.update(rows)
    return np.concatenate(outputs, axis=0)


def _shard_arrays(logits, top_k):
    if top_k is None:
        return {"logits": logits}
    return topk_lib.compress(logits, top_k)


def _check_same_build(directory, metadata, teacher_fp, shard_size, top_k):
    """Refuses to reuse a cache made by another teacher or other settings."""
    if metadata["teacher_fingerprint"] != teacher_fp:
        raise ValueError(
            f"The cache in {directory} was built from another teacher "
            f"(teacher fingerprint {_short(metadata['teacher_fingerprint'])}, "
            f"this teacher {_short(teacher_fp)}). Use another directory or "
            "pass overwrite=True."
        )
    if metadata["shard_size"] != shard_size:
        raise ValueError(
            f"The cache in {directory} uses shard_size="
            f"{metadata['shard_size']}, not {shard_size}. Pass the same "
            "shard_size, or overwrite=True to rebuild."
        )
    if metadata["top_k"] != top_k:
        raise ValueError(
            f"The cache in {directory} was built with top_k="
            f"{metadata['top_k']}, not {top_k}. Pass the same top_k, or "
            "overwrite=True to rebuild."
        )


def _inputs_mismatch(directory, metadata, index, shard_size, count, spec):
    first = index * shard_size
    if spec != metadata["input_spec"]:
        what = f"the input spec {spec} differs from the cached {metadata['input_spec']}"
    elif metadata.get("complete") and index >= len(metadata["shards"]):
        what = (
            f"x has more examples than the {metadata['count']} the cache "
            "was built from"
        )
    else:
        what = (
            f"examples {first}..{first + count - 1} differ from the ones the "
            "cache was built from (other or reordered inputs)"
        )
    return ValueError(
        f"The cache in {directory} does not match x: {what}. Use another "
        "directory or pass overwrite=True."
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
        ValueError: if `directory` holds a cache from another teacher, from
            other, reordered or fewer/more inputs, or with another
            `shard_size`/`top_k` (and `overwrite` is False).

    Example:

    >>> import keras, numpy as np, tempfile
    >>> teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> x = np.random.rand(100, 4).astype("float32")
    >>> cache = cache_teacher_outputs(teacher, x, tempfile.mkdtemp(), verbose=0)
    >>> cache.count, cache.num_classes
    (100, 3)
    """
    from kd_keras.teachers.base import as_teacher

    _check_args(batch_size, shard_size, top_k)
    teacher = as_teacher(teacher)
    inputs = Inputs(x)
    if inputs.count == 0:
        raise ValueError("x has no examples; there is nothing to cache.")
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{directory} exists and is not a directory.")
    os.makedirs(directory, exist_ok=True)

    metadata = store.read_metadata(directory)
    if metadata is not None and overwrite:
        store.remove_cache_files(directory, metadata)
        metadata = None
    store.remove_stale_temp_files(directory)
    teacher_fp = teacher.fingerprint()
    if metadata is not None:
        _check_same_build(directory, metadata, teacher_fp, shard_size, top_k)
    else:
        metadata = {
            "format_version": store.FORMAT_VERSION,
            "complete": False,
            "teacher_fingerprint": teacher_fp,
            "inputs_fingerprint": None,
            "input_spec": None,
            "count": None,
            "num_classes": None,
            "logits_dtype": "float32",
            "shard_size": shard_size,
            "top_k": top_k,
            "shards": [],
        }
    was_complete = metadata["complete"]
    if was_complete and inputs.count is not None and inputs.count != metadata["count"]:
        raise ValueError(
            f"The cache in {directory} was built from {metadata['count']} "
            f"examples; x has {inputs.count}. Use another directory or pass "
            "overwrite=True."
        )

    if was_complete:
        # Check all inputs before touching any shard.
        _verify_inputs_only(directory, metadata, inputs)
        bad = [
            s for s in metadata["shards"]
            if store.check_shard(directory, s) is not None
        ]
        if not bad:
            return TeacherCache(directory, metadata, verify=False)
    _build(teacher, inputs, directory, metadata, batch_size, verbose)
    return TeacherCache(directory, metadata, verify=False)


def _verify_inputs_only(directory, metadata, inputs):
    shard_size = metadata["shard_size"]
    digests, count = [], 0
    for index, chunk in enumerate(inputs.chunks(shard_size)):
        n = len(next(iter(chunk.values())))
        spec = fp.chunk_spec(chunk)
        shards = metadata["shards"]
        if (
            spec != metadata["input_spec"]
            or index >= len(shards)
            or shards[index]["inputs_sha256"] != fp.chunk_digest(chunk)
        ):
            raise _inputs_mismatch(directory, metadata, index, shard_size, n, spec)
        digests.append(shards[index]["inputs_sha256"])
        count += n
    if count != metadata["count"]:
        raise ValueError(
            f"The cache in {directory} was built from {metadata['count']} "
            f"examples; x has {count}. Use another directory or pass "
            "overwrite=True."
        )


def _build(teacher, inputs, directory, metadata, batch_size, verbose):
    shard_size = metadata["shard_size"]
    recorded = {s["index"]: s for s in metadata["shards"]}
    forward = _forward(teacher)
    progress = tqdm(
        total=inputs.count,
        unit="ex",
        desc="Caching teacher outputs",
        disable=not verbose,
        dynamic_ncols=True,
    )
    digests, shards, count, reused = [], [], 0, 0
    spec = metadata["input_spec"]
    num_classes = metadata["num_classes"]
    metadata["complete"] = False  # Until every shard is in place again.
    with progress:
        for index, chunk in enumerate(inputs.chunks(shard_size)):
            n = len(next(iter(chunk.values())))
            chunk_spec = fp.chunk_spec(chunk)
            if spec is None:
                spec = metadata["input_spec"] = chunk_spec
            digest = fp.chunk_digest(chunk)
            old = recorded.get(index)
            if chunk_spec != spec or (
                old is not None and (old["inputs_sha256"] != digest or old["count"] != n)
            ):
                raise _inputs_mismatch(directory, metadata, index, shard_size, n, chunk_spec)
            if old is not None and store.check_shard(directory, old) is None:
                shards.append(old)
                reused += n
                progress.update(n)
            else:
                logits = _teacher_logits(
                    forward, inputs, chunk, batch_size, num_classes, progress
                )
                num_classes = metadata["num_classes"] = int(logits.shape[1])
                if metadata["top_k"] is not None:
                    topk_lib.check_k(metadata["top_k"], num_classes)
                files = store.write_shard(
                    directory, index, _shard_arrays(logits, metadata["top_k"])
                )
                entry = {"index": index, "count": n, "inputs_sha256": digest, "files": files}
                shards.append(entry)
                recorded[index] = entry
                metadata["shards"] = sorted(recorded.values(), key=lambda s: s["index"])
                store.write_metadata(directory, metadata)
            digests.append(digest)
            count += n
    if count == 0:
        raise ValueError("x has no examples; there is nothing to cache.")
    stale = [s for i, s in recorded.items() if i >= len(shards)]
    metadata["shards"] = shards
    metadata["count"] = count
    metadata["inputs_fingerprint"] = fp.inputs_fingerprint(spec, count, digests)
    metadata["complete"] = True
    store.write_metadata(directory, metadata)
    for shard in stale:
        for entry in shard["files"].values():
            path = os.path.join(directory, entry["file"])
            if os.path.exists(path):
                os.remove(path)
    return reused
