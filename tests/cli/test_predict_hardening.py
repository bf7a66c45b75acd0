"""`kd-keras predict` on hostile input: sentences that are not UTF-8 (both
runtimes, and real bytes on the command line), a damaged TFLite sidecar,
and a report whose SavedModel is a symlink out of the export folder."""

import functools
import json
import os
import shutil
import subprocess
import sys

import keras
import pytest

from cli.one_line import assert_one_line_error
from kd_keras.cli import main

NOT_UTF8 = b"caf\xe9".decode("utf-8", "surrogateescape")  # As argv carries it.
MESSAGE = "SENTENCE 2: not valid UTF-8 text (at position 3); sentences must be UTF-8"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """A tiny raw-text export (no class names: the TFLite sidecar is read)."""
    from kd_keras.export import FastWordpiecePreprocessor
    from kd_keras.export import TextExport
    from kd_keras.export import export_model

    vocabulary = ["[PAD]", "[UNK]", "a", "good", "bad", "film", "very"]
    keras.utils.set_random_seed(0)
    ids = keras.Input((6,), dtype="int32", name="token_ids")
    pooled = keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(len(vocabulary), 4)(ids))
    model = keras.Model(ids, keras.layers.Dense(2)(pooled), name="tiny_text")
    out = str(tmp_path_factory.mktemp("predict_hardening") / "export")
    export_model(model, out, formats=("saved_model", "tflite"),
                 text=TextExport(preprocessor=FastWordpiecePreprocessor(vocabulary, 6),
                                 tflite=True,
                                 validation_text=["a good film", "a bad film", "very bad"]),
                 latency_runs=0)
    return out


@pytest.fixture
def copy(export_dir, tmp_path):
    path = str(tmp_path / "export")
    shutil.copytree(export_dir, path)
    return path


def _predict(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    return code, *capsys.readouterr()


_one_line_error = functools.partial(assert_one_line_error, "predict")


@pytest.mark.parametrize("runtime", ["saved_model", "tflite"])
def test_sentence_that_is_not_utf8(export_dir, capsys, runtime):
    code, _, err = _predict(capsys, export_dir, "a good film", NOT_UTF8, "--runtime", runtime)
    _one_line_error(code, err, MESSAGE)


@pytest.mark.parametrize("blank", ["", "  \t"], ids=["empty", "spaces"])
def test_blank_sentence_on_the_command_line(export_dir, capsys, blank):
    # Blank lines of standard input are skipped; one typed as an argument is
    # a mistake (an unset shell variable), not a sentence to classify.
    code, out, err = _predict(capsys, export_dir, "a good film", blank)
    _one_line_error(code, err, "SENTENCE 2: blank; give the text to classify")
    assert out == ""


def test_bytes_on_the_command_line(export_dir):
    done = subprocess.run(
        [sys.executable, "-m", "kd_keras", "predict", export_dir, "--runtime", "tflite",
         "a good film", b"caf\xe9"], capture_output=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().splitlines()[-1] == f"kd-keras predict: error: {MESSAGE}"
    assert done.stdout == b""


@pytest.mark.parametrize("content, message", [
    ("[" * 200_000, "model_text.json: not a readable JSON file (damaged: nested too deeply)"),
    (json.dumps({"labels": 5}), "model_text.json: labels: expected 2 class names, got 5"),
], ids=["nested", "labels"])
def test_damaged_tflite_sidecar(copy, capsys, content, message):
    with open(os.path.join(copy, "tflite", "model_text.json"), "w") as f:
        f.write(content)
    # Through the export folder, its checksum refuses it first.
    code, _, err = _predict(capsys, copy, "a good film", "--runtime", "tflite")
    _one_line_error(code, err, "tflite/model_text.json was altered (sha256) since the export")
    # The file given directly has no report: its sidecar is read as it is.
    model = os.path.join(copy, "tflite", "model_text.tflite")
    code, _, err = _predict(capsys, model, "a good film")
    _one_line_error(code, err, message)


def test_saved_model_symlinked_out_of_the_folder(copy, tmp_path, capsys):
    root = os.path.join(copy, "saved_model", "tiny_text")
    shutil.move(os.path.join(root, "1"), tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", os.path.join(root, "1"))
    code, out, err = _predict(capsys, copy, "a good film")
    _one_line_error(code, err, "'saved_model/tiny_text/1': leads outside the export folder")
    assert out == ""


@pytest.mark.parametrize("given", ["saved_model", "saved_model/tiny_text"])
def test_a_version_found_by_listing_that_leads_outside_is_refused(copy, tmp_path, capsys, given):
    # A SavedModel folder without report.json: the newest version is found by
    # listing, and a link to another model was run as if it were this one.
    root = os.path.join(copy, "saved_model", "tiny_text")
    shutil.copytree(os.path.join(root, "1"), tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", os.path.join(root, "7"))
    folder = os.path.join(copy, given)
    code, out, err = _predict(capsys, folder, "a good film")
    shown = os.path.relpath(os.path.join(root, "7"), folder)
    _one_line_error(code, err, f"{shown}: leads outside {folder} (to {tmp_path / 'elsewhere'})")
    assert out == ""
