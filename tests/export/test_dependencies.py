"""Optional packages: a missing one stops with one `pip install` line.

A missing package is simulated by `sys.modules[name] = None`, which makes
`import name` raise `ModuleNotFoundError` as if it were not installed.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kd_keras.cli import main
from kd_keras.errors import MissingDependencyError
from kd_keras.export import export_model
from kd_keras.export import verify_export

EXPORT = 'pip install "kd_keras[export]"'
SERVING = 'pip install "kd_keras[serving]"'


def _hide(monkeypatch, *names):
    """Makes each package (and its loaded submodules) unimportable."""
    for name in names:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            monkeypatch.setitem(sys.modules, key, None)
        monkeypatch.setitem(sys.modules, name, None)


def _model():
    x = keras.Input((4,), name="features")
    return keras.Model(x, keras.layers.Dense(3)(x), name="deps")


@pytest.mark.parametrize(
    "formats, hidden, message",
    [
        (("onnx",), "onnxruntime", f"ONNX export needs onnxruntime: {EXPORT}"),
        (("onnx",), "tf2onnx", f"ONNX export needs tf2onnx: {EXPORT}"),
        (("tflite",), "ai_edge_litert", f"TFLite export needs ai_edge_litert: {EXPORT}"),
        (("saved_model",), "tensorflow_serving",
         f"TF Serving warmup requests needs tensorflow_serving: {SERVING}"),
    ],
)
def test_export_without_an_optional_package(tmp_path, monkeypatch, formats, hidden, message):
    _hide(monkeypatch, hidden)
    with pytest.raises(MissingDependencyError) as info:
        export_model(_model(), tmp_path / "out", formats=formats, latency_runs=1)
    assert str(info.value) == message
    assert os.listdir(tmp_path) == []


def test_tflite_alone_does_not_need_the_serving_extra(tmp_path, monkeypatch):
    _hide(monkeypatch, "tensorflow_serving")
    report = export_model(_model(), tmp_path / "out", formats=("tflite",), latency_runs=1)
    assert [a["format"] for a in report["artifacts"]] == ["tflite"]


def test_cli_export_without_an_optional_package(tmp_path, monkeypatch, capsys):
    path = str(tmp_path / "model.keras")
    _model().save(path)
    _hide(monkeypatch, "tf2onnx")
    code = main(["export", path, str(tmp_path / "out"), "--formats", "tflite", "onnx"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].endswith(f"ONNX export needs tf2onnx: {EXPORT}"), err
    assert not (tmp_path / "out").exists()


def test_verify_without_an_optional_package(tmp_path, monkeypatch):
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    out = str(tmp_path / "out")
    export_model(_model(), out, formats=("onnx",), validation_data=x, latency_runs=1)
    _hide(monkeypatch, "onnxruntime")
    with pytest.raises(MissingDependencyError) as info:
        verify_export(out, latency_runs=0)
    assert str(info.value) == f"ONNX verification needs onnxruntime: {EXPORT}"


@pytest.mark.slow
def test_importing_kd_keras_export_loads_no_converter_or_runtime():
    code = (
        "import sys, kd_keras.export as e; e.export_model; e.verify_export; "
        "print(sorted(m for m in ('tf2onnx', 'onnx', 'onnxruntime', 'ai_edge_litert', "
        "'tensorflow_serving', 'grpc') if m in sys.modules))"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
