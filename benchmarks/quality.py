"""Quality benchmark: teacher, student alone, kd_keras distilled and
`keras.distillation.Distiller` distilled, on the demo config.

Mean of several seeds on the test split, with full labels and with 10% of the
labels (the other 90% of the training sentences as unlabeled transfer data,
label -1). Each run is the `kd-keras distill` job of the demo config
(`kd_keras/demo.yaml`, data `builtin: rt_polarity`) with `seed: S`
and `data.labels_fraction: F`, run by the CLI's own stage functions in a
fresh temporary working folder: `data_stage.prepare_data`,
`teacher_stage.adapt_teacher` (`kd_keras.teachers.adapt_text_teacher` with
`teacher_stage.adaptation_of(cfg)`), `teacher_stage.compute_outputs`,
`training_stage.train_student` (distilled, then the baseline with the same
budget) and, for the latency, `export_stage.export_student`. The split is
the demo's (`data.split_seed: 0`) in every run; the seed varies the label
mask, the teacher's fine-tuning, the students' initialisation, dropout and
shuffling.

Cost: the teacher is adapted from scratch in every run, as the CLI does. With
the demo's top-3-block fine-tuning, each run therefore also recomputes the
activations of the 3 frozen MiniLM blocks for every sentence (about 60 s for
the 10,662 rt_polarity sentences on 2 CPU cores, on top of ~6 min of
fine-tuning), where an earlier version of this script computed them once for
all runs. With `--set teacher.fine_tune.train_backbone=false` (a head on
frozen features), the features are cached in `--cache-dir` across runs.

Latency: the int8 TFLite student (`export_stage.export_student`) vs the
teacher as a SavedModel, one example, one thread (measured in a subprocess
started with one intra/inter-op thread).

    python benchmarks/quality.py                  # 3 seeds x 2 label fractions
    python benchmarks/quality.py --seeds 0 --epochs 4
    python benchmarks/quality.py --seeds 0 --epochs 1 --max-examples 100 --out runs/smoke/q.json

Prints a table and writes benchmarks/results/<name>.json (or --out).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from arguments import add_output_arguments  # noqa: E402
from arguments import add_set_argument  # noqa: E402
from arguments import results_path  # noqa: E402
from arguments import write_json  # noqa: E402

# Keys of the config that do not change what a run computes.
_NOT_COMPARED = ("output", "verbose", "seed")


# The demo's student and training before the default recipe: the text CNN
# at 48 ids, the pooled-feature term, no copies. The quality, frontier and
# MediaPipe figures were measured with it, so these benchmarks keep it (a
# `--set` changes it; `configs/demo.yaml` now leaves these keys to the
# default recipe).
TEXT_CNN_RECIPE = {
    "student": {"architecture": "text_cnn", "sequence_length": 48},
    "distill": {"epochs": 10, "batch_size": 64, "alpha": 0.1, "temperature": 1.0,
                "cache_teacher": True, "baseline": True, "early_stopping": {"patience": 3},
                "features": [{"teacher_layer": "classifier/pooling",
                              "student_layer": "features", "loss": "cosine", "weight": 1.0}],
                "augment": {"copies": 0}},
}


def text_cnn_demo_raw():
    """The raw demo config (its data, teacher and export) with
    `TEXT_CNN_RECIPE`: the one source of the benchmarks' earlier demo."""
    import copy

    from kd_keras.config import read_yaml
    from kd_keras.demo import DEMO_CONFIG_PATH

    return {**read_yaml(DEMO_CONFIG_PATH), **copy.deepcopy(TEXT_CNN_RECIPE)}


def base_raw(args):
    """`text_cnn_demo_raw()` with this invocation's data, epochs and `--set`."""
    from kd_keras.config import apply_overrides

    raw = text_cnn_demo_raw()
    if args.data:
        raw["data"] = {"train": os.path.abspath(args.data)}
    elif args.builtin:
        raw["data"] = {"builtin": args.builtin}
    raw = apply_overrides(raw, {"distill.epochs": args.epochs,
                                "data.max_examples": args.max_examples})
    raw = apply_overrides(raw, args.overrides)
    raw["verbose"] = 0
    return raw


def run_config(raw, seed, fraction):
    """The validated `RunConfig` of one run."""
    from kd_keras.config import apply_overrides
    from kd_keras.config import parse_config

    changes = {"seed": seed, "data.labels_fraction": fraction, "data.split_seed": 0}
    return parse_config(apply_overrides(raw, changes), base_dir=os.getcwd())


def keras_builtin_distill(cfg, data, teacher_logits):
    """`keras.distillation.Distiller` with the same student and budget. Its
    teacher and student read the same `x`, so `x` carries the example index
    in its last column: the teacher looks its (precomputed, identical)
    logits up by index, the student reads the ids."""
    import keras

    from kd_keras.pipeline import training_stage

    d, seq = cfg.distill, cfg.student_sequence_length
    ids, labels, num_classes = data.ids, data.labels, data.num_classes
    keras.utils.set_random_seed(cfg.seed)
    n_train = len(ids["train"])
    table = np.concatenate([teacher_logits["train"], teacher_logits["validation"]])
    x_in = keras.Input((seq + 1,), dtype="int32")
    gathered = keras.layers.Lambda(lambda x: keras.ops.take(table, x[:, -1], axis=0),
                                   output_shape=(num_classes,))(x_in)
    teacher = keras.Model(x_in, gathered)
    core = training_stage.configured_student(cfg, num_classes, data.vocab_size,
                                        ids["train"][labels["train"] >= 0])
    s_in = keras.Input((seq + 1,), dtype="int32")
    student = keras.Model(s_in, core(s_in[:, :seq]))
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=d.temperature),
        student_loss_weight=d.alpha)
    distiller.compile(optimizer=keras.optimizers.Adam(d.learning_rate),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    keep = labels["train"] >= 0
    x_train = np.concatenate([ids["train"], np.arange(n_train)[:, None]], 1).astype("int32")
    val_index = n_train + np.arange(len(ids["validation"]))[:, None]
    x_val = np.concatenate([ids["validation"], val_index], 1).astype("int32")
    callbacks = []
    if d.early_stopping is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=d.early_stopping.patience, restore_best_weights=True))
    distiller.fit(x_train[keep], labels["train"][keep], batch_size=d.batch_size,
                  epochs=d.epochs, validation_data=(x_val, labels["validation"]),
                  callbacks=callbacks, verbose=0)
    return training_stage.model_accuracy(core, ids["test"], labels["test"])


def run_once(cfg, work, cache_dir, keras_builtin):
    """One run of the CLI's stages in `work`; returns `(row, (cfg, data,
    teacher model, distilled student))`."""
    import keras

    import kd_keras
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline import teacher_stage
    from kd_keras.data.labels import accuracy
    from kd_keras.pipeline import training_stage
    from kd_keras.pipeline.workdir import RunDir

    keras.utils.set_random_seed(cfg.seed)
    data = data_stage.prepare_data(cfg)
    cfg = data.config
    run = RunDir(os.path.join(work, "run"), cfg)
    state = teacher_stage.adapt_teacher(cfg, data, run, cache_dir)
    outputs = teacher_stage.compute_outputs(cfg, data, state, run)
    logits = {split: outputs.logits(split) for split in outputs.directories}
    strategy = kd_keras.distribute.get_strategy(cfg.distribute.strategy)
    distilled = training_stage.train_student(cfg, data, run, "distill", outputs, strategy)
    alone = training_stage.train_student(cfg, data, run, "baseline", None, strategy)
    test_x, test_y = data.ids["test"], data.labels["test"]
    row = {"teacher": accuracy(logits["test"], test_y),
           "teacher_params": state.params,
           "student_alone": training_stage.model_accuracy(alone.model, test_x, test_y),
           "student_params": int(alone.model.count_params()),
           "kd_keras": training_stage.model_accuracy(distilled.model, test_x, test_y)}
    if keras_builtin:
        row["keras_distillation"] = keras_builtin_distill(cfg, data, logits)
    return row, (cfg, data, state.model, distilled.model)


def latency(teacher_dir, tflite_path, example_text, example_ids, runs=50):
    """Median single-example latency (ms) of the teacher SavedModel and the
    int8 TFLite student, one thread each (run inside this process, which the
    caller starts with one thread)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    from ai_edge_litert.interpreter import Interpreter

    from kd_keras.timing import time_calls

    sm = tf.saved_model.load(teacher_dir)
    fn = sm.signatures["serving_default"]
    arg = list(fn.structured_input_signature[1])[0]
    text = tf.constant([example_text])

    def timed(call):
        return float(np.median(time_calls(call, runs)))

    teacher_ms = timed(lambda: fn(**{arg: text}))
    interp = Interpreter(model_path=tflite_path, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    x = np.asarray(example_ids, inp["dtype"])[None]

    def run_tflite():
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])

    return {"teacher_saved_model_ms": teacher_ms, "student_tflite_int8_ms": timed(run_tflite)}


def measure_latency(cfg, data, teacher, student, tmp):
    """Exports the teacher as a SavedModel and the student to int8 TFLite
    (the CLI's export stage), then times both in a one-thread subprocess."""
    from kd_keras.config import ExportConfig
    from kd_keras.pipeline import export_stage
    from kd_keras.pipeline.workdir import RunDir

    teacher_dir = os.path.join(tmp, "teacher_sm")
    save_teacher(teacher, data.dataset.texts["test"][:2], teacher_dir)
    export_cfg = cfg.replace(export=ExportConfig(formats=("tflite",), quantization=("int8",)))
    run = RunDir(os.path.join(tmp, "student"), export_cfg)
    report = export_stage.export_student(export_cfg, data, student, run)
    tfl = os.path.join(run.file("export"), report["artifacts"][0]["path"])
    return one_thread_latency(teacher_dir, tfl, data.dataset.texts["test"][0],
                              data.ids["test"][0])


def save_teacher(teacher, texts, path):
    """Saves the teacher (raw strings in) as the SavedModel `latency` times;
    `texts`: a few sentences to call it on first (export needs a called model)."""
    import tensorflow as tf

    teacher(tf.constant(list(texts)))
    serve = tf.function(lambda text: teacher(text, training=False),
                        input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    module = tf.Module()
    module.teacher = teacher
    module.serve = serve
    tf.saved_model.save(module, path, signatures={"serving_default": serve})


def one_thread_latency(teacher_dir, tflite_path, text, ids):
    """`latency` run in a subprocess started with one thread; adds `speedup`
    (teacher ms / student ms)."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
               OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--latency", teacher_dir, tflite_path,
         text, json.dumps(np.asarray(ids).tolist())],
        capture_output=True, text=True, env=env, check=True)
    lat = json.loads(proc.stdout.strip().splitlines()[-1])
    lat["speedup"] = lat["teacher_saved_model_ms"] / lat["student_tflite_int8_ms"]
    return lat


def untrained(cfg):
    """`(cfg, data, teacher, student)` with an unadapted teacher and an
    untrained student (weights do not change latency)."""
    from kd_keras import teachers
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline import training_stage

    data = data_stage.prepare_data(cfg)
    cfg = data.config
    t = cfg.teacher
    teacher = teachers.build_text_teacher(
        teachers.resolve_backbone(t.backbone), data.num_classes,
        sequence_length=t.sequence_length, pooling=t.pooling)
    student = training_stage.configured_student(cfg, data.num_classes, data.vocab_size,
                                           data.ids["train"])
    return cfg, data, teacher, student


def parse_overrides(parser, items):
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set {item}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _summary(rows):
    summary = {}
    for fraction, runs in rows.items():
        keys = [k for k in runs[0] if k != "seed" and not k.endswith("params")]
        summary[fraction] = {k: float(np.mean([r[k] for r in runs])) for k in keys}
        summary[fraction]["std"] = {k: float(np.std([r[k] for r in runs])) for k in keys}
        summary[fraction]["teacher_params"] = runs[0]["teacher_params"]
        summary[fraction]["student_params"] = runs[0]["student_params"]
    return summary


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Data: the built-in rt_polarity by default (--builtin ag_news for the other "
               "shipped dataset); --data FILE runs on your own labelled file instead, "
               "e.g. a bigger corpus (any format `data.train` of a config accepts, split "
               "by `data.split`; --set data.format=... etc. refine it).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10, help="student epochs (max)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--builtin", default=None, help="a built-in dataset (default: the "
                        "demo's rt_polarity)")
    parser.add_argument("--data", default=None, metavar="FILE",
                        help="a labelled text file (text, label) to use instead of the "
                             "built-in data; read as the config key data.train")
    parser.add_argument("--max-examples", type=int, default=None, metavar="N",
                        help="cap each split at N examples (data.max_examples), for a quick run")
    add_output_arguments(parser, "quality")
    add_set_argument(parser, "the demo config")
    parser.add_argument("--cache-dir", default=os.path.join(ROOT, "runs", ".kd_keras_cache"),
                        help="where frozen teacher features are cached across runs "
                             "(the head route; default runs/.kd_keras_cache)")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--only-latency", action="store_true",
                        help="measure latency only and add it to the output JSON (weights "
                             "do not change latency: unadapted teacher, untrained student)")
    parser.add_argument("--latency", nargs=4, metavar=("TEACHER_DIR", "TFLITE", "TEXT", "IDS_JSON"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency:
        print(json.dumps(latency(args.latency[0], args.latency[1], args.latency[2],
                                 json.loads(args.latency[3]))))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from tqdm.auto import tqdm

    from kd_keras.config import header_resolved
    from kd_keras.config import to_dict
    from kd_keras.errors import KdKerasError

    args.overrides = parse_overrides(parser, args.set)
    raw = base_raw(args)
    try:
        base = run_config(raw, 0, 1.0)
    except KdKerasError as e:
        parser.error(str(e))
    # The header as read: earlier files say `false` where it is now unset.
    as_read = base.replace(data=header_resolved(base.data))
    fingerprint = {k: v for k, v in to_dict(as_read).items() if k not in _NOT_COMPARED}
    fingerprint["data"].pop("labels_fraction")
    out = results_path(args)
    partial_path = os.path.splitext(out)[0] + ".partial.json"
    if args.only_latency and not os.path.exists(out):
        parser.error(f"--only-latency: {out} not found; run the benchmark first")

    # Runs finished by an earlier, interrupted invocation are kept.
    rows, last = {}, None
    if args.only_latency:
        args.seeds = []
    if os.path.exists(partial_path):
        with open(partial_path) as f:
            previous = json.load(f)
        if previous.get("config") == fingerprint:
            rows = previous["runs"]
    done = {(fr, r["seed"]) for fr, runs in rows.items() for r in runs}
    jobs = [(f, s) for f in args.fractions for s in args.seeds if (str(f), s) not in done]
    for fraction, seed in tqdm(jobs, desc="quality", unit="run"):
        cfg = run_config(raw, seed, fraction)
        with tempfile.TemporaryDirectory() as work:
            row, last = run_once(cfg, work, args.cache_dir, keras_builtin=fraction == 1.0)
        rows.setdefault(str(fraction), []).append(dict(row, seed=seed))
        write_json(partial_path, {"config": fingerprint, "runs": rows})

    summary = _summary(rows)
    if args.only_latency:
        with open(out) as f:
            previous = json.load(f)
        rows, summary = previous["runs"], previous["summary"]
        args.seeds, args.epochs = previous["seeds"], previous["epochs"]

    lat = None
    tmp = tempfile.mkdtemp(prefix="kd_quality_latency_")
    try:
        if args.no_latency:
            raise RuntimeError("skipped (--no-latency)")
        if last is None:  # every run came from the partial file, or --only-latency
            last = untrained(base)
        lat = measure_latency(*last, tmp)
    except Exception as e:  # Report, don't lose the accuracy numbers.
        detail = getattr(e, "stderr", "") or ""
        lat = {"error": f"{type(e).__name__}: {e} {detail[-500:]}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    data_config = {k: v for k, v in to_dict(as_read.data).items() if k != "labels_fraction"}
    result = {"seeds": args.seeds, "epochs": args.epochs, "data": data_config,
              "teacher": to_dict(base.teacher), "distill": to_dict(base.distill),
              "overrides": args.set, "summary": summary, "runs": rows, "latency": lat}
    write_json(out, result)
    if os.path.exists(partial_path):
        os.remove(partial_path)

    data_name = base.data.builtin or os.path.basename(base.data.train)
    print(f"\n{data_name} test accuracy, mean of seeds {args.seeds} ({args.epochs} epochs max)")
    print(f"{'labels':<8}{'teacher':>9}{'alone':>9}{'kd_keras':>10}{'keras KD':>10}"
          f"{'kd-alone':>10}{'kd/teacher':>12}")
    for fraction, s in summary.items():
        kk = s.get("keras_distillation")
        print(f"{float(fraction):<8.0%}{100*s['teacher']:>8.2f}%{100*s['student_alone']:>8.2f}%"
              f"{100*s['kd_keras']:>9.2f}%{('-' if kk is None else f'{100*kk:.2f}%'):>10}"
              f"{100*(s['kd_keras']-s['student_alone']):>+9.2f}pt"
              f"{s['kd_keras']/s['teacher']:>11.1%}")
    if summary:
        s = next(iter(summary.values()))
        print(f"params: teacher {s['teacher_params']:,}, student {s['student_params']:,} "
              f"({s['teacher_params']/s['student_params']:.1f}x fewer)")
    if lat and "speedup" in lat:
        print(f"latency (1 example, 1 thread): teacher SavedModel "
              f"{lat['teacher_saved_model_ms']:.2f} ms, int8 TFLite student "
              f"{lat['student_tflite_int8_ms']:.3f} ms ({lat['speedup']:.0f}x faster)")
    else:
        print(f"latency: {lat}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
