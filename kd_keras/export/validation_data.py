"""The validation data an export stores for `kd-keras verify`.

`export_model` keeps, in `verification/validation.npz`, each validation set
an artifact was checked on (`"model"`: the model's own inputs; `"text"`:
raw sentences, for the artifacts that take text) with the Keras model's
logits and the labels, so `verify_export` can run the same comparison
again later, anywhere. Strings are stored as UTF-8 bytes and the archive is
read back without pickles.

Example:

>>> import tempfile
>>> folder = tempfile.mkdtemp()
>>> sets = {"text": ({"text": np.array(["good film"])}, np.array([[0.1, 0.9]]), None)}
>>> _ = save_validation(folder, sets)
>>> inputs, logits, labels = load_validation(folder)["text"]
>>> inputs["text"].tolist(), logits.tolist(), labels
([b'good film'], [[0.1, 0.9]], None)
"""

import os

import numpy as np

from kd_keras.class_ids import label_problem
from kd_keras.errors import DataError
from kd_keras.export.inputs import load_array_file
from kd_keras.export.safe_reading import resolve_path

VALIDATION_FILE = os.path.join("verification", "validation.npz")


def save_validation(out_dir, sets):
    """Stores what `verify_export` needs to re-run the comparison.

    Args:
        out_dir: the export directory.
        sets: `{set name: (inputs, reference_logits, labels)}`; `"model"`
            holds the model's inputs, `"text"` raw strings (if any).

    Returns:
        The path of the file written.
    """
    path = os.path.join(out_dir, VALIDATION_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arrays = {}
    for name, (inputs, reference_logits, labels) in sets.items():
        for k, v in inputs.items():
            if v.dtype.kind in "OU":  # Strings as UTF-8 bytes (no pickle).
                v = np.char.encode(v.astype(str), "utf-8")
            arrays[f"{name}/input/{k}"] = v
        arrays[f"{name}/reference_logits"] = reference_logits
        if labels is not None:
            arrays[f"{name}/labels"] = np.asarray(labels)
    np.savez(path, **arrays)
    return path


def load_validation(out_dir):
    """Reads what `save_validation` stored, trusting nothing in the file.

    Args:
        out_dir: the export directory.

    Returns:
        `{set name: (inputs, reference_logits, labels)}`; strings come back
        as UTF-8 bytes, `labels` is None when none were stored.

    Raises:
        DataError: the file leads out of the folder or is not a regular
            file, holds pickled objects, is damaged, is a single array, or
            holds a set without `[n, classes]` float logits, inputs of `n`
            rows, or `n` class-id labels.
        MissingFileError: there is no stored validation data.
    """
    path = resolve_path(out_dir, VALIDATION_FILE, out_dir)
    data = load_array_file(path, path)  # No pickles; a damaged file is one line.
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an .npz archive, found a single array")
    sets = {}
    for key, value in data.items():
        name, _, rest = key.partition("/")
        inputs, ref, labels = sets.get(name, ({}, None, None))
        if rest.startswith("input/"):
            inputs[rest[len("input/") :]] = value
        elif rest == "reference_logits":
            ref = value
        elif rest == "labels":
            labels = value
        sets[name] = (inputs, ref, labels)
    for name, (inputs, ref, labels) in sets.items():
        _check_set(f"{path}: {name}", inputs, ref, labels)
    return sets


def _check_set(what, inputs, reference_logits, labels):
    """Refuses a stored set that would not compare (edited by hand: its
    checksum in `report.json` was updated too)."""
    ref = reference_logits
    if ref is None or ref.ndim != 2 or ref.dtype.kind != "f" or 0 in ref.shape:
        raise DataError(f"{what}: no [examples, classes] float reference_logits")
    n = len(ref)
    bad = [k for k, v in inputs.items() if v.ndim == 0 or len(v) != n]
    if not inputs or bad:
        raise DataError(f"{what}: expected inputs of {n} rows, one per reference logits row"
                        + (f", got {bad[0]!r}" if bad else ", got none"))
    if labels is not None:
        problem = label_problem(labels, ref.shape[1])
        if problem or labels.ndim != 1 or len(labels) != n:
            raise DataError(f"{what}: labels: {problem or f'expected {n} class ids'}")
