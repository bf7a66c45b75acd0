"""Setting aside the artifacts that missed their tolerance.

An export run by the pipeline (`kd-keras distill`) keeps what passed: each
artifact that missed its verification tolerance moves, with its sidecar,
from `PATH` to `rejected/PATH` in the export folder, and its report entry
moves from `artifacts` to `rejected` (with its `failures`). Nothing that
TF Serving or a deployment script would pick up stays in the served layout,
and nothing measured is lost. `verify_export` skips `rejected/`.
"""

import os

from kd_keras.export.inventory import REJECTED_DIR
from kd_keras.export.layout import sidecar_path


def describe(entry):
    """`format/quantization[/text]`, the name messages give an artifact.

    Example:

    >>> describe({"format": "tflite", "quantization": "int8", "validation": "text"})
    'tflite/int8/text'
    """
    text = "/text" if entry.get("validation") == "text" else ""
    return f"{entry['format']}/{entry['quantization']}{text}"


def failure_lines(artifacts):
    """`name: reason` for each reason each artifact missed its tolerance."""
    return [f"{describe(a)}: {r}" for a in artifacts for r in a.get("failures", ())]


def set_aside(folder, artifacts):
    """Moves the failed artifacts of `folder` into `folder/rejected/`.

    Entries that share a file with a failed one (a SavedModel's two
    signatures) go with it.

    Args:
        folder: the export (staging) folder.
        artifacts: report entries with `path` relative to `folder`.

    Returns:
        `(kept, rejected)`: lists of entries; a rejected entry's `path` is
        its new place, `rejected/PATH`.
    """
    failed = {a["path"] for a in artifacts if a.get("failures")}
    kept, rejected = [], []
    for path in sorted(failed):
        src = os.path.join(folder, *path.split("/"))
        dst = os.path.join(folder, REJECTED_DIR, *path.split("/"))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        os.rename(src, dst)
        sidecar = sidecar_path(src)  # A TFLite model's metadata.
        if path.endswith(".tflite") and os.path.isfile(sidecar):
            os.rename(sidecar, sidecar_path(dst))
    for a in artifacts:
        if a["path"] in failed:
            rejected.append({**a, "path": f"{REJECTED_DIR}/{a['path']}"})
        else:
            kept.append(a)
    return kept, rejected
