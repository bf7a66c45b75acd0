"""Quality benchmark: teacher, student alone, kd_keras distilled and
`keras.distillation.Distiller` distilled, on the built-in rt_polarity split.

Mean of several seeds on the test split, with full labels and with 10% of the
labels (the other 90% of the training sentences as unlabeled transfer data,
label -1). The teacher is adapted as the demo config says: its top 3 MiniLM
blocks and head fine-tuned per run on the labeled examples
(`kd_keras.teachers.TopLayerTuner`; the 3 frozen blocks' activations are
computed once for all runs). The students are trained with the same budget.
Latency: int8 TFLite student vs the teacher SavedModel, one example, one
thread (measured in a subprocess started with one intra/inter-op thread).

    python benchmarks/quality.py                  # 3 seeds
    python benchmarks/quality.py --seeds 0 --epochs 4

Prints a table and writes benchmarks/results/quality.json.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


OVERRIDES = []  # (key path, value) pairs from --set


def _cfg(epochs, seed, fraction):
    from kd_keras.config import validate_config
    from kd_keras.demo import demo_config

    cfg = demo_config(output=os.path.join(HERE, "results", "quality_run"), epochs=epochs, verbose=0)
    if OVERRIDES:
        for path, value in OVERRIDES:
            node = cfg
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        cfg = validate_config(cfg)
    cfg["seed"] = seed
    cfg["data"]["labels_fraction"] = fraction
    cfg["distill"]["cache_dir"] = os.path.join(os.path.dirname(HERE), "runs", ".kd_keras_cache")
    return cfg


def _keras_builtin_distill(cfg, ids, labels, teacher_logits, vocab_size, num_classes):
    """`keras.distillation.Distiller` with the same student and budget. Its
    teacher and student read the same `x`, so `x` carries the example index
    in its last column: the teacher looks its (precomputed, identical)
    logits up by index, the student reads the ids."""
    import keras

    from kd_keras.pipeline import training

    d, seq = cfg["distill"], cfg["student"]["sequence_length"]
    keras.utils.set_random_seed(cfg["seed"])
    n_train = len(ids["train"])
    table = np.concatenate([teacher_logits["train"], teacher_logits["validation"]])
    x_in = keras.Input((seq + 1,), dtype="int32")
    gathered = keras.layers.Lambda(lambda x: keras.ops.take(table, x[:, -1], axis=0),
                                   output_shape=(num_classes,))(x_in)
    teacher = keras.Model(x_in, gathered)
    core = training.build_student(cfg, num_classes, vocab_size)
    s_in = keras.Input((seq + 1,), dtype="int32")
    student = keras.Model(s_in, core(s_in[:, :seq]))
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=d["temperature"]),
        student_loss_weight=d["alpha"])
    distiller.compile(optimizer=keras.optimizers.Adam(d["learning_rate"]),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    keep = labels["train"] >= 0
    x_train = np.concatenate([ids["train"], np.arange(n_train)[:, None]], 1).astype("int32")
    x_val = np.concatenate([ids["validation"], n_train + np.arange(len(ids["validation"]))[:, None]], 1).astype("int32")
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=d["early_stopping"]["patience"],
                                       restore_best_weights=True)
    distiller.fit(x_train[keep], labels["train"][keep], batch_size=d["batch_size"], epochs=d["epochs"],
                  validation_data=(x_val, labels["validation"]), callbacks=[es], verbose=0)
    return training.accuracy(core, ids["test"], labels["test"])


class TeacherSource:
    """Adapts the demo's teacher for each run, the way the demo config says:
    fine-tuning the top blocks (`TopLayerTuner`, with the frozen blocks'
    activations computed once for all runs) or a head on frozen features
    (computed once and cached on disk)."""

    def __init__(self, base, full, verbose=1):
        from kd_keras import teachers
        from kd_keras.data import SPLITS
        from kd_keras.pipeline import teacher_stage

        t = base["teacher"]
        self.ft = t["fine_tune"]
        self.model = teachers.build_text_teacher(
            teacher_stage.resolve_backbone(t["backbone"]), full.num_classes,
            sequence_length=t["sequence_length"])
        self.tuned = bool(self.ft["train_backbone"] and self.ft["top_layers"])
        if self.tuned:
            self.tuner = teachers.TopLayerTuner(self.model, self.ft["top_layers"],
                                                batch_size=self.ft["batch_size"])
            for split in SPLITS:
                self.tuner.add(split, full.texts[split], verbose=verbose)
            self.initial = self.tuner.top_model.get_weights()
        else:
            self.features = teacher_stage.backbone_features(
                self.model, full, base["distill"]["cache_dir"], verbose=verbose)

    def logits(self, cfg, data):
        """Teacher logits of every split after adapting it to `data`'s labels."""
        from kd_keras.data import SPLITS
        from kd_keras.pipeline import teacher_stage

        labels, ft = data.labels, self.ft
        if self.tuned:
            self.tuner.top_model.set_weights(self.initial)
            self.tuner.fit_head("train", labels["train"])
            self.tuner.fit("train", labels["train"], epochs=ft["epochs"],
                           learning_rate=ft["learning_rate"] or 1e-4,
                           validation=("validation", labels["validation"]),
                           seed=cfg["seed"], verbose=0)
            return {split: self.tuner.predict(split) for split in SPLITS}
        head = teacher_stage.fit_head_on_features(
            self.model, self.features["train"], labels["train"], ft["epochs"],
            ft["learning_rate"], ft["batch_size"], self.features["validation"],
            labels["validation"], cfg["seed"], verbose=0)
        return {split: head.predict(self.features[split], verbose=0) for split in SPLITS}


def run_seed(cfg, data, ids, source, vocab_size, keras_builtin):
    from kd_keras.pipeline import training

    labels = data.labels
    model = source.model
    logits = source.logits(cfg, data)
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    row = {"teacher": training.logits_accuracy(logits["test"], labels["test"]),
           "teacher_params": int(model.count_params())}
    with tempfile.TemporaryDirectory() as work:
        alone, _ = training.train_baseline(cfg, ids, labels, vocab_size, data.num_classes, work, strategy, verbose=0)
        row["student_alone"] = training.accuracy(alone, ids["test"], labels["test"])
        row["student_params"] = int(alone.count_params())
        distilled, _ = training.distill_student(cfg, ids, labels, logits, vocab_size, data.num_classes, work,
                                                strategy, verbose=0)
        row["kd_keras"] = training.accuracy(distilled, ids["test"], labels["test"])
    if keras_builtin:
        row["keras_distillation"] = _keras_builtin_distill(cfg, ids, labels, logits, vocab_size, data.num_classes)
    return row, model, distilled, ids


def latency(teacher_dir, tflite_path, example_text, example_ids, runs=50):
    """Median single-example latency (ms) of the teacher SavedModel and the
    int8 TFLite student, one thread each (run inside this process, which the
    caller starts with one thread)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
    from ai_edge_litert.interpreter import Interpreter

    sm = tf.saved_model.load(teacher_dir)
    fn = sm.signatures["serving_default"]
    arg = list(fn.structured_input_signature[1])[0]
    text = tf.constant([example_text])

    def timed(call):
        call()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            call()
            times.append(1000 * (time.perf_counter() - t))
        return float(np.median(times))

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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--name", default="quality", help="results/<name>.json")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change the demo config, e.g. --set distill.augment.copies=4 "
                             "(VALUE is read as YAML)")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--only-latency", action="store_true",
                        help="measure latency only and add it to results/<name>.json (weights "
                             "do not change latency: untrained head and student)")
    parser.add_argument("--latency", nargs=4, metavar=("TEACHER_DIR", "TFLITE", "TEXT", "IDS_JSON"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency:
        print(json.dumps(latency(args.latency[0], args.latency[1], args.latency[2], json.loads(args.latency[3]))))
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import yaml
    from tqdm.auto import tqdm

    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item}: expected KEY=VALUE")
        OVERRIDES.append((key.split("."), yaml.safe_load(value)))

    from kd_keras.data import SPLITS, WordPieceEncoder
    from kd_keras.pipeline import load_data, vocabulary_path

    base = _cfg(args.epochs, 0, 1.0)
    full = load_data(base)
    encoder = WordPieceEncoder(vocabulary_path(base), base["student"]["sequence_length"])
    ids = {s: encoder(full.texts[s]) for s in SPLITS}
    source = TeacherSource(base, full)

    # Runs finished by an earlier, interrupted invocation are kept.
    rows, last = {}, None
    if args.only_latency:
        args.seeds = []
    partial_path = os.path.join(HERE, "results", f"{args.name}.partial.json")
    if os.path.exists(partial_path):
        with open(partial_path) as f:
            previous = json.load(f)
        if (previous.get("epochs") == args.epochs and previous.get("teacher") == base["teacher"]
                and previous.get("distill") == base["distill"]):
            rows = previous["runs"]
    done = {(fr, r["seed"]) for fr, runs in rows.items() for r in runs}
    jobs = [(f, s) for f in args.fractions for s in args.seeds if (str(f), s) not in done]
    for fraction, seed in tqdm(jobs, desc="quality", unit="run"):
        # One fixed split (the demo's, seed 0) for every run, so that the
        # cached teacher activations line up; the seed varies the label mask,
        # the initialisation, dropout and the shuffling.
        cfg = _cfg(args.epochs, seed, fraction)
        data = full if fraction >= 1 else full.with_label_fraction(fraction, seed=seed)
        row, teacher, student, _ = run_seed(cfg, data, ids, source, encoder.vocab_size,
                                            keras_builtin=fraction == 1.0)
        rows.setdefault(str(fraction), []).append(dict(row, seed=seed))
        last = (teacher, student)
        partial = {"runs": rows, "epochs": args.epochs, "teacher": base["teacher"],
                   "distill": base["distill"]}
        with open(partial_path, "w") as f:
            json.dump(partial, f, indent=1)

    summary = {}
    if args.only_latency:
        with open(os.path.join(HERE, "results", f"{args.name}.json")) as f:
            previous = json.load(f)
        rows, summary = previous["runs"], previous["summary"]
        args.seeds, args.epochs = previous["seeds"], previous["epochs"]
    for fraction, runs in ([] if args.only_latency else rows.items()):
        keys = [k for k in runs[0] if k not in ("seed",) and not k.endswith("params")]
        summary[fraction] = {k: float(np.mean([r[k] for r in runs])) for k in keys}
        summary[fraction]["std"] = {k: float(np.std([r[k] for r in runs])) for k in keys}
        summary[fraction]["teacher_params"] = runs[0]["teacher_params"]
        summary[fraction]["student_params"] = runs[0]["student_params"]

    # Latency: export the (last) teacher as a SavedModel and the student to int8 TFLite.
    if args.only_latency:
        from kd_keras.pipeline import training

        last = (source.model, training.build_student(base, full.num_classes, encoder.vocab_size))
    elif last is None:
        cfg = _cfg(args.epochs, args.seeds[0], args.fractions[0])
        _, *last = run_seed(cfg, full, ids, source, encoder.vocab_size, keras_builtin=False)[:3]
    teacher, student = last
    import tensorflow as tf

    teacher(tf.constant(full.texts["test"][:2]))  # export needs a called model
    import kd_keras

    lat = None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if args.no_latency:
                raise RuntimeError("skipped (--no-latency)")
            teacher_dir = os.path.join(tmp, "teacher_sm")
            serve = tf.function(lambda text: teacher(text, training=False),
                                input_signature=[tf.TensorSpec([None], tf.string, name="text")])
            module = tf.Module()
            module.teacher = teacher
            module.serve = serve
            tf.saved_model.save(module, teacher_dir, signatures={"serving_default": serve})
            rep = kd_keras.export.export_model(student, os.path.join(tmp, "student"), formats=("tflite",),
                                               quantization=("int8",), representative_data=ids["train"][:200],
                                               validation_data=(ids["test"], full.labels["test"]))
            tfl = rep["artifacts"][0]["path"]
            env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
                       OMP_NUM_THREADS="1")
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--latency", teacher_dir, tfl,
                 full.texts["test"][0], json.dumps(ids["test"][0].tolist())],
                capture_output=True, text=True, env=env, check=True)
            lat = json.loads(proc.stdout.strip().splitlines()[-1])
            lat["speedup"] = lat["teacher_saved_model_ms"] / lat["student_tflite_int8_ms"]
        except Exception as e:  # Report, don't lose the accuracy numbers.
            detail = getattr(e, "stderr", "") or ""
            lat = {"error": f"{type(e).__name__}: {e} {detail[-500:]}"}

    result = {"seeds": args.seeds, "epochs": args.epochs, "teacher": base["teacher"],
              "distill": base["distill"], "overrides": args.set,
              "summary": summary, "runs": rows, "latency": lat}
    out = os.path.join(HERE, "results", f"{args.name}.json")
    with open(out + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(out + ".tmp", out)

    print(f"\nrt_polarity test accuracy, mean of seeds {args.seeds} ({args.epochs} epochs max)")
    print(f"{'labels':<8}{'teacher':>9}{'alone':>9}{'kd_keras':>10}{'keras KD':>10}{'kd-alone':>10}{'kd/teacher':>12}")
    for fraction, s in summary.items():
        kk = s.get("keras_distillation")
        print(f"{float(fraction):<8.0%}{100*s['teacher']:>8.2f}%{100*s['student_alone']:>8.2f}%"
              f"{100*s['kd_keras']:>9.2f}%{('-' if kk is None else f'{100*kk:.2f}%'):>10}"
              f"{100*(s['kd_keras']-s['student_alone']):>+9.2f}pt{s['kd_keras']/s['teacher']:>11.1%}")
    s = next(iter(summary.values()))
    print(f"params: teacher {s['teacher_params']:,}, student {s['student_params']:,} "
          f"({s['teacher_params']/s['student_params']:.1f}x fewer)")
    if lat and "speedup" in lat:
        print(f"latency (1 example, 1 thread): teacher SavedModel {lat['teacher_saved_model_ms']:.2f} ms, "
              f"int8 TFLite student {lat['student_tflite_int8_ms']:.3f} ms ({lat['speedup']:.0f}x faster)")
    else:
        print(f"latency: {lat}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
