"""Benchmark: where the export stage of a demo-sized run spends its time.

Exports the demo's student the way `kd-keras distill` does
(`kd_keras.pipeline.export_stage`): a ~2M-parameter `text_cnn` on WordPiece
ids (sequence 48, the MiniLM vocabulary of 30,522 ids) to SavedModel, TFLite
and ONNX, float and int8, with the raw-text artifacts (`serving_text`,
`tflite/model_text*.tflite`, MediaPipe's classifier), verified on the 1,066
test sentences of the built-in movie reviews, 200 training sentences for
int8 calibration. It prints and writes to `benchmarks/results/export_time.json`
each export's wall time, its parts (the report's `seconds`, see
`kd_keras.export.exporter`) and the machine's load.

    python benchmarks/export_time.py [--rounds 2] [--before DIR]

The student is trained once (2 seeded epochs) and kept in `--work` (default:
a folder under the system's temporary directory), so every export, and
every code version, exports the same model. Each export runs in a fresh
process. `--before DIR` also exports with the code checked out in `DIR`
(e.g. `git worktree add DIR COMMIT`), alternating with today's code round by
round, and prints the ratios; code without a `seconds` report gives its
total only. The reports' accuracies, agreements and logit differences of
both versions are printed side by side: they must be equal.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results", "export_time.json")
SEQUENCE_LENGTH = 48
CALIBRATION_EXAMPLES = 200  # As kd_keras.pipeline.export_stage picks them.
SEED = 0


def prepare(work):
    """Trains and saves the student, and stores the data the export reads."""
    student_path = os.path.join(work, "student.keras")
    if os.path.isfile(student_path):
        return
    import keras
    import numpy as np

    from kd_keras import teachers
    from kd_keras.data import WordPieceEncoder
    from kd_keras.data import load_builtin
    from kd_keras.students import build_student

    os.makedirs(work, exist_ok=True)
    keras.utils.set_random_seed(SEED)
    data = load_builtin("rt_polarity", seed=SEED)
    vocabulary = os.path.join(teachers.resolve_backbone("all-MiniLM-L6-v2"), "vocab.txt")
    encoder = WordPieceEncoder(vocabulary, SEQUENCE_LENGTH)
    ids = {split: encoder(data.texts[split]) for split in ("train", "test")}
    student = build_student("text_cnn", data.num_classes, vocab_size=encoder.vocab_size,
                            sequence_length=SEQUENCE_LENGTH)
    student.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    student.fit(ids["train"], data.labels["train"], epochs=2, batch_size=64, verbose=0)
    chosen = np.random.default_rng(SEED).permutation(len(ids["train"]))[:CALIBRATION_EXAMPLES]
    np.savez(os.path.join(work, "data.npz"), train=ids["train"][chosen], test=ids["test"],
             test_labels=data.labels["test"])
    with open(os.path.join(work, "texts.json"), "w", encoding="utf-8") as f:
        json.dump({"vocabulary": vocabulary, "labels": list(data.label_names),
                   "test": list(data.texts["test"]),
                   "calibration": [data.texts["train"][i] for i in chosen]}, f)
    student.save(student_path)


def _cpu_seconds():
    """User and system CPU time of this process and its threads so far."""
    times = os.times()
    return times.user + times.system


def export_once(work, out_dir):
    """One export with the code on `sys.path`; returns its timings and metrics."""
    import keras
    import numpy as np

    import kd_keras
    from kd_keras.export import TextExport
    from kd_keras.export import WordPiecePreprocessor
    from kd_keras.export import export_model

    student = keras.models.load_model(os.path.join(work, "student.keras"))
    data = np.load(os.path.join(work, "data.npz"))
    with open(os.path.join(work, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    load = os.getloadavg()
    start = time.perf_counter()
    preprocessor = WordPiecePreprocessor(texts["vocabulary"], SEQUENCE_LENGTH,
                                         input_name=student.inputs[0].name)
    preprocessor_seconds = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    report = export_model(
        student, out_dir, formats=("saved_model", "tflite", "onnx"),
        quantization=("none", "int8"), representative_data=data["train"],
        validation_data=(data["test"], data["test_labels"]), labels=texts["labels"],
        reject_mismatch=True, text=TextExport(
            preprocessor=preprocessor, tflite=True,
            validation_text=(texts["test"], data["test_labels"]),
            reference_inputs=data["test"], representative_text=texts["calibration"],
            mediapipe_vocabulary=texts["vocabulary"]))
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    metrics = {
        f"{a['format']}/{a['quantization']}{'/text' if a.get('validation') == 'text' else ''}":
            {k: a.get(k) for k in ("max_abs_diff", "top1_agreement", "accuracy", "passed",
                                   "recipe", "sha256")}
        for a in report["artifacts"]}
    return {"code": os.path.dirname(os.path.dirname(os.path.abspath(kd_keras.__file__))),
            "wall_seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "seconds": report.get("seconds"),
            "preprocessor_seconds": round(preprocessor_seconds, 3),
            "load_before": load, "load_after": os.getloadavg(), "metrics": metrics,
            "reference_accuracy": report["reference"]["accuracy"]}


def run_child(code, work):
    """Runs `export_once` in a fresh process with `code` first on the path."""
    env = dict(os.environ, PYTHONPATH=code)
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", "--work", work,
             "--out", os.path.join(tmp, "export")],
            env=env, check=True, capture_output=True, text=True)
    run = json.loads(result.stdout.strip().splitlines()[-1])
    if os.path.realpath(run.pop("code")) != os.path.realpath(code):
        raise RuntimeError(f"the export imported kd_keras from elsewhere than {code}")
    return run


def commit_of(code):
    """The commit checked out in `code`, marked when kd_keras/ has changes."""
    def git(*args):
        return subprocess.run(["git", "-C", code, *args], capture_output=True, text=True,
                              check=True).stdout.strip()

    changed = git("status", "--porcelain", "--", "kd_keras")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if changed else "")


def _rows(run):
    """The run's seconds by part, then its totals (None where not measured)."""
    from kd_keras.export.report import verification_seconds

    build, verification = verification_seconds(run)
    return {**(run["seconds"] or {}), "build (all but verify, latency)": build,
            "verification (verify + latency)": verification,
            "export_model wall time": run["wall_seconds"],
            "export_model CPU time (all threads)": run["cpu_seconds"],
            "WordPiecePreprocessor (before export_model)": run["preprocessor_seconds"]}


def table(runs):
    """The runs side by side, one row per part."""
    names = []
    for run in runs:
        names += [n for n in _rows(run) if n not in names]
    header = f"{'seconds':<44}" + "".join(f"{r['label']:>10}" for r in runs)
    lines = [header, "-" * len(header)]
    for name in names:
        cells = [_rows(r).get(name) for r in runs]
        lines.append(f"{name:<44}" + "".join(
            f"{'-':>10}" if c is None else f"{c:>10.2f}" for c in cells))
    return "\n".join(lines)


def differing_metrics(runs):
    """The artifacts whose accuracy, agreement, max |diff| or recipe are not
    the same in every run (their checksums may differ: timestamps).

    Example:

    >>> runs = [{"metrics": {"onnx/int8": {"accuracy": 0.7, "sha256": "a"},
    ...                      "tflite/none": {"accuracy": 0.8}}},
    ...         {"metrics": {"onnx/int8": {"accuracy": 0.7, "sha256": "b"},
    ...                      "tflite/none": {"accuracy": 0.9}}}]
    >>> differing_metrics(runs)
    ['tflite/none']
    """
    keys = sorted({k for r in runs for k in r["metrics"]})
    return [k for k in keys if len({json.dumps(
        {m: v for m, v in (r["metrics"].get(k) or {}).items() if m != "sha256"},
        sort_keys=True) for r in runs}) > 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", help="a checkout of the code to compare with")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(),
                                                       "kd_keras_export_time"))
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(export_once(args.work, args.out)))
        return
    prepare(args.work)
    sides = [("after", REPO)]
    if args.before:
        sides.append(("before", os.path.abspath(args.before)))
    runs = []
    for round_ in range(args.rounds):  # Alternating which side goes first.
        for side, code in (sides if round_ % 2 == 0 else sides[::-1]):
            run = run_child(code, args.work)
            run.update(side=side, round=round_ + 1, label=f"{side} {round_ + 1}")
            print(f"{run['label']}: export_model {run['wall_seconds']:.1f} s "
                  f"(load {run['load_before'][0]:.2f})", flush=True)
            runs.append(run)
    print(table(runs))
    summary = {side: {f"median_{what}": statistics.median(
        r[what] for r in runs if r["side"] == side) for what in ("wall_seconds", "cpu_seconds")}
        for side, _ in sides}
    if args.before:
        pairs = zip([r for r in runs if r["side"] == "after"],
                    [r for r in runs if r["side"] == "before"])
        pairs = list(pairs)
        for what in ("wall_seconds", "cpu_seconds"):
            ratios = [round(a[what] / b[what], 3) for a, b in pairs]
            summary[f"after_over_before_{what}"] = {"per_round": ratios,
                                                    "median": statistics.median(ratios)}
            print(f"export_model {what}, after / before, per round: {ratios} "
                  f"(median {statistics.median(ratios):.3f})")
    for side, _ in sides:
        summary[side]["differing_between_runs"] = differing_metrics(
            [r for r in runs if r["side"] == side])
    summary["differing_between_any_runs"] = differing_metrics(runs)
    print("artifacts whose accuracy, agreement, max |diff| or recipe differ between "
          f"runs: {summary['differing_between_any_runs'] or 'none'}; between runs of "
          + ", ".join(f"{side}: {summary[side]['differing_between_runs'] or 'none'}"
                      for side, _ in sides))
    from arguments import write_json

    write_json(RESULTS, {"code": {side: commit_of(code) for side, code in sides},
                         "rounds": args.rounds, "runs": runs, "summary": summary,
                         "cpu_count": os.cpu_count()})
    print(f"wrote {os.path.relpath(RESULTS, REPO)}")


if __name__ == "__main__":
    main()
