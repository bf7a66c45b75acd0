"""Teacher-cache build throughput: in process vs Ray Data actors.

    python benchmarks/scale_out.py            # 20,000 sentences (~15 min here)
    python benchmarks/scale_out.py --quick    # 2,000 sentences, a smoke run

Teacher: MiniLM (all-MiniLM-L6-v2) as a raw-text teacher
(`kd_keras.teachers.build_text_teacher`, 64 tokens, a Dense(2) head), saved
as a `.keras` file that each Ray actor loads once, as `engine: ray` does.
Inputs: the rt-polarity sentences shipped in `kd_keras/data/builtin/`,
repeated up to `--sentences`. Shards of 1,024 sentences, 128 per teacher
call.

Each configuration runs in a fresh process (TensorFlow's thread pools are
sized before it starts):

- `in_process`: `cache_teacher_outputs` with 1 TensorFlow thread;
- `ray_1`: `ray_cache_teacher_outputs`, 1 actor of 1 CPU (1 thread);
- `ray_2`: 2 actors of 1 CPU each, on a local `ray.init(num_cpus=2)`.

Measured: sentences/s over the whole call (actor start and teacher loading
included), the time to the first recorded shard, and the peak RSS per actor
(the in-process figure is the whole process's). Goals: `ray_1` at most 15%
slower than `in_process`; `ray_2` at least 1.7x `ray_1`. All caches must be
identical (checked). The table goes to stdout, the numbers to
`benchmarks/results/scale_out.json`, with the load average seen.
"""

import argparse
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, HERE)
from arguments import RESULTS  # noqa: E402
from arguments import machine  # noqa: E402

CONFIGS = ("in_process", "ray_1", "ray_2")
SHARD_SIZE, BATCH_SIZE, SEQUENCE_LENGTH = 1024, 128, 64
GOAL_OVERHEAD, GOAL_SPEEDUP = 0.15, 1.7


def sentences(n):
    """`n` rt-polarity sentences (the shipped copy, repeated as needed)."""
    import numpy as np

    from kd_keras.data.builtin import rt_polarity_sentences

    texts, _ = rt_polarity_sentences()
    return np.asarray([texts[i % len(texts)] for i in range(n)], dtype=object)


def first_record(directory, started, out):
    """Waits for the cache's first `metadata.json` (the first recorded shard)."""
    path = os.path.join(directory, "metadata.json")
    while "seconds" not in out:
        if os.path.exists(path):
            out["seconds"] = time.perf_counter() - started
        time.sleep(0.05)


def measure(config, teacher_path, n, directory):
    """One configuration in this (fresh) process; returns its numbers."""
    from kd_keras.distribute.ray_cluster import set_threads

    set_threads(1)
    from kd_keras.teachers import load_teacher

    x = sentences(n)
    first = {}
    if config == "in_process":
        from kd_keras.cache import cache_teacher_outputs

        teacher = load_teacher(teacher_path)  # Loading is part of the job, as for Ray.
        started = time.perf_counter()
        watcher = threading.Thread(target=first_record, args=(directory, started, first),
                                   daemon=True)
        watcher.start()
        cache_teacher_outputs(teacher, x, directory, batch_size=BATCH_SIZE,
                              shard_size=SHARD_SIZE, verbose=0)
        seconds = time.perf_counter() - started
        peak = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024]
        fingerprint = teacher.fingerprint()
    else:
        import ray

        from kd_keras.distribute import RayCluster
        from kd_keras.distribute import ray_cache_teacher_outputs

        fingerprint = load_teacher(teacher_path).fingerprint()  # Once, on the driver.
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR",
                 log_to_driver=False)
        workers = int(config.split("_")[1])
        reports = []

        def on_shard(report):  # Called on the driver as each shard is recorded.
            first.setdefault("seconds", time.perf_counter() - started)
            reports.append(report)

        started = time.perf_counter()
        ray_cache_teacher_outputs(
            functools.partial(load_teacher, teacher_path), x, directory,
            cluster=RayCluster(workers=workers, cpus_per_worker=1), batch_size=BATCH_SIZE,
            shard_size=SHARD_SIZE, verbose=0, fingerprint=fingerprint,
            on_shard=on_shard)
        seconds = time.perf_counter() - started
        by_actor = {}
        for r in reports:
            by_actor[r.pid] = max(by_actor.get(r.pid, 0), r.peak_rss_bytes)
        peak = sorted(by_actor.values())
        ray.shutdown()
    first["seconds"] = first.get("seconds")
    return {"config": config, "sentences": n, "seconds": round(seconds, 2),
            "sentences_per_s": round(n / seconds, 1),
            "first_shard_s": None if first["seconds"] is None else round(first["seconds"], 2),
            "peak_rss_mb_per_actor": [round(p / 2**20) for p in peak],
            "teacher_fingerprint": fingerprint}


def same_caches(folders):
    """Whether the cache folders hold byte-identical files."""
    import filecmp

    names = sorted(os.listdir(folders[0]))
    return all(sorted(os.listdir(f)) == names and all(
        filecmp.cmp(os.path.join(folders[0], n), os.path.join(f, n), shallow=False)
        for n in names) for f in folders[1:])


def table(rows, goals):
    lines = ["| build | sentences/s | time (s) | first shard (s) | peak RSS per actor (MB) |",
             "|---|---:|---:|---:|---:|"]
    names = {"in_process": "in process, 1 thread", "ray_1": "Ray, 1 worker x 1 CPU",
             "ray_2": "Ray, 2 workers x 1 CPU"}
    for r in rows:
        lines.append(f"| {names[r['config']]} | {r['sentences_per_s']} | {r['seconds']} | "
                     f"{r['first_shard_s']} | {', '.join(map(str, r['peak_rss_mb_per_actor']))} |")
    lines.append("")
    for g in goals:
        lines.append(f"- {g['goal']}: measured {g['measured']} -> "
                     f"{'met' if g['met'] else 'MISSED'}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=20000)
    parser.add_argument("--quick", action="store_true", help="2,000 sentences")
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--teacher", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--output", default=os.path.join(RESULTS, "scale_out.json"))
    args = parser.parse_args(argv)
    n = 2000 if args.quick else args.sentences
    if args.one:  # A child: one configuration.
        print(json.dumps(measure(args.one, args.teacher, n, args.cache)))
        return
    from kd_keras import teachers

    work = tempfile.mkdtemp(prefix="kd-scale-out-")
    try:
        teacher_path = os.path.join(work, "minilm.keras")
        teachers.build_text_teacher(teachers.resolve_backbone("minilm"), 2,
                                    sequence_length=SEQUENCE_LENGTH).save(teacher_path)
        rows, loads = [], [os.getloadavg()[0]]
        for config in CONFIGS:
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--one", config, "--teacher",
                 teacher_path, "--cache", os.path.join(work, config), "--sentences", str(n)],
                check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
            print(f"{config}: {rows[-1]['sentences_per_s']} sentences/s", flush=True)
        identical = same_caches([os.path.join(work, c) for c in CONFIGS])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    speed = {r["config"]: r["sentences_per_s"] for r in rows}
    overhead = speed["in_process"] / speed["ray_1"] - 1
    speedup = speed["ray_2"] / speed["ray_1"]
    goals = [
        {"goal": f"Ray 1 worker overhead <= {GOAL_OVERHEAD:.0%} over in process",
         "measured": f"{overhead:+.1%}", "met": overhead <= GOAL_OVERHEAD},
        {"goal": f"Ray 2 workers >= {GOAL_SPEEDUP}x Ray 1 worker",
         "measured": f"{speedup:.2f}x", "met": speedup >= GOAL_SPEEDUP},
        {"goal": "the three caches are byte-identical", "measured": str(identical),
         "met": identical},
    ]
    result = {"sentences": n, "shard_size": SHARD_SIZE, "batch_size": BATCH_SIZE,
              "teacher": "all-MiniLM-L6-v2 + Dense(2), 64 tokens, raw text",
              "machine": {**machine(),
                          "load_average_1min_per_config": [round(v, 2) for v in loads]},
              "rows": rows, "goals": goals,
              "command": "python benchmarks/scale_out.py" + (" --quick" if args.quick else "")}
    from arguments import write_json

    write_json(args.output, result)
    print(table(rows, goals))
    print(f"load average (1 min) before/after each configuration: {result['machine']['load_average_1min_per_config']}")


if __name__ == "__main__":
    main()
