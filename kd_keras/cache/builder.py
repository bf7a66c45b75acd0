"""`cache_teacher_outputs`: run a teacher once over the inputs, keep its logits
(and, when asked, the intermediate outputs that feature terms name).

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

With `features=[...]` (layer specs or `kd_keras.FeatureDistillation`
terms), each teacher call also returns those layers' outputs, from the same
forward pass as the logits (`kd_keras.distillation.feature_views.FeatureView`), and every
shard stores them next to the logits, per example as the layer gives them
(`[n, seq, width]` per token, `[n, width]` pooled), in float32 or float16.
`TeacherCache.as_dataset` then yields them as the targets'
`"teacher_features"`, keyed by the names as given, which is what
`kd_keras.Distiller(teacher=None, features=terms)` reads.
"""

import os

import numpy as np
from tqdm.auto import tqdm

from kd_keras.cache import fingerprint as fp
from kd_keras.cache import metadata as meta
from kd_keras.cache import shards as shards_lib
from kd_keras.cache import store
from kd_keras.cache.inputs import Inputs
from kd_keras.cache.teacher_cache import TeacherCache
from kd_keras.distillation.checks import check_gives_logits
from kd_keras.distillation.features import feature_names
from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError

DEFAULT_SHARD_SIZE = 16384


def shard_outputs(forward, structure, chunk, batch_size, num_classes=None, progress=None,
                  names=()):
    """Runs the teacher over one shard, checking what it returns.

    The one loop that computes a cache's teacher outputs, in this process
    or on a Ray actor: logits must be `[rows, classes]`, the same classes
    throughout, and logits rather than probabilities (checked by value on
    the first two rows or more when `num_classes` is not known yet).

    Args:
        forward: `x -> logits` (or `(logits, {name: features})` with
            `names`), as `kd_keras.teachers.forward.batch_forward` gives.
        structure: `{leaf: array} -> x`, what the teacher reads
            (`Inputs.structure`).
        chunk: `{leaf: array}`, the shard's inputs.
        batch_size: examples per teacher call.
        num_classes: the classes the cache holds, or `None`.
        progress: a bar to advance by each batch's rows, or `None`.
        names: the feature names to keep.

    Returns:
        `(logits, features)`: float32 `[n, classes]` logits, and
        `{name: [n, ...]}` features (`None` without `names`).

    Raises:
        UsageError: outputs of the wrong shape or class count, or
            probabilities.

    Example:

    >>> import numpy as np
    >>> logits, _ = shard_outputs(lambda x: x @ np.eye(3), lambda leaves: leaves["x"],
    ...                           {"x": np.eye(3)[[0, 2]] * 5}, batch_size=1)
    >>> logits.argmax(-1).tolist()
    [0, 2]
    """
    n = len(next(iter(chunk.values())))
    outputs, features = [], {name: [] for name in names}
    probed = 0 if num_classes is None else None  # Rows checked for probabilities.
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in chunk.items()}
        logits = forward(structure(batch))
        rows = len(next(iter(batch.values())))
        if names:
            logits, found = logits
            for name in names:
                value = found[name]
                if value.ndim < 2 or value.shape[0] != rows:
                    raise UsageError(
                        f"features: the teacher's {name!r} has the shape "
                        f"{list(value.shape)} for a batch of {rows} examples; expected "
                        f"[{rows}, ...]")
                features[name].append(value)
        logits = np.asarray(logits)
        if logits.ndim != 2 or logits.shape[0] != rows:
            raise UsageError(
                f"teacher: returned logits of shape {list(logits.shape)} for a batch "
                f"of {rows} examples; expected [{rows}, num_classes]"
            )
        if num_classes is not None and logits.shape[1] != num_classes:
            raise UsageError(
                f"teacher: returned {logits.shape[1]} classes; the cache holds {num_classes}"
            )
        if probed is not None and probed < 2:  # Probabilities are not logits: look at
            check_gives_logits("teacher", values=np.concatenate(outputs + [logits]))  # 2 rows.
            probed += rows
        num_classes = logits.shape[1]
        outputs.append(logits.astype(np.float32, copy=False))
        if progress is not None:
            progress.update(rows)
    if not names:
        return np.concatenate(outputs, axis=0), None
    try:
        features = {k: np.concatenate(v, axis=0) for k, v in features.items()}
    except ValueError:  # Batches of other shapes (e.g. unpadded tokens).
        shapes = sorted({str(list(a.shape[1:])) for v in features.values() for a in v})
        raise UsageError(f"features: the teacher's features change shape from batch to "
                         f"batch ({', '.join(shapes)}); pad the inputs to one length"
                         ) from None
    return np.concatenate(outputs, axis=0), features


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
    overwrite=False,
    verbose=1,
    features=None,
    feature_dtype="float32",
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
        overwrite: delete an existing cache in `directory` and rebuild.
        verbose: 1 shows a progress bar with ETA, 0 shows nothing.
        features: also store these teacher outputs: a list of layer specs
            (`"t_hidden"`, `"backbone/transformer_layer_1"`, `":input"`,
            `":attention"`; see `kd_keras.distillation.feature_views`) or
            `kd_keras.FeatureDistillation` terms (their `teacher_layer`).
            They are stored per example as the layer gives them, under the
            names as written. The teacher must be a Functional or
            Sequential Keras model, or one with `call_with_features`.
        feature_dtype: `"float32"`, or `"float16"` to halve their size
            (rounded to nearest; a value beyond float16's range is a
            `UsageError`).

    Returns:
        A `TeacherCache`.

    Raises:
        UsageError: for bad arguments, or if `directory` holds a cache from
            another teacher, from other, reordered or fewer/more inputs, or
            with another `shard_size`/`features`/`feature_dtype`
            (and `overwrite` is False).
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

    With the teacher's hidden layer, for feature terms:

    >>> teacher = keras.Sequential([keras.Input((4,)),
    ...     keras.layers.Dense(8, name="t_hidden"), keras.layers.Dense(3)])
    >>> cache = cache_teacher_outputs(teacher, x, tempfile.mkdtemp(), verbose=0,
    ...                               features=["t_hidden"], feature_dtype="float16")
    >>> cache.features("t_hidden").shape, cache.features("t_hidden").dtype
    ((100, 8), dtype('float16'))
    """
    from kd_keras.teachers.base import as_teacher
    from kd_keras.teachers.forward import batch_forward

    shards_lib.check_positive("batch_size", batch_size)
    shards_lib.check_positive("shard_size", shard_size)
    names = feature_names(features)
    teacher = as_teacher(teacher)
    inputs = Inputs(x)
    if inputs.count == 0:
        raise UsageError("x: has no examples; there is nothing to cache")
    directory = os.fspath(directory)
    # Resolve the feature layers before anything is written.
    forward = batch_forward(teacher, names) if names else None
    fresh = not os.path.exists(directory)
    metadata = shards_lib.start_build(
        directory, teacher.fingerprint(), shard_size, overwrite=overwrite,
        features=names, feature_dtype=feature_dtype,
    )
    if metadata.complete:
        if inputs.count is not None and inputs.count != metadata.count:
            raise _count_mismatch(directory, metadata, inputs.count)
        # Check all inputs before touching any shard.
        _verify_inputs_only(directory, metadata, inputs)
        if all(store.check_shard(directory, s) is None for s in metadata.shards):
            return TeacherCache(directory, metadata, verify=False)
    try:
        metadata = _build(teacher, inputs, directory, metadata, batch_size, verbose, forward)
    except (KdKerasError, FloatingPointError):
        if fresh:
            _remove_if_no_shard(directory)
        raise
    return TeacherCache(directory, metadata, verify=False)


def _remove_if_no_shard(directory):
    """Removes a cache folder this call created, and its files, when no
    shard was written (a teacher refused on its first batch): an
    interrupted build with shards is kept, to resume."""
    if any(meta.SHARD_FILE_PATTERN.fullmatch(name) for name in os.listdir(directory)):
        return
    store.remove_cache_files(directory)
    store.remove_stale_temp_files(directory)
    if not os.listdir(directory):
        os.rmdir(directory)


def save_teacher_outputs(directory, x, logits, teacher_fingerprint, features=None,
                         feature_dtype="float32", shard_size=DEFAULT_SHARD_SIZE):
    """Stores teacher outputs computed elsewhere as a cache in `directory`.

    For outputs that another pass already gave (a teacher adapted on every
    text gives their logits as it goes): the cache is then the one store
    that `TeacherCache.as_dataset` trains from, as after
    `cache_teacher_outputs`. A cache already in `directory` is replaced
    (only the files a cache writes are removed), once the outputs are
    checked: one row of finite logits (not probabilities) per example, and
    of each feature.

    Args:
        directory: where to write the cache (created if missing).
        x: the inputs the outputs belong to, in the same order: an array or
            a flat dict of arrays, with at least one example.
        logits: float `[n, num_classes]`.
        teacher_fingerprint: a string naming the teacher that gave them.
        features: `{name: [n, ...] float array}` of teacher features to
            store beside the logits, or `None`.
        feature_dtype: `"float32"` or `"float16"`, how the features are
            stored.
        shard_size: examples per shard file.

    Returns:
        A `TeacherCache`.

    Example:

    >>> import numpy as np, tempfile
    >>> x = np.arange(6, dtype="int32").reshape(3, 2)
    >>> cache = save_teacher_outputs(tempfile.mkdtemp(), x, 2 * np.eye(3), "my-teacher",
    ...                              features={"pooled": np.ones((3, 4))})
    >>> cache.count, cache.num_classes, cache.feature_names
    (3, 3, ('pooled',))
    """
    features = dict(features or {})
    inputs = Inputs(x)
    if inputs.is_dataset:
        raise UsageError("x: must be an array or a dict of arrays, not a tf.data.Dataset")
    logits = np.asarray(logits)
    _check_outputs(logits, features, inputs.count)  # Before a cache in `directory` is replaced.
    metadata = shards_lib.start_build(
        directory, teacher_fingerprint, shard_size, overwrite=True,
        features=tuple(features), feature_dtype=feature_dtype)
    leaves = inputs.arrays
    for i, (a, b) in enumerate(shards_lib.shard_ranges(inputs.count, shard_size)):
        result = shards_lib.write_shard(
            directory, i, inputs.structure({k: v[a:b] for k, v in leaves.items()}),
            logits[a:b], features={n: v[a:b] for n, v in features.items()} or None,
            feature_dtype=feature_dtype)
        metadata = shards_lib.record_shard(directory, metadata, result)
    return TeacherCache(directory, shards_lib.finalize(directory, metadata), verify=False)


def _check_outputs(logits, features, count):
    """Refuses outputs that are not one row of finite logits per example."""
    if logits.ndim != 2 or logits.shape[0] != count or count == 0 or logits.shape[1] == 0:
        raise UsageError(f"logits: shape {list(logits.shape)} for {count} examples of x; "
                         f"expected [{count}, num_classes]")
    if not np.issubdtype(logits.dtype, np.number) or not np.isfinite(logits).all():
        raise UsageError("logits: must be finite numbers (NaN or Inf found, or not numbers)")
    check_gives_logits("logits", values=logits)
    for name, value in features.items():
        rows = len(value) if np.ndim(value) else 0
        if rows != count:
            raise UsageError(f"features[{name!r}]: {rows} rows for {count} examples of x")


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


def _build(teacher, inputs, directory, metadata, batch_size, verbose, forward=None):
    """Computes the missing or damaged shards; returns the complete metadata."""
    from kd_keras.teachers.forward import batch_forward

    shard_size = metadata.shard_size
    recorded = {s.index: s for s in metadata.shards}
    names = metadata.feature_names
    forward = forward or batch_forward(teacher, names)
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
                logits, features = shard_outputs(
                    forward, inputs.structure, chunk, batch_size, metadata.num_classes,
                    progress, names,
                )
                result = shards_lib.write_shard(
                    directory, index, chunk, logits, inputs_sha256=digest,
                    features=features, feature_dtype=metadata.feature_dtype,
                )
                metadata = shards_lib.record_shard(directory, metadata, result)
            num_shards = index + 1
    if num_shards == 0:
        raise UsageError("x: has no examples; there is nothing to cache")
    return shards_lib.finalize(directory, metadata, num_shards)
