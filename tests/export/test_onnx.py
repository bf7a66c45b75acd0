"""ONNX conversion: named outputs, dynamic batch, opset, unmapped ops."""

import keras
import onnx
import pytest

from kd_keras.export import export_model
from kd_keras.export.inputs import model_input_specs
from kd_keras.export.onnx import UnmappedOpError
from kd_keras.export.onnx import convert_model


def _model(activation):
    x = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation=activation)(x)
    return keras.Model(x, keras.layers.Dense(3)(h))


def test_named_dynamic_batch_graph_at_the_default_opset():
    model = _model("relu")
    proto = convert_model(model, model_input_specs(model))
    assert [i.name for i in proto.graph.input] == ["features"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {17}


def test_exact_gelu_is_refused_with_the_fix(tmp_path):
    with pytest.raises(UnmappedOpError, match="exact gelu.*Erfc.*approximate") as info:
        export_model(_model("gelu"), tmp_path / "out", formats=("onnx",))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()
    approximate = _model(lambda t: keras.activations.gelu(t, approximate=True))
    proto = convert_model(approximate, model_input_specs(approximate))
    onnx.checker.check_model(proto)


def test_opset_above_tf2onnx_maximum_is_refused():
    model = _model("relu")
    with pytest.raises(ValueError, match="opset 19"):
        convert_model(model, model_input_specs(model), opset=19)
