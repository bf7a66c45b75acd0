"""`kd-keras verify OUT_DIR`: re-run every artifact of an export folder."""

import argparse
import os
import re

from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError


def whole_number(text):
    """An argparse type: a plain decimal integer (`1e3` or `5.0` are refused);
    the range is checked by the command, with a one-line error."""
    if not re.fullmatch(r"[+-]?\d+", text.strip()):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    try:
        return int(text)
    except ValueError:  # Past Python's limit on the digits of an int.
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text[:20]!r}...")


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
            "moved or copied folder verifies too; a path that leads out of it "
            "(symlinks followed) or to a file that is not a regular file is an "
            "error. The table shows each artifact's size as measured now: a "
            "report whose size_bytes differs fails."
        ),
    )
    parser.add_argument("out_dir", metavar="OUT_DIR",
                        help="an export directory, or a kd-keras distill output holding one")
    parser.add_argument(
        "--latency-runs",
        type=whole_number,
        default=10,
        help="timed calls per batch size (0 skips latency)",
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    from kd_keras.cli.predict import export_folder

    if not os.path.exists(args.out_dir):
        raise MissingFileError(f"{args.out_dir}: export directory does not exist")
    if not os.path.isdir(args.out_dir):
        raise UsageError(f"{args.out_dir}: is a file; give the export folder")
    out_dir = export_folder(args.out_dir) or args.out_dir
    from kd_keras.export import verify_export
    from kd_keras.export.report import markdown_table
    from kd_keras.export.verify import check_latency_runs

    latency_runs = check_latency_runs(args.latency_runs, "--latency-runs")
    checks = verify_export(out_dir, latency_runs=latency_runs, verbose=1)
    rows, failures = [], []
    for check in checks:
        row = {"format": check.artifact.format, "quantization": check.artifact.quantization,
               "validation": check.artifact.validation}
        row.update(check.metrics or {})
        row["size_bytes"] = check.size_bytes  # Measured, never the report's.
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
