"""`kd-keras verify OUT_DIR`: re-run every artifact listed in report.json."""

from kd_keras.cli import UsageError


def register(subparsers):
    parser = subparsers.add_parser(
        "verify",
        help="re-run every artifact of an export and check it still matches",
        description=(
            "Re-run every artifact in OUT_DIR/report.json in its own runtime on "
            "the stored validation data and compare with the stored Keras "
            "logits. Fails (exit 1) if an artifact is missing, altered "
            "(sha256), no longer runs, or misses its tolerance."
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
    import os

    from kd_keras.export import verify_export
    from kd_keras.export.report import markdown_table

    if not os.path.isdir(args.out_dir):
        raise UsageError(f"export directory {args.out_dir!r} does not exist")
    results = verify_export(args.out_dir, latency_runs=args.latency_runs)
    rows, failures = [], []
    for entry, fresh, problems in results:
        row = {"format": entry["format"], "quantization": entry["quantization"]}
        row.update(fresh or {})
        row["size_bytes"] = entry.get("size_bytes")
        row["passed"] = not problems
        rows.append(row)
        failures += problems
    print(markdown_table(rows))
    if failures:
        for problem in failures:
            print(f"FAILED {problem}")
        return 1
    print(f"all {len(rows)} artifact(s) match")
    return 0
