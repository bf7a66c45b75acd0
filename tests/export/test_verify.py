"""Verification metrics against NumPy, and `verify_export` on altered exports."""

import json
import os
import shutil

import numpy as np
import pytest

from kd_keras.export import verify_export
from kd_keras.export.verify import check_tolerance
from kd_keras.export.verify import compare


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


@pytest.fixture
def export_copy(exported, tmp_path):
    _, out_dir, report = exported("mlp")
    copy = str(tmp_path / "copy")
    shutil.copytree(out_dir, copy)
    return copy, report


def test_verify_passes_on_an_untouched_export(export_copy):
    copy, report = export_copy
    results = verify_export(copy, latency_runs=0)
    assert [f for _, _, f in results] == [[]] * len(report["artifacts"])
    for entry, fresh, _ in results:
        assert fresh["max_abs_diff"] == pytest.approx(entry["max_abs_diff"], rel=1e-6, abs=1e-6)


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
    failures = sum((f for _, _, f in verify_export(copy, latency_runs=0)), [])
    assert failures == [
        "saved_model/none: saved_model/digits_mlp/1 was altered (sha256)",
        "tflite/int8: tflite/model_int8.tflite was altered (sha256)",
        "onnx/dynamic: onnx/model_dynamic.onnx is missing",
    ]


def test_verify_reruns_the_comparison(export_copy):
    # An artifact swapped together with its checksum is still caught by
    # the comparison against the stored Keras logits.
    copy, _ = export_copy
    report_path = os.path.join(copy, "report.json")
    with open(report_path) as f:
        report = json.load(f)
    src = os.path.join(copy, "tflite", "model_int8.tflite")
    shutil.copy(src, os.path.join(copy, "tflite", "model.tflite"))
    entry = next(a for a in report["artifacts"] if a["file"] == "tflite/model.tflite")
    entry["sha256"] = next(a["sha256"] for a in report["artifacts"] if a["file"] == "tflite/model_int8.tflite")
    with open(report_path, "w") as f:
        json.dump(report, f)
    failures = sum((f for _, _, f in verify_export(copy, latency_runs=0)), [])
    assert len(failures) == 1 and failures[0].startswith("tflite/none: max_abs_diff")


def test_verify_needs_a_report(tmp_path):
    with pytest.raises(FileNotFoundError, match="report.json"):
        verify_export(str(tmp_path))
