"""Fault injection for the Ray tests: a teacher and a callback that kill
their process once (the first time a marker file can be created).

Kept free of pytest so that Ray workers can unpickle them by reference.
"""

import os

import keras

from kd_keras.teachers.base import KerasTeacher


def first_time(marker):
    """True for the one caller that creates `marker`."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def train_context():
    """Ray Train's context in a training worker, `None` elsewhere (the
    baseline trains in the driver)."""
    import ray.train

    try:
        return ray.train.get_context()
    except RuntimeError:
        return None


class DyingTeacher(KerasTeacher):
    """A Keras teacher whose process exits at its `die_at`-th batch, once."""

    def __init__(self, model, marker, die_at=2):
        super().__init__(model)
        self.marker, self.die_at, self.calls = marker, die_at, 0

    def predict_on_batch(self, x):
        self.calls += 1
        if self.calls == self.die_at and first_time(self.marker):
            os._exit(1)  # The actor's process dies mid-build.
        return super().predict_on_batch(x)


class DieAtEpoch(keras.callbacks.Callback):
    """Kills the Ray Train worker of rank `rank` at the start of `epoch`,
    once; every worker appends the epochs it starts to `marker.rank-R`."""

    def __init__(self, marker, epoch, rank=1):
        super().__init__()
        self.marker, self.epoch, self.rank = marker, epoch, rank

    def on_epoch_begin(self, epoch, logs=None):
        context = train_context()
        if context is None:
            return
        rank = context.get_world_rank()
        with open(f"{self.marker}.rank-{rank}", "a") as f:
            f.write(f"{epoch}\n")
        if epoch == self.epoch and rank == self.rank and first_time(self.marker):
            os._exit(1)


class RecordWorkers(keras.callbacks.Callback):
    """Leaves `rank-R-of-N-replicas-M` in `folder` for each worker that trains."""

    def __init__(self, folder):
        super().__init__()
        self.folder = folder

    def on_train_begin(self, logs=None):
        context = train_context()
        if context is None:
            return
        replicas = self.model.distribute_strategy.num_replicas_in_sync
        name = (f"rank-{context.get_world_rank()}-of-{context.get_world_size()}"
                f"-replicas-{replicas}")
        with open(os.path.join(self.folder, name), "w"):
            pass
