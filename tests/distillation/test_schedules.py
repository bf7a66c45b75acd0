"""Schedules: values against their formulas, checks, serialization, and the
training progress `Distiller` feeds them."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras
from kd_keras.distillation import schedules
from kd_keras.distillation.training_progress import TrainingProgress
from kd_keras.errors import UsageError
from pipeline.resume_helpers import Stop
from pipeline.resume_helpers import StopAtEpoch

P = np.linspace(0.0, 1.0, 11)


@pytest.mark.parametrize("schedule, formula", [
    (schedules.Constant(0.3), lambda p: 0.3),
    (schedules.Linear(0.9, 0.1), lambda p: 0.9 - 0.8 * p),
    (schedules.Cosine(4.0, 1.0),
     lambda p: 1.0 + 3.0 * (1 + math.cos(math.pi * p)) / 2),
    (schedules.Step([3.0, 2.0, 1.0], [0.25, 0.5]),
     lambda p: 3.0 if p < 0.25 else 2.0 if p < 0.5 else 1.0),
])
def test_values_follow_their_formula(schedule, formula):
    got = [float(schedule(tf.constant(p, "float32"))) for p in P]
    np.testing.assert_allclose(got, [formula(p) for p in P], atol=1e-6)
    low, high = schedule.bounds()
    assert low == pytest.approx(min(got), abs=1e-6)
    assert high == pytest.approx(max(got), abs=1e-6)
    # Progress outside [0, 1] is clipped.
    assert float(schedule(1.5)) == pytest.approx(formula(1.0), abs=1e-6)
    copy = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule))
    assert copy == schedule


def test_get_reads_numbers_dicts_and_refuses_the_rest():
    assert schedules.get(2) == schedules.Constant(2.0)
    assert schedules.get({"type": "step", "values": [1, 0],
                          "boundaries": [0.5]}) == schedules.Step([1, 0],
                                                                  [0.5])
    for bad, match in (
            ({"type": "expo"}, r"^alpha: unknown schedule 'expo' \(known: "
                               r"constant, cosine, linear, step\)$"),
            ({"type": "linear", "begin": 1}, r"^alpha: bad arguments for a "
                                             r"linear schedule"),
            ("linear", r"^alpha: unknown schedule 'linear'"),
            ({"type": "step", "values": [1, 2], "boundaries": [1.5]},
             r"^alpha: step: boundaries: expected increasing fractions"),
            ({"type": "step", "values": [1], "boundaries": [0.5]},
             r"^alpha: step: values: expected 2 values"),
            ([1, 2], r"^alpha: expected a number or a kd_keras.schedules")):
        with pytest.raises(UsageError, match=match):
            schedules.get(bad, "alpha")


def test_numpy_numbers_are_numbers():
    """A NumPy scalar (what `np.linspace` or a config grid gives) is taken
    as the Python number it holds, and refused for the same values."""
    assert schedules.get(np.float32(0.5)) == schedules.Constant(0.5)
    assert schedules.get(np.int64(2)) == schedules.Constant(2.0)
    assert schedules.Linear(np.float32(0.5), np.int32(0)) == schedules.Linear(0.5, 0.0)
    teacher = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    distiller = kd_keras.Distiller(teacher, keras.models.clone_model(teacher))
    distiller.compile(optimizer="sgd", alpha=np.float32(0.25), temperature=np.int64(2))
    assert distiller.get_compile_config()["alpha"] == 0.25
    assert distiller.get_compile_config()["temperature"] == 2.0
    with pytest.raises(UsageError, match=r"^temperature: must be in \[0.01, 100\]"):
        distiller.compile(optimizer="sgd", temperature=np.float32(0.0))
    with pytest.raises(UsageError, match="^temperature: must be > 0"):
        kd_keras.losses.soft_target_kl(np.zeros((2, 3)), np.zeros((2, 3)), np.float32(0))


def test_progress_counts_the_steps_of_this_fit():
    progress = TrainingProgress()
    assert float(progress.value(tf.constant(5, "int64"))) == 0.0  # no fit yet
    progress.start.assign(4)
    progress.total.assign(8)
    got = [float(progress.value(tf.constant(i, "int64"))) for i in (4, 6, 12,
                                                                     20)]
    assert got == [0.0, 0.25, 1.0, 1.0]


def fit_alpha_log(epochs, initial_epoch=0, dataset=False, distiller=None):
    if distiller is None:
        keras.utils.set_random_seed(0)
        teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        student = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        distiller = kd_keras.Distiller(teacher, student)
        distiller.compile(optimizer="sgd", alpha=schedules.Linear(0.0, 1.0))
    x = np.ones((8, 3), "float32")
    y = np.zeros(8, "int32")
    data = dict(x=x, y=y, batch_size=2)
    if dataset:  # A dataset of unknown length.
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(2).filter(
            lambda a, b: True)
        data = dict(x=ds)
    history = distiller.fit(epochs=epochs, initial_epoch=initial_epoch,
                            verbose=0, **data)
    return distiller, history.history["alpha"]


def test_distiller_progress_with_initial_epoch_and_unknown_length():
    # 4 steps per epoch, 2 epochs: the last step of each epoch is at 3/8, 7/8.
    distiller, alpha = fit_alpha_log(2)
    np.testing.assert_allclose(alpha, [3 / 8, 7 / 8], rtol=1e-6)
    # Resuming at epoch 1 of 2 continues where the schedule stood.
    _, alpha = fit_alpha_log(2, initial_epoch=1)
    np.testing.assert_allclose(alpha, [7 / 8], rtol=1e-6)
    # Unknown length: 0 during the first epoch, then measured in optimizer
    # iterations (Keras counts one more per epoch for such data: 5 for 4
    # batches, so the epochs end at 9/15 and 14/15).
    unknown, alpha = fit_alpha_log(3, dataset=True)
    assert int(unknown.optimizer.iterations) == 15
    np.testing.assert_allclose(alpha, [0.0, 9 / 15, 14 / 15], rtol=1e-6)
    # After fit, evaluate takes the last step trained, as the epoch's
    # validation did: the same weights give the last val_ values.
    result = distiller.evaluate(np.ones((4, 3), "float32"),
                                np.zeros(4, "int32"), return_dict=True,
                                verbose=0)
    assert result["alpha"] == pytest.approx(7 / 8)


def test_a_backup_and_restore_resume_continues_the_schedule(tmp_path):
    """`BackupAndRestore` restores the optimizer step and the epoch; the
    schedule continues from there, as in a run never interrupted."""
    def distiller():
        keras.utils.set_random_seed(0)
        teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        student = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        d = kd_keras.Distiller(teacher, student)
        d.compile(optimizer="sgd", alpha=schedules.Linear(0.9, 0.1))
        return d

    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = np.arange(8, dtype="int32") % 2
    whole = distiller()
    alpha = whole.fit(x, y, batch_size=2, epochs=4, shuffle=False, verbose=0).history["alpha"]
    backup = str(tmp_path / "backup")
    with pytest.raises(Stop):  # as a killed run: the backup stays
        distiller().fit(x, y, batch_size=2, epochs=4, shuffle=False, verbose=0,
                        callbacks=[keras.callbacks.BackupAndRestore(backup), StopAtEpoch(1)])
    resumed = distiller()
    history = resumed.fit(x, y, batch_size=2, epochs=4, shuffle=False, verbose=0,
                          callbacks=[keras.callbacks.BackupAndRestore(backup)]).history
    np.testing.assert_allclose(history["alpha"], alpha[2:], rtol=1e-6)
    for a, b in zip(whole.student.get_weights(), resumed.student.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_after_fit_gives_the_last_validation_values():
    """The same weights (SGD at rate 0), scheduled alpha and temperature:
    `evaluate` on the validation data equals the last epoch's `val_loss`,
    and both equal NumPy's loss at the last step trained (p = 9/10)."""
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    student = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), alpha=schedules.Linear(0.9, 0.1),
                      temperature=schedules.Linear(4.0, 1.0))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(10, 3)).astype("float32"), rng.integers(0, 2, 10)
    history = distiller.fit(x, y, batch_size=2, epochs=2, validation_data=(x, y), verbose=0)
    result = distiller.evaluate(x, y, batch_size=10, return_dict=True, verbose=0)
    assert result["loss"] == pytest.approx(history.history["val_loss"][-1], rel=1e-5)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    t = np.asarray(teacher(x), np.float64)
    s = np.asarray(student(x), np.float64)
    p = 9 / 10
    alpha, temperature = 0.9 + (0.1 - 0.9) * p, 4.0 + (1.0 - 4.0) * p
    hard = -np.log(softmax(s)[np.arange(10), y]).mean()
    pt, ps = softmax(t / temperature), softmax(s / temperature)
    soft = (pt * (np.log(pt) - np.log(ps))).sum(-1).mean() * temperature ** 2
    assert result["loss"] == pytest.approx(alpha * hard + (1 - alpha) * soft, rel=1e-5)
