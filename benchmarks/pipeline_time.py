"""Where `make demo`'s time goes: the demo run, stage by stage.

Runs `python -m kd_keras.demo` (the same job as `make demo`) in a child
process and records its wall time, the seconds of each stage from its
`results.json` (`data`, `teacher_adaptation`, `teacher_outputs`, `distill`,
`baseline`, `export`, `verification`), its accuracies (so a faster run is
seen to give the same results) and the machine's load, sampled every 5
seconds while it runs. Each run is stored under a label; once the JSON holds
`before` and `after`, it also gets their ratios per stage.

    python benchmarks/pipeline_time.py --label before --code /path/to/old/checkout
    python benchmarks/pipeline_time.py --label after

`--code` runs the package from another checkout (a `git worktree` of an
earlier commit), so both sides are measured by this script in one session.
Writes benchmarks/results/pipeline_time.json (or --out) and prints a table.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from arguments import add_output_arguments  # noqa: E402
from arguments import results_path  # noqa: E402
from arguments import write_json  # noqa: E402

LOAD_INTERVAL = 5.0


def _sample_load(samples, stop):
    while not stop.wait(LOAD_INTERVAL):
        samples.append(os.getloadavg()[0])


def run_demo(code=None, extra_args=()):
    """Runs the demo in a child process; returns its measurements."""
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = os.path.abspath(code) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="pipeline_time_") as tmp:
        output = os.path.join(tmp, "demo")
        samples, stop = [os.getloadavg()[0]], threading.Event()
        sampler = threading.Thread(target=_sample_load, args=(samples, stop), daemon=True)
        sampler.start()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kd_keras.demo", "--output", output,
                        *extra_args], check=True, cwd=tmp, env=env)
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        with open(os.path.join(output, "results.json"), encoding="utf-8") as f:
            results = json.load(f)
    from kd_keras.pipeline.summary import results_table
    from kd_keras.pipeline.summary import stage_times_line
    from kd_keras.pipeline.summary import summary_rows

    return {
        # What the demo printed: the docs' demo table is checked against it.
        "table": results_table(summary_rows(results)),
        "time_line": (stage_times_line(results["seconds"]) if results.get("seconds")
                      else None),
        "wall_seconds": round(wall, 1),
        "stage_seconds": results.get("seconds"),
        "accuracy": {
            "teacher": results["teacher"]["accuracy"],
            "student": results["student"]["accuracy"],
            "student_without_distillation":
                results.get("student_without_distillation", {}).get("accuracy"),
            "artifacts": {f"{a['format']}/{a['quantization']}/{a['input']}": a["accuracy"]
                          for a in results["details"].get("artifacts", [])},
        },
        "load_1min": {"mean": round(sum(samples) / len(samples), 2),
                      "max": round(max(samples), 2), "samples": len(samples)},
    }


def ratios(before, after):
    """after / before per stage and for the wall time.

    Example:

    >>> ratios({"wall_seconds": 100, "stage_seconds": {"data": 4.0}},
    ...        {"wall_seconds": 50, "stage_seconds": {"data": 1.0}})
    {'wall_seconds': 0.5, 'data': 0.25}
    """
    out = {"wall_seconds": round(after["wall_seconds"] / before["wall_seconds"], 3)}
    stages_before = before.get("stage_seconds") or {}
    for name, seconds in (after.get("stage_seconds") or {}).items():
        if stages_before.get(name):
            out[name] = round(seconds / stages_before[name], 3)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="the name this run is stored under")
    parser.add_argument("--code", default=None,
                        help="run kd_keras from this checkout instead of the installed one")
    parser.add_argument("--max-examples", type=int, default=None,
                        help="cap per split (a quick check, not a measurement)")
    parser.add_argument("--docs", action="store_true",
                        help="the docs' demo table and the README's demo row quote this run")
    parser.add_argument("--compare-to", default=None, metavar="LABEL",
                        help="also store this run's ratios over the run stored as LABEL "
                             "(a pair measured one after the other)")
    add_output_arguments(parser, "pipeline_time")
    args = parser.parse_args(argv)
    extra = [] if args.max_examples is None else ["--max-examples", str(args.max_examples)]
    path = results_path(args)
    payload = {"benchmark": "pipeline_time", "runs": {}}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    run = run_demo(args.code, extra)
    run["command"] = "python benchmarks/pipeline_time.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]))
    run["cpu_count"] = os.cpu_count()
    run["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    payload["runs"][args.label] = run
    if args.docs:
        payload["docs_run"] = args.label
    if "before" in payload["runs"] and "after" in payload["runs"]:
        payload["ratios_after_over_before"] = ratios(payload["runs"]["before"],
                                                     payload["runs"]["after"])
    if args.compare_to in payload["runs"]:
        payload[f"ratios_{args.label}_over_{args.compare_to}"] = ratios(
            payload["runs"][args.compare_to], run)
    write_json(path, payload)
    print(f"{'label':<10}{'wall (s)':>10}  stages (s)")
    for label, r in payload["runs"].items():
        stages = ", ".join(f"{k} {v:.0f}" for k, v in (r.get("stage_seconds") or {}).items())
        print(f"{label:<10}{r['wall_seconds']:>10.0f}  {stages}")
    if "ratios_after_over_before" in payload:
        print("after / before:", payload["ratios_after_over_before"])
    if args.compare_to in payload["runs"]:
        print(f"{args.label} / {args.compare_to}:",
              payload[f"ratios_{args.label}_over_{args.compare_to}"])
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
