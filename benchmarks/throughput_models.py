"""The data, the models and the hand-written steps of `throughput.py`:
digits 8x8 with pixel noise, an MLP teacher and student, the least a
distillation step does (`MinimalDistiller`), the teacher's forward pass
alone (`TeacherForwardOnly`), and a plain log-softmax KL (`plain_kl`).

Example:

>>> import numpy as np
>>> t = np.array([[2.0, 0.0, -1.0]], "float32")
>>> float(plain_kl(t, t)[0])
0.0
"""

import keras
import numpy as np
import tensorflow as tf

TEMPERATURE = 3.0
ALPHA = 0.1
NUM_CLASSES = 10


def load_data(num_samples, seed=0):
    """Digits (8x8, 10 classes) repeated with pixel noise to `num_samples`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target.astype("int32")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=num_samples)
    noise = rng.normal(0.0, 0.05, size=(num_samples, x.shape[1]))
    return (x[idx] + noise).astype("float32"), y[idx]


def mlp_teacher(width):
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu", name="hidden"),
            keras.layers.Dense(NUM_CLASSES),
        ],
        name="teacher",
    )


def mlp_student():
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu", name="hidden"),
            keras.layers.Dense(NUM_CLASSES),
        ],
        name="student",
    )


class MinimalDistiller(keras.Model):
    """The least a distillation step can do: one teacher forward, one student
    step on alpha * CE + (1 - alpha) * KL * T**2, a loss and an accuracy
    tracker (as the other methods compile). No input
    checks, no unlabeled examples, no distribution support. It measures the
    "teacher forward + student step" cost inside a single `train_step`."""

    def __init__(self, teacher, student):
        super().__init__()
        self.teacher = teacher
        self.student = student
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy = keras.metrics.SparseCategoricalAccuracy()

    def call(self, x, training=False):
        return self.student(x, training=training)

    def train_step(self, data):
        x, y = data
        t = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            s = self.student(x, training=True)
            hard = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
                y, s, from_logits=True))
            log_p = tf.nn.log_softmax(t / TEMPERATURE)
            log_q = tf.nn.log_softmax(s / TEMPERATURE)
            soft = tf.reduce_mean(tf.reduce_sum(
                tf.exp(log_p) * (log_p - log_q), axis=-1)) * TEMPERATURE**2
            loss = ALPHA * hard + (1.0 - ALPHA) * soft
        weights = self.student.trainable_weights
        self.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        self.loss_tracker.update_state(loss)
        self.accuracy.update_state(y, s)
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy]


class TeacherForwardOnly(keras.Model):
    """The teacher's forward pass alone as a `train_step` (and one tracker
    of its mean logit, so that the step returns a log as the others do):
    the least any distillation step with the teacher online does inside
    `fit`."""

    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher
        self.logit_tracker = keras.metrics.Mean(name="mean_logit")

    def call(self, x, training=False):
        return self.teacher(x, training=False)

    def train_step(self, data):
        x, _ = data
        self.logit_tracker.update_state(tf.reduce_mean(self.teacher(x, training=False)))
        return {"mean_logit": self.logit_tracker.result()}

    @property
    def metrics(self):
        return [self.logit_tracker]


def plain_kl(teacher_logits, student_logits, temperature=TEMPERATURE):
    """Per-example KL(softmax(t/T) || softmax(s/T)) * T**2, written directly
    (for the variant that isolates the cost of kd_keras's default loss)."""
    log_p = tf.nn.log_softmax(teacher_logits / temperature)
    log_q = tf.nn.log_softmax(student_logits / temperature)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1) * temperature**2
