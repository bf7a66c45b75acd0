"""TFLite conversion: builtin-only by default, integer-only I/O, sidecars."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.export import export_model
from kd_keras.export.tflite import UnsupportedOpError


def test_flex_op_fails_loudly_naming_it(tmp_path):
    x = keras.Input((3, 3), name="matrix")
    y = keras.layers.Lambda(lambda t: tf.expand_dims(tf.linalg.det(t), -1))(x)
    model = keras.Model(x, keras.layers.Dense(2)(y))
    with pytest.raises(UnsupportedOpError, match="MatrixDeterminant.*select_tf_ops") as info:
        export_model(model, tmp_path / "out", formats=("tflite",))
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_int8_with_integer_io_and_sidecars(cases, tmp_path):
    case = cases("mlp")
    report = export_model(
        case.model, tmp_path / "out", formats=("tflite",), quantization=("int8",),
        representative_data=case.representative, validation_data=(case.x_val, case.y_val),
        labels=case.options["labels"], integer_io=True, latency_runs=1,
    )
    (entry,) = report["artifacts"]
    assert entry["passed"], entry
    assert entry["top1_agreement"] >= 0.98
    folder = tmp_path / "out" / "tflite"
    meta = json.loads((folder / "model_int8.json").read_text())
    assert meta["inputs"]["pixels"]["dtype"] == "int8"
    assert meta["outputs"]["logits"]["dtype"] == "int8"
    assert meta["outputs"]["logits"]["scale"] > 0
    assert (folder / "labels.txt").read_text().split() == [str(i) for i in range(10)]

    # Independent check: quantize by hand with the stored scale/zero point.
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(folder / "model_int8.tflite")).get_signature_runner()
    inp, out = meta["inputs"]["pixels"], meta["outputs"]["logits"]
    q = np.clip(np.round(case.x_val / inp["scale"] + inp["zero_point"]), -128, 127).astype(np.int8)
    logits = (runner(pixels=q)["logits"].astype(np.float32) - out["zero_point"]) * out["scale"]
    ref = np.asarray(case.model(case.x_val))
    assert np.mean(logits.argmax(1) == ref.argmax(1)) >= 0.98
