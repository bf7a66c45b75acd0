"""Teacher labelling throughput: sentences per second of the MiniLM-L6
teacher's logits-and-pooled-vector pass, route by route, on the same
movie-review sentences in one run.

Routes (each gives the logits and the pooled sentence vector that the
demo's feature term reads):

- `hook, padded` (the earlier pipeline): the `TextTeacher`'s
  `call_with_features` hook, which computes every intermediate output
  (each block's hidden states and attention probabilities), every text
  padded to 64 ids;
- `named, padded`: the classifier viewed through the pooled output alone,
  padded to 64 (what the hook costs);
- `named, padded, XLA`: the same under `tf.function(jit_compile=True)`;
- `named, bucketed` (`kd_keras.teachers.forward.run_teacher` today):
  texts sorted by length in chunks, each batch padded to its longest;
- `cached frozen blocks` (the demo's route since the adaptation gives the
  outputs): the 3 frozen blocks once per text, then the 3 tuned blocks,
  pooling and head on their cached activations (`TopLayerTuner`), both
  bucketed; the figure is the sum of both passes.

Every route's logits and pooled vectors are compared with the first's
(max absolute difference; the goal is 1e-4). Methods take turns over
`--rounds` interleaved rounds after a warm-up; the figure is the median, and
the speed-ups are medians of per-round ratios against `hook, padded`.

    python benchmarks/teacher_throughput.py              # 2,000 sentences, 3 rounds
    python benchmarks/teacher_throughput.py --texts 300 --rounds 1   # quick

Writes benchmarks/results/teacher_throughput.json (or --out).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from arguments import add_output_arguments  # noqa: E402
from arguments import machine  # noqa: E402
from arguments import results_path  # noqa: E402
from arguments import write_json  # noqa: E402
from timing import median_ratio  # noqa: E402
from timing import time_methods  # noqa: E402

from kd_keras import teachers  # noqa: E402
from kd_keras.data.builtin import load_rt_polarity  # noqa: E402
from kd_keras.distillation.feature_views import FeatureView  # noqa: E402
from kd_keras.distillation.feature_views import resolve  # noqa: E402
from kd_keras.teachers.forward import run_teacher  # noqa: E402

SEQUENCE_LENGTH = 64
BATCH = 64
BASELINE = "hook, padded"


def _padded(view_call, texts, jit=False):
    """Batches of 64 raw strings through `view_call(strings)`."""
    forward = tf.function(view_call, jit_compile=jit, reduce_retracing=True)
    logits, pooled = [], []
    for i in range(0, len(texts), BATCH):
        out, (vector,) = forward(tf.constant(list(texts[i:i + BATCH])))
        logits.append(np.asarray(out, np.float32))
        pooled.append(np.asarray(vector, np.float32))
    return np.concatenate(logits), np.concatenate(pooled)


def routes(teacher, texts, pooling):
    """dict name -> zero-argument function giving `(logits, pooled)`."""
    hooked = FeatureView(teacher, [resolve(teacher, pooling, "teacher_layer")], "teacher")
    classifier = teacher.classifier
    named = FeatureView(classifier, [resolve(classifier, "pooling", "teacher_layer")],
                        "teacher")

    def named_call(strings):
        return named(teacher.tokens(strings), training=False)

    def tokens_xla(strings):  # XLA cannot compile the tokenizer's string ops
        return teacher.tokens(strings)

    named_xla = tf.function(lambda tokens: named(tokens, training=False), jit_compile=True)
    tokenize = tf.function(tokens_xla)

    def xla():
        logits, pooled = [], []
        for i in range(0, len(texts), BATCH):
            out, (vector,) = named_xla(tokenize(tf.constant(list(texts[i:i + BATCH]))))
            logits.append(np.asarray(out, np.float32))
            pooled.append(np.asarray(vector, np.float32))
        return np.concatenate(logits), np.concatenate(pooled)

    def bucketed():
        out = run_teacher(teacher, texts, [pooling], batch_size=BATCH)
        return out.logits, out.layers[pooling]

    def cached():
        tuner = teachers.TopLayerTuner(teacher, num_trainable_layers=3, batch_size=BATCH)
        tuner.add("texts", texts, verbose=0)
        return tuner.predict_with_pooling("texts")

    return {
        BASELINE: lambda: _padded(lambda s: hooked(s, training=False), texts),
        "named, padded": lambda: _padded(named_call, texts),
        "named, padded, XLA": xla,
        "named, bucketed": bucketed,
        "cached frozen blocks": cached,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=2000, help="sentences labelled per pass")
    parser.add_argument("--rounds", type=int, default=3, help="timed interleaved rounds")
    add_output_arguments(parser, "teacher_throughput")
    args = parser.parse_args(argv)

    data = load_rt_polarity()
    texts = np.asarray(list(data.texts["train"])[:args.texts], object)
    teacher = teachers.build_text_teacher(
        teachers.resolve_backbone("all-MiniLM-L6-v2"), 2, sequence_length=SEQUENCE_LENGTH)
    pooling = f"{teacher.classifier.name}/pooling"
    methods = routes(teacher, texts, pooling)
    outputs = {}

    def timed(name):
        def run():
            start = time.perf_counter()
            outputs[name] = methods[name]()
            return time.perf_counter() - start
        return run

    load_before = os.getloadavg()
    warmup, times = time_methods({n: timed(n) for n in methods}, args.rounds)
    reference = outputs[BASELINE]
    rows = {}
    for name, seconds in times.items():
        logits, pooled = outputs[name]
        rows[name] = {
            "median_seconds": float(np.median(seconds)),
            "round_seconds": seconds,
            "sentences_per_second": len(texts) / float(np.median(seconds)),
            "speedup_vs_hook_padded": median_ratio(times[BASELINE], seconds),
            "max_abs_diff_logits": float(np.abs(logits - reference[0]).max()),
            "max_abs_diff_pooled": float(np.abs(pooled - reference[1]).max()),
        }
    payload = {
        "benchmark": "teacher_throughput",
        "setup": {
            "teacher": "all-MiniLM-L6-v2, sequence 64, batch 64",
            "texts": len(texts), "rounds": args.rounds,
            "mean_wordpiece_tokens": float(np.mean(
                teacher.tokens(tf.constant(list(texts)))["padding_mask"].numpy().sum(1))),
            "statistic": "median over interleaved rounds; speed-up = median of per-round "
                         "ratios against 'hook, padded'",
            "warmup_seconds": warmup,
            **machine(load_before),
            "command": "python benchmarks/teacher_throughput.py " + " ".join(
                argv if argv is not None else sys.argv[1:]),
        },
        "routes": rows,
    }
    path = results_path(args)
    write_json(path, payload)
    print(f"{'route':<24}{'sent/s':>9}{'speed-up':>10}{'logits diff':>13}{'pooled diff':>13}")
    for name, r in rows.items():
        print(f"{name:<24}{r['sentences_per_second']:>9.1f}{r['speedup_vs_hook_padded']:>9.2f}x"
              f"{r['max_abs_diff_logits']:>13.2e}{r['max_abs_diff_pooled']:>13.2e}")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
