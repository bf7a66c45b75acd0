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
so a stricter reference is measured too: a minimal hand-written `train_step`
(`throughput_models.MinimalDistiller`). The goals: kd_keras's overhead over
the reference is at most 10%, and kd_keras has at least 1.2x the throughput
of `keras.distillation.Distiller`.

Also timed: both Distillers with the same extra compile setting each,
`jit_compile=True` (XLA, which Keras's `jit_compile="auto"` leaves off on a
CPU-only machine for both) and `steps_per_execution`; the teacher's forward
pass alone in the same `fit` loop (`throughput_models.TeacherForwardOnly`),
which no distiller running the teacher online can beat, so that
`keras.distillation` over it bounds any speedup; kd_keras with a plain
log-softmax KL as `distillation_loss_fn` (what its exact default loss
costs); and kd_keras with a feature term (`FEATURE_TERM`: MSE between the
teacher's last hidden layer and the student's, through a learned 128 ->
`--teacher-width` projection).

And kd_keras as `kd-keras distill` runs it: the teacher's logits computed
once into a teacher-output cache (`kd_keras.cache.cache_teacher_outputs`,
timed once, before the rounds), then `kd_keras.Distiller(teacher=None)`
trained from `cache.as_dataset(shuffle=False)`, the same batches and the
same student weights as online distillation with this teacher. Its epoch is
compared with `keras.distillation`'s, and so is a whole training of
`AMORTISED_EPOCHS` epochs with the cache build included (the second build:
the first, like every method's warm-up epoch, also traces the teacher).

The script also prints the soft loss of `keras.distillation.LogitsDistillation`
with its default `loss="kl_divergence"` next to a float64 NumPy reference
(`loss_check.py`): that default applies KL to the clipped scaled logits
rather than to probabilities, and can even go negative.

Results go to a table on stdout and to `benchmarks/results/throughput.json`.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import kd_keras  # noqa: E402
from arguments import RESULTS  # noqa: E402
from arguments import machine  # noqa: E402
from arguments import write_json  # noqa: E402
from loss_check import loss_comparison, print_loss_comparison  # noqa: E402
from throughput_models import ALPHA, TEMPERATURE  # noqa: E402
from throughput_models import MinimalDistiller, TeacherForwardOnly  # noqa: E402
from throughput_models import mlp_student, mlp_teacher, load_data  # noqa: E402,F401
from throughput_models import plain_kl  # noqa: E402
from timing import EpochTimer, median_ratio, summarize, time_methods  # noqa: E402

SPEEDUP_GOAL = 1.2  # kd_keras's throughput over keras.distillation's
AMORTISED_EPOCHS = 10  # the default recipe's epochs, over which the cache build is spread
FEATURE_TERM = dict(teacher_layer="hidden", student_layer="hidden",
                    loss="mse", weight=1.0, projection="auto")


KD = "kd_keras.Distiller"
KERAS = "keras.distillation.Distiller"
TEACHER_ONLY = "teacher forward only (fit loop)"
CACHED = "kd_keras.Distiller from the teacher-output cache"


def settings(steps_per_execution):
    """{suffix of a method's name: extra compile arguments}, the same for
    both Distillers."""
    return {"": {}, ", jit_compile=True": {"jit_compile": True},
            f", steps_per_execution={steps_per_execution}": {
                "steps_per_execution": steps_per_execution}}


def make_methods(teacher, student_weights, x, y, batch_size,
                 steps_per_execution=32, cpu_times=None, cache=None):
    """Returns {name: run-one-epoch function} sharing data and settings;
    each run's CPU time goes to `cpu_times[name]` when given; with a
    teacher-output `cache` of `x`, also `CACHED`."""
    cpu_times = {} if cpu_times is None else cpu_times

    def fresh_student():
        student = mlp_student()
        student.set_weights(student_weights)
        return student

    plain = fresh_student()
    plain.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )

    def ours(features=None, source=teacher, **extra):
        distiller = kd_keras.Distiller(teacher=source, student=fresh_student(),
                                       features=features)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3),
                          metrics=["sparse_categorical_accuracy"],
                          alpha=ALPHA, temperature=TEMPERATURE, **extra)
        return distiller

    # The built-in Distiller with the same loss as kd_keras: a KLDivergence
    # *instance*, so it applies KL to softmax probabilities (see the module
    # docstring for what its default "kl_divergence" string does instead).
    def anchor(**extra):
        distiller = keras.distillation.Distiller(
            teacher=teacher,
            student=fresh_student(),
            distillation_losses=keras.distillation.LogitsDistillation(
                temperature=TEMPERATURE, loss=keras.losses.KLDivergence()
            ),
            student_loss_weight=ALPHA,
        )
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["sparse_categorical_accuracy"],
            **extra,
        )
        return distiller

    paired = {}
    for suffix, extra in settings(steps_per_execution).items():
        paired[KD + suffix], paired[KERAS + suffix] = ours(**extra), anchor(**extra)

    ours_plain_kl = ours(distillation_loss_fn=plain_kl)
    ours_feature = ours([kd_keras.FeatureDistillation(**FEATURE_TERM)])
    minimal = MinimalDistiller(teacher, fresh_student())
    minimal.compile(optimizer=keras.optimizers.Adam(1e-3))
    teacher_only = TeacherForwardOnly(teacher)
    teacher_only.compile(optimizer=keras.optimizers.Adam(1e-3))

    def fit_epoch(model, data=None):
        def run():
            timer = EpochTimer()
            if data is None:
                model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False,
                          verbose=0, callbacks=[timer])
            else:
                model.fit(data, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
            return timer

        return run

    def predict_pass():
        timer = EpochTimer()
        teacher.predict(x, batch_size=batch_size, verbose=0, callbacks=[timer])
        return timer

    def timed(name, run):
        def wall_time():
            timer = run()
            cpu_times.setdefault(name, []).append(timer.cpu_times[0])
            return timer.times[0]

        return wall_time

    runs = {
        "student.fit": fit_epoch(plain),
        "teacher.predict": predict_pass,
        TEACHER_ONLY: fit_epoch(teacher_only),
        "minimal distillation step": fit_epoch(minimal),
        "kd_keras.Distiller, plain KL fn": fit_epoch(ours_plain_kl),
        "kd_keras.Distiller + 1 feature term": fit_epoch(ours_feature),
        **{name: fit_epoch(model) for name, model in paired.items()},
    }
    if cache is not None:
        cached = ours(source=None)  # the teacher's logits come with each batch
        runs[CACHED] = fit_epoch(
            cached, cache.as_dataset(x, y, batch_size=batch_size, shuffle=False))
    methods = {name: timed(name, run) for name, run in runs.items()}
    models = {"kd_keras": paired[KD], "keras": paired[KERAS], "plain": plain,
              "feature": ours_feature}
    if cache is not None:
        models["cached"] = cached
    return methods, models


def paired_ratios(times, steps_per_execution=32):
    """Median over rounds of per-round time ratios. Methods of one round run
    back to back, so a ratio cancels most of the machine-load drift that
    separate medians keep."""

    ratio = median_ratio
    kd = times[KD]
    reference = [f + p for f, p in zip(times["student.fit"], times["teacher.predict"])]
    same_settings = {  # both Distillers with the same extra setting
        f"kd_keras / keras.distillation, both{suffix}": ratio(
            times[KD + suffix], times[KERAS + suffix])
        for suffix in settings(steps_per_execution) if suffix}
    return {
        "kd_keras / (student.fit + teacher.predict)": ratio(kd, reference),
        "kd_keras / minimal distillation step": ratio(
            kd, times["minimal distillation step"]),
        "kd_keras / keras.distillation": ratio(kd, times[KERAS]),
        **same_settings,
        "kd_keras, jit_compile=True / keras.distillation (default)":
            ratio(times[KD + ", jit_compile=True"], times[KERAS]),
        "teacher forward only / keras.distillation": ratio(
            times[TEACHER_ONLY], times[KERAS]),
        "kd_keras / kd_keras with a plain log-softmax KL": ratio(
            kd, times["kd_keras.Distiller, plain KL fn"]),
        "kd_keras + 1 feature term / kd_keras (logits only)": ratio(
            times["kd_keras.Distiller + 1 feature term"], kd),
        "minimal distillation step / (student.fit + teacher.predict)": ratio(
            times["minimal distillation step"], reference),
        **({"kd_keras from the cache / keras.distillation": ratio(times[CACHED], times[KERAS])}
           if CACHED in times else {}),
    }


def print_report(result):
    methods = result["methods"]
    width = 2 + max(len(name) for name in methods)
    print()
    print(f"{'method':<{width}}{'median s/epoch':>15}{'samples/s':>12}"
          f"{'min s':>9}{'max s':>9}")
    for name, m in methods.items():
        print(f"{name:<{width}}{m['median_seconds']:>15.3f}"
              f"{m['samples_per_second']:>12.0f}"
              f"{m['min_seconds']:>9.3f}{m['max_seconds']:>9.3f}")
    ref = result["reference"]
    print(f"{'reference: student.fit + teacher.predict':<{width}}"
          f"{ref['median_seconds']:>15.3f}{ref['samples_per_second']:>12.0f}")
    load = result["setup"]["load_average_1min"]
    print(f"machine: {result['setup']['cpu_count']} CPUs, 1-minute load "
          f"average {load[0]:.1f} before / {load[1]:.1f} after timing")
    print()
    print("paired ratios (median over rounds of per-round ratios), wall "
          "time and CPU time:")
    for name, value in result["paired_time_ratios"].items():
        print(f"  {name:<62}{value:>7.3f}"
              f"{result['paired_cpu_time_ratios'][name]:>7.3f}")
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
          f"{goals['kd_keras_vs_keras_speedup']:.3f}x at the default settings "
          f"(goal >= {goals['speedup_goal']}: "
          f"{'met' if goals['speedup_met'] else 'MISSED'}; by CPU time "
          f"{goals['kd_keras_vs_keras_speedup_cpu']:.3f}x)")
    for name, value in goals["speedup_same_settings"].items():
        print(f"  {name}: {value:.3f}x")
    print(f"  kd_keras with jit_compile=True vs keras.distillation at its "
          f"defaults: {goals['speedup_jit_compile_vs_keras_default']:.3f}x")
    print(f"  the teacher's forward pass alone in fit: "
          f"{goals['teacher_forward_only_vs_keras']:.3f} of a "
          f"keras.distillation epoch, so no online distiller exceeds "
          f"{goals['speedup_ceiling']:.2f}x at the default settings "
          f"({goals['speedup_ceiling_cpu']:.2f}x by CPU time)")
    print(f"kd_keras from its teacher-output cache / keras.distillation: "
          f"{goals['cached_vs_keras_speedup_per_epoch']:.2f}x an epoch "
          f"({goals['cached_vs_keras_speedup_per_epoch_cpu']:.2f}x by CPU time); "
          f"{goals['cached_vs_keras_speedup_amortised']:.2f}x over "
          f"{goals['amortised_epochs']} epochs with the cache build "
          f"({goals['cache_build_seconds']:.2f} s) included")
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
    parser.add_argument("--steps-per-execution", type=int, default=32,
                        help="batches per compiled call for the "
                             "steps_per_execution pair (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 2048 samples, 3 timed epochs")
    parser.add_argument("--output", default=os.path.join(RESULTS, "throughput.json"),
                        help="JSON output path (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.epochs = 2048, 3
    for flag in ("epochs", "batch_size", "samples", "teacher_width",
                 "steps_per_execution"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")

    keras.utils.set_random_seed(0)
    x, y = load_data(args.samples)
    teacher = mlp_teacher(args.teacher_width)
    teacher.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    print(f"training the teacher ({teacher.count_params():,} params) "
          f"for 2 epochs ...", flush=True)
    teacher.fit(x, y, batch_size=args.batch_size, epochs=2, verbose=0)
    student_weights = mlp_student().get_weights()

    load_before = os.getloadavg()
    cpu = {}
    with tempfile.TemporaryDirectory() as folder:
        builds = []  # The first build traces the teacher, as a warm-up epoch does.
        for name in ("warm-up", "cache"):
            start = time.perf_counter()
            cache = kd_keras.cache.cache_teacher_outputs(
                teacher, x, os.path.join(folder, name), batch_size=args.batch_size,
                verbose=0)
            builds.append(time.perf_counter() - start)
        cache_build_warmup, cache_build = builds
        methods, models = make_methods(teacher, student_weights, x, y, args.batch_size,
                                       args.steps_per_execution, cpu, cache)
        warmup, times = time_methods(methods, args.epochs)
    summary = summarize(times, args.samples)

    reference = (summary["student.fit"]["median_seconds"]
                 + summary["teacher.predict"]["median_seconds"])
    ratios = paired_ratios(times, args.steps_per_execution)
    cpu_ratios = paired_ratios({k: v[1:] for k, v in cpu.items()},  # no warm-up
                               args.steps_per_execution)
    overhead = ratios["kd_keras / (student.fit + teacher.predict)"] - 1.0
    overhead_minimal = ratios["kd_keras / minimal distillation step"] - 1.0
    speedup = 1.0 / ratios["kd_keras / keras.distillation"]
    ceiling = ratios["teacher forward only / keras.distillation"]
    keras_epoch = summary[KERAS]["median_seconds"]
    amortised = (AMORTISED_EPOCHS * keras_epoch) / (
        cache_build + AMORTISED_EPOCHS * summary[CACHED]["median_seconds"])

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
            "steps_per_execution": args.steps_per_execution,
            "feature_term": FEATURE_TERM,
            # Other processes share the CPU: the 1-minute load average
            # before and after timing says how noisy the figures are.
            **machine(load_before),
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
        # The same ratios of this process's CPU time: other jobs on the
        # machine stretch wall time more.
        "paired_cpu_time_ratios": cpu_ratios,
        "goals": {
            "statistic": "median over rounds of the per-round time ratio",
            "kd_keras_overhead_vs_reference": overhead,
            "overhead_goal": 0.10,
            "overhead_met": overhead <= 0.10,
            "kd_keras_overhead_vs_minimal_step": overhead_minimal,
            "overhead_vs_minimal_met": overhead_minimal <= 0.10,
            "kd_keras_vs_keras_speedup": speedup,
            "speedup_goal": SPEEDUP_GOAL,
            "speedup_met": speedup >= SPEEDUP_GOAL,
            # Throughput ratios (1 / time ratio) with an extra setting.
            "speedup_same_settings": {
                f"both{suffix}": 1.0 / ratios[
                    f"kd_keras / keras.distillation, both{suffix}"]
                for suffix in settings(args.steps_per_execution) if suffix},
            "speedup_jit_compile_vs_keras_default": 1.0 / ratios[
                "kd_keras, jit_compile=True / keras.distillation (default)"],
            "teacher_forward_only_vs_keras": ceiling,
            "speedup_ceiling": 1.0 / ceiling,
            # The same two by CPU time.
            "kd_keras_vs_keras_speedup_cpu": 1.0 / cpu_ratios[
                "kd_keras / keras.distillation"],
            "speedup_ceiling_cpu": 1.0 / cpu_ratios[
                "teacher forward only / keras.distillation"],
            "feature_term_cost_vs_logits_only": ratios[
                "kd_keras + 1 feature term / kd_keras (logits only)"] - 1.0,
            # kd_keras as the CLI runs it: the teacher once, into a cache.
            "cached_vs_keras_speedup_per_epoch": 1.0 / ratios[
                "kd_keras from the cache / keras.distillation"],
            "cached_vs_keras_speedup_per_epoch_cpu": 1.0 / cpu_ratios[
                "kd_keras from the cache / keras.distillation"],
            "cache_build_seconds": cache_build,
            "cache_build_seconds_first": cache_build_warmup,
            "amortised_epochs": AMORTISED_EPOCHS,
            "cached_vs_keras_speedup_amortised": amortised,
            "cached_speedup_met": amortised >= SPEEDUP_GOAL,
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
