"""Peak memory when distilling from a teacher cache: does it grow with the cache?

Builds two synthetic caches (random logits and a pooled teacher feature per
example, written through `kd_keras.cache.shards`, so no teacher runs), one of
20,000 examples and one of 400,000, then trains a small student for one
epoch from each, every run in a fresh child process. Each child reports its
peak resident set (`VmHWM`, which counts memory-mapped file pages it
touched as well as its own memory) and, at the end, how much of its
resident set is its own memory (`RssAnon`) and how much is mapped files
(`RssFile`).

Routes:

- `streamed`: `TeacherCache.as_dataset(x, y, shuffle=True, epoch=...)`,
  the dataset builder that library users and the CLI's training share
  (before it streamed for the CLI, the `before` run measured it without
  `epoch`, with a shuffle buffer of row numbers).
- `in_memory`: the whole store read into arrays first (`cache.logits()`,
  `cache.features(name)`), then batches gathered from tensors, which is
  how the CLI trained before it streamed.

The goal: the peak differs by less than 100 MB between the two sizes on the
route the CLI takes. The inputs `x` themselves are in memory in every run
(`--length` int32 ids per example), as they are in the CLI.

    python benchmarks/cache_memory.py --label before --code ../before
    python benchmarks/cache_memory.py --label after

Writes benchmarks/results/cache_memory.json (or --out) and prints a table.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

FEATURE = "pooled"
ROUTES = ("streamed", "in_memory")


def _ids(count, length, vocab, seed):
    import numpy as np

    return np.random.default_rng(seed).integers(1, vocab, (count, length), dtype=np.int32)


def build_cache(directory, count, length, vocab, width, classes, seed=0):
    """A complete cache of `count` random examples, shard by shard."""
    import numpy as np

    from kd_keras.cache import shards

    x = _ids(count, length, vocab, seed)
    rng = np.random.default_rng(seed + 1)
    metadata = shards.start_build(directory, teacher_fingerprint="synthetic",
                                  shard_size=16384, features=(FEATURE,))
    for i, (a, b) in enumerate(shards.shard_ranges(count, metadata.shard_size)):
        logits = rng.normal(size=(b - a, classes)).astype(np.float32)
        pooled = rng.normal(size=(b - a, width)).astype(np.float32)
        result = shards.write_shard(directory, i, x[a:b], logits, features={FEATURE: pooled})
        metadata = shards.record_shard(directory, metadata, result)
    shards.finalize(directory, metadata)


def _memory():
    """`{VmHWM, VmRSS, RssAnon, RssFile}` of this process, in MB."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def _in_memory_dataset(cache, x, y, batch_size, seed):
    import tensorflow as tf

    logits = tf.constant(cache.logits())
    pooled = tf.constant(cache.features(FEATURE))
    x, y = tf.constant(x), tf.constant(y)
    order = tf.random.experimental.stateless_shuffle(
        tf.range(cache.count, dtype=tf.int64), seed=[seed, 0])

    def gather(idx):
        return tf.gather(x, idx), {"labels": tf.gather(y, idx),
                                   "teacher_logits": tf.gather(logits, idx),
                                   "teacher_features": {FEATURE: tf.gather(pooled, idx)}}

    return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(gather).prefetch(2)


def child(args):
    """One training run; prints its measurements as one JSON line."""
    import keras
    import numpy as np

    import kd_keras

    cache = kd_keras.cache.load(args.cache)
    x = _ids(cache.count, args.length, args.vocab, 0)
    y = np.random.default_rng(2).integers(0, args.classes, cache.count).astype(np.int32)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((args.length,), dtype="int32")
    h = keras.layers.Embedding(args.vocab, 32)(inputs)
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    student = keras.Model(inputs, keras.layers.Dense(args.classes)(h))
    term = kd_keras.FeatureDistillation(FEATURE, "pool", loss="cosine")
    distiller = kd_keras.Distiller(teacher=None, student=student, features=[term])
    distiller.compile(optimizer="adam", alpha=0.5, temperature=2.0)
    start = _memory()
    import tensorflow as tf

    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    if args.route == "streamed":
        ds = cache.as_dataset(x, y, batch_size=args.batch_size, shuffle=True, seed=0,
                              verify=False, epoch=epoch)
    else:
        ds = _in_memory_dataset(cache, x, y, args.batch_size, 0)
    began = time.perf_counter()
    distiller.fit(ds, epochs=1, verbose=0,
                  callbacks=[kd_keras.callbacks.EpochCounter(epoch)])
    seconds = time.perf_counter() - began
    end = _memory()
    print(json.dumps({"count": cache.count, "route": args.route,
                      "peak_mb": end["VmHWM"], "before_fit_mb": start["VmRSS"],
                      "end_anon_mb": end["RssAnon"], "end_file_mb": end["RssFile"],
                      "fit_seconds": round(seconds, 1)}))


def _run_child(args, cache, route, code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if code:
        env["PYTHONPATH"] = os.path.abspath(code) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--cache", cache,
           "--route", route, "--length", str(args.length), "--vocab", str(args.vocab),
           "--classes", str(args.classes), "--batch-size", str(args.batch_size)]
    out = subprocess.run(cmd, check=True, env=env, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--label", default="after", help="the run's name in the JSON")
    p.add_argument("--code", default=None,
                   help="run the package from this checkout (an earlier commit)")
    p.add_argument("--sizes", type=int, nargs="+", default=[20000, 400000])
    p.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES))
    p.add_argument("--length", type=int, default=16, help="token ids per example")
    p.add_argument("--vocab", type=int, default=2000)
    p.add_argument("--width", type=int, default=128, help="the pooled feature's width")
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--cache", help=argparse.SUPPRESS)
    p.add_argument("--route", choices=ROUTES, help=argparse.SUPPRESS)
    from arguments import add_output_arguments
    from arguments import results_path
    from arguments import write_json

    add_output_arguments(p, "cache_memory")
    args = p.parse_args(argv)
    if args.child:
        return child(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cache_memory_") as tmp:
        for count in args.sizes:
            directory = os.path.join(tmp, f"cache-{count}")
            build_cache(directory, count, args.length, args.vocab, args.width, args.classes)
            for route in args.routes:
                row = _run_child(args, directory, route, args.code)
                rows.append(row)
                print(f"{route:>10} {count:>8,} examples: peak {row['peak_mb']:7.1f} MB "
                      f"(own {row['end_anon_mb']:.1f}, mapped files {row['end_file_mb']:.1f} "
                      f"at the end), fit {row['fit_seconds']} s", flush=True)
    growth = {}
    for route in args.routes:
        peaks = {r["count"]: r["peak_mb"] for r in rows if r["route"] == route}
        if len(peaks) == 2:
            small, large = sorted(peaks)
            growth[route] = round(peaks[large] - peaks[small], 1)
            print(f"{route}: the peak grows by {growth[route]} MB from {small:,} to "
                  f"{large:,} examples (goal: < 100 MB)")
    path = results_path(args)
    previous = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
    runs = previous.get("runs", {})
    runs[args.label] = {
        "rows": rows, "growth_mb": growth, "load_1min": round(os.getloadavg()[0], 2),
        "settings": {k: getattr(args, k) for k in ("sizes", "length", "vocab", "width",
                                                   "classes", "batch_size")},
        "code": "an earlier checkout" if args.code else "this checkout"}
    write_json(path, {"goal_mb": 100, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
