"""The `>>>` examples in the docstrings of the benchmark scripts run as tests,
one per script that has any (as `tests/test_doctests.py` does for
`kd_keras`)."""

import os

import pytest

from conftest import BENCHMARKS
from conftest import load_benchmark
from conftest import run_docstring_examples


def _has_examples(name):
    with open(os.path.join(BENCHMARKS, f"{name}.py"), encoding="utf-8") as f:
        return ">>>" in f.read()


SCRIPTS = sorted(n for n in (f[:-3] for f in os.listdir(BENCHMARKS) if f.endswith(".py"))
                 if _has_examples(n))


@pytest.mark.parametrize("name", SCRIPTS)
def test_docstring_examples(name):
    run_docstring_examples(load_benchmark(name), name)


def test_the_scripts_with_examples_are_found():
    assert {"arguments", "fixed_teacher", "frontier", "frontier_points", "generalisation",
            "kd_ablation"} <= set(SCRIPTS)
