"""The `kd-keras` command line.

Each sub-command lives in its own module of this package and exposes
`register(subparsers)`, which adds its parser and sets `func` to a callable
taking the parsed `argparse.Namespace` and returning an exit code.

Errors a user can fix (bad files, keys, values) are raised as `UsageError`
(or `ValueError`, `FileNotFoundError`) and printed as one line, without a
traceback; the command then exits with status 2.
"""

import argparse
import importlib
import os
import sys

SUBCOMMANDS = ("distill", "export", "verify")


class UsageError(Exception):
    """A problem with the user's input: printed as one line, exit status 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kd-keras",
        description=(
            "Knowledge distillation for Keras 3: train a small student from a "
            "teacher, export it to SavedModel / TFLite / ONNX and verify it."
        ),
    )
    from kd_keras import __version__

    parser.add_argument(
        "--version", action="version", version=f"kd-keras {__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"kd_keras.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"kd_keras.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv=None):
    """Entry point of the `kd-keras` console script."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, PermissionError) as e:
        message = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        print(f"kd-keras {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kd-keras {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
