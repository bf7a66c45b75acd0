"""Verification: every artifact, in its own runtime, against the Keras logits.

One loop serves all formats (`kd_keras.export.runtimes` supplies only
`load` and `run`). For each artifact it measures, on the validation data:

- `max_abs_diff`: the largest absolute difference between its logits and
  the Keras model's (probabilities for MediaPipe's classifier);
- `top1_agreement`: the fraction of examples with the same arg-max;
- `accuracy`: against the labels, when given;
- single-thread, warm latency at batch 1 and batch 32 (p50 and p95, ms),
  at most `latency_runs` timed calls per batch size, stopped early once
  `LATENCY_MAX_SECONDS` of timed calls have passed
  (`kd_keras.timing.time_calls`), so a slow artifact never stalls an export;

and checks the tolerance of its quantization (`kd_keras.export.tolerances`;
MediaPipe's classifier has its own).
`verify_export(out_dir)` re-runs all of it from `report.json` and the stored
validation data (`kd_keras.export.validation_data`), after checking each
artifact's SHA-256, and fails every artifact file in the folder that the
report does not list.
"""

import dataclasses
import os

import numpy as np
from tqdm.auto import tqdm

from kd_keras.data.labels import accuracy
from kd_keras.errors import DataError
from kd_keras.errors import MissingDependencyError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import VerificationError
from kd_keras.errors import one_line
from kd_keras.export.inputs import num_examples, slice_inputs
from kd_keras.export.inventory import artifact_files
from kd_keras.export.inventory import same_path
from kd_keras.export.output_dir import size_bytes
from kd_keras.export.report import ArtifactRecord
from kd_keras.export.report import REPORT_FILE
from kd_keras.export.report import read_report
from kd_keras.export.runtimes import load_runtime
from kd_keras.export.safe_reading import resolve_path
from kd_keras.export.tolerances import check_tolerance
from kd_keras.export.tolerances import tolerance
from kd_keras.export.validation_data import VALIDATION_FILE
from kd_keras.export.validation_data import load_validation
from kd_keras.files.hashing import sha256_path
from kd_keras.number_checks import is_int
from kd_keras.timing import StageTimes

LATENCY_BATCHES = (1, 32)
# Timed calls per batch size: enough for stable percentiles many times over;
# more only makes a verification that never ends.
MAX_LATENCY_RUNS = 10_000
# Seconds of timed calls per artifact and batch size: verification stops
# timing there even before `latency_runs` calls (at least one is timed).
LATENCY_MAX_SECONDS = 2.0
# Logits are compared in batches of this size. Dynamically quantized models
# compute activation ranges per batch, so the batch is part of the protocol.
BATCH_SIZE = 32


def predict(runtime, inputs, batch_size=BATCH_SIZE):
    """Runs `runtime` over all of `inputs` in batches; returns the logits."""
    n = num_examples(inputs)
    parts = [
        runtime.run(slice_inputs(inputs, i, i + batch_size))
        for i in range(0, n, batch_size)
    ]
    return np.concatenate(parts, axis=0)


def compare(logits, reference_logits, labels=None):
    """Returns `max_abs_diff`, `top1_agreement` and `accuracy` (or None).

    Example:

    >>> ref = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> compare(ref + 0.5, ref, labels=np.array([0, 0]))["accuracy"]
    0.5
    """
    logits = np.asarray(logits, np.float64)
    reference_logits = np.asarray(reference_logits, np.float64)
    if logits.shape != reference_logits.shape:
        raise VerificationError(
            f"logits: the artifact's have shape {logits.shape}, the Keras "
            f"model's {reference_logits.shape}"
        )
    top1 = logits.argmax(-1)
    metrics = {
        "max_abs_diff": float(np.max(np.abs(logits - reference_logits))),
        "top1_agreement": float(np.mean(top1 == reference_logits.argmax(-1))),
        "accuracy": None,
    }
    if labels is not None:
        metrics["accuracy"] = accuracy(logits, labels)
    return metrics


def softmax(logits):
    """Probabilities of `logits`, in float64.

    Example:

    >>> softmax(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    logits = np.asarray(logits, np.float64)
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def check_latency_runs(runs, what="latency_runs"):
    """Checks a count of timed calls: an integer in 0..`MAX_LATENCY_RUNS`.

    Example:

    >>> check_latency_runs(10**20, "--latency-runs")
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: --latency-runs: must be at most 10000 (timed calls per batch size), got 100000000000000000000
    """
    if not is_int(runs):
        raise UsageError(f"{what}: must be an integer in 0..{MAX_LATENCY_RUNS}, got {runs!r}")
    if runs < 0:
        raise UsageError(f"{what}: must be >= 0, got {runs}")
    if runs > MAX_LATENCY_RUNS:
        raise UsageError(
            f"{what}: must be at most {MAX_LATENCY_RUNS} (timed calls per batch size), "
            f"got {runs}")
    return int(runs)


def measure_latency(runtime, inputs, batch_size, runs=30, warmup=3, max_seconds=None):
    """Warm, single-call latency of `runtime` at `batch_size`, in ms.

    Args:
        runtime: a loaded `kd_keras.export.runtimes.Runtime`.
        inputs: `{name: array}`; its first examples, repeated as needed,
            make the batch.
        batch_size: the examples per call.
        runs: the most timed calls.
        warmup: untimed calls first.
        max_seconds: optional budget of timed calls (`time_calls`); the
            export's verification passes `LATENCY_MAX_SECONDS`.

    Returns:
        `(p50, p95)`.
    """
    n = num_examples(inputs)
    reps = -(-batch_size // n)
    batch = {k: np.concatenate([v] * reps)[:batch_size] for k, v in inputs.items()}
    times = runtime.time_calls(batch, runs, max_seconds=max_seconds, warmup=warmup)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def verify_artifact(
    format,
    path,
    quantization,
    inputs,
    reference_logits,
    labels=None,
    reference_accuracy=None,
    latency_runs=30,
    signature=None,
    times=None,
):
    """Runs one artifact and returns its report entry (without paths).

    Args:
        format: `"saved_model"`, `"tflite"`, `"onnx"` or `"mediapipe"`
            (raw text in, probabilities out: compared with the softmax of
            `reference_logits`).
        path: the artifact (file, or SavedModel version directory).
        quantization: its quantization, which picks the tolerance.
        inputs: validation inputs `{name: array}`.
        reference_logits: the Keras model's logits on `inputs`.
        labels: optional integer labels.
        reference_accuracy: the Keras model's accuracy, for the int8 check.
        latency_runs: timed calls per batch size (0 skips latency), each
            batch size stopped after `LATENCY_MAX_SECONDS`.
        signature: the signature to run (default `serving_default`).
        times: optional `kd_keras.timing.StageTimes`; gets the seconds of
            loading, running and comparing (`"verify"`) and of the latency
            calls (`"latency"`).

    Returns:
        A dict with the metrics, latencies, `tolerance`, `passed` and
        `failures`.
    """
    latency_runs = check_latency_runs(latency_runs)
    times = times if times is not None else StageTimes()
    with times.measure("verify"):
        runtime = load_runtime(format, path, signature)
    with runtime:
        with times.measure("verify"):
            if runtime.returns_probabilities:
                reference_logits = softmax(reference_logits)
            entry = dict(compare(predict(runtime, inputs), reference_logits, labels))
        entry["quantization"] = quantization
        with times.measure("latency"):
            for batch in LATENCY_BATCHES:
                p50 = p95 = None
                if latency_runs:
                    p50, p95 = measure_latency(runtime, inputs, batch, runs=latency_runs,
                                               max_seconds=LATENCY_MAX_SECONDS)
                suffix = "" if batch == 1 else f"_batch{batch}"
                entry[f"latency_ms_p50{suffix}"] = p50
                entry[f"latency_ms_p95{suffix}"] = p95
    entry["tolerance"] = tolerance(format, quantization)
    entry["failures"] = check_tolerance(entry, reference_accuracy)
    entry["passed"] = not entry["failures"]
    del entry["quantization"]
    return entry


@dataclasses.dataclass(frozen=True)
class ArtifactCheck:
    """The outcome of re-running one stored artifact.

    Attributes:
        artifact: the `ArtifactRecord` from `report.json`.
        metrics: the fresh metrics (`verify_artifact`'s dict), or None when
            the artifact is missing, altered or could not run.
        failures: one-line reasons, each starting with `format/quantization`;
            empty when it passed.
        size_bytes: the artifact's size as measured now (None when it is
            missing); a report whose `size_bytes` differs fails.
    """

    artifact: ArtifactRecord
    metrics: dict
    failures: tuple
    size_bytes: int = None

    @property
    def passed(self):
        return not self.failures


def verify_export(out_dir, latency_runs=10, verbose=0):
    """Re-runs every artifact of `out_dir` against `out_dir/report.json`.

    Artifact paths in the report are relative to its folder, so a moved or
    copied export folder verifies where it now is. An artifact fails when
    it is missing, its SHA-256 changed, its recorded size is not its size,
    it no longer loads or runs, or it misses its tolerance. Every
    `.tflite`, `.onnx` and SavedModel in the folder (except `rejected/`) is
    checked: one the report does not list fails. Earlier SavedModel
    versions are checked by their SHA-256.

    Args:
        out_dir: a directory written by `export_model`.
        latency_runs: timed calls per batch size (0 skips latency).
        verbose: 1 shows a progress bar (one step per artifact run) on
            standard error, 0 nothing.

    Returns:
        A list of `ArtifactCheck`: one per listed artifact, in report order,
        then the earlier versions, then the unlisted files.

    Raises:
        MissingFileError: no `report.json`, or no stored validation data.
        VerificationError: neither the report nor the folder holds any
            artifact.
        DataError: a damaged `report.json` (bad JSON, missing field, unsafe
            path), a symlink out of the folder or a file that is not a
            regular file, damaged stored validation data.
        UsageError: `latency_runs` is not an integer in 0..`MAX_LATENCY_RUNS`.
        VerificationError: the stored validation data was altered.
        MissingDependencyError: a runtime the report needs is not installed.

    Example:

    >>> checks = verify_export("out/")  # doctest: +SKIP
    >>> all(c.passed for c in checks)  # doctest: +SKIP
    True
    """
    out_dir = os.fspath(out_dir)
    latency_runs = check_latency_runs(latency_runs)
    report = read_report(out_dir)
    validation = resolve_path(out_dir, VALIDATION_FILE, out_dir)
    if not os.path.isfile(validation):
        raise MissingFileError(f"{validation}: stored validation data is missing")
    if sha256_path(validation) != report.validation_sha256:
        raise VerificationError(
            f"{validation}: stored validation data was altered (sha256)"
        )
    found = artifact_files(out_dir)
    if not report.artifacts and not found:
        raise VerificationError(
            f"{os.path.join(out_dir, REPORT_FILE)}: no artifacts to verify (the report "
            "lists none and the folder holds none)"
        )
    sets = load_validation(out_dir)
    checks = []
    for artifact in report.earlier_versions:
        checks.append(_checksum_only(artifact))
    listed = [a.path for a in report.artifacts + report.earlier_versions]
    for fmt, path in found:
        if not any(same_path(path, p) for p in listed):
            record = ArtifactRecord(fmt, "?", path, os.path.join(out_dir, *path.split("/")),
                                    sha256=None)
            checks.append(ArtifactCheck(
                record, None, (f"{path}: not listed in {REPORT_FILE} (unverified artifact)",),
                size_bytes(record.full_path)))
    return _listed_checks(report, sets, latency_runs, verbose) + checks


def _checksum_only(artifact):
    """An earlier SavedModel version: present and unchanged."""
    failure = _file_failure(artifact.name, artifact.path, artifact.full_path, artifact.sha256)
    size = size_bytes(artifact.full_path) if os.path.exists(artifact.full_path) else None
    return ArtifactCheck(artifact, None, (failure,) if failure else (), size)


def checksum_failures(artifact):
    """A line for `artifact` and each file that travels with it when it is
    missing or no longer what `report.json` recorded (sha256)."""
    failure = _file_failure(artifact.name, artifact.path, artifact.full_path, artifact.sha256)
    return (failure,) if failure else _companion_failures(artifact)


def _companion_failures(artifact):
    """A line for each file that travels with `artifact` and is missing or
    altered."""
    failures = (_file_failure(artifact.name, rel, full, sha)
                for rel, full, sha in artifact.companions)
    return tuple(f for f in failures if f)


def _file_failure(name, shown, full_path, sha256):
    """The line for a recorded file or folder that is missing or whose
    SHA-256 is no longer `sha256`, else None."""
    if not os.path.exists(full_path):
        return f"{name}: {shown} is missing"
    if sha256_path(full_path) != sha256:
        return f"{name}: {shown} was altered (sha256)"
    return None


def _listed_checks(report, sets, latency_runs, verbose=0):
    out_dir = report.directory
    checks = []
    for artifact in tqdm(report.artifacts, desc="verify", unit="artifact", leave=False,
                         disable=not verbose):
        name, shown = artifact.name, artifact.path
        failure = _file_failure(name, shown, artifact.full_path, artifact.sha256)
        exists = os.path.exists(artifact.full_path)
        size = size_bytes(artifact.full_path) if exists else None
        if failure is not None:
            checks.append(ArtifactCheck(artifact, None, (failure,), size))
            continue
        # The report's other values are measured afresh; its size must agree,
        # and the files that travel with it are as recorded.
        recorded = () if artifact.size_bytes in (None, size) else (
            f"{name}: {REPORT_FILE} gives size_bytes {artifact.size_bytes}, but {shown} "
            f"has {size} bytes",)
        recorded += _companion_failures(artifact)
        if artifact.validation not in sets:
            raise DataError(
                f"{os.path.join(out_dir, REPORT_FILE)}: {name}: no stored "
                f"validation set {artifact.validation!r}"
            )
        inputs, reference_logits, labels = sets[artifact.validation]
        reference_accuracy = report.reference_accuracy
        if artifact.validation != "model":
            reference_accuracy = (
                accuracy(reference_logits, labels) if labels is not None else None
            )
        try:
            fresh = verify_artifact(
                artifact.format,
                artifact.full_path,
                artifact.quantization,
                inputs,
                reference_logits,
                labels,
                reference_accuracy,
                latency_runs=latency_runs,
                signature=artifact.signature,
            )
        except MissingDependencyError:
            raise
        except Exception as e:  # A broken artifact is a verification failure.
            checks.append(ArtifactCheck(
                artifact, None, recorded + (f"{name}: cannot run: {one_line(e)}",), size))
            continue
        failures = recorded + tuple(f"{name}: {r}" for r in fresh["failures"])
        checks.append(ArtifactCheck(artifact, fresh, failures, size))
    return checks
