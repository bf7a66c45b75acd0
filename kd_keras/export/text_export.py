"""The raw-text artifacts of `export_model`: tokenizer inside, strings in.

With a text preprocessor, the SavedModel's `serving_text` signature takes
sentences; `tflite/model_text[_<quantization>].tflite` holds the same graph,
tokenizer included, with the TF-Text custom ops (int8 calibrated on raw
sentences, with the first int8 recipe that keeps the decisions,
`kd_keras.export.int8_recipes`). Each is verified on raw validation sentences against the Keras
model fed with reference inputs: by default the preprocessor's own output,
or, better, the ids the training pipeline made for the same sentences
(`TextExport.reference_inputs`), so a tokenizer that drifts from training fails.
"""

import os

import numpy as np

from kd_keras.class_ids import label_problem
from kd_keras.errors import DataError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.export import int8_recipes
from kd_keras.export import output_dir
from kd_keras.export import saved_model as saved_model_export
from kd_keras.export import tflite as tflite_export
from kd_keras.export import verify as verify_lib
from kd_keras.export.inputs import as_input_dict
from kd_keras.export.runtimes import load_runtime
from kd_keras.files.hashing import sha256_path
from kd_keras.timing import StageTimes

TEXT_INPUT = "text"


def as_texts(texts, what):
    """Strings as a 1-D object array of `str` (bytes are UTF-8 decoded)."""
    try:
        items = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]
    except (TypeError, UnicodeDecodeError) as e:
        raise DataError(f"{what}: not a list of sentences ({one_line(e)})") from None
    return np.array(items, dtype=object)


def text_validation(model, specs, text_preprocessor, validation_text, reference_inputs,
                    keras_logits, needs_preprocessor=True):
    """The `"text"` validation set: `({"text": sentences}, logits, labels)`.

    Args:
        model: the Keras model.
        specs: its `InputSpec`s.
        text_preprocessor: strings -> model inputs.
        validation_text: `texts` or `(texts, labels)`.
        reference_inputs: the model inputs the texts stand for (e.g. the
            training pipeline's ids), or None for the preprocessor's output.
        keras_logits: `inputs -> logits` of the Keras model (e.g. a
            `kd_keras.export.reference.KerasLogits`).
        needs_preprocessor: False when the texts feed only artifacts that
            tokenize themselves (MediaPipe's), so `reference_inputs` do.
    """
    import tensorflow as tf

    from kd_keras.export.saved_model import text_model_inputs

    if text_preprocessor is None and (needs_preprocessor or reference_inputs is None):
        raise UsageError("text.preprocessor: required by text.tflite=True, or by text "
                         "validation without text.reference_inputs")
    if validation_text is None:
        raise UsageError(
            "text.validation_text: required by text.tflite=True (texts or (texts, labels))"
        )
    texts, labels = validation_text, None
    if isinstance(validation_text, tuple) and len(validation_text) == 2:
        texts, labels = validation_text
    texts = as_texts(texts, "text.validation_text")
    if not len(texts):
        raise DataError("text.validation_text: holds no sentences")
    if reference_inputs is None:
        features = text_model_inputs(text_preprocessor, specs, tf.constant(list(texts)))
        reference_inputs = {k: np.asarray(v) for k, v in features.items()}
    else:
        reference_inputs = as_input_dict(reference_inputs, specs, "text.reference_inputs")
        if len(next(iter(reference_inputs.values()))) != len(texts):
            raise DataError(
                f"text.reference_inputs: {len(next(iter(reference_inputs.values())))} "
                f"examples for {len(texts)} sentences"
            )
    reference = keras_logits(reference_inputs)
    if labels is not None:
        problem = label_problem(labels, reference.shape[-1])
        if problem:
            raise DataError(f"text.validation_text: {problem}")
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        if len(labels) != len(texts):
            raise DataError(
                f"text.validation_text: {len(texts)} sentences but {len(labels)} labels"
            )
    return {TEXT_INPUT: texts}, reference, labels


def _entry(fmt, quantization, path, tmp, text_set, latency_runs, times):
    inputs, reference, labels = text_set
    entry = {
        "format": fmt,
        "quantization": quantization,
        "path": os.path.relpath(path, tmp).replace(os.sep, "/"),
        "size_bytes": output_dir.size_bytes(path),
        "signature": saved_model_export.TEXT_SIGNATURE,
        "validation": "text",
    }
    ref_acc = verify_lib.accuracy(reference, labels) if labels is not None else None
    entry.update(
        verify_lib.verify_artifact(
            fmt, path, quantization, inputs, reference, labels, ref_acc,
            latency_runs=latency_runs, signature=saved_model_export.TEXT_SIGNATURE,
            times=times,
        )
    )
    entry["sha256"] = sha256_path(path)
    return entry


def saved_model_text_entry(tmp, sm_dir, text_set, latency_runs, times=None):
    """Verifies the SavedModel's `serving_text` signature; its report entry
    (`times`: an optional `StageTimes`, see `export_text_tflite`)."""
    return _entry("saved_model", "none", sm_dir, tmp, text_set, latency_runs, times)


def export_text_tflite(tmp, sm_dir, labels, text_set, quantization, calibration_texts,
                       latency_runs, times=None):
    """Converts `serving_text`, tokenizer included, to
    `tflite/model_text[_<quantization>].tflite`, verifies it and returns its
    report entry.

    Args:
        tmp: the export's staging folder.
        sm_dir: the SavedModel version directory.
        labels: class names, or None.
        text_set: the `"text"` validation set (`text_validation`).
        quantization: one of the TFLite quantizations.
        calibration_texts: sentences for int8 calibration.
        latency_runs: timed calls per batch size.
        times: optional `kd_keras.timing.StageTimes`; gets the seconds of
            the conversion (`"tflite/<quantization>/text"`) and of the
            verification (`"verify"`, `"latency"`).
    """
    times = times if times is not None else StageTimes()
    suffix = "" if quantization == "none" else f"_{quantization}"
    path = os.path.join(tmp, "tflite", f"model_text{suffix}.tflite")
    signature = saved_model_export.TEXT_SIGNATURE

    calibration = None
    if quantization == "int8":
        encoded = [t.encode("utf-8")
                   for t in as_texts(calibration_texts, "text.representative_text")]
        calibration = {TEXT_INPUT: np.array(encoded, dtype=object)}

    def write(recipe):
        with times.measure(f"tflite/{quantization}/text"):
            tflite_export.build_tflite(path, sm_dir, quantization, recipe, calibration,
                                       labels=labels, tftext_custom_ops=True,
                                       signature=signature)

    if quantization != "int8":
        write(int8_recipes.Int8Recipe(quantization, quantization))
        return _entry("tflite", quantization, path, tmp, text_set, latency_runs, times)
    # The recipes are scored against the float SavedModel's `serving_text`
    # (the same graph, verified against Keras on its own entry).
    scored = {TEXT_INPUT: calibration[TEXT_INPUT][:int8_recipes.CHECK_EXAMPLES]}
    with times.measure("reference"), load_runtime("saved_model", sm_dir, signature) as runtime:
        reference = verify_lib.predict(runtime, scored)
    recipe = int8_recipes.build_int8("tflite", path, write, scored, reference, times=times,
                                     signature=signature)
    entry = _entry("tflite", quantization, path, tmp, text_set, latency_runs, times)
    return {**entry, "recipe": recipe.name}
