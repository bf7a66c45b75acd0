"""Stage 6, export: the distilled student to every configured format,
each artifact verified in its own runtime (`kd_keras.export.export_model`).

With `export.text` (the default) the tokenizer ships inside: the
SavedModel's `serving_text` signature and `tflite/model_text*.tflite` take
raw sentences (`kd_keras.export.WordPiecePreprocessor`, the in-graph twin of
the pipeline's `WordPieceEncoder`). They are verified on the raw test
sentences against the student fed with the pipeline's own ids for them.

The export is written into `OUTPUT.partial/export/`; its report stores
paths relative to itself, so the folder stays valid once the run is renamed
to `OUTPUT`.
"""

import os
import shutil

import numpy as np

from kd_keras.export import export_model
from kd_keras.pipeline.workdir import read_json

STAGE = "export"
CALIBRATION_EXAMPLES = 200


def export_student(cfg, data, student, run):
    """Stage 6: exports and verifies the student (skipped with `export: null`).

    Args:
        cfg: the `RunConfig`.
        data: the `PreparedData` (calibration and test examples).
        student: the distilled student (`keras.Model`).
        run: the `RunDir`.

    Returns:
        The export report (a dict), or `None` when the config has no export.
    """
    if cfg.export is None:
        return None
    report_path = run.file("export", "report.json")
    if run.done(STAGE) is not None:
        return read_json(report_path)
    if os.path.isdir(run.file("export")):  # An export this run began, not finished.
        shutil.rmtree(run.file("export"))
    rng = np.random.default_rng(cfg.seed)
    train = data.ids["train"]
    chosen = rng.permutation(len(train))[:CALIBRATION_EXAMPLES]
    report = export_model(
        student, run.file("export"), formats=tuple(cfg.export.formats),
        quantization=tuple(cfg.export.quantization), representative_data=train[chosen],
        validation_data=(data.ids["test"], data.labels["test"]),
        labels=list(data.dataset.label_names), **_text_options(cfg, data, student, chosen))
    run.finish(STAGE)
    return report


def _text_options(cfg, data, student, chosen):
    """`export_model`'s raw-text arguments: the pipeline's tokenizer in the
    graph, checked against the pipeline's own test ids."""
    formats = set(cfg.export.formats)
    if not cfg.export.text or not formats & {"saved_model", "tflite"}:
        return {}
    from kd_keras.export import WordPiecePreprocessor
    from kd_keras.export.inputs import model_input_specs

    (spec,) = model_input_specs(student)  # The pipeline's students take ids only.
    preprocessor = WordPiecePreprocessor(
        data.vocabulary, cfg.student_sequence_length, input_name=spec.name)
    texts = data.dataset.texts
    return {
        "text_preprocessor": preprocessor,
        "tflite_text": "tflite" in formats,
        "validation_text": (list(texts["test"]), data.labels["test"]),
        "text_reference_inputs": data.ids["test"],
        "representative_text": [texts["train"][i] for i in chosen],
    }


def report_path(output):
    """Where the published run's export report is."""
    return os.path.join(output, "export", "report.json")
