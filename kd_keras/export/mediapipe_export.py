"""The MediaPipe artifacts of `export_model`: raw text in, on-device.

With `TextExport.mediapipe_vocabulary` (the `vocab.txt` the student's ids come from),
`export_model` writes `mediapipe/model.tflite` and, with `"int8"`,
`mediapipe/model_int8.tflite` (`kd_keras.export.mediapipe_model`). Each is
verified through MediaPipe's own runtime, the Python `TextClassifier`, on
the raw validation sentences: its probabilities against the softmax of the
Keras model fed the reference ids (the pipeline's own ids for the same
sentences), with the tolerance `tolerances.FORMAT_TOLERANCES["mediapipe"]`.
Report entries have format `"mediapipe"` and validation `"text"`, so
`kd-keras verify` re-runs them and a failing one goes to `rejected/`.

Without `mediapipe` (the `mobile` extra) the artifacts are skipped with one
line on standard error naming the extra; the report lists them under
`skipped` with that reason, and nothing else changes.
"""

import os
import sys

from kd_keras.errors import MissingDependencyError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.export import mediapipe_metadata
from kd_keras.export import mediapipe_model
from kd_keras.export import output_dir
from kd_keras.export import verify as verify_lib
from kd_keras.export.formats import MEDIAPIPE
from kd_keras.export.inventory import MEDIAPIPE_DIR
from kd_keras.files.hashing import sha256_path
from kd_keras.timing import StageTimes


def plan(model, text, quantization):
    """Which MediaPipe artifacts an export writes; checked before any work.

    Args:
        model: the Keras model.
        text: the export's `TextExport` (its `mediapipe_vocabulary`, the
            `vocab.txt` path, or None for no MediaPipe artifact).
        quantization: the export's quantizations (`"none"` and `"int8"`
            apply; the others are skipped).

    Returns:
        `(quantizations, skipped)`: the quantizations to write, and report
        `skipped` entries (with a `reason` when `mediapipe` is missing, which
        is also printed as one line on standard error).

    Raises:
        MissingFileError: `vocabulary` does not exist.
        UsageError: a model MediaPipe cannot feed, or no validation text.
    """
    vocabulary = text.mediapipe_vocabulary
    if vocabulary is None:
        return (), []
    wanted = tuple(q for q in quantization if q in mediapipe_model.QUANTIZATIONS)
    skipped = [{"format": MEDIAPIPE, "quantization": q}
               for q in quantization if q not in mediapipe_model.QUANTIZATIONS]
    try:
        mediapipe_metadata.require_mediapipe()
    except MissingDependencyError as e:
        reason = one_line(e)
        print(f"export: skipped the MediaPipe artifacts: {reason}", file=sys.stderr)
        return (), skipped + [{"format": MEDIAPIPE, "quantization": q, "reason": reason}
                              for q in wanted]
    vocabulary = os.fspath(vocabulary)
    if not os.path.isfile(vocabulary):
        raise MissingFileError(f"{vocabulary}: vocab.txt not found (text.mediapipe_vocabulary)")
    mediapipe_model.sequence_length(model)
    if text.validation_text is None:
        raise UsageError("text.validation_text: required by text.mediapipe_vocabulary (texts "
                         "or (texts, labels)); the MediaPipe artifacts are checked on them")
    if text.preprocessor is None and text.reference_inputs is None:
        raise UsageError("text.reference_inputs: required by text.mediapipe_vocabulary "
                         "without text.preprocessor (the ids the validation sentences stand "
                         "for)")
    return wanted, skipped


def export_entry(tmp, model, vocabulary, labels, text_set, quantization, calibration_ids,
                 latency_runs, times=None):
    """Writes `mediapipe/model[_int8].tflite`, verifies it in MediaPipe and
    returns its report entry.

    Args:
        tmp: the export's staging folder.
        model: the Keras model.
        vocabulary: the `vocab.txt` path (packed into the model).
        labels: class names, or None (class ids as names).
        text_set: the `"text"` validation set (`text_export.text_validation`).
        quantization: `"none"` or `"int8"`.
        calibration_ids: `[n, L]` ids for int8 calibration.
        latency_runs: timed calls per batch size.
        times: optional `kd_keras.timing.StageTimes`; gets the seconds of
            writing the model (`"mediapipe/<quantization>"`, its int8
            recipe search included) and of verifying it (`"verify"`,
            `"latency"`).
    """
    times = times if times is not None else StageTimes()
    inputs, reference, y = text_set
    if labels is None:
        labels = [str(i) for i in range(reference.shape[-1])]
    suffix = "" if quantization == "none" else f"_{quantization}"
    path = os.path.join(tmp, MEDIAPIPE_DIR, f"model{suffix}.tflite")
    with times.measure(f"{MEDIAPIPE}/{quantization}"):
        recipe = mediapipe_model.write_classifier(
            model, vocabulary, labels, path, quantization, calibration_ids,
            # One wrapper SavedModel for every quantization of the export.
            saved_model=os.path.join(tmp, ".scratch", "mediapipe_saved_model"))
    entry = {
        "format": MEDIAPIPE,
        "quantization": quantization,
        "path": os.path.relpath(path, tmp).replace(os.sep, "/"),
        "size_bytes": output_dir.size_bytes(path),
        "validation": "text",
    }
    if recipe is not None:
        entry["recipe"] = recipe
    reference_accuracy = verify_lib.accuracy(reference, y) if y is not None else None
    entry.update(verify_lib.verify_artifact(
        MEDIAPIPE, path, quantization, inputs, reference, y, reference_accuracy,
        latency_runs=latency_runs, times=times))
    entry["sha256"] = sha256_path(path)
    return entry
