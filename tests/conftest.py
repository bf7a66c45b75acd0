"""Test-wide set-up.

The CPU is split into two logical devices before TensorFlow initialises, so
`MirroredStrategy` tests run with two replicas on any machine. Everything
else runs on the first device, as it would without the split.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )
except RuntimeError:  # Already initialised by an earlier import.
    pass

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(REPO_ROOT, "benchmarks")

# The files with the longest tests run first (each file's tests in their
# order): xdist's work stealing then ends the run on short tests, rather
# than with one worker alone in a two-minute test that started last.
LONGEST_FIRST = ("distribute/test_ray_train.py", "pipeline/test_resume.py",
                 "distillation/test_few_labels.py", "benchmarks/test_frontier.py",
                 "distribute/test_ray_cache.py", "test_notebooks.py")


def pytest_collection_modifyitems(config, items):
    def rank(item):
        path = item.nodeid.split("::")[0]
        return next((i for i, name in enumerate(LONGEST_FIRST)
                     if path.endswith("/" + name)), len(LONGEST_FIRST))

    items.sort(key=rank)


def run_docstring_examples(module, name):
    """Runs the `>>>` examples of `module` (ELLIPSIS and NORMALIZE_WHITESPACE
    on) in an empty temporary working folder, so that an example writing
    `out/` leaves nothing in the checkout, and fails with the doctest report
    if any fails; skips a module without examples."""
    import doctest
    import tempfile

    tests = [t for t in doctest.DocTestFinder().find(module, name) if t.examples]
    if not tests:
        pytest.skip(f"{name} has no docstring examples")
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    before = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            for test in tests:
                runner.run(test, out=report.append)
        finally:
            os.chdir(before)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} examples failed:\n" + "".join(report)


def load_benchmark(name):
    """Imports `benchmarks/<name>.py` (a script, not a package) as a module;
    its folder goes on `sys.path` for the scripts it imports in turn."""
    import importlib.util

    if BENCHMARKS not in sys.path:
        sys.path.insert(0, BENCHMARKS)
    spec = importlib.util.spec_from_file_location(
        f"bench_{name}", os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_builtin_file(filename, path):
    """Writes the shipped `kd_keras/data/builtin/<filename>` (gzip) to `path`
    uncompressed, for tests that need a real labelled file on disk."""
    import gzip
    import shutil

    from kd_keras.data.builtin import BUILTIN_DIR

    with gzip.open(os.path.join(BUILTIN_DIR, filename), "rb") as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return str(path)


def write_agnews_tsv(directory):
    """The built-in AG News as header-less `text<TAB>label` files in
    `directory`; returns `(train_path, test_path)`."""
    return tuple(
        write_builtin_file(f"ag_news.{split}.tsv.gz", os.path.join(directory, f"{split}.tsv"))
        for split in ("train", "test")
    )


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts from a clean Keras session, seed and float32 policy."""
    keras.backend.clear_session(free_memory=False)  # gc.collect() costs seconds
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def mirrored_strategy():
    """The one 2-replica `MirroredStrategy` of the test process.

    A second MirroredStrategy in the same process reuses the first one's
    collective instance keys, and its all-reduces of gradients of another
    size abort ("Shape mismatch in the collective instance"), so every test
    shares this one.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2
    strategy = tf.distribute.MirroredStrategy(devices)
    assert strategy.num_replicas_in_sync == 2
    return strategy
