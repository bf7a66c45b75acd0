"""The public callbacks resume a `fit` to the result of an uninterrupted one:
two `fit` calls (the second a new callback, as in a new process, starting at
`initial_epoch`) against one, on the same tiny model and data."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.callbacks import AtomicBackupAndRestore
from kd_keras.callbacks import EpochCounter
from kd_keras.callbacks import EpochLog
from kd_keras.callbacks import ResumableEarlyStopping
from kd_keras.errors import UsageError

X = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
Y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")


def _model(dropout=False, learning_rate=0.05):
    keras.utils.set_random_seed(0)
    layers = [keras.Input((3,))]
    if dropout:
        layers.append(keras.layers.Dropout(0.5, seed=7))
    layers.append(keras.layers.Dense(2))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model


class _Score(keras.callbacks.Callback):
    """Logs `score` = `values[epoch]`, the value EarlyStopping monitors."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = self.values[epoch]


SCORES = [1.0, 2.0, 3.0, 2.5, 2.0, 1.0, 0.5]  # Best at epoch 2; patience 2 stops at 4.


def _fit(model, state_dir, epochs, initial_epoch=0):
    stop = ResumableEarlyStopping(state_dir, monitor="score", mode="max", patience=2,
                                  restore_best_weights=True)
    model.fit(X, Y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch,
              callbacks=[_Score(SCORES), stop], verbose=0, shuffle=False)
    return stop


def test_early_stopping_resumed_stops_where_an_uninterrupted_run_stops(tmp_path):
    whole = _model()
    stop = _fit(whole, tmp_path / "whole", epochs=len(SCORES))
    assert stop.stopped_epoch == 4 and stop.best_epoch == 2

    resumed = _model()
    _fit(resumed, tmp_path / "resumed", epochs=3)  # Interrupted after epoch 2.
    again = _fit(resumed, tmp_path / "resumed", epochs=len(SCORES), initial_epoch=3)
    assert (again.stopped_epoch, again.best_epoch, again.wait) == (4, 2, 2)
    for got, want in zip(resumed.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(got, want)  # The best (epoch 2) weights.
    states = [json.loads((tmp_path / d / "early_stopping.json").read_text())
              for d in ("whole", "resumed")]
    assert states[0] == states[1] and states[0][-1]["stopped"]
    best = ResumableEarlyStopping.stopped_weights(str(tmp_path / "resumed"))
    for got, want in zip(best, whole.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_stopped_weights_is_none_while_training_has_not_stopped(tmp_path):
    _fit(_model(), tmp_path, epochs=2)
    assert ResumableEarlyStopping.stopped_weights(str(tmp_path)) is None


def test_epoch_log_keeps_the_epochs_the_weights_have_seen(tmp_path):
    path = str(tmp_path / "history.json")
    model = _model()
    model.fit(X, Y, epochs=3, callbacks=[EpochLog(path)], verbose=0)
    first = json.loads(open(path).read())["loss"]
    # A resume from epoch 1: the restored weights have seen one epoch, so
    # the logs of epochs 1 and 2 of the first run are dropped.
    log = EpochLog(path)
    model.fit(X, Y, epochs=2, initial_epoch=1, callbacks=[log], verbose=0)
    loss = json.loads(open(path).read())["loss"]
    assert len(loss) == 2 and loss[0] == first[0] and loss == log.history["loss"]


def test_a_damaged_epoch_log_is_one_line_naming_it(tmp_path):
    path = tmp_path / "history.json"
    path.write_text("{not json")
    with pytest.raises(UsageError, match=r"^--resume: .*history\.json is missing or damaged"):
        _model().fit(X, Y, epochs=1, callbacks=[EpochLog(str(path))], verbose=0)


def test_epoch_counter_gives_a_resumed_epoch_the_same_dropout(tmp_path):
    """With a learning rate of 0, an epoch's loss depends on its dropout
    masks only: a run resumed at epoch 2 must see epoch 2's masks."""
    def losses(initial_epoch, epochs):
        epoch = tf.Variable(0, dtype=tf.int64)
        model = _model(dropout=True, learning_rate=0.0)
        history = model.fit(X, Y, batch_size=4, epochs=epochs, initial_epoch=initial_epoch,
                            callbacks=[EpochCounter(epoch)], verbose=0, shuffle=False)
        assert int(epoch.numpy()) == epochs - 1
        return history.history["loss"]

    whole = losses(0, 3)
    assert len(set(whole)) == 3  # Each epoch draws other masks.
    assert losses(2, 3) == whole[2:]


def _interrupted_in_its_second_save(model):
    """`model.save_weights` that, on its second call, leaves what a stop in
    the middle of Keras's write leaves (a readable file missing variables)
    and raises as Ctrl-C does."""
    calls, save = [], model.save_weights

    def save_weights(filepath, overwrite=True):
        calls.append(filepath)
        if len(calls) < 2:
            return save(filepath, overwrite=overwrite)
        keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)]).save_weights(
            filepath, overwrite=True)
        raise KeyboardInterrupt

    model.save_weights = save_weights


def _tiny_model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def test_a_run_stopped_while_it_saves_its_backup_resumes(tmp_path):
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    y = np.random.default_rng(1).normal(size=(16, 2)).astype("float32")
    folder = str(tmp_path / "backup")
    model = _tiny_model(0)
    _interrupted_in_its_second_save(model)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False,
                  callbacks=[AtomicBackupAndRestore(folder)])
    assert sorted(os.listdir(folder)) == ["latest.weights.h5", "training_metadata.json"]
    # A fresh process resumes from the end of epoch 1, the last whole backup,
    # and ends where an uninterrupted run ends.
    resumed = _tiny_model(1)
    history = resumed.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False,
                          callbacks=[AtomicBackupAndRestore(folder)])
    assert history.epoch == [1, 2]
    uninterrupted = _tiny_model(0)
    uninterrupted.fit(x, y, epochs=3, batch_size=8, verbose=0, shuffle=False)
    for got, want in zip(resumed.get_weights(), uninterrupted.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert not os.path.exists(folder)  # Deleted once training ends, as Keras does.


def test_atomic_backup_refuses_a_double_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="double_checkpoint"):
        AtomicBackupAndRestore(str(tmp_path), double_checkpoint=True)
