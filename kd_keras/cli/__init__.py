"""The `kd-keras` command line.

Each sub-command lives in its own module of this package and exposes
`register(subparsers)`, which adds its parser and sets `func` to a callable
taking the parsed `argparse.Namespace` and returning an exit code. A module
imports TensorFlow and other heavy packages only inside that callable, so
`kd-keras --help` starts at once.

Errors a user can fix (bad files, keys, values) are raised as the types of
`kd_keras.errors` and printed as one line, without a traceback; the command
then exits with status 2. Anything else is a bug and keeps its traceback.

TensorFlow's native (C++) start-up and runtime log lines are hidden unless
`--verbose` (`kd_keras.cli.quiet`). SIGTERM stops a command as Ctrl-C does,
its cleanup included (`kd_keras.cli.signals`), with exit status 143.
"""

import argparse
import contextlib
import importlib
import sys
import warnings

from kd_keras.errors import KdKerasError
from kd_keras.errors import KdKerasWarning
from kd_keras.errors import Terminated
from kd_keras.errors import UsageError
from kd_keras.errors import one_line

SUBCOMMANDS = ("distill", "export", "verify", "predict")

__all__ = ["SUBCOMMANDS", "UsageError", "build_parser", "main"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kd-keras",
        description=(
            "Knowledge distillation for Keras 3: train a small student from a "
            "teacher, export it to SavedModel / TFLite / ONNX, verify it and "
            "classify sentences with it."
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
    for sub in subparsers.choices.values():
        sub.add_argument(
            "--verbose", action="store_true",
            help="show TensorFlow's native log lines (hidden by default)",
        )
    return parser


@contextlib.contextmanager
def _warnings_as_lines(command):
    """Prints kd_keras's own warnings (`KdKerasWarning`) as one line each,
    `kd-keras COMMAND: warning: ...`; other warnings show as Python shows them."""
    show = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, KdKerasWarning):
            print(f"kd-keras {command}: warning: {one_line(message)}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    try:
        yield
    finally:
        warnings.showwarning = show


def main(argv=None):
    """Entry point of the `kd-keras` console script.

    The project's own errors (`kd_keras.errors.KdKerasError`: bad config,
    data, arguments or a missing file) print one line and return 2. Any other
    exception is a bug: it propagates with its traceback (exit status 1), so
    that it can be reported.
    """
    from kd_keras.cli.quiet import native_logs_hidden
    from kd_keras.cli.signals import sigterm_interrupts

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    sigterm = None
    try:
        with native_logs_hidden(enabled=not args.verbose), sigterm_interrupts() as sigterm, \
                _warnings_as_lines(args.command):
            status = args.func(args)
        return int(status or 0)
    except KdKerasError as e:
        print(f"kd-keras {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (`Terminated`).
        print(f"kd-keras {args.command}: interrupted", file=sys.stderr)
        # A SIGTERM that a library turned into another KeyboardInterrupt (Ray's
        # training) is still a SIGTERM.
        received = isinstance(e, Terminated) or (sigterm is not None and sigterm.received)
        return 143 if received else 130
    except Exception:
        if sigterm is None or not sigterm.received:
            raise
        # `Terminated` raised inside native code that turned it into another
        # error (a SystemError in TensorFlow's step): the stop asked for.
        print(f"kd-keras {args.command}: interrupted", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
