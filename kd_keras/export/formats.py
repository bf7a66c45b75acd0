"""The export formats and quantizations: the one place they are defined.

- `FORMATS`: `"saved_model"`, `"tflite"`, `"onnx"`.
- `QUANTIZATIONS`: `"none"`, `"dynamic"`, `"float16"`, `"int8"`.
- `SUPPORTED`: the quantizations each format has (SavedModel is always
  float32, ONNX Runtime has no float16 quantization).
- `DEPENDENCIES`: the optional packages each format needs, with the extra
  that installs them; `require_format` imports them or stops with one line.

This module imports nothing heavy, so `kd_keras.config` and the command
line can check names without loading TensorFlow or any converter.

Example:

>>> SUPPORTED["onnx"]
('none', 'dynamic', 'int8')
>>> check_choices("tflite, onnx", "--formats", FORMATS)
('tflite', 'onnx')
>>> check_choices(["tflit"], "formats", FORMATS)
Traceback (most recent call last):
...
kd_keras.errors.UsageError: formats: unknown value 'tflit' (known: saved_model, tflite, onnx)
"""

from kd_keras.errors import UsageError
from kd_keras.errors import require

FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
SUPPORTED = {
    "saved_model": ("none",),
    "tflite": QUANTIZATIONS,
    "onnx": tuple(q for q in QUANTIZATIONS if q != "float16"),
}
# The artifacts an export folder can hold: the formats above, and MediaPipe's
# text classifier (`mediapipe/model[_int8].tflite`, written for text students
# beside them, see `kd_keras.export.mediapipe_model`).
MEDIAPIPE = "mediapipe"
ARTIFACT_FORMATS = FORMATS + (MEDIAPIPE,)
# (module, extra, feature): what each format imports beyond the core install.
DEPENDENCIES = {
    "saved_model": (
        ("tensorflow_serving.apis.prediction_log_pb2", "serving",
         "TF Serving warmup requests"),
    ),
    "tflite": (("ai_edge_litert.interpreter", "export", "TFLite export"),),
    "onnx": (
        ("tf2onnx", "export", "ONNX export"),
        ("onnx", "export", "ONNX export"),
        ("onnxruntime", "export", "ONNX export"),
    ),
}


def check_choices(values, what, known):
    """Splits and checks a list of names against the known ones.

    Args:
        values: a name, a comma/space-separated string, or a sequence of
            names.
        what: the argument or key, for the message (e.g. `"--formats"`).
        known: the allowed names.

    Returns:
        The names, de-duplicated, in the order given.

    Raises:
        UsageError: `WHAT: unknown value 'x' (known: ...)`, or
            `WHAT: no value given` for an empty list.
    """
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    try:
        values = [str(v).strip() for v in values]
    except TypeError:
        raise UsageError(
            f"{what}: expected a list of names, got {type(values).__name__}"
        ) from None
    values = [v for v in values if v]
    if not values:
        raise UsageError(f"{what}: no value given (known: {', '.join(known)})")
    for v in values:
        if v not in known:
            raise UsageError(
                f"{what}: unknown value {v!r} (known: {', '.join(known)})"
            )
    return tuple(dict.fromkeys(values))


def require_format(format):
    """Imports the optional packages `format` needs.

    Args:
        format: one of `FORMATS`.

    Raises:
        MissingDependencyError: naming `pip install "kd_keras[EXTRA]"`.
    """
    for module, extra, feature in DEPENDENCIES[format]:
        require(module, extra, feature)
