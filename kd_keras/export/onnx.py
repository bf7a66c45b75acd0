"""ONNX export with tf2onnx, checked with `onnx.checker` and ONNX Runtime.

`tf2onnx.convert.from_function` converts a `tf.function` over the Keras
model with a named `tf.TensorSpec` input signature (`convert.from_keras`
fails on Keras 3 models). The batch is dynamic and the output is named
`logits`. tf2onnx logs, rather than raises, on TensorFlow ops it cannot map
and still writes a file ONNX Runtime refuses; this module fails loudly
instead, and explains the most common case: exact `gelu` lowers to `Erfc`.

Optional ONNX Runtime quantization: `"dynamic"` (int8 weights) and `"int8"`
(static, QOperator, calibrated on representative data).

`tf2onnx`, `onnx` and `onnxruntime` (the `export` extra) are imported on
first use.
"""

import logging
import operator
import os

import tensorflow as tf

from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.errors import require
from kd_keras.export.formats import SUPPORTED
from kd_keras.export.inputs import call_model

QUANTIZATIONS = SUPPORTED["onnx"]
DEFAULT_OPSET = 17
MAX_OPSET = 18
FEATURE = "ONNX export"


class UnmappedOpError(UsageError):
    """tf2onnx left TensorFlow ops without an ONNX equivalent."""


def _unmapped_ops(graph):
    onnx = require("onnx", "export", FEATURE)

    bad = []
    for node in graph.node:
        domain = node.domain or ""
        if domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type, domain):
            bad.append(node.op_type)
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                bad += _unmapped_ops(attr.g)
    return bad


def check_opset(opset):
    """Returns `opset` as an int, or raises `UsageError` naming it.

    Example:

    >>> check_opset(19)
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: opset: ONNX opset 19 is unsupported; use 7..18
    """
    try:
        value = operator.index(opset)
    except TypeError:
        value = None
    if value is None or isinstance(opset, bool) or not 7 <= value <= MAX_OPSET:
        raise UsageError(
            f"opset: ONNX opset {opset!r} is unsupported; use 7..{MAX_OPSET}"
        )
    return value


def convert_model(model, specs, opset=DEFAULT_OPSET):
    """Converts a Keras model to an `onnx.ModelProto` with output `logits`.

    Args:
        model: a `keras.Model` that outputs logits.
        specs: the model's `InputSpec`s; ONNX inputs take their names.
        opset: ONNX opset, at most 18 (tf2onnx's maximum).

    Returns:
        A checked `onnx.ModelProto`.

    Example:

    >>> import keras
    >>> from kd_keras.export.inputs import model_input_specs
    >>> m = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    >>> [o.name for o in convert_model(m, model_input_specs(m)).graph.output]
    ['logits']
    """
    opset = check_opset(opset)
    onnx = require("onnx", "export", FEATURE)
    tf2onnx_convert = require("tf2onnx.convert", "export", FEATURE)
    names = [s.name for s in specs]

    @tf.function(input_signature=[s.tensor_spec() for s in specs])
    def logits_fn(*args):
        logits = call_model(model, specs, dict(zip(names, args)))
        return {"logits": tf.cast(logits, tf.float32)}

    tf2onnx_logger = logging.getLogger("tf2onnx")
    level = tf2onnx_logger.level
    tf2onnx_logger.setLevel(logging.CRITICAL)  # Unmapped ops are raised below.
    try:
        proto, _ = tf2onnx_convert.from_function(
            logits_fn,
            input_signature=[s.tensor_spec() for s in specs],
            opset=opset,
            output_path=None,
        )
    finally:
        tf2onnx_logger.setLevel(level)
    bad = sorted(set(_unmapped_ops(proto.graph)))
    if "Erfc" in bad:
        raise UnmappedOpError(
            "onnx: the model uses exact gelu, which lowers to Erfc and tf2onnx "
            "cannot map it; build the student with approximate gelu "
            "(keras.activations.gelu(x, approximate=True), or "
            "intermediate_activation=lambda x: keras.activations.gelu(x, "
            "approximate=True) in KerasHub backbones)"
        )
    if bad:
        raise UnmappedOpError(
            f"onnx: tf2onnx cannot map TensorFlow op(s) {', '.join(bad)} "
            f"at opset {opset}"
        )
    onnx.checker.check_model(proto)
    return proto


class _Calibration:
    """An ONNX Runtime `CalibrationDataReader` over `{name: array}`."""

    def __init__(self, data, limit=200):
        n = min(len(next(iter(data.values()))), limit)
        self._items = iter(
            [{k: v[i : i + 1] for k, v in data.items()} for i in range(n)]
        )

    def get_next(self):
        return next(self._items, None)


def write_onnx(
    proto, path, quantization="none", representative_data=None, quantized_ops=None
):
    """Writes `proto` to `path`, quantized with ONNX Runtime if asked.

    Args:
        proto: an `onnx.ModelProto` from `convert_model`.
        path: the `.onnx` file to write.
        quantization: `"none"`, `"dynamic"` or `"int8"` (static).
        representative_data: `{input name: array}`; required for `"int8"`.
        quantized_ops: with `"int8"`, the ONNX op types to quantize (e.g.
            `("MatMul", "Gemm")`; the others stay float), or None for every
            op type ONNX Runtime can quantize.

    Returns:
        `path`, after checking it opens in an ONNX Runtime session.
    """
    if quantization not in QUANTIZATIONS:
        raise UsageError(
            f"quantization: ONNX has no {quantization!r} "
            f"(known: {', '.join(QUANTIZATIONS)})"
        )
    onnx = require("onnx", "export", FEATURE)
    ort = require("onnxruntime", "export", FEATURE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if quantization == "none":
        onnx.save(proto, path)
    else:
        q = require("onnxruntime.quantization", "export", FEATURE)

        float_path = path + ".float.onnx"
        onnx.save(proto, float_path)
        # ONNX Runtime logs a pre-processing suggestion on the root logger.
        logging.disable(logging.WARNING)
        try:
            if quantization == "dynamic":
                q.quantize_dynamic(float_path, path, weight_type=q.QuantType.QInt8)
            else:
                if representative_data is None:
                    raise UsageError(
                        "representative_data: required by quantization 'int8'"
                    )
                q.quantize_static(
                    float_path,
                    path,
                    _Calibration(representative_data),
                    # QOperator kept the top-1 decisions best in our
                    # measurements (digits MLP: 99.7% vs 98.7% with QDQ).
                    quant_format=q.QuantFormat.QOperator,
                    activation_type=q.QuantType.QInt8,
                    weight_type=q.QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=(
                        None if quantized_ops is None else list(quantized_ops)
                    ),
                )
        finally:
            logging.disable(logging.NOTSET)
            os.remove(float_path)
            if os.path.exists(float_path + ".data"):
                os.remove(float_path + ".data")
    try:
        ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise UnmappedOpError(
            f"onnx/{quantization}: ONNX Runtime cannot load "
            f"{os.path.basename(path)}: "
            f"{one_line(e)}"
        ) from e
    return path
