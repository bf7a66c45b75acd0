"""Choosing how far an `"int8"` artifact is quantized, by measurement.

Full-integer quantization keeps the decisions of convolutional and
recurrent students, but not always those of transformers: a masked
softmax fills padded positions with a huge negative number (`-1e9`), its
int8 scale (and the scale of the attention scores tied to it) becomes
millions, every score rounds to zero and attention turns uniform; ONNX
Runtime's int8 `Add`, `Softmax` and elementwise GRU gates lose the same way.
So each int8 artifact is built with the first recipe of its format that
keeps the Keras model's top-1 decisions on the calibration data
(`CALIBRATION_AGREEMENT`) and stays close to its logits
(`CALIBRATION_LOGIT_ERROR`), measured in the artifact's own runtime:

- TFLite: full int8; then int8 with attention (`BATCH_MATMUL`, `SOFTMAX`,
  `SELECT_V2`, `TRANSPOSE`) and LayerNorm statistics (`MEAN`,
  `SQUARED_DIFFERENCE`, `RSQRT`) in float; then dynamic range.
- ONNX: full int8 (QOperator, per channel); then int8 `MatMul`, `Gemm`,
  `Conv` and `Gather` with the elementwise ops in float; then dynamic range.

The choice uses only the representative data, never the validation data
the artifact is then verified on. The report entry and the TFLite sidecar
name the recipe (`recipe`). With `integer_io` only full int8 can honour the
integer tensors, so nothing else is tried.
"""

import dataclasses

import numpy as np

from kd_keras.export.runtimes import load_runtime
from kd_keras.export.verify import compare
from kd_keras.export.verify import predict
from kd_keras.timing import StageTimes

# What a recipe must reach on the calibration data: top-1 agreement with the
# Keras model above the int8 tolerance (0.98), and a logit error (RMS of the
# difference over the spread of the Keras logits, see `logit_error`) small
# enough to leave a margin on examples it has not seen. Measured on the
# movie-review students: 0.006-0.023 for the recipes that then passed
# verification, 0.058 for one (a GRU in ONNX, full int8) that missed it with
# agreement 0.995 on the calibration data.
CALIBRATION_AGREEMENT = 0.99
CALIBRATION_LOGIT_ERROR = 0.04
# At most this many calibration examples are scored per recipe.
CHECK_EXAMPLES = 500


@dataclasses.dataclass(frozen=True)
class Int8Recipe:
    """One way to build an `"int8"` artifact.

    Attributes:
        name: shown as the report entry's `recipe`.
        quantization: what the converter runs: `"int8"` (calibrated) or
            `"dynamic"` (int8 weights, float activations).
        float_ops: TFLite builtin ops kept in float.
        quantized_ops: ONNX op types quantized (None: every one ONNX Runtime
            can).
    """

    name: str
    quantization: str = "int8"
    float_ops: tuple = ()
    quantized_ops: tuple = None


FULL_INT8 = Int8Recipe("full int8")
DYNAMIC_RANGE = Int8Recipe("dynamic range (int8 weights, float activations)", "dynamic")
RECIPES = {
    "tflite": (
        FULL_INT8,
        Int8Recipe(
            "int8, float attention and LayerNorm",
            float_ops=("BATCH_MATMUL", "SOFTMAX", "SELECT_V2", "TRANSPOSE",
                       "MEAN", "SQUARED_DIFFERENCE", "RSQRT"),
        ),
        DYNAMIC_RANGE,
    ),
    "onnx": (
        FULL_INT8,
        Int8Recipe(
            "int8 MatMul/Gemm/Conv/Gather, float elementwise",
            quantized_ops=("MatMul", "Gemm", "Conv", "Gather"),
        ),
        DYNAMIC_RANGE,
    ),
}


def recipes_for(format, integer_io=False):
    """The recipes tried, in order, for an int8 artifact of `format`.

    Example:

    >>> [r.name for r in recipes_for("onnx")][0]
    'full int8'
    >>> len(recipes_for("tflite", integer_io=True))
    1
    """
    return (FULL_INT8,) if integer_io else RECIPES[format]


def logit_error(logits, reference_logits):
    """RMS of `logits - reference_logits` over the spread of the reference
    (the standard deviation of its logits centred per example).

    Example:

    >>> ref = np.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> round(float(logit_error(ref + 0.1, ref)), 6)
    0.1
    """
    logits = np.asarray(logits, np.float64)
    reference = np.asarray(reference_logits, np.float64)
    spread = np.std(reference - reference.mean(-1, keepdims=True))
    return np.sqrt(np.mean((logits - reference) ** 2)) / max(spread, 1e-12)


def calibration_check(format, path, inputs, reference_logits, signature=None):
    """Runs the artifact at `path` on `inputs` (through `signature`, or its
    default one).

    Returns:
        `(top-1 agreement, logit_error)` against `reference_logits`.
    """
    with load_runtime(format, path, signature) as runtime:
        logits = predict(runtime, inputs)
    agreement = compare(logits, reference_logits)["top1_agreement"]
    return agreement, float(logit_error(logits, reference_logits))


def first_that_holds(recipes, build, min_agreement=CALIBRATION_AGREEMENT,
                     max_error=CALIBRATION_LOGIT_ERROR):
    """Builds the recipes in order until one keeps the Keras model's
    decisions: the one search of every int8 artifact (TFLite, ONNX and
    MediaPipe's, which holds itself to tighter limits).

    Args:
        recipes: the `Int8Recipe`s to try, in order.
        build: `recipe -> (artifact, agreement, logit_error)` measured on
            the calibration data, or `None` to pass the recipe over (it
            would build the same model as one already tried).
        min_agreement: the top-1 agreement a recipe must reach.
        max_error: the `logit_error` it must stay within.

    Returns:
        `(recipe, artifact)`: the first that holds, else the one with the
        smallest logit error.

    Example:

    >>> scores = {"a": (0.95, 0.01), "b": (0.999, 0.02), "c": (1.0, 0.0)}
    >>> first_that_holds("abc", lambda r: (r.upper(), *scores[r]))
    ('b', 'B')
    """
    best, best_error = None, np.inf
    for recipe in recipes:
        built = build(recipe)
        if built is None:
            continue
        artifact, agreement, error = built
        if agreement >= min_agreement and error <= max_error:
            return recipe, artifact
        if error < best_error:
            best, best_error = (recipe, artifact), error
    return best


def build_int8(format, path, write, inputs, reference_logits, integer_io=False, times=None,
               signature=None):
    """Writes the int8 artifact at `path` with the first recipe that holds.

    Args:
        format: `"tflite"` or `"onnx"`.
        path: where `write` puts the artifact.
        write: `write(recipe)` builds the artifact at `path` with `recipe`.
        inputs: calibration inputs `{name: array}` (at most
            `CHECK_EXAMPLES` are scored).
        reference_logits: the Keras model's logits on `inputs`.
        integer_io: integer I/O requested: full int8 only.
        times: optional `kd_keras.timing.StageTimes`; gets the seconds of
            scoring the recipes on the calibration data (`"int8_check"`).
        signature: the artifact's signature that `inputs` feed (the text
            TFLite's `serving_text`), or None for its default one.

    Returns:
        The `Int8Recipe` used: the first within `CALIBRATION_AGREEMENT` and
        `CALIBRATION_LOGIT_ERROR`, else the one with the smallest logit
        error (verification then reports any miss).

    Example:

    >>> recipe = build_int8("onnx", "out/m.onnx", write, x, logits)  # doctest: +SKIP
    >>> recipe.name  # doctest: +SKIP
    'full int8'
    """
    n = min(len(reference_logits), CHECK_EXAMPLES)
    inputs = {k: np.asarray(v)[:n] for k, v in inputs.items()}
    reference_logits = reference_logits[:n]
    recipes = recipes_for(format, integer_io)
    if len(recipes) == 1:
        write(recipes[0])
        return recipes[0]
    last = []

    def build(recipe):
        write(recipe)
        last[:] = [recipe]
        with (times or StageTimes()).measure("int8_check"):
            return (None, *calibration_check(format, path, inputs, reference_logits,
                                             signature))

    best, _ = first_that_holds(recipes, build)
    if best is not last[0]:  # The file at `path` is the last one tried.
        write(best)
    return best
