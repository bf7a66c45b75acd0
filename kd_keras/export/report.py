"""The export report: `report.json`, `report.md` and `report.png`.

`report.json` follows the public contract:

    {"reference": {"accuracy": ..., "params": ...},
     "artifacts": [{"format", "quantization", "path", "size_bytes",
                    "max_abs_diff", "top1_agreement", "accuracy",
                    "latency_ms_p50", "latency_ms_p95", ...}]}

Each artifact's `path` is stored relative to the report's folder (e.g.
`tflite/model_int8.tflite`), so an export folder can be moved or copied and
still verified; every reader resolves it, and reads the report itself,
through `kd_keras.export.safe_reading`, which trusts no path or file in
the folder. Each artifact also records `sha256`, batch-32 latencies, its
`tolerance` and whether it `passed`. `rejected` lists the artifacts set
aside in `rejected/` for missing their tolerance (with their `failures`),
`earlier_versions` the SavedModel versions earlier exports left (checked by
checksum only). `seconds` holds where the export's time went, by part (see
`kd_keras.export.exporter`); `verification_seconds` splits it into building
and verifying.

`read_report(out_dir)` checks a stored report and returns a `StoredReport`
of `ArtifactRecord`s; a damaged report is a one-line `DataError`.
"""

import dataclasses
import json
import os

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.export.formats import ARTIFACT_FORMATS
from kd_keras.export.formats import QUANTIZATIONS
from kd_keras.export.layout import REPORT_FILE
from kd_keras.export.safe_reading import read_json_file
from kd_keras.export.safe_reading import resolve_path

VALIDATION_SETS = ("model", "text")
# The parts of a report's `seconds` spent verifying the artifacts (running
# each over the validation sets, and the latency calls); every other part
# builds them.
VERIFICATION_PARTS = ("verify", "latency")


def verification_seconds(report):
    """Splits an export report's `seconds` into building and verifying.

    Args:
        report: a report dict (`export_model`'s, or `report.json` read).

    Returns:
        `(build_seconds, verification_seconds)`: the sum of the parts not in
        `VERIFICATION_PARTS`, and of those in it; `(None, None)` for a report
        without `seconds` (written before exports were timed).

    Example:

    >>> verification_seconds({"seconds": {"saved_model": 1.0, "tflite/none": 2.0,
    ...                                   "verify": 0.5, "latency": 0.25}})
    (3.0, 0.75)
    """
    seconds = report.get("seconds")
    if seconds is None:
        return None, None
    verifying = sum(v for k, v in seconds.items() if k in VERIFICATION_PARTS)
    building = sum(v for k, v in seconds.items() if k not in VERIFICATION_PARTS)
    return round(float(building), 3), round(float(verifying), 3)


def with_paths_under(report, out_dir):
    """A copy of `report` whose artifact paths (and their companions') are
    joined onto `out_dir` (the form `export_model` returns).

    Example:

    >>> r = with_paths_under({"artifacts": [{"path": "tflite/model.tflite",
    ...     "companions": {"tflite/labels.txt": "ab12"}}]}, "out")
    >>> r["artifacts"][0]["path"], r["artifacts"][0]["companions"]
    ('out/tflite/model.tflite', {'out/tflite/labels.txt': 'ab12'})
    """
    def joined(entry):
        entry = {**entry, "path": os.path.join(out_dir, entry["path"])}
        if "companions" in entry:
            entry["companions"] = {os.path.join(out_dir, p): sha
                                   for p, sha in entry["companions"].items()}
        return entry

    report = dict(report)
    for key in ("artifacts", "rejected", "earlier_versions"):
        if key in report:
            report[key] = [joined(a) for a in report[key]]
    return report


@dataclasses.dataclass(frozen=True)
class ArtifactRecord:
    """One artifact as listed in a stored `report.json`.

    Attributes:
        format: one of `ARTIFACT_FORMATS`.
        quantization: one of `QUANTIZATIONS`.
        path: as stored, relative to the report's folder.
        full_path: `path` resolved against the report's folder.
        sha256: the artifact's checksum at export time.
        size_bytes: its size at export time (None if not recorded).
        validation: the stored validation set it is checked on.
        signature: the signature it runs (None: `serving_default`).
        earlier: a SavedModel version an earlier export left, checked by
            its checksum only.
        companions: `(path, full_path, sha256)` of each file that travels
            with it (a TFLite model's sidecar and `labels.txt`).
        passed: whether it met its tolerance at export time (an export
            with `allow_mismatch` keeps one that did not).
    """

    format: str
    quantization: str
    path: str
    full_path: str
    sha256: str
    size_bytes: int = None
    validation: str = "model"
    signature: str = None
    earlier: bool = False
    passed: bool = True
    companions: tuple = ()

    @property
    def name(self):
        text = "/text" if self.validation == "text" else ""
        earlier = " (earlier version)" if self.earlier else ""
        return f"{self.format}/{self.quantization}{text}{earlier}"


@dataclasses.dataclass(frozen=True)
class StoredReport:
    """A checked `report.json`.

    Attributes:
        directory: the folder holding it (artifact paths resolve here).
        reference_accuracy: the Keras model's accuracy, or None.
        validation_sha256: checksum of the stored validation data.
        artifacts: a tuple of `ArtifactRecord`.
        earlier_versions: a tuple of `ArtifactRecord` (`earlier=True`).
    """

    directory: str
    reference_accuracy: float
    validation_sha256: str
    artifacts: tuple
    earlier_versions: tuple = ()


def _field(mapping, key, types, file, at="", optional=False):
    """`mapping[key]` checked against `types`; `at` is the key path so far."""
    where = f"{file}: {at}" if at else file
    if not isinstance(mapping, dict):
        raise DataError(f"{where}: expected an object, got {type(mapping).__name__}")
    if key not in mapping:
        if optional:
            return None
        raise DataError(f"{where}: missing key {key!r}")
    value = mapping[key]
    if (value is None and optional) or (
        isinstance(value, types) and (bool in types or not isinstance(value, bool))
    ):
        return value
    names = "/".join(t.__name__ for t in types)
    full = f"{at}.{key}" if at else key
    raise DataError(f"{file}: {full}: expected {names}, got {value!r}")


def _companions(entry, out_dir, path, at):
    """An entry's `companions` as `(path, full_path, sha256)` triples
    (reports written before they were recorded have none)."""
    raw = _field(entry, "companions", (dict,), path, at, optional=True) or {}
    out = []
    for rel, sha in raw.items():
        if not isinstance(sha, str):
            raise DataError(f"{path}: {at}.companions[{rel!r}]: expected a checksum string")
        out.append((rel, resolve_path(out_dir, rel, f"{path}: {at}.companions"), sha))
    return tuple(out)


def read_report(out_dir):
    """Reads and checks `out_dir/report.json`.

    Args:
        out_dir: a folder written by `export_model` (moved or copied is fine).

    Returns:
        A `StoredReport`.

    Raises:
        MissingFileError: when there is no `report.json`.
        DataError: for invalid or oversized JSON, a missing or mistyped
            field, an unknown format or quantization, or an unsafe artifact
            path (absolute, `..`, a symlink out of the folder, not a regular
            file).
    """
    path = os.path.join(out_dir, REPORT_FILE)
    if not os.path.lexists(path):
        raise MissingFileError(f"{path}: no export report (run kd-keras export first)")
    raw = read_json_file(path, root=out_dir)
    reference = _field(raw, "reference", (dict,), path)
    accuracy = _field(reference, "accuracy", (int, float), path, "reference", True)
    validation = _field(raw, "validation", (dict,), path)
    validation_sha = _field(validation, "sha256", (str,), path, "validation")
    entries = _field(raw, "artifacts", (list,), path)
    artifacts, listed = [], {}
    for i, entry in enumerate(entries):
        at = f"artifacts[{i}]"
        fmt = _field(entry, "format", (str,), path, at)
        quantization = _field(entry, "quantization", (str,), path, at)
        for key, value, known in (
            ("format", fmt, ARTIFACT_FORMATS), ("quantization", quantization, QUANTIZATIONS)
        ):
            if value not in known:
                raise DataError(
                    f"{path}: {at}.{key}: unknown value {value!r} "
                    f"(known: {', '.join(known)})"
                )
        rel = _field(entry, "path", (str,), path, at)
        which = _field(entry, "validation", (str,), path, at, optional=True) or "model"
        if which not in VALIDATION_SETS:
            raise DataError(
                f"{path}: {at}.validation: unknown set {which!r} "
                f"(known: {', '.join(VALIDATION_SETS)})"
            )
        key = (os.path.normpath(rel.replace("\\", "/")), which)
        if key in listed:  # Counted twice, a check would stand for one it never made.
            raise DataError(f"{path}: {at}: lists {rel!r} on the {which!r} inputs again "
                            f"(as {listed[key]})")
        listed[key] = at
        artifacts.append(
            ArtifactRecord(
                format=fmt,
                quantization=quantization,
                path=rel,
                full_path=resolve_path(out_dir, rel, f"{path}: {at}.path"),
                sha256=_field(entry, "sha256", (str,), path, at),
                size_bytes=_field(entry, "size_bytes", (int,), path, at, optional=True),
                validation=which,
                signature=_field(entry, "signature", (str,), path, at, optional=True),
                passed=_field(entry, "passed", (bool,), path, at, optional=True) is not False,
                companions=_companions(entry, out_dir, path, at),
            )
        )
    earlier = []
    for i, entry in enumerate(
        _field(raw, "earlier_versions", (list,), path, optional=True) or ()
    ):
        at = f"earlier_versions[{i}]"
        rel = _field(entry, "path", (str,), path, at)
        earlier.append(ArtifactRecord(
            format="saved_model", quantization="none", path=rel,
            full_path=resolve_path(out_dir, rel, f"{path}: {at}.path"),
            sha256=_field(entry, "sha256", (str,), path, at), earlier=True))
    return StoredReport(
        directory=out_dir,
        reference_accuracy=None if accuracy is None else float(accuracy),
        validation_sha256=validation_sha,
        artifacts=tuple(artifacts),
        earlier_versions=tuple(earlier),
    )


COLUMNS = (
    ("format", "format", "{}"),
    ("quantization", "quantization", "{}"),
    ("input", "validation", None),
    ("size", "size_bytes", None),
    ("max abs diff", "max_abs_diff", "{:.2e}"),  # No "|": it would split the cell.
    ("top-1 agree", "top1_agreement", "{:.4f}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("p50 ms (b1)", "latency_ms_p50", "{:.3f}"),
    ("p95 ms (b1)", "latency_ms_p95", "{:.3f}"),
    ("p50 ms (b32)", "latency_ms_p50_batch32", "{:.3f}"),
    ("p95 ms (b32)", "latency_ms_p95_batch32", "{:.3f}"),
    ("passed", "passed", "{}"),
)


def human_size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _cell(entry, key, fmt):
    value = entry.get(key)
    if key == "validation":  # Raw text, or the model's own inputs.
        return "text" if value == "text" else "model inputs"
    if value is None:
        return "–"
    if key == "size_bytes":
        return human_size(value)
    return fmt.format(value)


def markdown_table(artifacts):
    """Returns the artifacts as a Markdown table.

    Example:

    >>> print(markdown_table([{"format": "onnx", "quantization": "none"}])
    ...       .splitlines()[0])  # doctest: +ELLIPSIS
    | format | quantization | input | size | ...
    """
    lines = [
        "| " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for entry in artifacts:
        lines.append(
            "| " + " | ".join(_cell(entry, k, f) for _, k, f in COLUMNS) + " |"
        )
    return "\n".join(lines)


def write_markdown(report, path, chart_name="report.png"):
    ref = report["reference"]
    acc = ref.get("accuracy")
    lines = [
        "# Export report",
        "",
        f"Keras reference: {ref['params']:,} parameters, accuracy "
        + (f"{acc:.4f}" if acc is not None else "– (no labels)")
        + f" on {report['validation']['examples']} validation examples.",
        "",
        "Each artifact ran in its own runtime (TensorFlow, LiteRT, ONNX Runtime), "
        "single-threaded and warm; differences are on logits against Keras "
        "(MediaPipe's text classifier: raw text in, probabilities against the "
        "softmax of Keras's logits).",
        "",
        markdown_table(report["artifacts"]),
        "",
    ]
    if report.get("rejected"):
        lines += ["Rejected (missed their tolerance; set aside in `rejected/`):", ""]
        lines += [
            f"- `{a['path']}` ({a['format']}/{a['quantization']}"
            f"{'/text' if a.get('validation') == 'text' else ''}): "
            + ("; ".join(a.get("failures") or ()) or "shares its file with a failed one")
            for a in report["rejected"]
        ]
        lines.append("")
    if report.get("earlier_versions"):
        lines += ["Earlier SavedModel versions kept (checked by checksum):", ""]
        lines += [f"- `{a['path']}`" for a in report["earlier_versions"]]
        lines.append("")
    if report.get("skipped"):
        lines += ["Skipped (format has no such quantization, unless a reason is given):", ""]
        lines += [f"- {s['format']}/{s['quantization']}"
                  + (f": {s['reason']}" if s.get("reason") else "") for s in report["skipped"]]
        lines.append("")
    lines += [f"![size, latency and accuracy per artifact]({chart_name})", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def write_chart(report, path):
    """Bar charts of size, p50 latency (batch 1) and accuracy per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    arts = report["artifacts"]
    names = [
        f"{a['format']}\n{a['quantization']}"
        + ("\ntext" if a.get("validation") == "text" else "")
        for a in arts
    ]
    panels = (
        ("size (KiB)", [a["size_bytes"] / 1024 for a in arts]),
        ("p50 latency, batch 1 (ms)", [a["latency_ms_p50"] or 0 for a in arts]),
        ("accuracy", [a["accuracy"] or 0 for a in arts]),
    )
    fig, axes = plt.subplots(1, 3, figsize=(4 + 1.6 * len(arts), 3.6))
    for ax, (title, values) in zip(axes, panels):
        ax.bar(range(len(values)), values, color="#4c72b0")
        ax.set_xticks(range(len(values)), names, fontsize=7)
        ax.set_title(title, fontsize=9)
    ref_acc = report["reference"].get("accuracy")
    if ref_acc is not None:
        axes[2].axhline(ref_acc, color="#c44e52", ls="--", lw=1, label="Keras")
        axes[2].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report, out_dir):
    """Writes `report.json`, `report.md` and `report.png` into `out_dir`.

    Args:
        report: the report dict `export_model` builds; its artifact paths
            must already be relative to `out_dir`.
        out_dir: the (staging) export folder.

    Raises:
        DataError: an artifact path that is not relative to `out_dir`.

    Example:

    >>> write_report({"artifacts": []}, "out/")  # doctest: +SKIP
    """
    for key in ("artifacts", "rejected", "earlier_versions"):
        for i, a in enumerate(report.get(key, ())):
            resolve_path(out_dir, a["path"], f"{key}[{i}].path")  # Relative only.
    with open(os.path.join(out_dir, REPORT_FILE), "w") as f:
        json.dump(report, f, indent=2)
    write_chart(report, os.path.join(out_dir, "report.png"))
    write_markdown(report, os.path.join(out_dir, "report.md"))
