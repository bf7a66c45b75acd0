"""`kd-keras verify OUT_DIR`: re-run every artifact of an export folder."""

import os

from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError


def register(subparsers):
    parser = subparsers.add_parser(
        "verify",
        help="re-run every artifact of an export and check it still matches",
        description=(
            "Re-run every artifact in OUT_DIR/report.json in its own runtime on "
            "the stored validation data and compare with the stored Keras "
            "logits. Fails (exit 1) if an artifact is missing, altered "
            "(sha256), no longer runs, misses its tolerance, or is a .tflite, "
            ".onnx or SavedModel in OUT_DIR that report.json does not list "
            "(rejected/ is skipped); an export with no artifact at all is an "
            "error (exit 2). Artifact paths are relative to report.json, so a "
            "moved or copied folder verifies too."
        ),
    )
    parser.add_argument("out_dir", metavar="OUT_DIR", help="an export directory")
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=10,
        help="timed calls per batch size (0 skips latency)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    if not os.path.isdir(args.out_dir):
        raise MissingFileError(f"{args.out_dir}: export directory does not exist")
    if args.latency_runs < 0:
        raise UsageError(f"--latency-runs: must be >= 0, got {args.latency_runs}")
    from kd_keras.export import verify_export
    from kd_keras.export.report import markdown_table

    checks = verify_export(args.out_dir, latency_runs=args.latency_runs)
    rows, failures = [], []
    for check in checks:
        row = {"format": check.artifact.format, "quantization": check.artifact.quantization,
               "validation": check.artifact.validation}
        row.update(check.metrics or {})
        row["size_bytes"] = check.artifact.size_bytes
        row["passed"] = check.passed
        rows.append(row)
        failures += check.failures
    print(markdown_table(rows))
    if failures:
        for problem in failures:
            print(f"FAILED {problem}")
        return 1
    print(f"all {len(rows)} artifact(s) match")
    return 0
