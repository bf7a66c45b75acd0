"""`export_model`: every format and quantization, verified, in one directory.

The export is atomic: everything is built and verified in a temporary
directory beside `out_dir`, then renamed into place. On any failure (bad
input, an op a format cannot express, an artifact missing its tolerance)
nothing is left behind. Earlier SavedModel versions in an existing `out_dir`
are kept (hard-linked into the new tree) and the new one gets the next
version number.

Layout of `out_dir`:

    saved_model/<name>/<version>/   TF Serving layout
    tflite/model[_<quantization>].tflite, .json sidecars, labels.txt
    tflite/model_text.tflite        tokenizer in-graph (TextExport(tflite=True))
    mediapipe/model[_int8].tflite   MediaPipe text classifier (TextExport(mediapipe_vocabulary=...))
    onnx/model[_<quantization>].onnx
    verification/validation.npz     inputs, labels and Keras logits
    rejected/<path>                 with reject_mismatch: what missed its tolerance
    report.json, report.md, report.png

Artifact paths are stored in `report.json` relative to it (so the folder can
be moved); the dict `export_model` returns has them joined onto `out_dir`.

`report["seconds"]` says where the export's time went, in seconds per part
(`kd_keras.timing.StageTimes`); a part that did not run is absent:

    reference                 the Keras logits: validation, text, calibration sets
    saved_model               the SavedModel, warmup requests included
    tflite/<q>, onnx/<q>      building each artifact (every int8 recipe tried)
    onnx/convert              tf2onnx, once for every ONNX artifact
    int8_check                scoring the int8 recipes on the calibration data
    tflite/<q>/text           the TFLite models with the tokenizer inside
    mediapipe/<q>             MediaPipe's classifier (its recipe search included)
    verify                    every artifact loaded and run over its validation
                              set, compared with Keras (agreement, accuracy)
    latency                   the timed latency calls
    report                    stored validation data, set-aside and earlier versions

`verify` and `latency` are the verification
(`kd_keras.export.report.verification_seconds` sums them, and the other parts
as the building); checks of the arguments, checksums and writing the report
files themselves are left out.
"""

import os
import shutil

import keras
from tqdm.auto import tqdm

from kd_keras.class_ids import check_class_names
from kd_keras.distillation.checks import check_gives_logits
from kd_keras.errors import UsageError
from kd_keras.errors import VerificationError
from kd_keras.export import int8_recipes
from kd_keras.export import inventory
from kd_keras.export import mediapipe_export
from kd_keras.export import onnx as onnx_export
from kd_keras.export import output_dir
from kd_keras.export import reference as reference_lib
from kd_keras.export import rejected as rejected_lib
from kd_keras.export import report as report_lib
from kd_keras.export import saved_model as saved_model_export
from kd_keras.export import text_export
from kd_keras.export import tflite as tflite_export
from kd_keras.export import validation_data as validation_lib
from kd_keras.export import verify as verify_lib
from kd_keras.export.formats import FORMATS
from kd_keras.export.formats import QUANTIZATIONS
from kd_keras.export.formats import SUPPORTED
from kd_keras.export.formats import check_choices
from kd_keras.export.formats import require_format
from kd_keras.export.inputs import as_input_dict
from kd_keras.export.inputs import check_logits_output
from kd_keras.export.inputs import check_logits_shape
from kd_keras.export.inputs import model_input_specs
from kd_keras.export.inputs import num_examples
from kd_keras.export.inputs import slice_inputs
from kd_keras.export.text_options import TextExport
from kd_keras.files.hashing import sha256_path
from kd_keras.timing import StageTimes


class ExportMismatchError(VerificationError):
    """An artifact missed its tolerance against the Keras model."""


def export_model(
    model,
    out_dir,
    formats=FORMATS,
    quantization=("none",),
    representative_data=None,
    validation_data=None,
    labels=None,
    name=None,
    text=None,
    integer_io=False,
    select_tf_ops=False,
    opset=onnx_export.DEFAULT_OPSET,
    allow_mismatch=False,
    reject_mismatch=False,
    latency_runs=30,
    verbose=1,
):
    """Exports `model` to every format × quantization, verifies and reports.

    Args:
        model: a `keras.Model` that outputs logits (e.g. `distiller.student`).
        out_dir: the export directory (see the module docstring for layout).
        formats: any of `"saved_model"`, `"tflite"`, `"onnx"`.
        quantization: any of `"none"`, `"dynamic"`, `"float16"`, `"int8"`.
            Each applies to the formats that have it (SavedModel is always
            float32, ONNX has no float16); skipped pairs are listed in the
            report under `skipped`. An int8 artifact is built with the
            first recipe that keeps the decisions on the calibration data
            (full int8, then some ops in float, then dynamic range; see
            `kd_keras.export.int8_recipes`), named in its `recipe`.
        representative_data: calibration inputs (array or dict by input name);
            required for `"int8"`.
        validation_data: `(x, y)`, `x`, or a dict of inputs plus `"y"`. The
            artifacts' logits are compared with Keras on it. Defaults to the
            representative data, else seeded synthetic inputs (no accuracy).
        labels: class names; adds `classes` to the SavedModel outputs and
            `labels.txt` beside the TFLite models.
        name: the model name in the TF Serving layout (default `model.name`).
        text: a `kd_keras.export.TextExport`, for a model that reads token
            ids made from text: the `serving_text` signature, the text
            TFLite files and MediaPipe's text classifier, verified on raw
            sentences; `None` for none of them.
        integer_io: int8 TFLite with integer input/output tensors.
        select_tf_ops: allow Flex ops in TFLite (off: fail, naming the op).
        opset: ONNX opset (≤ 18, default 17).
        allow_mismatch: keep the export even if an artifact misses its
            tolerance (the report marks it `"passed": false`).
        reject_mismatch: keep the export but move each artifact that misses
            its tolerance to `rejected/<path>`, listed in the report under
            `rejected` (the caller decides whether that is an error).
            Without either, a mismatch raises `ExportMismatchError` and
            nothing is written.
        latency_runs: the most timed calls per batch size and artifact;
            each batch size stops after `verify.LATENCY_MAX_SECONDS` of
            timed calls.
        verbose: 1 shows a progress bar on standard error, 0 nothing.

    Returns:
        The report dict, also written to `out_dir/report.json`, with
        `seconds` by part (see the module docstring).

    Raises:
        UsageError: a model that is not `[batch, classes]` logits (several
            outputs, no class axis, one class) or takes strings.
        DataError: data of the wrong shape, or holding NaN or inf.
        ExportMismatchError: an artifact missed its tolerance (neither
            `allow_mismatch` nor `reject_mismatch`).

    Example:

    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3)])
    >>> x = np.random.rand(64, 4).astype("float32")
    >>> r = export_model(m, "out/", quantization=("none", "int8"),
    ...                  representative_data=x, validation_data=(x, x[:, 0] > .5))
    >>> sorted({a["format"] for a in r["artifacts"]})  # doctest: +SKIP
    ['onnx', 'saved_model', 'tflite']
    """
    if not isinstance(model, keras.Model):
        raise UsageError(f"model: must be a keras.Model, got {type(model).__name__}")
    if text is not None and not isinstance(text, TextExport):
        raise UsageError(f"text: must be a kd_keras.export.TextExport, got "
                         f"{type(text).__name__}")
    text = text or TextExport()
    out_dir = output_dir.check_out_dir(out_dir)
    text_preprocessor, validation_text = text.preprocessor, text.validation_text
    formats = check_choices(formats, "formats", FORMATS)
    quantization = check_choices(quantization, "quantization", QUANTIZATIONS)
    for fmt in formats:  # Missing optional packages stop before any work.
        require_format(fmt)
    mediapipe_quantizations, mediapipe_skipped = mediapipe_export.plan(
        model, text, quantization)
    onnx_export.check_opset(opset)
    latency_runs = verify_lib.check_latency_runs(latency_runs)
    specs = model_input_specs(model)
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
            text_preprocessor is not None and validation_text is not None):
        with times.measure("reference"):
            validation_sets["text"] = text_export.text_validation(
                model, specs, text_preprocessor, validation_text, text.reference_inputs,
                logits, needs_preprocessor=text.tflite,
            )
    serving_name = saved_model_export.serving_name(model, name)

    tmp = output_dir.staging_dir(out_dir)
    progress = None
    try:
        plan, skipped = [], []
        for fmt in formats:
            qs = ("none",) if fmt == "saved_model" else quantization
            for q in qs:
                if q in SUPPORTED[fmt]:
                    plan.append((fmt, q))
                else:
                    skipped.append({"format": fmt, "quantization": q})
        artifacts = []
        progress = tqdm(total=len(plan) * 2, desc="export", unit="step", leave=False,
                        disable=not verbose)
        sm_root = os.path.join(tmp, "saved_model", serving_name)
        if "saved_model" not in formats:
            sm_root = os.path.join(tmp, ".scratch", serving_name)
        sm_dir = None
        if "saved_model" in formats or "tflite" in formats:
            with times.measure("saved_model"):
                sm_dir = saved_model_export.write_saved_model(
                    model,
                    sm_root,
                    specs,
                    labels=labels,
                    text_preprocessor=text_preprocessor,
                    # Warmup requests only where TF Serving will load them.
                    warmup_examples=(
                        slice_inputs(val, 0, 8) if "saved_model" in formats else None
                    ),
                    model_name=serving_name,
                    warmup_texts=(
                        validation_sets["text"][0]["text"][:8]
                        if "text" in validation_sets else None
                    ),
                )
        onnx_proto = None
        for fmt, q in plan:
            progress.set_postfix_str(f"{fmt}/{q}")
            suffix = "" if q == "none" else f"_{q}"
            if fmt == "saved_model":
                path = sm_dir
            elif fmt == "tflite":
                path = os.path.join(tmp, "tflite", f"model{suffix}.tflite")

                def write(recipe, path=path, q=q):
                    with times.measure(f"tflite/{q}"):
                        flatbuffer = tflite_export.convert_saved_model(
                            sm_dir, recipe.quantization, calib, integer_io=integer_io,
                            select_tf_ops=select_tf_ops, float_ops=recipe.float_ops,
                        )
                        extra = {} if q != "int8" else {"recipe": recipe.name}
                        tflite_export.write_tflite(path, flatbuffer, q, labels=labels,
                                                   **extra)
            else:
                if onnx_proto is None:
                    with times.measure("onnx/convert"):
                        onnx_proto = onnx_export.convert_model(model, specs, opset)
                path = os.path.join(tmp, "onnx", f"model{suffix}.onnx")

                def write(recipe, path=path, q=q):
                    with times.measure(f"onnx/{q}"):
                        onnx_export.write_onnx(onnx_proto, path, recipe.quantization, calib,
                                               quantized_ops=recipe.quantized_ops)
            recipe = None
            if fmt != "saved_model" and q == "int8":
                with times.measure("reference"):
                    calib_reference = logits(calib)
                recipe = int8_recipes.build_int8(
                    fmt, path, write, calib, calib_reference, integer_io, times=times)
            elif fmt != "saved_model":
                write(int8_recipes.Int8Recipe(q, q))
            progress.update(1)
            rel = os.path.relpath(path, tmp)
            entry = {
                "format": fmt,
                "quantization": q,
                "path": _portable(rel),
                "size_bytes": output_dir.size_bytes(path),
            }
            if recipe is not None:
                entry["recipe"] = recipe.name
            entry.update(
                verify_lib.verify_artifact(
                    fmt, path, q, val, reference, y_val, ref_accuracy,
                    latency_runs=latency_runs, times=times,
                )
            )
            entry["sha256"] = sha256_path(path)
            artifacts.append(entry)
            progress.update(1)
        if "text" in validation_sets:
            text_set = validation_sets["text"]
            if "saved_model" in formats and text_preprocessor is not None:
                progress.set_postfix_str("saved_model/text")
                artifacts.append(text_export.saved_model_text_entry(
                    tmp, sm_dir, text_set, latency_runs, times))
            text_quantizations = [q for f, q in plan if f == "tflite"] if text.tflite else []
            for q in text_quantizations:
                progress.set_postfix_str(f"tflite/{q}/text")
                artifacts.append(
                    text_export.export_text_tflite(
                        tmp, sm_dir, labels, text_set, q,
                        text_set[0]["text"] if text.representative_text is None
                        else text.representative_text,
                        latency_runs, times,
                    )
                )
        for q in mediapipe_quantizations:
            progress.set_postfix_str(f"mediapipe/{q}")
            artifacts.append(mediapipe_export.export_entry(
                tmp, model, text.mediapipe_vocabulary, labels, validation_sets["text"], q,
                None if calib is None else calib[specs[0].name], latency_runs, times))
        skipped += mediapipe_skipped
        progress.close()
        shutil.rmtree(os.path.join(tmp, ".scratch"), ignore_errors=True)
        failures = rejected_lib.failure_lines(artifacts)
        if failures and not (allow_mismatch or reject_mismatch):
            raise ExportMismatchError(
                "; ".join(failures)
                + " (allow_mismatch=True / --allow-mismatch keeps the export)"
            )
        with times.measure("report"):
            rejected = []
            if failures and not allow_mismatch:
                artifacts, rejected = rejected_lib.set_aside(tmp, artifacts)
            earlier = inventory.earlier_versions(
                tmp, [a["path"] for a in artifacts], out_dir, sha256_path)
            validation_path = validation_lib.save_validation(tmp, validation_sets)
            validation_sha256 = sha256_path(validation_path)
        report = {
            "reference": {
                "accuracy": ref_accuracy,
                "params": int(model.count_params()),
            },
            "artifacts": artifacts,
            "model": {
                "name": serving_name,
                "inputs": [s.to_json() for s in specs],
                "num_classes": int(reference.shape[-1]),
                "labels": labels,
            },
            "validation": {
                "examples": num_examples(val),
                "batch_size": verify_lib.BATCH_SIZE,
                "labelled": y_val is not None,
                "file": validation_lib.VALIDATION_FILE,
                "sha256": validation_sha256,
            },
            "skipped": skipped,
            "rejected": rejected,
            "earlier_versions": earlier,
            "seconds": times.to_json(),
        }
        report_lib.write_report(report, tmp)
        output_dir.commit(tmp, out_dir)
    except BaseException:
        if progress is not None:  # A bar left open would nest every later bar.
            progress.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report_lib.with_paths_under(report, out_dir)


def _portable(relative_path):
    """A path relative to the export folder, with `/` on every platform."""
    return relative_path.replace(os.sep, "/")
