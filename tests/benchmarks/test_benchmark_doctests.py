"""The `>>>` examples in the docstrings of the benchmark scripts run as tests,
one per script that has any (as `tests/test_doctests.py` does for
`kd_keras`)."""

import doctest
import os

import pytest

from conftest import BENCHMARKS
from conftest import load_benchmark



def _has_examples(name):
    with open(os.path.join(BENCHMARKS, f"{name}.py"), encoding="utf-8") as f:
        return ">>>" in f.read()


SCRIPTS = sorted(n for n in (f[:-3] for f in os.listdir(BENCHMARKS) if f.endswith(".py"))
                 if _has_examples(n))
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", SCRIPTS)
def test_docstring_examples(name):
    module = load_benchmark(name)
    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    assert tests, f"benchmarks/{name}.py: its examples were not found"
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = []
    for test in tests:
        runner.run(test, out=report.append)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} examples failed:\n" + "".join(report)


def test_the_scripts_with_examples_are_found():
    assert {"arguments", "frontier", "frontier_points", "generalisation",
            "kd_ablation"} <= set(SCRIPTS)
