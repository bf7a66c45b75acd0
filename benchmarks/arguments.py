"""Command-line arguments the benchmark scripts share.

Example:

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_output_arguments(parser, "quality")
>>> add_set_argument(parser, "the demo config")
>>> args = parser.parse_args(["--set", "distill.alpha=0.5"])
>>> os.path.basename(results_path(args)), args.set
('quality.json', ['distill.alpha=0.5'])
"""

import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def add_output_arguments(parser, name):
    """`--name` (writes `results/<name>.json`) and `--out PATH`."""
    parser.add_argument("--name", default=name, help="writes results/<name>.json")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="write the JSON here instead of results/<name>.json")


def add_set_argument(parser, what):
    """`--set KEY=VALUE`, repeatable: dotted config keys, YAML values."""
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"change {what}, e.g. --set distill.alpha=0.5 (VALUE is YAML)")


def results_path(args):
    """The absolute path of the JSON a run writes (`--out` or `--name`)."""
    return os.path.abspath(args.out or os.path.join(RESULTS, f"{args.name}.json"))
