"""Training on Ray Train: N workers under `MultiWorkerMirroredStrategy`.

`fit_on_ray(train_fn, payload, cluster, storage_path, result_dir)` starts
`cluster.workers` Ray Train workers with `ray.train.tensorflow.
TensorflowTrainer`, which sets each worker's `TF_CONFIG`. Every worker then
calls

    train_fn(payload, strategy, folder, callbacks)

with a `tf.distribute.MultiWorkerMirroredStrategy`, its own local `folder`
and `callbacks` to add to its `fit`. `train_fn` trains in that folder (the
Distiller gives the single-process result under this strategy, see
`kd_keras.distillation.replicas`), keeping its resume state there, e.g.
with `keras.callbacks.BackupAndRestore`.

Fault tolerance is Ray Train's: after every epoch `EpochCheckpoint` reports
the epoch's logs, and worker 0 attaches its folder (everything but
TensorBoard logs) as a Ray Train `Checkpoint`. When a worker dies, Ray
Train replaces it (`FailureConfig(max_failures)`) and restarts the group;
each worker copies the last checkpoint into its new folder before calling
`train_fn` again, so the training continues from the last finished epoch and
ends with the weights of an uninterrupted run when `train_fn` resumes
exactly (as `kd_keras.pipeline.training_stage.train_student` does).

When `train_fn` returns, worker 0's folder is the final checkpoint, and the
driver copies the `keep` names from it into `result_dir`.

`storage_path` (checkpoints) must be visible to every node: a shared file
system, or a URI Ray Train can write (e.g. `s3://...`).

Example (`build_distiller` and `make_dataset` stand for the caller's own
code; the model must be a `kd_keras.Distiller`: Keras 3.15's `fit` of a
plain model fails under this strategy, see `kd_keras.distillation.replicas`):

```python
def train_fn(payload, strategy, folder, callbacks):
    with strategy.scope():
        distiller = build_distiller()  # kd_keras.Distiller(...), compiled
    distiller.fit(make_dataset(payload), epochs=5, shuffle=False, callbacks=[
        keras.callbacks.BackupAndRestore(os.path.join(folder, "backup")),
        *callbacks])
    if strategy.cluster_resolver.task_id == 0:  # The chief saves.
        distiller.student.save(os.path.join(folder, "model.keras"))

fit_on_ray(train_fn, arrays, RayCluster(workers=2), "/shared/ckpt", "out/",
           keep=["model.keras"])
```
"""

import dataclasses
import os
import shutil
import tempfile

import keras

from kd_keras.distribute.ray_cluster import check_fits
from kd_keras.distribute.ray_cluster import connect
from kd_keras.distribute.ray_cluster import set_threads
from kd_keras.distribute.ray_cluster import user_error
from kd_keras.errors import UsageError

MAX_FAILURES = 3
LOGS = "logs"
FINAL = "final"


@dataclasses.dataclass(frozen=True)
class WorkerDir:
    """A worker's folder, seen as a `kd_keras.pipeline.workdir.RunDir`:
    `file()` paths inside it; no stage is ever done, finishing one is a
    no-op (the driver's run folder keeps the stages).

    Example:

    >>> WorkerDir("w").file("backup", "distill")
    'w/backup/distill'
    >>> WorkerDir("w").done("distill") is None
    True
    """

    path: str

    def file(self, *parts):
        """A path inside the folder."""
        return os.path.join(self.path, *parts)

    def done(self, stage):  # noqa: ARG002 - the RunDir interface
        """Always `None`: a worker never skips a stage."""
        return None

    def finish(self, stage, record=None, files=()):  # noqa: ARG002 - the RunDir interface
        """Does nothing: the driver records the stage."""


def _copy_folder(source, target, ignore=()):
    shutil.copytree(source, target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(*ignore) if ignore else None)


def _report(metrics, folder=None, ignore=()):
    """Reports to Ray Train; worker 0 attaches `folder` as the checkpoint."""
    import ray.train

    if folder is None or ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory(prefix="kd-keras-ckpt-") as tmp:
        _copy_folder(folder, tmp, ignore)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


class EpochCheckpoint(keras.callbacks.Callback):
    """Reports every epoch to Ray Train, with worker 0's folder as the
    checkpoint. Put it last, after the callbacks that write the folder.

    Args:
        folder: the worker's folder (see `fit_on_ray`).
    """

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_epoch_end(self, epoch, logs=None):
        metrics = {k: float(v) for k, v in (logs or {}).items()}
        metrics["epoch"] = epoch + 1
        _report(metrics, self.folder, ignore=(LOGS,))


def _worker_loop(config):
    """What each Ray Train worker runs (see the module doc)."""
    import ray
    import ray.train
    import tensorflow as tf

    set_threads(config["threads"])
    folder = tempfile.mkdtemp(prefix="kd-keras-worker-")
    try:  # Its copy lives in Ray's checkpoints: never left behind, even on failure.
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as saved:
                _copy_folder(saved, folder)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        payload = ray.get(config["payload"][0])
        config["train_fn"](payload, strategy, folder, [EpochCheckpoint(folder)])
        _report({FINAL: 1}, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fit_on_ray(train_fn, payload, cluster, storage_path, result_dir, keep=(),
               max_failures=MAX_FAILURES, name="kd_keras"):
    """Runs `train_fn` on `cluster.workers` Ray Train workers (module doc).

    Args:
        train_fn: `fn(payload, strategy, folder, callbacks)`, picklable (a
            module-level function or a `functools.partial` of one).
        payload: what the workers train on (arrays, config), sent once
            through the object store.
        cluster: a `kd_keras.distribute.RayCluster`.
        storage_path: where Ray Train keeps the checkpoints (shared by all
            nodes).
        result_dir: where the `keep` names of worker 0's final folder go.
        keep: file or folder names to copy into `result_dir`.
        max_failures: worker failures to recover from before giving up.
        name: the Ray Train run's name (a folder of `storage_path`).

    Returns:
        The `ray.train.Result`.

    Raises:
        UsageError: the cluster cannot be reached, or it cannot place
            `cluster.workers` workers.
        KdKerasError: the one a worker raised (bad config or data).
    """
    ray = connect(cluster)
    from ray.train import CheckpointConfig
    from ray.train import FailureConfig
    from ray.train import RunConfig
    from ray.train import ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    check_fits(ray.cluster_resources(), cluster)
    resources = {"CPU": float(cluster.cpus_per_worker)}
    if cluster.gpus_per_worker:
        resources["GPU"] = float(cluster.gpus_per_worker)
    trainer = TensorflowTrainer(
        _worker_loop,
        train_loop_config={"train_fn": train_fn, "payload": [ray.put(payload)],
                           "threads": cluster.threads},
        scaling_config=ScalingConfig(num_workers=cluster.workers,
                                     use_gpu=bool(cluster.gpus_per_worker),
                                     resources_per_worker=resources),
        run_config=RunConfig(
            name=name, storage_path=os.path.abspath(storage_path),
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2)))
    try:
        result = trainer.fit()
    except SystemExit as e:  # How Ray's driver ends `fit` on Ctrl-C: a stop, not an exit.
        raise KeyboardInterrupt() from e
    except Exception as e:
        user = user_error(e)
        if user is not None:
            raise user from None
        raise
    if result.checkpoint is None or (result.metrics or {}).get(FINAL) != 1:
        raise UsageError(f"distribute: the Ray Train run {name} ended without its final "
                         f"checkpoint (see {storage_path})")
    with result.checkpoint.as_directory() as final:
        for item in keep:
            source, target = os.path.join(final, item), os.path.join(result_dir, item)
            if os.path.isdir(source):
                _copy_folder(source, target)
            elif os.path.exists(source):
                os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
                shutil.copy2(source, target)
    return result


__all__ = ["EpochCheckpoint", "MAX_FAILURES", "WorkerDir", "fit_on_ray"]
