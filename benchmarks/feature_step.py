"""Step cost of the shipped recipe's pooled-feature term against logits only.

    python benchmarks/feature_step.py            # full run (about 5 minutes)
    python benchmarks/feature_step.py --recipe default \
        --output benchmarks/results/feature_step_default.json
    python benchmarks/feature_step.py --quick    # a smoke run

The distillation stage as `kd-keras distill` runs it for the demo's data
(`step_config`) with one of two recipes: `text_cnn`, the earlier demo's
(`configs/demo.yaml` with `quality.TEXT_CNN_RECIPE`: the text CNN at 48
ids), or `default`, the shipped demo's (the default recipe's student at
its sequence length, without the copies, which change the number of
batches but not their shape). The student trains on the rt-polarity
training split (the demo's split and WordPiece
ids, from `data_stage.prepare_data`), batches from
the teacher's store streamed by `TeacherCache.as_dataset(epoch=...)`, and
a `kd_keras.Distiller` compiled by
`training_stage` with `teacher=None`: the teacher's outputs come from the
batch (cached targets), so no teacher runs in the step. Three methods, each
its own Distiller from the same initial student weights:

- `logits only`: the targets hold the labels and the teacher's logits;
- `logits only, features in the batch`: the same Distiller, with the
  teacher's pooled vectors in the targets too (unused): what gathering
  them costs the input pipeline;
- `+ pooled feature term`: the config's term (`classifier/pooling` ->
  `features`, cosine, through the learned 300 -> 384 projection).

The teacher's logits and 384-d pooled vectors are seeded random arrays (no
teacher is loaded: only their shapes matter to the time). After one warm-up
run each (tracing), the methods take turns for `--rounds` rounds, one run
of `--steps` batches each (the start of each epoch's shuffle; `--steps 0`:
whole epochs), the order rotating every round (`timing.time_methods`), and
each ratio is the median over rounds of that round's ratio. Short runs keep
the methods of a round close in time, which matters on a shared machine.
The ratios are given for wall time and for the CPU time of the process
(other jobs stretch the first more). Goal: the term costs at most 15% over
logits only.

Prints a table and writes `benchmarks/results/feature_step.json` (or
`--output`), with the machine's load average before and after.
"""

import argparse
import dataclasses
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from arguments import RESULTS  # noqa: E402
from arguments import machine  # noqa: E402
from arguments import write_json  # noqa: E402
from timing import EpochTimer, median_ratio, summarize, time_methods  # noqa: E402

from kd_keras.cache import save_teacher_outputs  # noqa: E402
from kd_keras.pipeline import data_stage  # noqa: E402
from kd_keras.pipeline import training_stage  # noqa: E402

TEACHER_WIDTH = 384  # MiniLM-L6's pooled sentence vector
LOGITS = "logits only"
FEATURES_IN_BATCH = "logits only, features in the batch"
TERM = "+ pooled feature term"
GOAL = 0.15


def cached_targets(labels, num_classes, keys, seed=0):
    """Seeded stand-ins for the cached teacher outputs of `labels`' rows.

    Returns:
        `(logits, {key: [n, TEACHER_WIDTH] float32})`.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    logits = rng.normal(size=(n, num_classes)).astype("float32")
    return logits, {k: rng.normal(size=(n, TEACHER_WIDTH)).astype("float32")
                    for k in keys}


RECIPES = ("text_cnn", "default")


def step_config(output, max_examples=None, recipe="text_cnn"):
    """The demo's data and teacher with `quality.TEXT_CNN_RECIPE` (the text
    CNN at 48 ids and its pooled-feature term) or, for `recipe="default"`,
    the shipped demo config without its copies, as a `RunConfig` (the
    default recipe fills in the rest in `data_stage.prepare_data`)."""
    from quality import text_cnn_demo_raw

    from kd_keras.config import parse_config
    from kd_keras.config import read_yaml
    from kd_keras.demo import DEMO_CONFIG_PATH

    if recipe == "default":
        raw = read_yaml(DEMO_CONFIG_PATH)
        raw["distill"] = {**raw.get("distill", {}), "augment": {"copies": 0}}
    else:
        raw = text_cnn_demo_raw()
    raw = {**raw, "output": output, "verbose": 0}
    if max_examples is not None:
        raw["data"]["max_examples"] = max_examples
    return parse_config(raw, base_dir=os.getcwd())


def make_methods(cfg, data, store, jit_compile=False, steps=None, cpu_times=None):
    """Returns `({name: run-one-epoch function}, {name: Distiller})`.

    Args:
        cfg, data: the demo's `RunConfig` and `PreparedData`.
        store: a folder for the teacher's stand-in outputs (a cache).
        jit_compile: compile every Distiller with `jit_compile=True`.
        steps: batches per timed run (default: the whole epoch).
        cpu_times: a dict that receives each run's CPU time by name.
    """
    distill = cfg.distill
    ids, labels = data.ids["train"], np.asarray(data.labels["train"])
    terms = distill.features
    keys = [t.teacher_layer for t in terms]
    logits, features = cached_targets(labels, data.num_classes, keys)
    cache = save_teacher_outputs(store, ids, logits, "stand-in teacher", features=features)
    keras.utils.set_random_seed(cfg.seed)
    initial = None
    methods, models = {}, {}
    # Each method: its terms, and the stored features its batches carry.
    for name, term_list, carried in ((LOGITS, (), []),
                                     (FEATURES_IN_BATCH, (), keys),
                                     (TERM, terms, keys)):
        run_cfg = dataclasses.replace(
            cfg, distill=dataclasses.replace(distill, features=term_list))
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        # The stage's own compile (optimizer, metrics, alpha, temperature).
        model = training_stage._compiled(run_cfg, "distill", data.num_classes,
                                         data.vocab_size, ids)
        if initial is None:
            initial = model.student.get_weights()
        model.student.set_weights(initial)
        if jit_compile:
            model.jit_compile = True
        dataset = cache.as_dataset(ids, labels, batch_size=distill.batch_size,
                                   shuffle=True, seed=cfg.seed, verify=False,
                                   features=carried, epoch=epoch)
        if steps is not None:
            dataset = dataset.take(steps)
        methods[name] = _fit_epoch(model, dataset, epoch,
                                   (cpu_times if cpu_times is not None else {})
                                   .setdefault(name, []))
        models[name] = model
    return methods, models


def _fit_epoch(model, dataset, epoch, cpu_times):
    def run():
        timer = EpochTimer()
        model.fit(dataset, epochs=1, verbose=0, callbacks=[timer],
                  shuffle=False)  # the order is the dataset's, as in the stage
        epoch.assign_add(1)  # the next round sees another shuffle
        cpu_times.append(timer.cpu_times[0])
        return timer.times[0]

    return run


def ratios(times):
    """The paired ratios over logits only (median of per-round ratios)."""
    base = times[LOGITS]
    return {f"{name} / {LOGITS}": median_ratio(times[name], base)
            for name in (FEATURES_IN_BATCH, TERM)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60,
                        help="timed rounds, one run per method each "
                             "(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30,
                        help="batches per timed run: short runs pair the "
                             "methods closer in time (default: %(default)s; "
                             "0: the whole epoch)")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="cap per split (default: the whole split)")
    parser.add_argument("--jit-compile", action="store_true",
                        help="every method with jit_compile=True (XLA)")
    parser.add_argument("--recipe", choices=RECIPES, default="text_cnn",
                        help="the earlier demo's text CNN or the shipped demo's default "
                             "recipe (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1,000 examples, 2 rounds")
    parser.add_argument("--output", default=os.path.join(RESULTS, "feature_step.json"),
                        help="JSON output path (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.max_examples, args.rounds = 1000, 2
    if args.rounds < 1 or args.steps < 0:
        parser.error("--rounds must be >= 1 and --steps >= 0")

    with tempfile.TemporaryDirectory() as folder:
        data = data_stage.prepare_data(step_config(folder, args.max_examples, args.recipe))
        cfg = data.config  # with the default recipe's choices
        cpu = {}
        methods, models = make_methods(cfg, data, os.path.join(folder, "store"),
                                       args.jit_compile, args.steps or None, cpu)
        load_before = os.getloadavg()
        warmup, times = time_methods(methods, args.rounds)
    cpu = {name: values[1:] for name, values in cpu.items()}  # after warm-up
    n = len(data.ids["train"])
    batch = cfg.distill.batch_size
    per_run = min(n, args.steps * batch) if args.steps else n
    paired, paired_cpu = ratios(times), ratios(cpu)
    key = f"{TERM} / {LOGITS}"
    cost, cpu_cost = paired[key] - 1.0, paired_cpu[key] - 1.0
    (projection,) = models[TERM].projections
    result = {
        "benchmark": "feature_step",
        "setup": {
            "config": ("configs/demo.yaml with quality.TEXT_CNN_RECIPE (step_config)"
                       if args.recipe == "text_cnn" else
                       "configs/demo.yaml, the default recipe without copies (step_config)"),
            "student": cfg.student.architecture,
            "sequence_length": cfg.student.sequence_length,
            "student_params": models[LOGITS].student.count_params(),
            "projection_kernel": list(projection.inner.kernel.shape),
            "feature_terms": [dataclasses.asdict(t) for t in cfg.distill.features],
            "train_examples": n,
            "batch_size": batch,
            "batches_per_run": args.steps or "epoch",
            "teacher_outputs": "cached (teacher=None), seeded random values",
            "jit_compile": bool(args.jit_compile),
            "rounds": args.rounds,
            "statistic": "median over interleaved rounds of per-round ratios",
            **machine(load_before),
            "command": " ".join(["python", "benchmarks/feature_step.py",
                                 *(sys.argv[1:] if argv is None else argv)]),
        },
        "warmup_seconds": warmup,
        "methods": summarize(times, per_run),
        "cpu_seconds": summarize(cpu, per_run),
        "paired_time_ratios": paired,
        "paired_cpu_time_ratios": paired_cpu,
        "goal": {"feature_term_cost": cost, "feature_term_cpu_cost": cpu_cost,
                 "at_most": GOAL, "met": cost <= GOAL},
    }
    print_report(result)
    write_json(args.output, result)
    print(f"wrote {args.output}")
    return 0


def print_report(result):
    print(f"\n{'method':<38}{'median s/run':>13}{'CPU s/run':>11}{'samples/s':>11}")
    for name, m in result["methods"].items():
        print(f"{name:<38}{m['median_seconds']:>13.3f}"
              f"{result['cpu_seconds'][name]['median_seconds']:>11.3f}"
              f"{m['samples_per_second']:>11.0f}")
    print("\npaired ratios (median over rounds of per-round ratios), "
          "wall time and CPU time:")
    for name, value in result["paired_time_ratios"].items():
        print(f"  {name:<56}{value:>7.3f}"
              f"{result['paired_cpu_time_ratios'][name]:>7.3f}")
    goal, load = result["goal"], result["setup"]
    print(f"\nthe pooled feature term costs {100 * goal['feature_term_cost']:+.1f}% "
          f"wall time ({100 * goal['feature_term_cpu_cost']:+.1f}% CPU time) "
          f"over logits only (goal <= +{100 * GOAL:.0f}%: "
          f"{'met' if goal['met'] else 'MISSED'}); 1-minute load average "
          f"{load['load_average_1min'][0]:.1f} before, "
          f"{load['load_average_1min'][1]:.1f} after")


if __name__ == "__main__":
    sys.exit(main())
