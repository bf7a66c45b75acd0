"""The `>>>` examples in the docstrings of every `kd_keras` module run as
tests, one per module (ELLIPSIS and NORMALIZE_WHITESPACE on).

Examples that need heavy set-up are marked `# doctest: +SKIP` where they
stand. The only module left out is `kd_keras.__main__`: importing it runs the
command line.
"""

import importlib
import os
import pkgutil

import pytest

import kd_keras
from conftest import run_docstring_examples

NOT_IMPORTABLE = {"kd_keras.__main__"}


def _module_names(path, package):
    """Every module under `path`, found on disk without importing it (so a
    package that fails to import is one failing test, not missing ones)."""
    names = [package]
    for info in pkgutil.iter_modules([path]):
        name = f"{package}.{info.name}"
        if info.ispkg:
            names += _module_names(os.path.join(path, info.name), name)
        else:
            names.append(name)
    return names


MODULES = sorted(set(_module_names(kd_keras.__path__[0], "kd_keras")) - NOT_IMPORTABLE)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    run_docstring_examples(importlib.import_module(name), name)


def test_the_walk_finds_the_modules_with_examples():
    """A guard on the collection itself: the modules are found, and these
    are known to hold examples."""
    for name in ("kd_keras.data.text_dataset", "kd_keras.data.builtin",
                 "kd_keras.cache.metadata", "kd_keras.errors"):
        assert name in MODULES
