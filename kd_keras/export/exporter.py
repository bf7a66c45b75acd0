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

from tqdm.auto import tqdm

from kd_keras.errors import VerificationError
from kd_keras.export import int8_recipes
from kd_keras.export import inventory
from kd_keras.export import layout
from kd_keras.export import mediapipe_export
from kd_keras.export import onnx as onnx_export
from kd_keras.export import output_dir
from kd_keras.export import rejected as rejected_lib
from kd_keras.export import report as report_lib
from kd_keras.export import saved_model as saved_model_export
from kd_keras.export import text_export
from kd_keras.export import tflite as tflite_export
from kd_keras.export import validation_data as validation_lib
from kd_keras.export import verify as verify_lib
from kd_keras.export.formats import FORMATS
from kd_keras.export.formats import SUPPORTED
from kd_keras.export.inputs import num_examples
from kd_keras.export.inputs import slice_inputs
from kd_keras.export.job import prepare_job
from kd_keras.files.hashing import sha256_path
from kd_keras.files.lock import acquire_lock
from kd_keras.files.lock import release_lock


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
    out_dir, job = prepare_job(model, out_dir, formats, quantization, representative_data,
                            validation_data, labels, name, text, opset, latency_runs)
    job.integer_io, job.select_tf_ops = integer_io, select_tf_ops
    output_dir.make_parent(out_dir)
    acquire_lock(out_dir, "out_dir")  # One export stages and commits into a folder at a time.
    tmp = progress = None
    try:
        tmp = output_dir.staging_dir(out_dir)
        plan, skipped = _plan(job.formats, job.quantization)
        progress = tqdm(total=len(plan) * 2 + _text_steps(job, plan), desc="export",
                        unit="step", leave=False,
                        disable=not verbose)
        sm_dir = _write_saved_model(job, tmp)
        onnx_proto = {}  # tf2onnx runs once for every ONNX artifact.
        artifacts = []
        for fmt, q in plan:
            progress.set_postfix_str(f"{fmt}/{q}")
            artifacts.append(_artifact(job, tmp, fmt, q, sm_dir, onnx_proto, progress))
            progress.update(1)
        artifacts += _text_artifacts(job, tmp, sm_dir, plan, progress)
        skipped += job.mediapipe_skipped
        progress.close()
        shutil.rmtree(os.path.join(tmp, ".scratch"), ignore_errors=True)
        report = _report(job, tmp, out_dir, artifacts, skipped, allow_mismatch,
                         reject_mismatch)
        report_lib.write_report(report, tmp)
        output_dir.commit(tmp, out_dir)
    except BaseException:
        if progress is not None:  # A bar left open would nest every later bar.
            progress.close()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        release_lock(out_dir)
    return report_lib.with_paths_under(report, out_dir)


def _plan(formats, quantization):
    """The `(format, quantization)` pairs to build, and those a format does
    not have (`{"format", "quantization"}` dicts, the report's `skipped`)."""
    plan, skipped = [], []
    for fmt in formats:
        for q in ("none",) if fmt == "saved_model" else quantization:
            if q in SUPPORTED[fmt]:
                plan.append((fmt, q))
            else:
                skipped.append({"format": fmt, "quantization": q})
    return plan, skipped


def _write_saved_model(job, tmp):
    """The SavedModel version folder (under `.scratch/` when only TFLite is
    asked for: TFLite converts from it), or None."""
    if "saved_model" not in job.formats and "tflite" not in job.formats:
        return None
    kept = "saved_model" in job.formats
    root = os.path.join(tmp, "saved_model" if kept else ".scratch", job.serving_name)
    with job.times.measure("saved_model"):
        return saved_model_export.write_saved_model(
            job.model, root, job.specs, labels=job.labels,
            text_preprocessor=job.text.preprocessor,
            # Warmup requests only where TF Serving will load them.
            warmup_examples=slice_inputs(job.val, 0, 8) if kept else None,
            model_name=job.serving_name,
            warmup_texts=(job.validation_sets["text"][0]["text"][:8]
                          if "text" in job.validation_sets else None),
        )


def _artifact(job, tmp, fmt, q, sm_dir, onnx_proto, progress):
    """Builds one `(format, quantization)` artifact (an int8 one with the
    first recipe that holds), verifies it; returns its report entry."""
    times = job.times
    suffix = "" if q == "none" else f"_{q}"
    if fmt == "saved_model":
        path = sm_dir
    elif fmt == "tflite":
        path = os.path.join(tmp, "tflite", f"model{suffix}.tflite")

        def write(recipe):
            with times.measure(f"tflite/{q}"):
                tflite_export.build_tflite(path, sm_dir, q, recipe, job.calib, labels=job.labels,
                                           integer_io=job.integer_io,
                                           select_tf_ops=job.select_tf_ops)
    else:
        if "proto" not in onnx_proto:
            with times.measure("onnx/convert"):
                onnx_proto["proto"] = onnx_export.convert_model(job.model, job.specs, job.opset)
        path = os.path.join(tmp, "onnx", f"model{suffix}.onnx")

        def write(recipe):
            with times.measure(f"onnx/{q}"):
                onnx_export.write_onnx(onnx_proto["proto"], path, recipe.quantization,
                                       job.calib, quantized_ops=recipe.quantized_ops)
    recipe = None
    if fmt != "saved_model" and q == "int8":
        with times.measure("reference"):
            calib_reference = job.logits(job.calib)
        recipe = int8_recipes.build_int8(
            fmt, path, write, job.calib, calib_reference, job.integer_io, times=times)
    elif fmt != "saved_model":
        write(int8_recipes.Int8Recipe(q, q))
    progress.update(1)
    entry = {
        "format": fmt,
        "quantization": q,
        "path": _portable(os.path.relpath(path, tmp)),
        "size_bytes": output_dir.size_bytes(path),
    }
    if recipe is not None:
        entry["recipe"] = recipe.name
    entry.update(verify_lib.verify_artifact(
        fmt, path, q, job.val, job.reference, job.y_val, job.ref_accuracy,
        latency_runs=job.latency_runs, times=times))
    entry["sha256"] = sha256_path(path)
    return entry


def _text_steps(job, plan):
    """How many raw-text artifacts `_text_artifacts` builds (a bar step each)."""
    steps = len(job.mediapipe_quantizations)
    if "text" in job.validation_sets:
        steps += "saved_model" in job.formats and job.text.preprocessor is not None
        steps += sum(f == "tflite" for f, _ in plan) if job.text.tflite else 0
    return steps


def _text_artifacts(job, tmp, sm_dir, plan, progress):
    """The raw-text artifacts' entries: the SavedModel's `serving_text`, the
    text TFLite files and MediaPipe's classifier, each verified on
    sentences."""
    entries = []
    text, times, latency_runs = job.text, job.times, job.latency_runs
    if "text" in job.validation_sets:
        text_set = job.validation_sets["text"]
        if "saved_model" in job.formats and text.preprocessor is not None:
            progress.set_postfix_str("saved_model/text")
            entries.append(text_export.saved_model_text_entry(
                tmp, sm_dir, text_set, latency_runs, times))
            progress.update(1)
        for q in [q for f, q in plan if f == "tflite"] if text.tflite else []:
            progress.set_postfix_str(f"tflite/{q}/text")
            entries.append(text_export.export_text_tflite(
                tmp, sm_dir, job.labels, text_set, q,
                text_set[0]["text"] if text.representative_text is None
                else text.representative_text,
                latency_runs, times))
            progress.update(1)
    for q in job.mediapipe_quantizations:
        progress.set_postfix_str(f"mediapipe/{q}")
        entries.append(mediapipe_export.export_entry(
            tmp, job.model, text.mediapipe_vocabulary, job.labels,
            job.validation_sets["text"], q,
            None if job.calib is None else job.calib[job.specs[0].name], latency_runs, times))
        progress.update(1)
    return entries


def _report(job, tmp, out_dir, artifacts, skipped, allow_mismatch, reject_mismatch):
    """The report of a built export: a mismatch raises (or its artifacts
    are set aside), the validation data is stored, earlier SavedModel
    versions are listed."""
    failures = rejected_lib.failure_lines(artifacts)
    if failures and not (allow_mismatch or reject_mismatch):
        raise ExportMismatchError(
            "; ".join(failures) + " (allow_mismatch=True / --allow-mismatch keeps the export)")
    with job.times.measure("report"):
        rejected = []
        if failures and not allow_mismatch:
            artifacts, rejected = rejected_lib.set_aside(tmp, artifacts)
        for entry in artifacts:
            _record_companions(tmp, entry)
        earlier = inventory.earlier_versions(
            tmp, [a["path"] for a in artifacts], out_dir, sha256_path)
        validation_path = validation_lib.save_validation(tmp, job.validation_sets)
        validation_sha256 = sha256_path(validation_path)
    return {
        "reference": {
            "accuracy": job.ref_accuracy,
            "params": int(job.model.count_params()),
        },
        "artifacts": artifacts,
        "model": {
            "name": job.serving_name,
            "inputs": [s.to_json() for s in job.specs],
            "num_classes": int(job.reference.shape[-1]),
            "labels": job.labels,
        },
        "validation": {
            "examples": num_examples(job.val),
            "batch_size": verify_lib.BATCH_SIZE,
            "labelled": job.y_val is not None,
            "file": validation_lib.VALIDATION_FILE,
            "sha256": validation_sha256,
        },
        "skipped": skipped,
        "rejected": rejected,
        "earlier_versions": earlier,
        "seconds": job.times.to_json(),
    }


def _record_companions(tmp, entry):
    """Adds `companions` (relative path -> SHA-256) to a TFLite artifact's
    entry: the files an app ships with it, which `verify` checks too."""
    if entry["format"] != "tflite":
        return
    companions = {}
    for rel in layout.companion_paths(entry["path"]):
        full = os.path.join(tmp, *rel.split("/"))
        if os.path.isfile(full):
            companions[rel] = sha256_path(full)
    if companions:
        entry["companions"] = companions


def _portable(relative_path):
    """A path relative to the export folder, with `/` on every platform."""
    return relative_path.replace(os.sep, "/")
