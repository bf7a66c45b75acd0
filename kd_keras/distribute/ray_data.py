"""`ray_cache_teacher_outputs`: the teacher-output cache, built on Ray Data.

The same cache as `cache_teacher_outputs` (the same shard files, byte for
byte where the teacher is deterministic, and the same fingerprints), with the
teacher run by a pool of Ray actors:

- the driver opens the cache (`shards.start_build`), splits the examples
  into the cache's fixed shard ranges (`shards.shard_ranges`) and skips the
  shards that are already recorded and whose files pass their checksums;
- `ray.data` runs `map_batches` over the missing shard numbers with an
  actor pool of `cluster.workers` actors, each reserving
  `cluster.cpus_per_worker` CPUs and `cluster.gpus_per_worker` GPUs. Each
  actor loads the teacher once, then for every shard it is handed computes
  the logits (`batch_size` examples per call, as the in-process builder
  does) and writes the shard's files (`shards.write_shard`);
- the driver records each finished shard in `metadata.json` as it arrives
  (`shards.record_shard`), so a build whose driver dies resumes from it,
  and finalizes the cache (`shards.finalize`).

An actor that dies is restarted by Ray Data and its shard is computed again
(a shard is written to a temporary name, then renamed), so a failure costs
one shard, not the build. The cache folder must be visible to every node
(a shared file system), as must a teacher given by path.

Example:

```python
from kd_keras.distribute import RayCluster
cache = ray_cache_teacher_outputs(
    teacher, x, "cache_dir/", cluster=RayCluster(workers=4, cpus_per_worker=2))
```
"""

import dataclasses
import functools
import logging
import os
import pickle
import resource

import keras
import numpy as np
from tqdm.auto import tqdm

from kd_keras.cache import fingerprint as fp
from kd_keras.cache import shards as shards_lib
from kd_keras.cache import store
from kd_keras.cache.builder import DEFAULT_SHARD_SIZE
from kd_keras.cache.builder import shard_outputs
from kd_keras.cache.inputs import Inputs
from kd_keras.cache.inputs import model_input
from kd_keras.cache.teacher_cache import TeacherCache
from kd_keras.distribute.ray_cluster import RayCluster
from kd_keras.distribute.ray_cluster import connect
from kd_keras.distribute.ray_cluster import set_threads
from kd_keras.distribute.ray_cluster import user_error
from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError

INDEX, RESULT, ERROR, PID, PEAK_RSS = "index", "result", "error", "pid", "peak_rss"


@dataclasses.dataclass(frozen=True)
class ShardReport:
    """What `on_shard` is told about each shard an actor wrote.

    Attributes:
        result: the `shards.ShardResult` (already recorded).
        pid: the actor's process id.
        peak_rss_bytes: the actor process's peak resident memory so far.
    """

    result: shards_lib.ShardResult
    pid: int
    peak_rss_bytes: int


class ShardWriter:
    """The Ray Data actor: loads the teacher once, writes whole shards.

    Args:
        teacher: `[ref]` of a teacher (or of a callable that loads one), in
            a list so that Ray hands over the reference, not the object:
            the actor sizes TensorFlow's threads before it loads the teacher.
        chunks: `{shard number: ref of its inputs (dict of arrays)}`.
        directory: the cache folder.
        fingerprint: the teacher fingerprint the cache was opened with.
        batch_size: examples per teacher call.
        is_dict: whether the teacher reads a dict.
        threads: TensorFlow threads of this actor.
    """

    def __init__(self, teacher, chunks, directory, fingerprint, batch_size, is_dict,
                 threads):
        set_threads(threads)
        self.chunks, self.directory = chunks, directory
        self.batch_size, self.is_dict = batch_size, is_dict
        # A user error is handed back as a result row: Ray keeps only the
        # text of an exception raised while an actor starts.
        self.error = None
        try:
            self.forward = self._load(teacher, fingerprint)
        except KdKerasError as e:
            self.error = e

    @staticmethod
    def _load(teacher, fingerprint):
        import ray

        from kd_keras.teachers.base import as_teacher
        from kd_keras.teachers.forward import batch_forward

        loaded = ray.get(teacher[0])
        if callable(loaded) and not isinstance(loaded, keras.Model) and not hasattr(
                loaded, "predict_on_batch"):
            loaded = loaded()
        loaded = as_teacher(loaded)
        if loaded.fingerprint() != fingerprint:
            raise UsageError(
                "teacher: the copy loaded on a Ray worker differs from the driver's "
                f"(fingerprint {loaded.fingerprint()[:12]}…, expected {fingerprint[:12]}…); "
                "every node must see the same teacher files")
        return batch_forward(loaded)

    def logits(self, chunk):
        """The teacher's float32 logits for one shard, `batch_size` at a time,
        checked as the local cache builder checks them."""
        structure = functools.partial(model_input, is_dict=self.is_dict)
        return shard_outputs(self.forward, structure, chunk, self.batch_size)[0]

    def __call__(self, batch):
        import ray

        results, errors = [], []
        for index in batch[INDEX]:
            result, error = b"", b""
            try:
                if self.error is not None:
                    raise self.error
                chunk = ray.get(self.chunks[int(index)])
                result = pickle.dumps(shards_lib.write_shard(
                    self.directory, int(index), chunk, self.logits(chunk)))
            except KdKerasError as e:
                error = pickle.dumps(e)
            results.append(result)
            errors.append(error)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        n = len(results)
        return {INDEX: np.asarray(batch[INDEX]), RESULT: np.asarray(results, dtype=object),
                ERROR: np.asarray(errors, dtype=object), PID: np.full(n, os.getpid()),
                PEAK_RSS: np.full(n, peak)}


def _split(inputs, directory, metadata, count):
    """The shard ranges, and those of them that still have to be computed.

    Raises:
        UsageError: the inputs differ from the ones the cache was built from.
    """
    ranges = shards_lib.shard_ranges(count, metadata.shard_size)
    recorded = {s.index: s for s in metadata.shards}
    if metadata.complete and count != metadata.count:
        raise UsageError(
            f"{directory}: the cache there was built from {metadata.count} examples; x "
            f"has {count}; use another directory or pass overwrite=True")
    pending = []
    for index, (a, b) in enumerate(ranges):
        chunk = {k: np.asarray(v[a:b]) for k, v in inputs.arrays.items()}
        old = recorded.get(index)
        spec = fp.chunk_spec(chunk)
        if (metadata.input_spec is not None and spec != metadata.input_spec) or (
                old is not None and (old.count != b - a
                                     or old.inputs_sha256 != fp.chunk_digest(chunk))):
            raise UsageError(
                f"{directory}: the cache there does not match x: examples {a}..{b - 1} "
                "differ from the ones it was built from (other or reordered inputs, or "
                "another input spec); use another directory or pass overwrite=True")
        if old is None or store.check_shard(directory, old) is not None:
            pending.append(index)
    return ranges, pending


def _teacher_and_fingerprint(teacher, fingerprint):
    from kd_keras.teachers.base import Teacher
    from kd_keras.teachers.base import as_teacher

    if isinstance(teacher, (Teacher, keras.Model)):
        teacher = as_teacher(teacher)
        return teacher, fingerprint or teacher.fingerprint()
    if not callable(teacher):
        raise UsageError(
            f"teacher: must be a kd_keras Teacher, a keras.Model or a callable that "
            f"loads one, got {type(teacher).__name__}")
    if fingerprint is None:  # Load it here once to know what the cache holds.
        fingerprint = as_teacher(teacher()).fingerprint()
    return teacher, fingerprint


def ray_cache_teacher_outputs(teacher, x, directory, cluster=None, batch_size=256,
                              shard_size=DEFAULT_SHARD_SIZE, overwrite=False,
                              verbose=1, fingerprint=None, on_shard=None):
    """Runs `teacher` over `x` on Ray and stores its logits in `directory`.

    Args:
        teacher: a `kd_keras.teachers.Teacher` or `keras.Model` (sent to each
            actor once, through the object store), or a picklable callable
            that returns one (called once per actor, e.g.
            `functools.partial(kd_keras.teachers.load_teacher, "t.keras")`).
        x: the teacher's inputs: an array or a flat dict of arrays.
        directory: the cache folder, visible to every node.
        cluster: a `kd_keras.distribute.RayCluster` (default: a local one or
            the one running here, 2 workers of 1 CPU).
        batch_size: as `cache_teacher_outputs`.
        shard_size: as `cache_teacher_outputs`.
        overwrite: as `cache_teacher_outputs`.
        verbose: 1 shows a progress bar, 0 nothing.
        fingerprint: the teacher's fingerprint when `teacher` is a callable
            (else the driver loads it once to compute it). Each actor checks
            that its teacher has this fingerprint.
        on_shard: optional `fn(ShardReport)`, called on the driver as each
            computed shard is recorded (progress, benchmarks).

    Returns:
        A `TeacherCache`, equal to the one `cache_teacher_outputs` builds.

    Raises:
        UsageError: bad arguments, a cluster that cannot be reached (then
            nothing is written), or a cache in `directory` from another
            teacher, other inputs or other settings.
        MissingDependencyError: Ray is not installed.
    """
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        shards_lib.check_positive(name, value)
    cluster = RayCluster() if cluster is None else cluster
    if not isinstance(cluster, RayCluster):
        raise UsageError(f"cluster: must be a kd_keras.distribute.RayCluster, got "
                         f"{type(cluster).__name__}")
    inputs = Inputs(x)
    if inputs.is_dataset:
        raise UsageError("x: the Ray builder reads arrays or a dict of arrays, not a "
                         "tf.data.Dataset; use cache_teacher_outputs for datasets")
    if inputs.count == 0:
        raise UsageError("x: has no examples; there is nothing to cache")
    teacher, fingerprint = _teacher_and_fingerprint(teacher, fingerprint)
    ray = connect(cluster)  # Before anything is written.
    directory = os.fspath(directory)
    metadata = shards_lib.start_build(directory, fingerprint, shard_size, overwrite=overwrite)
    ranges, pending = _split(inputs, directory, metadata, inputs.count)
    if pending:
        metadata = _run(ray, teacher, inputs, directory, metadata, ranges, pending,
                        cluster, batch_size, fingerprint, verbose, on_shard)
    if not metadata.complete or len(metadata.shards) != len(ranges):
        metadata = shards_lib.finalize(directory, metadata, len(ranges))
    return TeacherCache(directory, metadata, verify=False)


def _rows(dataset):
    """The actors' result rows as they finish; a `KdKerasError` an actor
    raised is re-raised here as itself (one line, no Ray traceback)."""
    try:
        yield from dataset.iter_rows()
    except Exception as e:
        user = user_error(e)
        if user is None:
            raise
        raise type(user)(str(user)) from None


def _run(ray, teacher, inputs, directory, metadata, ranges, pending, cluster, batch_size,
         fingerprint, verbose, on_shard):
    """Computes the pending shards on the actor pool; records each one."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.INFO if verbose else logging.WARNING)
    chunks = {i: ray.put({k: np.asarray(v[a:b]) for k, v in inputs.arrays.items()})
              for i, (a, b) in ((i, ranges[i]) for i in pending)}
    writer = dict(teacher=[ray.put(teacher)], chunks=chunks, directory=directory,
                  fingerprint=fingerprint, batch_size=batch_size,
                  is_dict=inputs.is_dict, threads=cluster.threads)
    dataset = ray.data.from_items([{INDEX: i} for i in pending],
                                  override_num_blocks=len(pending))
    dataset = dataset.map_batches(
        ShardWriter, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=min(cluster.workers, len(pending)),
                                           max_tasks_in_flight_per_actor=1),
        fn_constructor_kwargs=writer, **cluster.actor_resources())
    done = sum(ranges[i][1] - ranges[i][0] for i in range(len(ranges)) if i not in pending)
    progress = tqdm(total=inputs.count, initial=done, unit="ex", dynamic_ncols=True,
                    desc="Caching teacher outputs (Ray)", disable=not verbose)
    with progress:
        for row in _rows(dataset):
            if row[ERROR]:
                raise pickle.loads(row[ERROR])
            result = pickle.loads(row[RESULT])
            metadata = shards_lib.record_shard(directory, metadata, result)
            progress.update(result.shard.count)
            if on_shard is not None:
                on_shard(ShardReport(result=result, pid=int(row[PID]),
                                     peak_rss_bytes=int(row[PEAK_RSS])))
    return shards_lib.finalize(directory, metadata, len(ranges))


__all__ = ["ShardReport", "ShardWriter", "ray_cache_teacher_outputs"]
