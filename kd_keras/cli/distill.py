"""`kd-keras distill CONFIG.yaml [--resume] [--output DIR]`."""

import json
import os
import sys

from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError


def register(subparsers):
    """Adds the `distill` sub-command."""
    parser = subparsers.add_parser(
        "distill",
        help="train a student from a teacher as CONFIG.yaml says, then export it",
        description=(
            "Runs data -> teacher (transfer learning, cached logits) -> "
            "distillation -> baseline -> export, and writes OUTPUT/results.json, "
            "OUTPUT/export/report.json, TensorBoard logs (OUTPUT/logs) and "
            "OUTPUT/training_curves.png. The config is validated before any "
            "work starts. Work happens in OUTPUT.partial/, renamed to OUTPUT "
            "when done."
        ),
    )
    parser.add_argument("config", metavar="CONFIG.yaml", help="the run's YAML config")
    parser.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run from OUTPUT.partial/ (last finished epoch)")
    parser.add_argument(
        "--output", metavar="DIR", default=None,
        help="output folder (overrides `output:` in the config)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Validates the config, runs the job, prints the results; returns 0.

    An interrupted or crashed run keeps `OUTPUT.partial/` and says how to
    resume it; bad input removes it (resuming would fail the same way). A
    run whose export set an artifact aside is published: its results are
    printed, then the one-line error (exit status 2).
    """
    from kd_keras.config import load_config

    if args.output is not None and not args.output.strip():
        raise UsageError(f"--output: must be a folder path, got {args.output!r}")
    cfg = load_config(args.config,
                      overrides=None if args.output is None else {"output": args.output})
    output = os.path.abspath(cfg.output)

    from kd_keras.pipeline import run_distill
    from kd_keras.pipeline.export_stage import ArtifactsRejected
    from kd_keras.pipeline.summary import results_table
    from kd_keras.pipeline.summary import run_summary
    from kd_keras.pipeline.summary import summary_rows

    try:
        results = run_distill(cfg, output=output, resume=args.resume)
    except ArtifactsRejected:  # Published: show its results, then the one line.
        results_file = os.path.join(output, "results.json")
        if os.path.isfile(results_file):
            with open(results_file, encoding="utf-8") as f:
                print(results_table(summary_rows(json.load(f))))
            print(f"results: {results_file}")
        raise
    except (KdKerasError, SystemExit):
        raise
    except BaseException:
        if os.path.isdir(f"{output}.partial"):
            print(f"kd-keras distill: the unfinished run is kept in {output}.partial; "
                  f"continue it with: kd-keras distill {args.config} --resume"
                  + ("" if args.output is None else f" --output {args.output}"),
                  file=sys.stderr)
        raise
    print(run_summary(results))
    print(f"results: {os.path.join(output, 'results.json')}")
    return 0


__all__ = ["register", "run"]
