"""Training throughput: `kd_keras.Distiller` vs `keras.distillation.Distiller`
vs plain `student.fit`, plus the cost of the distillation loss itself.

    python benchmarks/throughput.py            # full run
    python benchmarks/throughput.py --quick    # a smoke run of a minute or so

Every method trains the same student (same initial weights) on the same data
with the same batch size and optimizer, in one process. After one untimed
warm-up epoch per method (tracing and compilation), the methods take turns
(`--epochs` rounds, one epoch each, the order rotating every round) so that a
change in machine load hits all of them alike. Epoch times come from a
callback (`on_epoch_begin` to `on_epoch_end`), and each method's figure is the
median over rounds. The goals are judged on the median over rounds of
per-round time ratios: methods of one round run back to back, so the ratio
cancels most of the load drift of a shared machine.

The reference cost of distillation is "teacher forward + student step": the
median `student.fit` epoch plus the median `teacher.predict` pass over the
same data. `teacher.predict` also copies every batch's logits back to NumPy,
so a stricter reference is measured too: a minimal hand-written
`train_step` (teacher forward, student step, nothing else; `MinimalDistiller`
below). The goals: kd_keras's overhead over the reference is at most 10%,
and kd_keras is at least as fast as `keras.distillation.Distiller`. A
kd_keras variant with a plain log-softmax KL as `distillation_loss_fn` shows
how much of kd_keras's time its default loss takes, and one with a feature
term (`FEATURE_TERM`: MSE between the teacher's last hidden layer and the
student's, through a learned 128 -> `--teacher-width` projection) shows the
cost of intermediate-layer distillation over logits only.

The script also prints the soft loss of `keras.distillation.LogitsDistillation`
with its default `loss="kl_divergence"` next to a float64 NumPy reference
(`loss_check.py`): that default applies KL to the clipped scaled logits
rather than to probabilities, and can even go negative.

Results go to a table on stdout and to `benchmarks/results/throughput.json`.
"""

import argparse
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import kd_keras  # noqa: E402
from arguments import RESULTS  # noqa: E402
from arguments import write_json  # noqa: E402
from loss_check import loss_comparison, print_loss_comparison  # noqa: E402
from timing import EpochTimer, median_ratio, summarize, time_methods  # noqa: E402

TEMPERATURE = 3.0
ALPHA = 0.1
NUM_CLASSES = 10
FEATURE_TERM = dict(teacher_layer="hidden", student_layer="hidden",
                    loss="mse", weight=1.0, projection="auto")


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


def build_teacher(width):
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(width, activation="relu"),
            keras.layers.Dense(width, activation="relu", name="hidden"),
            keras.layers.Dense(NUM_CLASSES),
        ],
        name="teacher",
    )


def build_student():
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


def make_methods(teacher, student_weights, x, y, batch_size):
    """Returns {name: run-one-epoch function} sharing data and settings."""

    def fresh_student():
        student = build_student()
        student.set_weights(student_weights)
        return student

    plain = fresh_student()
    plain.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )

    ours = kd_keras.Distiller(teacher=teacher, student=fresh_student())
    ours.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=["sparse_categorical_accuracy"],
        alpha=ALPHA,
        temperature=TEMPERATURE,
    )

    ours_plain_kl = kd_keras.Distiller(teacher=teacher, student=fresh_student())
    ours_plain_kl.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=["sparse_categorical_accuracy"],
        distillation_loss_fn=plain_kl,
        alpha=ALPHA,
        temperature=TEMPERATURE,
    )

    ours_feature = kd_keras.Distiller(
        teacher=teacher, student=fresh_student(),
        features=[kd_keras.FeatureDistillation(**FEATURE_TERM)])
    ours_feature.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=["sparse_categorical_accuracy"],
        alpha=ALPHA,
        temperature=TEMPERATURE,
    )

    # The built-in Distiller with the same loss as kd_keras: a KLDivergence
    # *instance*, so it applies KL to softmax probabilities (see the module
    # docstring for what its default "kl_divergence" string does instead).
    anchor = keras.distillation.Distiller(
        teacher=teacher,
        student=fresh_student(),
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=TEMPERATURE, loss=keras.losses.KLDivergence()
        ),
        student_loss_weight=ALPHA,
    )
    anchor.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )

    minimal = MinimalDistiller(teacher, fresh_student())
    minimal.compile(optimizer=keras.optimizers.Adam(1e-3))

    def fit_epoch(model):
        def run():
            timer = EpochTimer()
            model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False,
                      verbose=0, callbacks=[timer])
            return timer.times[0]

        return run

    def predict_pass():
        timer = EpochTimer()
        teacher.predict(x, batch_size=batch_size, verbose=0, callbacks=[timer])
        return timer.times[0]

    methods = {
        "student.fit": fit_epoch(plain),
        "teacher.predict": predict_pass,
        "minimal distillation step": fit_epoch(minimal),
        "kd_keras.Distiller": fit_epoch(ours),
        "kd_keras.Distiller, plain KL fn": fit_epoch(ours_plain_kl),
        "kd_keras.Distiller + 1 feature term": fit_epoch(ours_feature),
        "keras.distillation.Distiller": fit_epoch(anchor),
    }
    return methods, {"kd_keras": ours, "keras": anchor, "plain": plain,
                     "feature": ours_feature}


def paired_ratios(times):
    """Median over rounds of per-round time ratios. Methods of one round run
    back to back, so a ratio cancels most of the machine-load drift that
    separate medians keep."""

    ratio = median_ratio
    kd = times["kd_keras.Distiller"]
    reference = [f + p for f, p in zip(times["student.fit"], times["teacher.predict"])]
    return {
        "kd_keras / (student.fit + teacher.predict)": ratio(kd, reference),
        "kd_keras / minimal distillation step": ratio(
            kd, times["minimal distillation step"]),
        "kd_keras / keras.distillation": ratio(
            kd, times["keras.distillation.Distiller"]),
        "kd_keras / kd_keras with a plain log-softmax KL": ratio(
            kd, times["kd_keras.Distiller, plain KL fn"]),
        "kd_keras + 1 feature term / kd_keras (logits only)": ratio(
            times["kd_keras.Distiller + 1 feature term"], kd),
        "minimal distillation step / (student.fit + teacher.predict)": ratio(
            times["minimal distillation step"], reference),
    }


def plain_kl(teacher_logits, student_logits, temperature=TEMPERATURE):
    """Per-example KL(softmax(t/T) || softmax(s/T)) * T**2, written directly
    (for the variant that isolates the cost of kd_keras's default loss)."""
    log_p = tf.nn.log_softmax(teacher_logits / temperature)
    log_q = tf.nn.log_softmax(student_logits / temperature)
    return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1) * temperature**2


def print_report(result):
    methods = result["methods"]
    print()
    print(f"{'method':<34}{'median s/epoch':>15}{'samples/s':>12}"
          f"{'min s':>9}{'max s':>9}")
    for name, m in methods.items():
        print(f"{name:<34}{m['median_seconds']:>15.3f}"
              f"{m['samples_per_second']:>12.0f}"
              f"{m['min_seconds']:>9.3f}{m['max_seconds']:>9.3f}")
    ref = result["reference"]
    print(f"{'reference: student.fit + teacher.predict':<34}"
          f"{ref['median_seconds']:>15.3f}{ref['samples_per_second']:>12.0f}")
    load = result["setup"]["load_average_1min"]
    print(f"machine: {result['setup']['cpu_count']} CPUs, 1-minute load "
          f"average {load[0]:.1f} before / {load[1]:.1f} after timing")
    print()
    print("paired time ratios (median over rounds of per-round ratios):")
    for name, value in result["paired_time_ratios"].items():
        print(f"  {name:<62}{value:>7.3f}")
    print()
    goals = result["goals"]
    print(f"kd_keras overhead over the reference: "
          f"{100 * goals['kd_keras_overhead_vs_reference']:+.1f}% "
          f"(goal <= +10%: {'met' if goals['overhead_met'] else 'MISSED'})")
    print(f"kd_keras overhead over the minimal distillation step: "
          f"{100 * goals['kd_keras_overhead_vs_minimal_step']:+.1f}% "
          f"(<= +10%: "
          f"{'met' if goals['overhead_vs_minimal_met'] else 'MISSED'})")
    print(f"one feature term costs "
          f"{100 * goals['feature_term_cost_vs_logits_only']:+.1f}% over "
          f"logits-only kd_keras")
    print(f"kd_keras / keras.distillation throughput: "
          f"{goals['kd_keras_vs_keras_speedup']:.3f}x "
          f"(goal >= 1: {'met' if goals['speedup_met'] else 'MISSED'})")
    print()
    print_loss_comparison(result["loss_comparison"], TEMPERATURE,
                          result["loss_comparison_examples"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15,
                        help="timed epochs per method, after one warm-up "
                             "epoch (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="batch size for every method (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=8192,
                        help="training examples per epoch (default: %(default)s)")
    parser.add_argument("--teacher-width", type=int, default=1024,
                        help="hidden width of the 2-layer MLP teacher "
                             "(default: %(default)s, about 1.1M parameters)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2048 samples, 3 timed epochs")
    parser.add_argument("--output", default=os.path.join(RESULTS, "throughput.json"),
                        help="JSON output path (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.epochs = 2048, 3
    for flag in ("epochs", "batch_size", "samples", "teacher_width"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")

    keras.utils.set_random_seed(0)
    x, y = load_data(args.samples)
    teacher = build_teacher(args.teacher_width)
    teacher.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    print(f"training the teacher ({teacher.count_params():,} params) "
          f"for 2 epochs ...", flush=True)
    teacher.fit(x, y, batch_size=args.batch_size, epochs=2, verbose=0)
    student_weights = build_student().get_weights()

    load_before = os.getloadavg()
    methods, models = make_methods(teacher, student_weights, x, y, args.batch_size)
    warmup, times = time_methods(methods, args.epochs)
    summary = summarize(times, args.samples)

    reference = (summary["student.fit"]["median_seconds"]
                 + summary["teacher.predict"]["median_seconds"])
    ratios = paired_ratios(times)
    overhead = ratios["kd_keras / (student.fit + teacher.predict)"] - 1.0
    overhead_minimal = ratios["kd_keras / minimal distillation step"] - 1.0
    speedup = 1.0 / ratios["kd_keras / keras.distillation"]

    n_loss = min(2048, args.samples)
    result = {
        "benchmark": "throughput",
        "setup": {
            "data": "sklearn digits 8x8, resampled with N(0, 0.05) pixel noise",
            "samples_per_epoch": args.samples,
            "batch_size": args.batch_size,
            "timed_epochs": args.epochs,
            "warmup_epochs": 1,
            "statistic": "median over interleaved rounds (one epoch per "
                         "method per round, order rotating)",
            "teacher_params": teacher.count_params(),
            "student_params": models["plain"].count_params(),
            "temperature": TEMPERATURE,
            "alpha": ALPHA,
            "keras_distiller_loss": "LogitsDistillation(loss=KLDivergence())",
            "feature_term": FEATURE_TERM,
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "cpu_count": os.cpu_count(),
            # Other processes share the CPU: the 1-minute load average
            # before and after timing says how noisy the figures are.
            "load_average_1min": [load_before[0], os.getloadavg()[0]],
            "command": " ".join(["python", "benchmarks/throughput.py", *(argv or sys.argv[1:])]),
        },
        "warmup_seconds": warmup,
        "methods": summary,
        "reference": {
            "definition": "median student.fit epoch + median teacher.predict pass",
            "median_seconds": reference,
            "samples_per_second": args.samples / reference,
        },
        "paired_time_ratios": ratios,
        "goals": {
            "statistic": "median over rounds of the per-round time ratio",
            "kd_keras_overhead_vs_reference": overhead,
            "overhead_goal": 0.10,
            "overhead_met": overhead <= 0.10,
            "kd_keras_overhead_vs_minimal_step": overhead_minimal,
            "overhead_vs_minimal_met": overhead_minimal <= 0.10,
            "kd_keras_vs_keras_speedup": speedup,
            "speedup_goal": 1.0,
            "speedup_met": speedup >= 1.0,
            "feature_term_cost_vs_logits_only": ratios[
                "kd_keras + 1 feature term / kd_keras (logits only)"] - 1.0,
        },
        "loss_comparison_examples": n_loss,
        "loss_comparison": loss_comparison(
            teacher, models["kd_keras"].student, x[:n_loss], TEMPERATURE),
    }
    print_report(result)
    write_json(args.output, result)
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
