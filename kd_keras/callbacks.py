"""Keras callbacks that make a `fit` resumable to the exact result.

`keras.callbacks.BackupAndRestore` brings back the weights and the optimizer
after an interruption; these callbacks bring back the rest, so that a
resumed `fit` ends with the weights and history of an uninterrupted one:

- `EpochCounter` makes every epoch's randomness a function of the epoch:
  the input pipeline's shuffle order and the dropout generators;
- `EpochLog` keeps every epoch's logs in a JSON file, so the history covers
  the epochs of both runs;
- `ResumableEarlyStopping` keeps `EarlyStopping`'s counters and best weights
  on disk;
- `AtomicBackupAndRestore` is `BackupAndRestore` whose files are replaced
  whole, so that a run stopped while it saves can still resume.

They work with any `keras.Model` (a `kd_keras.Distiller` or a plain
student) and import nothing from the CLI pipeline, which uses them.

Each class shows one `fit` with it; `kd-keras distill` uses all four.
"""

import os

import keras
import numpy as np

from kd_keras._keras_compat import AtomicBackupMixin
from kd_keras._keras_compat import reseed_for_epoch
from kd_keras._keras_compat import seed_generator_states
from kd_keras.files.atomic import atomic_path
from kd_keras.files.json_files import read_json
from kd_keras.files.json_files import write_json
from kd_keras.files.resume import resumed

__all__ = ["AtomicBackupAndRestore", "EpochCounter", "EpochLog", "ResumableEarlyStopping"]


class EpochCounter(keras.callbacks.Callback):
    """Makes an epoch's randomness a function of the epoch number.

    At the start of each epoch it writes the epoch into `variable`, which
    the input pipeline's shuffle reads (for example
    `stateless_shuffle(seed=[seed, variable])`), and re-seeds the model's
    seed generators (dropout) from `(their seed, epoch)`. A resumed `fit`
    then sees the same order and the same dropout masks as an
    uninterrupted one.

    Args:
        variable: an int64 `tf.Variable` the input pipeline reads.

    Example:

    >>> import keras, numpy as np, tensorflow as tf
    >>> epoch = tf.Variable(0, dtype=tf.int64)
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.5, seed=1),
    ...                           keras.layers.Dense(2)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.ones((8, 3), "float32"), np.zeros((8, 2), "float32")
    >>> _ = model.fit(x, y, epochs=3, callbacks=[EpochCounter(epoch)], verbose=0)
    >>> int(epoch.numpy())
    2
    """

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)
        for state in seed_generator_states(self.model):
            reseed_for_epoch(state, epoch)


class EpochLog(keras.callbacks.Callback):
    """Keeps every epoch's logs in a JSON file that survives a resume.

    The file maps each log name to its values, one per epoch, and is
    rewritten atomically at the end of every epoch. On a resumed `fit`, the
    first epoch tells how many epochs the restored weights have seen; logs
    of later epochs (an epoch that ran but whose backup was not written) are
    dropped before training continues.

    Args:
        path: the JSON file (its folder must exist).

    Example:

    >>> import os, tempfile
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    >>> x, y = np.zeros((8, 3), "float32"), np.zeros((8, 2), "float32")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     log = EpochLog(os.path.join(folder, "history.json"))
    ...     _ = model.fit(x, y, epochs=2, callbacks=[log], verbose=0)
    ...     on_disk = read_json(log.path)
    >>> sorted(on_disk), len(on_disk["loss"]), on_disk == log.history
    (['loss', 'mae'], 2, True)
    """

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.history = {}
        self._first = True

    def on_train_begin(self, logs=None):
        self.history = resumed(self.path, read_json) if os.path.isfile(self.path) else {}
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first:
            self._first = False
            self.history = {k: v[:epoch] for k, v in self.history.items()}

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        write_json(self.path, self.history)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` whose counters and best weights survive a resume.

    After every epoch it writes its state (`wait`, `best`, `best_epoch`,
    whether training stopped) to `state_dir/early_stopping.json`, and the
    best weights, when `restore_best_weights=True`, to
    `state_dir/best-EPOCH.npz`. A resumed `fit` reads them back, so it stops
    at the epoch an uninterrupted run stops at and restores the same
    weights.

    A run interrupted after the epoch that stopped it (its backup written,
    `fit` not yet returned) has finished: Keras's `fit` cannot be stopped
    before an epoch, so a resumed one would train one more. Check
    `stopped_weights(state_dir)` first, as `kd-keras distill` does, and
    take those weights instead of resuming.

    Args:
        state_dir: a folder for its per-epoch state and best weights
            (created if missing).
        **kwargs: `keras.callbacks.EarlyStopping` arguments.

    Example:

    >>> import os, tempfile
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.zeros((8, 3), "float32"), np.zeros((8, 2), "float32")
    >>> # The loss is 0 from the start: no improvement, a stop after epoch 1.
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     stop = ResumableEarlyStopping(folder, monitor="loss", patience=1,
    ...                                   restore_best_weights=True)
    ...     _ = model.fit(x, y, epochs=3, callbacks=[stop], verbose=0)
    ...     states = read_json(os.path.join(folder, "early_stopping.json"))
    >>> [(s["best_epoch"], s["wait"], s["stopped"]) for s in states]
    [(0, 0, False), (0, 1, True)]
    """

    def __init__(self, state_dir, **kwargs):
        super().__init__(**kwargs)
        self.state_dir = state_dir
        self._states = []
        self._first = True

    def _state_file(self):
        return os.path.join(self.state_dir, "early_stopping.json")

    def _weights_file(self, epoch):
        return os.path.join(self.state_dir, f"best-{epoch}.npz")

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        os.makedirs(self.state_dir, exist_ok=True)
        state = self._state_file()
        self._states = resumed(state, read_json) if os.path.isfile(state) else []
        self._first = True

    def on_epoch_begin(self, epoch, logs=None):
        if not self._first:
            return
        self._first = False
        self._states = self._states[:epoch]
        if epoch and len(self._states) == epoch:
            state = self._states[-1]
            self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
            if state["has_weights"]:
                self.best_weights = resumed(self._weights_file(self.best_epoch), _weights)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        has_weights = self.best_weights is not None
        if has_weights and self.best_epoch == epoch:
            path = self._weights_file(epoch)
            with atomic_path(path) as tmp, open(tmp, "wb") as f:
                np.savez(f, **{f"w{i}": w for i, w in enumerate(self.best_weights)})
        best = None if self.best is None else float(self.best)
        self._states.append({"wait": self.wait, "best": best, "best_epoch": self.best_epoch,
                             "has_weights": has_weights,
                             "stopped": bool(self.model.stop_training)})
        write_json(self._state_file(), self._states)

    @staticmethod
    def stopped_weights(state_dir):
        """The final weights of a training that stopped early but was
        interrupted before it could finish.

        Args:
            state_dir: the callback's `state_dir`.

        Returns:
            A list of arrays for `model.set_weights`, or `None` when the
            training there did not stop early or kept no best weights.
        """
        path = os.path.join(state_dir, "early_stopping.json")
        states = resumed(path, read_json) if os.path.isfile(path) else []
        if not states or not states[-1]["stopped"] or not states[-1]["has_weights"]:
            return None
        return resumed(os.path.join(state_dir, f"best-{states[-1]['best_epoch']}.npz"),
                       _weights)


def _weights(path):
    """The weights `ResumableEarlyStopping` saved, as a list of arrays."""
    with np.load(path, allow_pickle=False) as f:
        return [f[f"w{i}"] for i in range(len(f.files))]


class AtomicBackupAndRestore(AtomicBackupMixin, keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose weights and epoch files are
    each written beside the old one and renamed over it.

    Keras writes the weights file in place: a run stopped while it saves
    (Ctrl-C, SIGTERM) leaves a file that opens but lacks variables, and
    every resumed `fit` then fails to load it. Here a stop leaves the last
    complete backup, and the resumed `fit` continues from it. The weights
    are renamed before the epoch file, so a stop between the two renames
    trains that epoch again (from its own end weights, as Keras's
    callback would). `double_checkpoint` is not supported.

    Args:
        backup_dir: as `keras.callbacks.BackupAndRestore`.
        **kwargs: the other `BackupAndRestore` arguments.

    Example:

    >>> import os, tempfile
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> x, y = np.zeros((8, 3), "float32"), np.zeros((8, 2), "float32")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     backup = AtomicBackupAndRestore(folder, delete_checkpoint=False)
    ...     _ = model.fit(x, y, epochs=2, callbacks=[backup], verbose=0)
    ...     sorted(os.listdir(folder))
    ['latest.weights.h5', 'training_metadata.json']
    """

    def __init__(self, backup_dir, **kwargs):
        if kwargs.get("double_checkpoint"):
            raise ValueError("double_checkpoint: not supported by AtomicBackupAndRestore "
                             "(its single backup is never half-written)")
        super().__init__(backup_dir, **kwargs)
