"""What one export is built from: its checked arguments and the Keras
reference every artifact is compared with (`export_model`'s first step,
before anything is written)."""

import dataclasses
import warnings

import keras

from kd_keras.class_ids import check_class_names
from kd_keras.distillation.checks import check_gives_logits
from kd_keras.errors import KdKerasWarning
from kd_keras.errors import UsageError
from kd_keras.export import mediapipe_export
from kd_keras.export import onnx as onnx_export
from kd_keras.export import output_dir
from kd_keras.export import reference as reference_lib
from kd_keras.export import saved_model as saved_model_export
from kd_keras.export import text_export
from kd_keras.export import verify as verify_lib
from kd_keras.export.formats import FORMATS
from kd_keras.export.formats import QUANTIZATIONS
from kd_keras.export.formats import check_choices
from kd_keras.export.formats import require_format
from kd_keras.export.inputs import as_input_dict
from kd_keras.export.inputs import check_logits_output
from kd_keras.export.inputs import check_logits_shape
from kd_keras.export.inputs import generated_names
from kd_keras.export.inputs import model_input_specs
from kd_keras.export.text_options import TextExport
from kd_keras.timing import StageTimes


@dataclasses.dataclass
class ExportJob:
    """What every artifact of one export is built from and checked against."""

    model: keras.Model
    specs: list
    formats: tuple
    quantization: tuple
    calib: dict  # Calibration inputs by name, or None.
    val: dict  # Validation inputs by name.
    y_val: object  # Their labels, or None.
    reference: object  # The Keras logits on `val`.
    ref_accuracy: float
    validation_sets: dict  # "model" (and "text"): (inputs, logits, labels).
    labels: list
    serving_name: str
    text: TextExport
    mediapipe_quantizations: tuple
    mediapipe_skipped: list
    logits: reference_lib.KerasLogits
    times: StageTimes
    opset: int
    latency_runs: int
    integer_io: bool = False
    select_tf_ops: bool = False


def prepare_job(model, out_dir, formats, quantization, representative_data, validation_data,
             labels, name, text, opset, latency_runs):
    """Checks every argument of `export_model` and computes the Keras
    reference logits, before anything is written.

    Args:
        model, out_dir, formats, quantization, representative_data,
        validation_data, labels, name, text, opset, latency_runs: as
            `kd_keras.export.export_model` takes them.

    Returns:
        `(out_dir, ExportJob)`: the checked folder and the job.

    Raises:
        UsageError, DataError: as `export_model`.

    Example:

    >>> import os, tempfile, keras
    >>> m = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3)])
    >>> out = os.path.join(tempfile.mkdtemp(), "out")
    >>> _, job = prepare_job(m, out, ("onnx",), ("none",), None, None, None, None,
    ...                      None, 17, 0)
    >>> job.formats, job.reference.shape[-1], os.path.exists(out)
    (('onnx',), 3, False)
    """
    if not isinstance(model, keras.Model):
        raise UsageError(f"model: must be a keras.Model, got {type(model).__name__}")
    if text is not None and not isinstance(text, TextExport):
        raise UsageError(f"text: must be a kd_keras.export.TextExport, got "
                         f"{type(text).__name__}")
    text = text or TextExport()
    out_dir = output_dir.check_out_dir(out_dir)
    formats = check_choices(formats, "formats", FORMATS)
    quantization = check_choices(quantization, "quantization", QUANTIZATIONS)
    for fmt in formats:  # Missing optional packages stop before any work.
        require_format(fmt)
    mediapipe_quantizations, mediapipe_skipped = mediapipe_export.plan(
        model, text, quantization)
    onnx_export.check_opset(opset)
    latency_runs = verify_lib.check_latency_runs(latency_runs)
    specs = model_input_specs(model)
    for name in generated_names(specs):  # Clients would send it by this name.
        warnings.warn(
            f"input {name!r}: a name Keras generated, which the exported signatures take "
            f"and clients must send; it changes when the model is built in another order. "
            f"Name the input: keras.Input(shape, name=...)", KdKerasWarning, stacklevel=3)
    check_logits_output(model)
    needs_calibration = "int8" in quantization and (
        "tflite" in formats or "onnx" in formats or "int8" in mediapipe_quantizations
    )
    if needs_calibration and representative_data is None:
        raise UsageError(
            "representative_data: required by quantization 'int8' "
            "(--representative-data FILE.npy/.npz)"
        )
    calib = None
    if representative_data is not None:
        calib = as_input_dict(representative_data, specs, "representative_data")
    val, y_val = reference_lib.validation_inputs(specs, validation_data, calib)
    times = StageTimes()
    logits = reference_lib.KerasLogits(model, specs)
    with times.measure("reference"):
        reference = logits(val)
    check_logits_shape((None,) + reference.shape[1:], f"model {model.name!r}")
    check_gives_logits(f"model {model.name!r}", values=reference)
    reference_lib.check_label_range(y_val, reference.shape[-1])
    if labels is not None:
        labels = check_class_names(labels, reference.shape[-1])
    ref_accuracy = verify_lib.accuracy(reference, y_val) if y_val is not None else None
    validation_sets = {"model": (val, reference, y_val)}
    if text.tflite or mediapipe_quantizations or (
            text.preprocessor is not None and text.validation_text is not None):
        with times.measure("reference"):
            validation_sets["text"] = text_export.text_validation(
                model, specs, text.preprocessor, text.validation_text, text.reference_inputs,
                logits, needs_preprocessor=text.tflite,
            )
    return out_dir, ExportJob(
        model=model, specs=specs, formats=formats, quantization=quantization, calib=calib,
        val=val, y_val=y_val, reference=reference, ref_accuracy=ref_accuracy,
        validation_sets=validation_sets, labels=labels,
        serving_name=saved_model_export.serving_name(model, name), text=text,
        mediapipe_quantizations=mediapipe_quantizations,
        mediapipe_skipped=list(mediapipe_skipped), logits=logits, times=times, opset=opset,
        latency_runs=latency_runs)
