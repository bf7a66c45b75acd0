"""Command-line arguments the benchmark scripts share, and how they write
their JSON results.

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
import platform

from kd_keras.files import json_files

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


def write_json(path, payload):
    """Writes `payload` as JSON to `path` atomically
    (`kd_keras.files.json_files.write_json`), creating the folder."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    json_files.write_json(path, payload, indent=1)


def merge_rows(rows, previous, names):
    """`rows` completed by the `previous` rows of names not run this time,
    in the order of `names`.

    Example:

    >>> merge_rows({"b": 2}, {"a": 1, "b": 0}, ["a", "b", "c"])
    {'a': 1, 'b': 2}
    """
    return {n: rows[n] if n in rows else previous[n] for n in names
            if n in rows or n in previous}


def machine(load_before=None):
    """What a result was measured on: the versions, the CPUs, and the
    1-minute load average (before the timing, when given, and now), which
    says how far other processes may have slowed it.

    Args:
        load_before: `os.getloadavg()` taken before the timing, or `None`.

    Returns:
        A JSON-ready dict.

    Example:

    >>> sorted(machine((1.0, 0.5, 0.2)))
    ['cpu_count', 'keras', 'load_average_1min', 'python', 'tensorflow']
    """
    import keras
    import tensorflow as tf

    now = os.getloadavg()[0]
    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "cpu_count": os.cpu_count(),
            "load_average_1min": now if load_before is None else [load_before[0], now]}
