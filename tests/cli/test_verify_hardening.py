"""`kd-keras verify` on hostile export folders: symlinks out of the folder,
FIFOs and devices, damaged or oversized JSON, pickled validation data,
report values that disagree with the files, unbounded latency runs, and
targets that are a file or a `kd-keras distill` output.

Each case is one line and exit 2 (or a FAILED line and exit 1 for an
artifact that does not match its report), never a traceback or a hang."""

import contextlib
import functools
import os
import shutil
import signal

import keras
import numpy as np
import pytest

from cli.one_line import assert_one_line_error
from export.conftest import edit_report as _edit_report
from kd_keras.cli import main
from kd_keras.export import export_model
from kd_keras.files.hashing import sha256_path

TFLITE = os.path.join("tflite", "model.tflite")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    """A tiny export (Dense on 4 floats, TFLite only) that each test copies."""
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    model = keras.Model(x, keras.layers.Dense(3)(x))
    data = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    out = str(tmp_path_factory.mktemp("verify_hardening") / "export")
    export_model(model, out, formats=("tflite",), validation_data=(data, None),
                 latency_runs=0)
    return out


@pytest.fixture
def copy(export_dir, tmp_path):
    path = str(tmp_path / "export")
    shutil.copytree(export_dir, path)
    return path


@contextlib.contextmanager
def deadline(seconds):
    """Fails a call that would hang (a read of /dev/zero, a FIFO, endless
    latency runs) instead of hanging the suite."""
    def stop(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _verify(capsys, *argv, seconds=60):
    with deadline(seconds):
        code = main(["verify", *map(str, argv), "--latency-runs", "0"])
    out, err = capsys.readouterr()
    return code, out, err


_one_line_error = functools.partial(assert_one_line_error, "verify")


def test_artifact_symlinked_out_of_the_folder(copy, tmp_path, capsys):
    outside = str(tmp_path / "outside.tflite")
    shutil.move(os.path.join(copy, TFLITE), outside)
    os.symlink(outside, os.path.join(copy, TFLITE))
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "artifacts[0].path: 'tflite/model.tflite': leads outside "
                    "the export folder")


def test_folder_symlinked_out_of_the_folder(copy, tmp_path, capsys):
    outside = str(tmp_path / "outside")
    shutil.move(os.path.join(copy, "tflite"), outside)
    os.symlink(outside, os.path.join(copy, "tflite"))
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "'tflite/model.tflite': leads outside the export folder")


def test_artifact_symlinked_to_dev_zero_does_not_hang(copy, capsys):
    os.remove(os.path.join(copy, TFLITE))
    os.symlink("/dev/zero", os.path.join(copy, TFLITE))
    code, _, err = _verify(capsys, copy, seconds=30)
    _one_line_error(code, err, "leads outside the export folder (to /dev/zero)")


@pytest.mark.parametrize("name", [TFLITE, "report.json",
                                  os.path.join("verification", "validation.npz")])
def test_fifo_is_not_a_regular_file(copy, capsys, name):
    os.remove(os.path.join(copy, name))
    os.mkfifo(os.path.join(copy, name))
    code, _, err = _verify(capsys, copy, seconds=30)
    _one_line_error(code, err, "not a regular file")


def test_unlisted_symlinks_found_by_listing(copy, tmp_path, capsys):
    # A file the report does not name, and a folder whose models the listing
    # would otherwise never see, both pointing out of the export folder.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(os.path.join(copy, TFLITE), outside / "other.tflite")
    os.symlink(outside / "other.tflite", os.path.join(copy, "tflite", "extra.tflite"))
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "extra.tflite: leads outside the export folder")
    os.remove(os.path.join(copy, "tflite", "extra.tflite"))
    os.symlink(outside, os.path.join(copy, "onnx"))
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "onnx: leads outside the export folder")


def test_sidecar_symlinked_out_of_the_folder(copy, tmp_path, capsys):
    sidecar = os.path.join(copy, "tflite", "model.json")
    shutil.move(sidecar, tmp_path / "model.json")
    os.symlink(tmp_path / "model.json", sidecar)
    code, _, err = _verify(capsys, copy)
    # The report's record of the sidecar (its companions) is refused first.
    _one_line_error(code, err, "companions: 'tflite/model.json': leads outside the export folder")


def test_deeply_nested_report(copy, capsys):
    with open(os.path.join(copy, "report.json"), "w") as f:
        f.write("[" * 200_000)
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "report.json: not a readable JSON file (damaged: nested "
                    "too deeply)")


def test_oversized_report(copy, capsys, monkeypatch):
    from kd_keras.export import safe_reading

    monkeypatch.setattr(safe_reading, "MAX_JSON_BYTES", 100)
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "report.json: larger than 100 bytes")


def test_pickled_validation_data(copy, capsys):
    path = os.path.join(copy, "verification", "validation.npz")
    np.savez(path, **{"model/input/x": np.array([object(), 1], dtype=object)})
    digest = sha256_path(path)  # Consistent with the report: only the content is bad.
    _edit_report(copy, lambda r: r["validation"].update(sha256=digest))
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "validation.npz: holds pickled Python objects")


@pytest.mark.parametrize("edit, message", [
    (lambda a: a.update({"model/labels": np.array([b"x"] * 16)}),
     "model: labels: labels must be integer class ids, got |S1"),
    (lambda a: a.update({"model/labels": np.zeros(3, "int64")}),
     "model: labels: expected 16 class ids"),
    (lambda a: a.update({"model/labels": np.full(16, 7)}),
     "model: labels: label 7 (example 0) is out of range: labels must be -1 (unlabeled) or "
     "in [0, 2]"),
    (lambda a: a.pop("model/reference_logits"),
     "model: no [examples, classes] float reference_logits"),
    (lambda a: a.update({k: v[:0] for k, v in a.items()}),
     "model: no [examples, classes] float reference_logits"),
    (lambda a: a.update({"model/input/x": a["model/input/x"][:5]}),
     "model: expected inputs of 16 rows, one per reference logits row, got 'x'"),
], ids=["bytes-labels", "few-labels", "label-range", "no-logits", "no-rows", "few-inputs"])
def test_validation_data_edited_with_its_checksum(copy, capsys, edit, message):
    """Edited by hand, with the report's checksum updated to match: each
    inconsistency is one line, not a traceback in the comparison."""
    path = os.path.join(copy, "verification", "validation.npz")
    with np.load(path) as stored:
        arrays = {k: stored[k] for k in stored.files}
    edit(arrays)
    np.savez(path, **arrays)
    digest = sha256_path(path)
    _edit_report(copy, lambda r: r["validation"].update(sha256=digest))
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, message)


def test_a_nul_in_a_report_path_is_one_line(copy, capsys):
    _edit_report(copy, lambda r: r["artifacts"][0].update(path="tflite/model\0.tflite"))
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "'tflite/model\\x00.tflite' is not a relative path inside "
                               "the export folder")


def test_an_artifact_listed_twice_is_one_line(copy, capsys):
    _edit_report(copy, lambda r: r["artifacts"].append(dict(r["artifacts"][0])))
    code, _, err = _verify(capsys, copy)
    _one_line_error(code, err, "report.json: artifacts[1]: lists 'tflite/model.tflite' on the "
                               "'model' inputs again (as artifacts[0])")


def test_report_size_is_checked_not_echoed(copy, capsys):
    _edit_report(copy, lambda r: r["artifacts"][0].update(size_bytes=10**30))
    code, out, _ = _verify(capsys, copy)
    size = os.path.getsize(os.path.join(copy, TFLITE))
    assert code == 1, out
    assert (f"FAILED tflite/none: report.json gives size_bytes {10**30}, but "
            f"tflite/model.tflite has {size} bytes") in out
    assert "GiB" not in out and f"{size / 1024:.1f} KiB" in out


@pytest.mark.parametrize("runs, message", [
    (10**20, "--latency-runs: must be at most 10000 (timed calls per batch size), got "
             "100000000000000000000"),
    (10_001, "--latency-runs: must be at most 10000"),
    (-1, "--latency-runs: must be >= 0, got -1"),
], ids=["1e20", "10001", "negative"])
def test_latency_runs_are_bounded(export_dir, capsys, runs, message):
    with deadline(60):
        code = main(["verify", export_dir, "--latency-runs", str(runs)])
    _one_line_error(code, capsys.readouterr().err, message)


def test_latency_runs_must_be_a_whole_number(export_dir, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["verify", export_dir, "--latency-runs", "1e3"])
    assert stop.value.code == 2
    assert "argument --latency-runs: must be a whole number, got '1e3'" in capsys.readouterr().err


def test_target_is_a_file(export_dir, capsys):
    code, _, err = _verify(capsys, os.path.join(export_dir, "report.json"))
    _one_line_error(code, err, "report.json: is a file; give the export folder")


def test_run_folder_is_accepted(export_dir, tmp_path, capsys):
    # A `kd-keras distill` output holds its export in export/, as predict accepts.
    shutil.copytree(export_dir, tmp_path / "run" / "export")
    code, out, err = _verify(capsys, tmp_path / "run")
    assert code == 0, err
    assert "all 1 artifact(s) match" in out


@pytest.mark.parametrize("command", ["verify", "predict"])
def test_a_run_folder_whose_export_is_a_symlink_is_refused(copy, tmp_path, capsys, command):
    # kd-keras distill writes OUTPUT/export as a folder; a link there could
    # lead verify and predict to artifacts outside the folder they were given.
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(copy, run / "export")
    args = [command, str(run)] + (["some text"] if command == "predict" else [])
    code = main(args)
    assert_one_line_error(command, code, capsys.readouterr().err,
                          os.path.join(str(run), "export"), "symbolic link")
