"""Stage 7, results: `results.json`, `history.json` and the training curves.

Accuracies are measured on the test split. `results.json` has the shape of
the public contract (`labels`, `teacher`, `student`,
`student_without_distillation`, `export`) plus `details`. Artifact paths
in `details` are relative to the run folder (`export/tflite/model.tflite`),
so they hold wherever the run is published or moved; `details.rejected`
names the artifacts the export set aside (`export/rejected/...`) and why.
"""

import os

from kd_keras.data.labels import accuracy
from kd_keras.export.layout import EXPORT_DIR
from kd_keras.export.layout import REPORT_FILE
from kd_keras.export.report import verification_seconds
from kd_keras.files.json_files import write_json
from kd_keras.pipeline import export_stage
from kd_keras.pipeline import summary
from kd_keras.pipeline.results import ModelScore
from kd_keras.pipeline.results import RunResults
from kd_keras.pipeline.teacher_stage import teacher_inputs
from kd_keras.pipeline.training_stage import EPOCHS_KIND
from kd_keras.pipeline.training_stage import model_accuracy


def write_results(cfg, data, teacher, outputs, distilled, baseline, export_report,
                  run, times=None):
    """Stage 7: computes the results and writes them into `OUTPUT.partial/`.

    Args:
        cfg: the `RunConfig`.
        data: the `PreparedData`.
        teacher: the `TeacherState`.
        outputs: the teacher's `TeacherOutputs`.
        distilled: the distilled `TrainedStudent`.
        baseline: the baseline `TrainedStudent`, or `None`.
        export_report: the export report, or `None`.
        run: the `RunDir`.
        times: the `kd_keras.timing.StageTimes` of the stages so far, or
            `None`; recorded as `seconds` (see `stage_seconds`).

    Returns:
        The `RunResults` (paths as they are once published), also written
        to `results.json`.
    """
    test_x, test_y = data.ids["test"], data.labels["test"]
    student = distilled.model
    latency = None
    if teacher.model is not None:
        example = teacher_inputs(teacher, data, "test")[:1]
        latency = summary.keras_latency_ms(teacher.model, example)
    details = {
        "teacher_route": teacher.route,
        "architecture": cfg.student.architecture,
        "sequence_length": cfg.student_sequence_length,
        "splits": data.dataset.sizes(),
        "labeled_train_examples": int((data.labels["train"] >= 0).sum()),
        "epochs_run": {"distill": len(distilled.history.get("loss", [])),
                       "baseline": len(baseline.history.get("loss", [])) if baseline else 0},
        # The baseline's epochs, as chosen on held-out training rows (or None).
        "baseline_epochs": run.done(EPOCHS_KIND) if baseline else None,
        "seed": cfg.seed,
        # The keys the config left to the default recipe, what it chose and why.
        "recipe": [choice.to_json() for choice in data.recipe],
    }
    if export_report:
        artifacts = summary.artifact_summary(export_report)
        for row in artifacts:
            row["path"] = _in_run(row["path"])
        details["artifacts"] = artifacts
        details["rejected"] = [
            {"format": a["format"], "quantization": a["quantization"],
             "input": "text" if a.get("validation") == "text" else "ids",
             "path": _in_run(a["path"]), "failures": a.get("failures", [])}
            for a in export_report.get("rejected", [])]
    results = RunResults(
        labels=[str(name) for name in data.dataset.label_names],
        teacher=ModelScore(accuracy(outputs.logits("test"), test_y), teacher.params,
                           latency),
        student=ModelScore(model_accuracy(student, test_x, test_y),
                           int(student.count_params())),
        student_without_distillation=None if baseline is None else ModelScore(
            model_accuracy(baseline.model, test_x, test_y),
            int(baseline.model.count_params())),
        # The public contract's path: OUTPUT/export/report.json.
        export=os.path.join(run.output, EXPORT_DIR, REPORT_FILE) if export_report else None,
        details=details,
        seconds=None if times is None else stage_seconds(times, export_report))
    baseline_history = baseline.history if baseline else None
    summary.plot_curves(distilled.history, baseline_history, run.file("training_curves.png"))
    write_json(run.file("history.json"),
               {"distill": distilled.history, "baseline": baseline_history})
    write_json(run.file("results.json"), results.to_json())
    return results


def stage_seconds(times, export_report):
    """The wall time of each stage for `results.json`, in seconds: `data`,
    `teacher_adaptation`, `teacher_outputs`, `distill`, `baseline`,
    `export` and `verification` (the export stage's verification and
    latency runs, taken out of `export`), then `total`.

    Example:

    >>> from kd_keras.timing import StageTimes
    >>> stage_seconds(StageTimes({"data": 1.0, "export": 5.0}), None)
    {'data': 1.0, 'export': 5.0, 'total': 6.0}
    """
    seconds = times.to_json()
    if export_report and export_stage.STAGE in seconds:
        _, verification = verification_seconds(export_report)
        if verification is not None:
            seconds[export_stage.STAGE] = round(seconds[export_stage.STAGE] - verification, 3)
            seconds["verification"] = round(verification, 3)
    seconds["total"] = round(times.total, 3)
    return seconds


def _in_run(path):
    """An artifact path from the export report (relative to the export
    folder), relative to the run folder, with `/`."""
    return f"{export_stage.STAGE}/{path}"
