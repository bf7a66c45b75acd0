"""TFLite / LiteRT conversion from the SavedModel, with quantization.

Conversion starts from the SavedModel's `serving_default` signature (the
artifact TF Serving runs), so every format shares one graph. Builtin ops
only by default: an op that would need the Flex delegate fails the export
with its name. `select_tf_ops=True` opts in to Flex; `tftext_custom_ops=True`
keeps TF-Text tokenizer ops as custom ops for `InterpreterWithCustomOps`.

Labels go in a sidecar `labels.txt` and the JSON metadata sidecar
`<model>.json` (tflite-support cannot be installed beside TF 2.21).
The LiteRT interpreter (`ai-edge-litert`, the `export` extra) is imported
on first use.
"""

import contextlib
import gc
import json
import os
import re
import warnings

import numpy as np
import tensorflow as tf

from kd_keras.errors import UsageError
from kd_keras.errors import require
from kd_keras.export.formats import SUPPORTED
from kd_keras.export.layout import LABELS_FILE
from kd_keras.export.layout import sidecar_path

QUANTIZATIONS = SUPPORTED["tflite"]


class UnsupportedOpError(UsageError):
    """The graph needs ops the chosen target cannot run."""


def litert_interpreter():
    """The `ai_edge_litert.interpreter` module, or a one-line install hint."""
    return require("ai_edge_litert.interpreter", "export", "TFLite export")


def _flex_ops(message):
    ops = []
    for m in re.finditer(r"TF Select ops: ([^\n]+)", message):
        ops += [o.strip() for o in m.group(1).split(",") if o.strip()]
    ops += re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", message)
    ops += re.findall(r"Custom ops: ([^\n]+)", message)
    return sorted(set(ops))


@contextlib.contextmanager
def frozen_heap():
    """Leaves the objects that exist now out of garbage collection until the
    block ends (`gc.freeze`).

    TensorFlow's SavedModel converter runs a full `gc.collect()` in every
    conversion, which walks every object of a process that holds TensorFlow,
    Keras and the models; inside this block it walks only the objects the
    conversion made, which are the ones it means to free. Nothing else
    changes. A heap someone else froze is left as it is.

    Example:

    >>> with frozen_heap():
    ...     gc.get_freeze_count() > 0
    True
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _representative_dataset(data, limit=200):
    n = len(next(iter(data.values())))

    def gen():
        for i in range(min(n, limit)):
            yield {k: v[i : i + 1] for k, v in data.items()}

    return gen


def convert_saved_model(
    saved_model_dir,
    quantization="none",
    representative_data=None,
    integer_io=False,
    select_tf_ops=False,
    tftext_custom_ops=False,
    signature="serving_default",
    float_ops=(),
):
    """Converts one SavedModel signature to a TFLite flatbuffer.

    Args:
        saved_model_dir: a SavedModel version directory.
        quantization: `"none"`, `"dynamic"` (int8 weights), `"float16"`
            (float16 weights) or `"int8"` (full integer, calibrated on
            `representative_data`).
        representative_data: `{input name: array}`; required for `"int8"`.
        integer_io: with `"int8"`, make float inputs and the float outputs
            int8 too (integer-only I/O).
        select_tf_ops: allow Flex (select TF) ops.
        tftext_custom_ops: keep TF-Text ops as custom ops (int8 calibrates
            with their kernels, so `representative_data` may be raw text).
        signature: the signature to convert.
        float_ops: with `"int8"`, TFLite builtin op names (e.g.
            `"SOFTMAX"`) kept in float, with int8 tensors between the others
            (selective quantization through
            `tf.lite.experimental.QuantizationDebugger`); float I/O only.

    Returns:
        The flatbuffer as `bytes`.

    Example:

    >>> flatbuffer = convert_saved_model("out/saved_model/m/1")  # doctest: +SKIP
    """
    if quantization not in QUANTIZATIONS:
        raise UsageError(
            f"quantization: TFLite has no {quantization!r} "
            f"(known: {', '.join(QUANTIZATIONS)})"
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=[signature]
    )
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantization == "int8":
        if representative_data is None:
            raise UsageError(
                "representative_data: required by quantization 'int8'"
            )
        converter.representative_dataset = _representative_dataset(
            representative_data
        )
        ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if integer_io and float_ops:
            raise UsageError(
                "integer_io: cannot be combined with float_ops (float I/O only)"
            )
        if integer_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    if select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    if tftext_custom_ops:
        converter.allow_custom_ops = True
        if representative_data is not None and quantization == "int8":
            # Calibration runs the graph, tokenizer included.
            from tensorflow_text import tflite_registrar

            from kd_keras._keras_compat import set_custom_op_registerers

            set_custom_op_registerers(converter.target_spec,
                                      tflite_registrar.SELECT_TFTEXT_OPS)
    converter.target_spec.supported_ops = ops
    try:
        with warnings.catch_warnings(), frozen_heap():
            # Calibration runs TF's own deprecated tf.lite.Interpreter.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            if quantization == "int8" and float_ops:
                return _selective_int8(converter, representative_data, float_ops)
            return converter.convert()
    except Exception as e:  # ConverterError carries the MLIR diagnostics.
        message = str(e)
        flex = _flex_ops(message)
        if flex:
            raise UnsupportedOpError(
                f"tflite/{quantization}: op(s) {', '.join(flex)} are not "
                "TFLite builtins and would need Flex; pass select_tf_ops=True "
                "(--select-tf-ops) to opt in, or change the model"
            ) from e
        first = next(
            (l for l in message.splitlines() if "error" in l.lower()), message
        )
        raise UnsupportedOpError(
            f"tflite/{quantization}: conversion failed: {first.strip()[:300]}"
        ) from e


def _selective_int8(converter, representative_data, float_ops):
    """Calibrates once, then quantizes all but the `float_ops`."""
    names = list(representative_data)

    def debug_dataset():  # The debugger feeds inputs as a list, in order.
        for example in _representative_dataset(representative_data)():
            yield [example[n] for n in names]

    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=debug_dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=list(float_ops)
        ),
    )
    return debugger.get_nondebug_quantized_model()


def tensor_details(model_path_or_bytes, tftext_custom_ops=False, signature="serving_default"):
    """Returns the signature's input/output details as JSON-ready dicts."""
    litert = litert_interpreter()
    kwargs = (
        {"model_content": model_path_or_bytes}
        if isinstance(model_path_or_bytes, bytes)
        else {"model_path": model_path_or_bytes}
    )
    if tftext_custom_ops:
        from tensorflow_text import tflite_registrar

        interp = litert.InterpreterWithCustomOps(
            custom_op_registerers=tflite_registrar.SELECT_TFTEXT_OPS, **kwargs
        )
    else:
        interp = litert.Interpreter(**kwargs)
    runner = interp.get_signature_runner(signature)

    def describe(details):
        return {
            name: {
                "dtype": np.dtype(d["dtype"]).name,
                "shape": [int(v) for v in d["shape_signature"]],
                "scale": float(d["quantization"][0]),
                "zero_point": int(d["quantization"][1]),
            }
            for name, d in sorted(details.items())
        }

    return {
        "inputs": describe(runner.get_input_details()),
        "outputs": describe(runner.get_output_details()),
    }


def write_tflite(
    path,
    flatbuffer,
    quantization,
    labels=None,
    tftext_custom_ops=False,
    signature="serving_default",
    **extra,
):
    """Writes the flatbuffer, `labels.txt` and the `<model>.json` sidecar.

    Args:
        path: the `.tflite` file to write.
        flatbuffer: bytes from `convert_saved_model`.
        quantization: recorded in the metadata.
        labels: optional class names, one per line in `labels.txt`.
        tftext_custom_ops: recorded so runtimes load TF-Text custom ops.
        signature: the converted signature, recorded for runtimes.
        **extra: more metadata keys.

    Returns:
        The metadata dict.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    with open(path, "wb") as f:
        f.write(flatbuffer)
    metadata = {
        "model": os.path.basename(path),
        "quantization": quantization,
        "signature": signature,
        "tftext_custom_ops": bool(tftext_custom_ops),
        **tensor_details(path, tftext_custom_ops, signature),
        **extra,
    }
    if labels is not None:
        labels_path = os.path.join(directory, LABELS_FILE)
        with open(labels_path, "w", encoding="utf-8") as f:
            f.write("".join(f"{l}\n" for l in labels))
        metadata["labels_file"] = LABELS_FILE
        metadata["labels"] = [str(l) for l in labels]
    with open(sidecar_path(path), "w") as f:
        json.dump(metadata, f, indent=2)
    return metadata


def build_tflite(path, saved_model_dir, quantization, recipe, representative_data=None,
                 labels=None, tftext_custom_ops=False, signature="serving_default",
                 **convert_options):
    """Converts a SavedModel signature with an int8 recipe and writes it:
    every TFLite artifact of an export (token ids or raw text) is built so.

    Args:
        path: the `.tflite` file to write.
        saved_model_dir: the SavedModel version directory.
        quantization: the artifact's quantization, recorded in its sidecar.
        recipe: a `kd_keras.export.int8_recipes.Int8Recipe` (its
            `quantization` and `float_ops` go to the converter; for an
            `"int8"` artifact, its name is recorded as `recipe`).
        representative_data: calibration inputs, for int8.
        labels, tftext_custom_ops, signature: as `write_tflite` takes them
            (the last two go to the converter too).
        **convert_options: more `convert_saved_model` options (`integer_io`,
            `select_tf_ops`).

    Returns:
        The sidecar's metadata dict.
    """
    flatbuffer = convert_saved_model(
        saved_model_dir, recipe.quantization, representative_data,
        tftext_custom_ops=tftext_custom_ops, signature=signature, float_ops=recipe.float_ops,
        **convert_options)
    extra = {"recipe": recipe.name} if quantization == "int8" else {}
    return write_tflite(path, flatbuffer, quantization, labels=labels,
                        tftext_custom_ops=tftext_custom_ops, signature=signature, **extra)
