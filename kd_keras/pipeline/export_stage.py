"""Stage 6, export: the distilled student to every configured format,
each artifact verified in its own runtime (`kd_keras.export.export_model`).

With `export.text` (the default) the tokenizer ships inside: the
SavedModel's `serving_text` signature and `tflite/model_text*.tflite` take
raw sentences (`kd_keras.export.WordPiecePreprocessor`, the in-graph twin of
the pipeline's `WordPieceEncoder`), and with TFLite, MediaPipe's text
classifier `mediapipe/model[_int8].tflite` (the teacher's `vocab.txt` and the
class names in its metadata). They are verified on the raw test sentences
against the student fed with the pipeline's own ids for them.

The export is written into `OUTPUT.partial/export/`; its report stores
paths relative to itself, so the folder stays valid once the run is renamed
to `OUTPUT`.

An artifact that misses its tolerance does not cost the run: it is set
aside in `export/rejected/` (named in the report and in `results.json`),
the run is published, and then `rejection_error` ends it with one line
naming the artifact, what was measured against which tolerance, and the
key that keeps it anyway (`export.allow_mismatch: true`).
"""

import os
import shutil

import numpy as np

from kd_keras.errors import UsageError
from kd_keras.errors import VerificationError
from kd_keras.errors import first_of
from kd_keras.export import export_model
from kd_keras.export.layout import EXPORT_DIR
from kd_keras.export.layout import REPORT_FILE
from kd_keras.export.output_dir import EXPORT_MARKER
from kd_keras.export.rejected import describe
from kd_keras.files.atomic import atomic_path
from kd_keras.files.json_files import read_json
from kd_keras.files.ownership import foreign_files

STAGE = "export"
CALIBRATION_EXAMPLES = 200


class ArtifactsRejected(VerificationError):
    """Artifacts missed their tolerance and were set aside; the run itself
    is published (raised after publication).

    Attributes:
        output: the published run's folder.
    """

    def __init__(self, message, output):
        super().__init__(message)
        self.output = output


def export_student(cfg, data, student, run):
    """Stage 6: exports and verifies the student (skipped with `export: null`).

    Args:
        cfg: the `RunConfig`.
        data: the `PreparedData` (calibration and test examples).
        student: the distilled student (`keras.Model`).
        run: the `RunDir`.

    Returns:
        The export report as stored (artifact paths relative to the export
        folder; `rejected` lists what was set aside), or `None` when the
        config has no export.

    A student with its own tokenizer (`student.tokenizer_min_count`) reads
    the ids of `OUTPUT/vocab.txt`, copied here with or without an export.
    """
    if cfg.student.tokenizer_min_count is not None:
        with atomic_path(run.file("vocab.txt")) as tmp:
            shutil.copyfile(data.vocabulary, tmp)
    if cfg.export is None:
        return None
    report_path = run.file(EXPORT_DIR, REPORT_FILE)
    if run.done(STAGE) is not None:
        return read_json(report_path)
    _remove_unrecorded_export(run.file(EXPORT_DIR))
    rng = np.random.default_rng(cfg.seed)
    train = data.ids["train"]
    chosen = rng.permutation(len(train))[:CALIBRATION_EXAMPLES]
    export_model(
        student, run.file(EXPORT_DIR), formats=tuple(cfg.export.formats),
        quantization=tuple(cfg.export.quantization), representative_data=train[chosen],
        validation_data=(data.ids["test"], data.labels["test"]),
        labels=list(data.dataset.label_names), allow_mismatch=cfg.export.allow_mismatch,
        reject_mismatch=True, text=_text_export(cfg, data, student, chosen),
        verbose=cfg.verbose)
    run.finish(STAGE, files=(EXPORT_DIR,))  # A resumed run checks every artifact's bytes.
    return read_json(report_path)


def _remove_unrecorded_export(export_dir):
    """Removes an export that an interrupted run wrote but did not record
    (exporting again into it would keep its SavedModel as version 1 beside
    the new one), unless it holds a file the export did not write."""
    if not os.path.lexists(export_dir):
        return
    foreign = foreign_files(export_dir, EXPORT_MARKER) if os.path.isdir(export_dir) else None
    if foreign is None:
        raise UsageError(f"--resume: {export_dir} is not an export kd_keras wrote; move it "
                         "out to resume")
    if foreign:
        raise UsageError(f"--resume: {export_dir} holds {first_of(foreign)}, which the "
                         "interrupted export did not write; move it out to resume")
    shutil.rmtree(export_dir)


def rejection_error(report, output):
    """The error that ends a published run whose export set artifacts aside.

    Args:
        report: the export report (`export_student`'s), or None.
        output: the published run's folder.

    Returns:
        An `ArtifactsRejected` to raise, or None when nothing was rejected.

    Example:

    >>> r = {"rejected": [{"format": "tflite", "quantization": "int8",
    ...       "path": "rejected/tflite/model_int8.tflite",
    ...       "failures": ["top1_agreement 0.9500 < 0.98"]}]}
    >>> print(rejection_error(r, "runs/x"))  # doctest: +NORMALIZE_WHITESPACE
    export: tflite/int8 failed verification (top1_agreement 0.9500 < 0.98), set aside as
    runs/x/export/rejected/tflite/model_int8.tflite; the rest of the run is published in
    runs/x; to keep such artifacts set export.allow_mismatch: true
    """
    failed = [a for a in (report or {}).get("rejected") or () if a.get("failures")]
    if not failed:
        return None
    parts = [
        f"{describe(a)} failed verification ({', '.join(a['failures'])}), set aside as "
        f"{os.path.join(output, 'export', *a['path'].split('/'))}"
        for a in failed
    ]
    return ArtifactsRejected(
        f"export: {'; '.join(parts)}; the rest of the run is published in {output}; "
        "to keep such artifacts set export.allow_mismatch: true", output)


def _text_export(cfg, data, student, chosen):
    """`export_model`'s `TextExport`: the pipeline's tokenizer in the graph,
    checked against the pipeline's own test ids (`None`: no text
    artifacts)."""
    formats = set(cfg.export.formats)
    if not cfg.export.text or not formats & {"saved_model", "tflite"}:
        return None
    from kd_keras.export import TextExport
    from kd_keras.export import WordPiecePreprocessor
    from kd_keras.export.inputs import model_input_specs

    (spec,) = model_input_specs(student)  # The pipeline's students take ids only.
    preprocessor = WordPiecePreprocessor(
        data.vocabulary, cfg.student_sequence_length, input_name=spec.name)
    texts = data.dataset.texts
    return TextExport(
        preprocessor=preprocessor,
        tflite="tflite" in formats,
        validation_text=(list(texts["test"]), data.labels["test"]),
        reference_inputs=data.ids["test"],
        representative_text=[texts["train"][i] for i in chosen],
        # MediaPipe's classifier is a TFLite model with the tokenizer in its
        # metadata: written beside the TFLite files.
        mediapipe_vocabulary=data.vocabulary if "tflite" in formats else None,
    )


def report_path(output):
    """Where the published run's export report is."""
    return os.path.join(output, EXPORT_DIR, REPORT_FILE)
