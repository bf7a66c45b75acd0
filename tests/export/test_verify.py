"""Verification metrics against NumPy, and `verify_export` on altered exports."""

import json
import os
import shutil
import time

import numpy as np
import pytest

from export.conftest import edit_report as _edit_report
from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import VerificationError
from kd_keras.export import verify as verify_lib
from kd_keras.export import verify_export
from kd_keras.export.runtimes import Runtime
from kd_keras.export.tolerances import check_tolerance
from kd_keras.export.verify import compare
from kd_keras.timing import StageTimes


def test_compare_matches_numpy():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 4))
    noisy = ref + rng.normal(scale=0.3, size=ref.shape)
    labels = rng.integers(0, 4, size=50)
    labels[:5] = -1
    m = compare(noisy, ref, labels)
    assert m["max_abs_diff"] == pytest.approx(np.abs(noisy - ref).max())
    assert m["top1_agreement"] == pytest.approx((noisy.argmax(1) == ref.argmax(1)).mean())
    assert m["accuracy"] == pytest.approx((noisy.argmax(1) == labels)[5:].mean())


@pytest.mark.parametrize(
    "entry, ref_acc, failed",
    [
        ({"quantization": "none", "max_abs_diff": 9e-5}, None, False),
        ({"quantization": "none", "max_abs_diff": 2e-4}, None, True),
        ({"quantization": "float16", "max_abs_diff": 9e-3}, None, False),
        ({"quantization": "float16", "max_abs_diff": 2e-2}, None, True),
        ({"quantization": "int8", "top1_agreement": 0.985, "accuracy": 0.90}, 0.905, False),
        ({"quantization": "int8", "top1_agreement": 0.97, "accuracy": 0.90}, 0.90, True),
        ({"quantization": "int8", "top1_agreement": 0.99, "accuracy": 0.88}, 0.90, True),
    ],
)
def test_tolerances(entry, ref_acc, failed):
    assert bool(check_tolerance(entry, ref_acc)) == failed


def test_latency_stops_at_its_time_budget(monkeypatch):
    class Slow(Runtime):
        format = "onnx"
        calls = 0

        def run(self, inputs):
            Slow.calls += 1
            time.sleep(0.01)
            return np.tile(np.float32([[1.0, 0.0]]), (len(inputs["x"]), 1))

    monkeypatch.setattr(verify_lib, "load_runtime", lambda *args: Slow())
    monkeypatch.setattr(verify_lib, "LATENCY_MAX_SECONDS", 0.03)
    inputs = {"x": np.zeros((4, 3), np.float32)}
    times = StageTimes()
    entry = verify_lib.verify_artifact("onnx", "model.onnx", "none", inputs,
                                       np.float32([[2, 1], [2, 1], [2, 1], [1, 2]]),
                                       labels=np.array([0, 0, 1, 1]), latency_runs=1000,
                                       times=times)
    # One call runs the 4 examples, then 3 warmup calls per batch size; every
    # call sleeps 10 ms, so 3 timed calls spend each batch size's 0.03 s.
    timed = Slow.calls - 1 - 3 * len(verify_lib.LATENCY_BATCHES)
    assert len(verify_lib.LATENCY_BATCHES) <= timed <= 3 * len(verify_lib.LATENCY_BATCHES)
    assert entry["latency_ms_p50"] >= 10 and entry["latency_ms_p95_batch32"] >= 10
    assert (entry["top1_agreement"], entry["accuracy"], entry["max_abs_diff"]) == (0.75, 0.5, 2.0)
    assert set(times.seconds) == {"verify", "latency"}


@pytest.fixture
def export_copy(exported, tmp_path):
    _, out_dir, report = exported("mlp")
    copy = str(tmp_path / "copy")
    shutil.copytree(out_dir, copy)
    return copy, report


def test_verify_passes_on_an_untouched_export(export_copy):
    copy, report = export_copy
    checks = verify_export(copy, latency_runs=0)
    assert [c.failures for c in checks] == [()] * len(report["artifacts"])
    for check, entry in zip(checks, report["artifacts"]):
        assert check.passed
        assert check.artifact.full_path == os.path.join(copy, check.artifact.path)
        assert check.metrics["max_abs_diff"] == pytest.approx(entry["max_abs_diff"], rel=1e-6, abs=1e-6)


def test_verify_catches_altered_and_missing_artifacts(export_copy):
    copy, _ = export_copy
    with open(os.path.join(copy, "tflite", "model_int8.tflite"), "r+b") as f:
        f.seek(200)
        byte = f.read(1)
        f.seek(200)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.remove(os.path.join(copy, "onnx", "model_dynamic.onnx"))
    variables = os.path.join(copy, "saved_model", "digits_mlp", "1", "variables")
    with open(os.path.join(variables, "variables.data-00000-of-00001"), "ab") as f:
        f.write(b"\0")
    failures = sum((list(c.failures) for c in verify_export(copy, latency_runs=0)), [])
    assert failures == [
        "saved_model/none: saved_model/digits_mlp/1 was altered (sha256)",
        "tflite/int8: tflite/model_int8.tflite was altered (sha256)",
        "onnx/dynamic: onnx/model_dynamic.onnx is missing",
    ]


def test_verify_catches_an_altered_label_file_or_tflite_sidecar(export_copy):
    """`tflite/labels.txt` is what an app bundles with the model, and the
    sidecar what `predict` reads class names from: both are checked."""
    copy, report = export_copy
    with open(os.path.join(copy, "tflite", "labels.txt"), "w") as f:
        f.write("".join(f"class {i}\n" for i in range(10)))
    with open(os.path.join(copy, "tflite", "model.json"), "a") as f:
        f.write(" ")
    failures = sum((list(c.failures) for c in verify_export(copy, latency_runs=0)), [])
    tflite = [e for e in report["artifacts"] if e["format"] == "tflite"]
    assert len(tflite) >= 2
    assert failures == sum(
        ((["tflite/none: tflite/model.json was altered (sha256)"]
          if os.path.basename(e["path"]) == "model.tflite" else [])
         + [f"tflite/{e['quantization']}: tflite/labels.txt was altered (sha256)"]
         for e in tflite), [])
    os.remove(os.path.join(copy, "tflite", "labels.txt"))
    failures = sum((list(c.failures) for c in verify_export(copy, latency_runs=0)), [])
    assert f"tflite/{tflite[-1]['quantization']}: tflite/labels.txt is missing" in failures


def test_verify_reruns_the_comparison(export_copy):
    # An artifact swapped together with its checksum and size is still
    # caught by the comparison against the stored Keras logits.
    copy, _ = export_copy
    src = os.path.join(copy, "tflite", "model_int8.tflite")
    shutil.copy(src, os.path.join(copy, "tflite", "model.tflite"))

    def swap(report):
        by_path = {a["path"]: a for a in report["artifacts"]}
        for key in ("sha256", "size_bytes"):
            by_path["tflite/model.tflite"][key] = by_path["tflite/model_int8.tflite"][key]

    _edit_report(copy, swap)
    failures = sum((list(c.failures) for c in verify_export(copy, latency_runs=0)), [])
    assert len(failures) == 1 and failures[0].startswith("tflite/none: max_abs_diff")


def test_verify_needs_a_report(tmp_path):
    with pytest.raises(MissingFileError, match="report.json"):
        verify_export(str(tmp_path))


def _set_path(value):
    def edit(report):
        report["artifacts"][1]["path"] = value
    return edit


def _drop(key):
    def edit(report):
        del report["artifacts"][0][key]
    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_set_path("../copy/tflite/model.tflite"),
         r"report.json: artifacts\[1\].path: '../copy/tflite/model.tflite' is not a relative path"),
        (_set_path("tflite/../../x"), r"artifacts\[1\].path: 'tflite/../../x' is not a relative path"),
        (_set_path("/etc/hostname"), r"artifacts\[1\].path: '/etc/hostname' is not a relative path"),
        (_set_path(""), r"artifacts\[1\].path: '' is not a relative path"),
        (_drop("sha256"), r"report.json: artifacts\[0\]: missing key 'sha256'"),
        (_drop("path"), r"report.json: artifacts\[0\]: missing key 'path'"),
        (lambda r: r["artifacts"][0].update(format="coreml"),
         r"artifacts\[0\].format: unknown value 'coreml'"),
        (lambda r: r.pop("validation"), r"report.json: missing key 'validation'"),
        (lambda r: r.update(artifacts={"a": 1}), r"report.json: artifacts: expected list"),
    ],
)
def test_a_damaged_report_is_one_line_naming_it(export_copy, edit, message):
    copy, _ = export_copy
    _edit_report(copy, edit)
    with pytest.raises(DataError, match=message) as info:
        verify_export(copy, latency_runs=0)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith(os.path.join(copy, "report.json"))


def test_invalid_json_and_cli_verify_errors(export_copy, capsys):
    from kd_keras.cli import main

    copy, _ = export_copy
    _edit_report(copy, _drop("format"))
    assert main(["verify", copy, "--latency-runs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "artifacts[0]: missing key 'format'" in err[0], err
    with open(os.path.join(copy, "report.json"), "w") as f:
        f.write('{"artifacts": [')
    with pytest.raises(DataError, match="report.json: not a readable JSON file"):
        verify_export(copy)
    assert main(["verify", copy]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable JSON file" in err[0], err


def test_altered_validation_data_is_refused(export_copy):
    copy, _ = export_copy
    with open(os.path.join(copy, "verification", "validation.npz"), "ab") as f:
        f.write(b"\0")
    with pytest.raises(VerificationError, match="validation.npz: stored validation data was altered"):
        verify_export(copy)


# verify checks the folder, not only what the report lists.


def test_an_emptied_report_fails_every_artifact_it_no_longer_lists(export_copy):
    copy, _ = export_copy
    with open(os.path.join(copy, "report.json")) as f:
        stored = sorted({a["path"] for a in json.load(f)["artifacts"]})
    assert len(stored) == 8  # SavedModel, 4 TFLite, 3 ONNX.
    _edit_report(copy, lambda r: r.update(artifacts=[]))
    failures = sum((list(c.failures) for c in verify_export(copy, latency_runs=0)), [])
    assert sorted(f.split(":")[0] for f in failures) == stored
    assert all(f.endswith(": not listed in report.json (unverified artifact)") for f in failures)


def test_a_tampered_file_whose_entry_was_removed_fails(export_copy, capsys):
    from kd_keras.cli import main

    copy, _ = export_copy
    with open(os.path.join(copy, "tflite", "model_int8.tflite"), "ab") as f:
        f.write(b"\0")
    _edit_report(copy, lambda r: r.update(
        artifacts=[a for a in r["artifacts"] if a["path"] != "tflite/model_int8.tflite"]))
    failures = sum((list(c.failures) for c in verify_export(copy, latency_runs=0)), [])
    assert failures == [
        "tflite/model_int8.tflite: not listed in report.json (unverified artifact)"]
    assert main(["verify", copy, "--latency-runs", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAILED tflite/model_int8.tflite: not listed" in out and "match" not in out


def test_no_artifacts_at_all_is_an_error(export_copy, capsys):
    from kd_keras.cli import main

    copy, _ = export_copy
    for folder in ("saved_model", "tflite", "onnx"):
        shutil.rmtree(os.path.join(copy, folder))
    _edit_report(copy, lambda r: r.update(artifacts=[]))
    with pytest.raises(VerificationError, match="report.json: no artifacts to verify"):
        verify_export(copy, latency_runs=0)
    assert main(["verify", copy]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no artifacts to verify" in err[0], err


def test_rejected_artifacts_are_not_verified_but_a_dropped_in_model_is(export_copy):
    copy, _ = export_copy
    os.makedirs(os.path.join(copy, "rejected", "tflite"))
    shutil.copy(os.path.join(copy, "tflite", "model_int8.tflite"),
                os.path.join(copy, "rejected", "tflite", "model_int8.tflite"))
    assert all(c.passed for c in verify_export(copy, latency_runs=0))
    shutil.copy(os.path.join(copy, "onnx", "model.onnx"), os.path.join(copy, "extra.onnx"))
    failures = sum((list(c.failures) for c in verify_export(copy, latency_runs=0)), [])
    assert failures == ["extra.onnx: not listed in report.json (unverified artifact)"]


def test_earlier_savedmodel_versions_are_listed_and_checked(tmp_path):
    import keras

    from kd_keras.export import export_model
    from kd_keras.files.hashing import sha256_path

    x = keras.Input((4,), name="features")
    model = keras.Model(x, keras.layers.Dense(3)(x), name="tiny")
    out = str(tmp_path / "out")
    export_model(model, out, formats=("saved_model",), latency_runs=0)
    v1 = os.path.join(out, "saved_model", "tiny", "1")
    digest = sha256_path(v1)
    report = export_model(model, out, formats=("saved_model",), latency_runs=0)
    assert report["earlier_versions"] == [{"format": "saved_model", "quantization": "none",
                                           "path": v1, "sha256": digest}]
    checks = verify_export(out, latency_runs=0)
    assert [(c.artifact.path, c.passed) for c in checks] == [
        ("saved_model/tiny/2", True), ("saved_model/tiny/1", True)]
    with open(os.path.join(v1, "variables", "variables.data-00000-of-00001"), "ab") as f:
        f.write(b"\0")
    failures = sum((list(c.failures) for c in verify_export(out, latency_runs=0)), [])
    assert failures == [
        "saved_model/none (earlier version): saved_model/tiny/1 was altered (sha256)"]


def test_a_text_saved_model_and_a_symlinked_version_are_never_passed_over(export_copy):
    """TensorFlow (and TF Serving) also load `saved_model.pbtxt`, and follow
    a version folder that is a symlink: neither may hide a model."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    copy, _ = export_copy
    with open(os.path.join(copy, "report.json")) as f:
        (first,) = [a["path"] for a in json.load(f)["artifacts"] if a["format"] == "saved_model"]
    second = os.path.join(copy, os.path.dirname(first), "2")
    shutil.copytree(os.path.join(copy, first), second)
    with open(os.path.join(second, "saved_model.pb"), "rb") as f:
        proto = saved_model_pb2.SavedModel.FromString(f.read())
    os.remove(os.path.join(second, "saved_model.pb"))
    with open(os.path.join(second, "saved_model.pbtxt"), "w") as f:
        f.write(text_format.MessageToString(proto))
    failures = sum((list(c.failures) for c in verify_export(copy, latency_runs=0)), [])
    assert failures == [
        f"{os.path.dirname(first)}/2: not listed in report.json (unverified artifact)"]

    shutil.rmtree(second)
    shutil.copytree(os.path.join(copy, first), os.path.join(copy, "rejected", "evil"))
    link = os.path.join(copy, os.path.dirname(first), "9")
    os.symlink(os.path.join("..", "..", "rejected", "evil"), link)
    with pytest.raises(DataError, match=f"^{link}: a symlink to a folder, which kd_keras "
                                        "never writes and a server would load as a model"):
        verify_export(copy, latency_runs=0)


def test_the_report_table_is_markdown_every_row_as_wide_as_its_header():
    # A header "max |diff|" had 14 cells against 12 in every other row, so no
    # Markdown viewer drew report.md's table.
    from kd_keras.export.report import markdown_table

    entry = {"format": "tflite", "quantization": "int8", "path": "tflite/model_int8.tflite",
             "size_bytes": 1000, "max_abs_diff": 0.5, "top1_agreement": 0.99,
             "accuracy": 0.8, "passed": True}
    lines = markdown_table([entry]).splitlines()
    widths = {line.count("|") for line in lines}
    assert len(lines) == 3 and len(widths) == 1, lines
