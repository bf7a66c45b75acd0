"""Per-sentence latency of a finished run's raw-text artifacts, tokenization included.

Times, for one sentence at a time, on one thread and one core: the MediaPipe
text classifiers (`mediapipe/model.tflite`, `mediapipe/model_int8.tflite`, in
MediaPipe's Python `TextClassifier`, which tokenizes natively), the TF-Text
TFLite files (`tflite/model_text*.tflite`, tokenizer in the graph), and the
teacher (its SavedModel on raw strings). Each is timed in its own process,
pinned to one CPU core with TensorFlow's and OpenMP's thread pools at one
thread (MediaPipe's task has no thread option, so the pinning is what holds
it to one), by the export verification's own timer
(`kd_keras.export.verify.measure_latency`): `--warmup` calls, then `--calls`
timed calls; the median and the 95th percentile are reported.

    python benchmarks/mediapipe_latency.py --run runs/demo
    python benchmarks/mediapipe_latency.py --run runs/demo --calls 200 --no-teacher  # quick

Prints a table and writes benchmarks/results/mediapipe_latency.json (or --out).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from arguments import write_json  # noqa: E402

# The report entries timed here: (format, quantization, validation).
TEXT_ARTIFACTS = (("mediapipe", "none", "text"), ("mediapipe", "int8", "text"),
                  ("tflite", "none", "text"), ("tflite", "int8", "text"))
TEACHER = "teacher"


def _saved_model_teacher(path):
    """The teacher's SavedModel (raw strings in) as a runtime with `run`."""
    from kd_keras.export.runtimes import Runtime

    class SavedModelTeacher(Runtime):
        def __init__(self, path):
            super().__init__()
            import tensorflow as tf
            import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

            self._fn = tf.saved_model.load(path).signatures["serving_default"]
            self._arg = list(self._fn.structured_input_signature[1])[0]

        def run(self, inputs):
            import tensorflow as tf

            (texts,) = inputs.values()
            return self._fn(**{self._arg: tf.constant(list(texts))})

    return SavedModelTeacher(path)


def time_one(kind, path, signature, sentence, calls, warmup):
    """`(p50, p95)` ms of one call on `sentence`, in this process."""
    from kd_keras.export.runtimes import load_runtime
    from kd_keras.export.verify import measure_latency

    inputs = {"text": [sentence]}
    if kind == TEACHER:
        return measure_latency(_saved_model_teacher(path), inputs, 1, runs=calls, warmup=warmup)
    with load_runtime(kind, path, signature) as runtime:  # closed before the process exits
        return measure_latency(runtime, inputs, 1, runs=calls, warmup=warmup)


def time_in_one_core(kind, path, signature, sentence, calls, warmup):
    """`time_one` in a subprocess pinned to one core, one thread per pool."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
               OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3")
    core = sorted(os.sched_getaffinity(0))[-1]
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--one", json.dumps(
            [kind, path, signature, sentence, calls, warmup, core])],
        capture_output=True, text=True, env=env, check=True)
    p50, p95 = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"latency_ms_p50": p50, "latency_ms_p95": p95}


def typical_sentence(texts):
    """The test sentence of median length (in characters).

    Example:

    >>> typical_sentence(["a", "a much longer one", "mid size"])
    'mid size'
    """
    ranked = sorted(texts, key=len)
    return ranked[len(ranked) // 2]


def _main_one(spec):
    kind, path, signature, sentence, calls, warmup, core = json.loads(spec)
    os.sched_setaffinity(0, {core})
    print(json.dumps(time_one(kind, path, signature, sentence, calls, warmup)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="runs/demo", metavar="DIR",
                        help="a finished kd-keras distill run with text artifacts")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--no-teacher", action="store_true")
    parser.add_argument("--out", default=os.path.join(HERE, "results",
                                                      "mediapipe_latency.json"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return _main_one(args.one)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run = os.path.abspath(args.run)
    with open(os.path.join(run, "export", "report.json")) as f:
        report = json.load(f)
    from kd_keras.config import parse_config
    from kd_keras.pipeline import data_stage

    with open(os.path.join(run, "config.json")) as f:
        cfg = parse_config(json.load(f))
    data = data_stage.prepare_data(cfg)  # The run's config.json is complete already.
    sentence = typical_sentence(list(data.dataset.texts["test"]))
    print(f"sentence ({len(sentence)} characters): {sentence!r}")
    rows = {}
    for fmt, q, validation in TEXT_ARTIFACTS:
        entry = next((a for a in report["artifacts"] if a["format"] == fmt
                      and a["quantization"] == q and a.get("validation") == validation), None)
        if entry is None:
            print(f"{fmt} {q} ({validation}): not in the run's report, skipped")
            continue
        path = os.path.join(run, "export", *entry["path"].split("/"))
        name = f"{fmt} {q} ({validation})"
        rows[name] = {"path": entry["path"], "size_bytes": entry["size_bytes"],
                      **time_in_one_core(fmt, path, entry.get("signature"), sentence,
                                         args.calls, args.warmup)}
        print(name, rows[name], flush=True)
    if not args.no_teacher:
        sys.path.insert(0, HERE)
        from fixed_teacher import FixedTeacher
        from quality import save_teacher

        with tempfile.TemporaryDirectory() as work:
            teacher = FixedTeacher(cfg, data, run, work).teacher_model()
            path = os.path.join(work, "teacher")
            save_teacher(teacher, data.dataset.texts["test"][:2], path)
            rows[TEACHER] = {"params": int(teacher.count_params()),
                             **time_in_one_core(TEACHER, path, None, sentence, args.calls,
                                                args.warmup)}
        print(TEACHER, rows[TEACHER], flush=True)
    result = {"run": os.path.basename(run), "sentence": sentence, "calls": args.calls,
              "warmup": args.warmup, "threads": 1, "cores": 1, "rows": rows}
    write_json(os.path.abspath(args.out), result)
    print("\n| artifact | size | p50 ms | p95 ms |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        size = f"{r['size_bytes'] / 1024:,.0f} KB" if "size_bytes" in r else "-"
        print(f"| {name} | {size} | {r['latency_ms_p50']:.3f} | {r['latency_ms_p95']:.3f} |")
    print(f"wrote {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
