"""The artifacts an export folder holds, whatever its report says.

`verify_export` checks every artifact it finds here against `report.json`,
so a file the report does not list (an entry deleted, a model dropped in)
is a failure rather than something silently served. An artifact is a
`.tflite` or `.onnx` file, or a SavedModel folder (one holding
`saved_model.pb` or, as TensorFlow also loads, `saved_model.pbtxt`),
anywhere in the folder except `rejected/`, where an export sets aside the
artifacts that missed their tolerance. A `.tflite` file under `mediapipe/`
is MediaPipe's text classifier (format `"mediapipe"`). A symlink to a
folder is refused: kd_keras writes none, and a server would load whatever
it points to (a rejected model, say) as a version of the model.

Example:

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> for p in ("tflite/model.tflite", "tflite/model.json", "mediapipe/model.tflite",
...           "saved_model/m/1/saved_model.pb", "rejected/tflite/model_int8.tflite"):
...     os.makedirs(os.path.dirname(os.path.join(root, p)), exist_ok=True)
...     open(os.path.join(root, p), "w").close()
>>> for fmt, path in artifact_files(root):
...     print(fmt, path)
mediapipe mediapipe/model.tflite
saved_model saved_model/m/1
tflite tflite/model.tflite
"""

import os

from kd_keras.errors import DataError
from kd_keras.errors import KdKerasError
from kd_keras.export.layout import REPORT_FILE
from kd_keras.export.safe_reading import check_inside
from kd_keras.export.safe_reading import read_json_file

REJECTED_DIR = "rejected"
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
FILE_FORMATS = {".tflite": "tflite", ".onnx": "onnx"}
# A `.tflite` file in this top folder is MediaPipe's text classifier.
MEDIAPIPE_DIR = "mediapipe"


def artifact_files(out_dir):
    """Lists the artifacts under `out_dir`, except those in `rejected/`.

    Args:
        out_dir: an export folder.

    Returns:
        Sorted `(format, path)` pairs; `path` is relative to `out_dir`, with
        `/` separators, as `report.json` stores it.

    Raises:
        DataError: a symlink whose real path leaves `out_dir`, a symlink to
            a folder, or an artifact that is not a regular file
            (`safe_reading.check_inside`).
    """
    found = []
    for root, dirs, files in os.walk(out_dir):
        rel_root = os.path.relpath(root, out_dir)
        if rel_root == ".":
            dirs[:] = [d for d in dirs if d != REJECTED_DIR]
        for name in dirs + files:  # Symlinks are not followed here: checked.
            full = os.path.join(root, name)
            if os.path.islink(full) or (
                    name in files and os.path.splitext(name)[1].lower() in FILE_FORMATS):
                check_inside(out_dir, full, full)
            if os.path.islink(full) and os.path.isdir(full):
                raise DataError(f"{full}: a symlink to a folder, which kd_keras never "
                                "writes and a server would load as a model; remove it")
        if rel_root != "." and any(f in files for f in SAVED_MODEL_FILES):
            found.append(("saved_model", _portable(rel_root)))
            dirs[:] = []  # Its variables and assets are part of it.
            continue
        for name in files:
            fmt = FILE_FORMATS.get(os.path.splitext(name)[1].lower())
            if fmt == "tflite" and rel_root.split(os.sep)[0] == MEDIAPIPE_DIR:
                fmt = "mediapipe"
            if fmt is not None:
                found.append((fmt, _portable(os.path.join(rel_root, name))))
    return sorted(found, key=lambda item: item[1])


def same_path(a, b):
    """True when two report-style relative paths name the same file.

    Example:

    >>> same_path("tflite/./model.tflite", "tflite/model.tflite")
    True
    """
    return os.path.normpath(a.replace("\\", "/")) == os.path.normpath(b.replace("\\", "/"))


def _portable(relative_path):
    return os.path.normpath(relative_path).replace(os.sep, "/")


def earlier_versions(staging, listed, previous_dir, checksum):
    """The SavedModel versions an earlier export left, for `report.json`.

    They stay beside the new version (TF Serving may still serve them) and
    `verify_export` checks them by checksum; the validation data belongs to
    the new model, so their logits are not compared.

    Args:
        staging: the new export's staging folder.
        listed: relative paths the new report already lists.
        previous_dir: the export folder being replaced (its `report.json`
            gives each version's checksum as first recorded).
        checksum: `path -> sha256` for a version the old report lacks.

    Returns:
        A list of `{"format", "quantization", "path", "sha256"}` dicts.
    """
    recorded = _recorded_checksums(previous_dir)
    versions = []
    for fmt, path in artifact_files(staging):
        if fmt != "saved_model" or any(same_path(path, p) for p in listed):
            continue
        sha = recorded.get(os.path.normpath(path))
        if sha is None:
            sha = checksum(os.path.join(staging, *path.split("/")))
        versions.append({"format": fmt, "quantization": "none", "path": path, "sha256": sha})
    return versions


def _recorded_checksums(previous_dir):
    """`{normalised path: sha256}` of the SavedModels an earlier report
    lists (empty when there is none or it is unreadable)."""
    try:
        old = read_json_file(os.path.join(previous_dir, REPORT_FILE), root=previous_dir)
        entries = list(old.get("artifacts", [])) + list(old.get("earlier_versions", []))
    except (KdKerasError, OSError, TypeError):
        return {}
    out = {}
    for e in entries:
        if isinstance(e, dict) and e.get("format") == "saved_model" and isinstance(
            e.get("path"), str) and isinstance(e.get("sha256"), str):
            out[os.path.normpath(e["path"].replace("\\", "/"))] = e["sha256"]
    return out
