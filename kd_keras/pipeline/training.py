"""Training stage of a distill run: the distilled student and the baseline.

Both runs are resumable with `keras.callbacks.BackupAndRestore`. For a
resumed run to end with exactly the weights of an uninterrupted one, every
source of randomness must be a function of the epoch rather than of how many
epochs this process has seen:

- the shuffle order of epoch `e` is `stateless_shuffle(seed=[seed, e])`,
  where `e` is a variable set by `EpochCounter.on_epoch_begin` (it receives
  the true epoch, also after a restore);
- weights and optimizer state are restored by `BackupAndRestore`;
- dropout masks come from Keras `SeedGenerator`s, whose step counters are
  not part of the saved weights: `EpochCounter` sets every generator of the
  model to `[its seed, epoch * 2**20]` at the start of each epoch, so the
  masks of epoch `e` are the same in a resumed and an uninterrupted run.
"""

import os

import keras
import numpy as np
import tensorflow as tf

import kd_keras
from kd_keras.data import SPLITS

ACCURACY = "sparse_categorical_accuracy"


def _seed_generators(model):
    for layer in model._flatten_layers(include_self=True, recursive=True):
        yield from getattr(layer, "_seed_generators", [])


class EpochCounter(keras.callbacks.Callback):
    """Makes an epoch's randomness a function of the epoch number: writes the
    epoch into the variable the input pipeline's shuffle reads, and re-seeds
    the model's seed generators (dropout) from `(their seed, epoch)`."""

    def __init__(self, variable):
        super().__init__()
        self.variable = variable

    def on_epoch_begin(self, epoch, logs=None):
        self.variable.assign(epoch)
        for generator in _seed_generators(self.model):
            state = np.asarray(keras.ops.convert_to_numpy(generator.state.value))
            generator.state.assign(
                np.array([state[0], epoch * 2**20], dtype=state.dtype))


def epoch_shuffled_dataset(x, targets, batch_size, seed, epoch_variable):
    """Batches of `(x, targets)` in an order that depends only on
    `(seed, epoch)`.

    Args:
        x: an array of inputs.
        targets: an array or a dict of arrays (one row per example).
        batch_size: the global batch size.
        seed: the shuffle seed.
        epoch_variable: an int64 `tf.Variable` holding the epoch.

    Returns:
        A `tf.data.Dataset`.
    """
    n = len(x)
    x = tf.constant(x)
    targets = tf.nest.map_structure(tf.constant, targets)

    def order(_):
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch_variable, tf.int64)])
        return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=key)

    def gather(idx):
        return tf.gather(x, idx), tf.nest.map_structure(lambda t: tf.gather(t, idx), targets)

    ds = tf.data.Dataset.range(1).map(order).unbatch().batch(batch_size).map(gather)
    return ds.prefetch(2)


def _callbacks(work_dir, name, cfg, has_validation, extra):
    es = cfg["distill"]["early_stopping"]
    callbacks = [
        keras.callbacks.TensorBoard(os.path.join(work_dir, "logs", name)),
        keras.callbacks.BackupAndRestore(os.path.join(work_dir, "backup", name)),
    ]
    if es is not None and has_validation:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=f"val_{ACCURACY}", mode="max", patience=es["patience"],
            restore_best_weights=True))
    return callbacks + list(extra or [])


def build_student(cfg, num_classes, vocab_size):
    """Builds the configured student for token-id inputs."""
    s = cfg["student"]
    builder = kd_keras.students.get_student(s["architecture"])
    if s["architecture"] == "small_cnn":
        raise ValueError(
            "student.architecture: small_cnn is an image model; use text_cnn, "
            "bigru, tiny_bert or mlp for text data")
    return builder(num_classes, vocab_size=vocab_size,
                   sequence_length=s["sequence_length"], **s["options"])


def distill_student(cfg, ids, labels, teacher_logits, vocab_size, num_classes,
                    work_dir, strategy, extra_callbacks=None, verbose=1):
    """Trains the student on labels plus cached teacher logits.

    Returns:
        `(student, history_dict)`.
    """
    d = cfg["distill"]
    seed = cfg["seed"]
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        student = build_student(cfg, num_classes, vocab_size)
        distiller = kd_keras.Distiller(teacher=None, student=student)
        distiller.compile(optimizer=keras.optimizers.Adam(d["learning_rate"]),
                          metrics=[ACCURACY], alpha=d["alpha"],
                          temperature=d["temperature"],
                          distillation_loss_fn=d["loss"])
        distiller(ids["train"][:1])  # BackupAndRestore needs a built model.
    train = epoch_shuffled_dataset(
        ids["train"], {"labels": labels["train"], "teacher_logits": teacher_logits["train"]},
        d["batch_size"], seed, epoch)
    validation = tf.data.Dataset.from_tensor_slices((
        ids["validation"],
        {"labels": labels["validation"], "teacher_logits": teacher_logits["validation"]},
    )).batch(d["batch_size"])
    callbacks = [EpochCounter(epoch)] + _callbacks(
        work_dir, "distill", cfg, len(ids["validation"]) > 0, extra_callbacks)
    history = distiller.fit(train, validation_data=validation, epochs=d["epochs"],
                            callbacks=callbacks, verbose=verbose)
    return distiller.student, history.history


def train_baseline(cfg, ids, labels, vocab_size, num_classes, work_dir, strategy,
                   extra_callbacks=None, verbose=1):
    """Trains the same student on the labeled examples alone (same budget).

    Returns:
        `(student, history_dict)`.
    """
    d = cfg["distill"]
    seed = cfg["seed"]
    keras.utils.set_random_seed(seed)
    keep = labels["train"] >= 0
    with strategy.scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        student = build_student(cfg, num_classes, vocab_size)
        student.compile(optimizer=keras.optimizers.Adam(d["learning_rate"]),
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        metrics=[ACCURACY])
    train = epoch_shuffled_dataset(ids["train"][keep], labels["train"][keep],
                                   d["batch_size"], seed, epoch)
    validation = tf.data.Dataset.from_tensor_slices(
        (ids["validation"], labels["validation"])).batch(d["batch_size"])
    callbacks = [EpochCounter(epoch)] + _callbacks(
        work_dir, "baseline", cfg, len(ids["validation"]) > 0, extra_callbacks)
    history = student.fit(train, validation_data=validation, epochs=d["epochs"],
                          callbacks=callbacks, verbose=verbose)
    return student, history.history


def accuracy(model, x, y, batch_size=256):
    """Top-1 accuracy of a logits model, computed with NumPy."""
    if len(x) == 0:
        return None
    logits = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))


def logits_accuracy(logits, y):
    """Top-1 accuracy of precomputed logits."""
    if len(y) == 0:
        return None
    return float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y)))


__all__ = ["SPLITS", "accuracy", "distill_student", "train_baseline"]
