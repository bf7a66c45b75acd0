"""An export folder can be moved or copied: report paths are relative."""

import json
import os
import shutil

import keras
import numpy as np

from kd_keras.cli import main
from kd_keras.export import export_model
from kd_keras.export import verify_export


def _model():
    keras.utils.set_random_seed(0)
    x = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu")(x)
    return keras.Model(x, keras.layers.Dense(3)(h), name="portable")


def test_moved_and_copied_exports_still_verify(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(64, 6)).astype("float32")
    y = np.random.default_rng(1).integers(0, 3, size=64)
    first = str(tmp_path / "first" / "out")
    report = export_model(_model(), first, validation_data=(x, y), latency_runs=1)
    assert {a["format"] for a in report["artifacts"]} == {"saved_model", "tflite", "onnx"}
    # The returned dict keeps the documented form: paths under out_dir.
    for a in report["artifacts"]:
        assert a["path"].startswith(os.path.join(first, "")), a["path"]
    with open(os.path.join(first, "report.json")) as f:
        stored = [a["path"] for a in json.load(f)["artifacts"]]
    assert sorted(stored) == [
        "onnx/model.onnx", "saved_model/portable/1", "tflite/model.tflite",
    ]

    moved = str(tmp_path / "elsewhere" / "moved")
    os.makedirs(os.path.dirname(moved))
    os.rename(first, moved)
    checks = verify_export(moved, latency_runs=0)
    assert [c.failures for c in checks] == [()] * 3
    assert all(c.artifact.full_path.startswith(moved) for c in checks)

    copied = str(tmp_path / "copied")
    shutil.copytree(moved, copied)
    shutil.rmtree(moved)  # Nothing may still point at the old place.
    assert main(["verify", copied, "--latency-runs", "0"]) == 0
    assert "all 3 artifact(s) match" in capsys.readouterr().out
