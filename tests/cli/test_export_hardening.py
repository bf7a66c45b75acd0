"""`kd-keras export` (and `export_model`) on hostile input: ids outside the
model's embedding table, pickled arrays, a SavedModel folder for MODEL, and
unbounded latency runs. Each is one line naming the file, input or value,
exit 2, and nothing written."""

import functools
import os

import keras
import numpy as np
import pytest

from cli.one_line import assert_one_line_error
from kd_keras.cli import main
from kd_keras.errors import DataError
from kd_keras.export import export_model

VOCABULARY = 10


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """An id model (an Embedding of 10 rows), a float model, and data files."""
    root = tmp_path_factory.mktemp("export_hardening")
    keras.utils.set_random_seed(0)
    ids = keras.Input((5,), dtype="int32", name="ids")
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(VOCABULARY, 4)(ids))
    keras.Model(ids, keras.layers.Dense(2)(pooled)).save(root / "ids.keras")
    x = keras.Input((4,), name="x")
    keras.Model(x, keras.layers.Dense(3)(x)).save(root / "dense.keras")
    good = np.random.default_rng(0).integers(0, VOCABULARY, size=(8, 5)).astype("int32")
    for name, value in (("too_large", VOCABULARY + 2), ("negative", -1)):
        bad = good.copy()
        bad[3, 2] = value
        np.savez(root / f"{name}.npz", ids=bad)
    np.savez(root / "good.npz", ids=good)
    np.savez(root / "pickled.npz", x=np.array([object(), 1], dtype=object))
    np.save(root / "floats.npy", np.zeros((8, 4), "float32"))
    (root / "saved_model_folder").mkdir()
    (root / "saved_model_folder" / "saved_model.pb").write_bytes(b"")
    return root


def _export(capsys, *argv):
    code = main(["export", *map(str, argv)])
    return code, capsys.readouterr().err


_one_line_error = functools.partial(assert_one_line_error, "export")


@pytest.mark.parametrize("name, value", [("too_large", VOCABULARY + 2), ("negative", -1)])
@pytest.mark.parametrize("flag", ["--validation-data", "--representative-data"])
def test_ids_outside_the_embedding(files, tmp_path, capsys, name, value, flag):
    data = files / f"{name}.npz"
    extra = ["--quantization", "int8"] if flag == "--representative-data" else []
    code, err = _export(capsys, files / "ids.keras", tmp_path / "out", "--formats", "onnx",
                        flag, data, *extra, "--latency-runs", "0")
    _one_line_error(code, err, f"{flag} '{data}': input 'ids' holds id {value} (example 3); "
                    f"the model looks its ids up in a table of {VOCABULARY} (ids 0..9)")
    assert not os.path.exists(tmp_path / "out")


class Lookup(keras.layers.Layer):
    """A table lookup that no layer type gives away (not an Embedding)."""

    def build(self, input_shape):
        self.table = self.add_weight(shape=(VOCABULARY, 3), name="table")

    def call(self, ids):
        return keras.ops.take(self.table, ids, axis=0)


def test_ids_outside_a_table_the_model_hides(files, tmp_path):
    # The range cannot be read from the layers: Keras's own out-of-range
    # error, where it runs the data, becomes the one line.
    ids = keras.Input((5,), dtype="int32", name="ids")
    model = keras.Model(ids, keras.layers.Dense(2)(keras.layers.Flatten()(Lookup()(ids))))
    data = np.load(files / "too_large.npz")["ids"]
    with pytest.raises(DataError, match=r"input 'ids': holds id 12, but a layer of the model "
                       r"looks ids up in a table of 10 \(ids 0\.\.9\)"):
        export_model(model, tmp_path / "out", formats=("onnx",), validation_data=data,
                     latency_runs=0)
    assert not os.path.exists(tmp_path / "out")


def test_valid_ids_still_export(files, tmp_path, capsys):
    code, err = _export(capsys, files / "ids.keras", tmp_path / "out", "--formats", "onnx",
                        "--validation-data", files / "good.npz", "--latency-runs", "0")
    assert code == 0, err


@pytest.mark.parametrize("flag", ["--validation-data", "--representative-data"])
def test_pickled_arrays(files, tmp_path, capsys, flag):
    data = files / "pickled.npz"
    extra = ["--quantization", "int8"] if flag == "--representative-data" else []
    code, err = _export(capsys, files / "dense.keras", tmp_path / "out", "--formats", "onnx",
                        flag, data, *extra)
    _one_line_error(code, err, f"{flag} '{data}': holds pickled Python objects")
    assert not os.path.exists(tmp_path / "out")


def test_model_that_is_a_saved_model_folder(files, tmp_path, capsys):
    folder = files / "saved_model_folder"
    code, err = _export(capsys, folder, tmp_path / "out")
    _one_line_error(code, err, f"{folder}: is a folder (a SavedModel?); kd-keras export "
                    "takes a .keras file")


@pytest.mark.parametrize("runs, message", [
    ("10001", "--latency-runs: must be at most 10000"),
    ("-1", "--latency-runs: must be >= 0, got -1"),
], ids=["10001", "negative"])
def test_latency_runs_are_bounded(files, tmp_path, capsys, runs, message):
    code, err = _export(capsys, files / "dense.keras", tmp_path / "out", "--formats", "onnx",
                        "--validation-data", files / "floats.npy", "--latency-runs", runs)
    _one_line_error(code, err, message)
    assert not os.path.exists(tmp_path / "out")


def test_latency_runs_must_be_a_whole_number(files, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["export", str(files / "dense.keras"), str(tmp_path / "out"),
              "--latency-runs", "2.5"])
    assert stop.value.code == 2
    assert "argument --latency-runs: must be a whole number, got '2.5'" in capsys.readouterr().err


def test_a_file_that_is_no_array_file_is_named_so(files, tmp_path, capsys):
    # NumPy read it as a pickle, and the message said "pickled objects".
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip\n")
    code, err = _export(capsys, files / "dense.keras", tmp_path / "out", "--formats", "onnx",
                        "--validation-data", junk)
    _one_line_error(code, err, f"--validation-data '{junk}': not a .npy/.npz file")
    assert not os.path.exists(tmp_path / "out")
