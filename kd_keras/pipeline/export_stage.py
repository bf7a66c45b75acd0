"""Stage 6, export: the distilled student to every configured format,
each artifact verified in its own runtime (`kd_keras.export.export_model`).

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
    calibration = train[rng.permutation(len(train))[:CALIBRATION_EXAMPLES]]
    report = export_model(
        student, run.file("export"), formats=tuple(cfg.export.formats),
        quantization=tuple(cfg.export.quantization), representative_data=calibration,
        validation_data=(data.ids["test"], data.labels["test"]),
        labels=list(data.dataset.label_names))
    run.finish(STAGE)
    return report


def report_path(output):
    """Where the published run's export report is."""
    return os.path.join(output, "export", "report.json")
