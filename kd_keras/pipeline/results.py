"""`RunResults`: what a `kd-keras distill` run measured, as `results.json` holds it.

The results stage builds one (`results_stage.write_results`), the CLI and
the demo print its table (`pipeline.summary.summary_rows`), and `to_json` /
`from_json` are the file's one format: the public contract's keys
(`labels`, `teacher`, `student`, `student_without_distillation`,
`export`) plus `details` and `seconds`.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class ModelScore:
    """One model's test accuracy and size.

    Attributes:
        accuracy: top-1 accuracy on the test split (`None`: no test split).
        params: the parameter count (`None` when unknown).
        latency_ms_p50: the median latency of one example in Keras, when
            measured.
    """

    accuracy: Optional[float]
    params: Optional[int]
    latency_ms_p50: Optional[float] = None

    def to_json(self):
        out = {"accuracy": self.accuracy, "params": self.params}
        if self.latency_ms_p50 is not None:
            out["latency_ms_p50"] = self.latency_ms_p50
        return out

    @classmethod
    def from_json(cls, raw):
        return cls(raw["accuracy"], raw["params"], raw.get("latency_ms_p50"))


@dataclasses.dataclass(frozen=True)
class RunResults:
    """The results of a run.

    Attributes:
        labels: the class names.
        teacher: the teacher's `ModelScore`.
        student: the distilled student's `ModelScore`.
        student_without_distillation: the baseline's, or `None` (no
            baseline).
        export: the export report's path, or `None` (no export).
        details: the run's details (`teacher_route`, `architecture`,
            `artifacts`, ...).
        seconds: the wall time of each stage, or `None`.

    Example:

    >>> r = RunResults(["neg", "pos"], ModelScore(0.8, 100), ModelScore(0.75, 10))
    >>> r.to_json()["student"], RunResults.from_json(r.to_json()) == r
    ({'accuracy': 0.75, 'params': 10}, True)
    """

    labels: list
    teacher: ModelScore
    student: ModelScore
    student_without_distillation: Optional[ModelScore] = None
    export: Optional[str] = None
    details: dict = dataclasses.field(default_factory=dict)
    seconds: Optional[dict] = None

    def to_json(self):
        """The `results.json` content, keys in the file's order."""
        out = {"labels": list(self.labels), "teacher": self.teacher.to_json(),
               "student": self.student.to_json()}
        if self.student_without_distillation is not None:
            out["student_without_distillation"] = self.student_without_distillation.to_json()
        out["export"] = self.export
        out["details"] = self.details
        if self.seconds is not None:
            out["seconds"] = self.seconds
        return out

    @classmethod
    def from_json(cls, raw):
        """A `RunResults` from a `results.json` dict."""
        baseline = raw.get("student_without_distillation")
        return cls(labels=list(raw["labels"]), teacher=ModelScore.from_json(raw["teacher"]),
                   student=ModelScore.from_json(raw["student"]),
                   student_without_distillation=(None if baseline is None
                                                 else ModelScore.from_json(baseline)),
                   export=raw.get("export"), details=raw.get("details", {}),
                   seconds=raw.get("seconds"))
