"""`load_model`: a `.keras` file, loaded safely, or one line saying why not.

The one loader of `.keras` files, for students (`kd-keras export`) and
teachers (`teacher.model: FILE.keras`, `kd_keras.teachers.load_teacher`)
alike. It registers the kd_keras classes a saved model may hold before
Keras reads the file.
"""

import os
import zipfile

import keras

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line


def load_model(path):
    """Loads a `.keras` file with `safe_mode=True`, with one-line errors.

    The kd_keras classes that saved students and teachers hold (a pruned
    vocabulary's `VocabularyMap`, text teachers with their BERT encoder and
    pooling, ensembles, SavedModel layers) are registered first.

    Args:
        path: the `.keras` file.

    Returns:
        The `keras.Model`.

    Raises:
        MissingFileError: the file does not exist.
        UsageError: the name does not end in `.keras`, or the path is not a
            regular file (a FIFO or a device would make a read that never
            ends).
        DataError: the archive is damaged or Keras cannot load it.

    Example:

    >>> load_model("missing.keras")
    Traceback (most recent call last):
    ...
    kd_keras.errors.MissingFileError: missing.keras: model file does not exist
    >>> import tempfile
    >>> fifo = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> os.mkfifo(fifo)
    >>> load_model(fifo)
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: ...model.keras: not a regular file; a model is a .keras file
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isfile(path) and not os.path.isdir(path):
        raise UsageError(f"{path}: not a regular file; a model is a .keras file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a folder; a model is a .keras file")
    if not os.path.isfile(path):
        raise MissingFileError(f"{path}: model file does not exist")
    if not path.endswith(".keras"):
        raise UsageError(f"{path}: not a .keras model file")
    damaged = _damaged_archive(path)
    if damaged:
        raise DataError(f"{path}: cannot load the model (damaged .keras archive: {damaged})")
    _register_classes()
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:
        message = one_line(e)
        if "safe_mode" in message or "unsafe_deserialization" in message:
            # Keras's own advice (safe_mode=False) cannot be followed here:
            # kd_keras never runs code stored in a file.
            raise DataError(
                f"{path}: cannot load the model: it holds a Lambda layer (Python code), "
                "which kd_keras never loads from a file; save it without the Lambda (a "
                "final softmax goes too: kd_keras needs logits)") from None
        raise DataError(f"{path}: cannot load the model ({message})") from None


def _register_classes():
    """Imports the modules whose classes a kd_keras `.keras` file may hold
    (each registers its classes with Keras when imported)."""
    from kd_keras.students import vocabulary  # noqa: F401
    from kd_keras.teachers import ensemble  # noqa: F401
    from kd_keras.teachers import saved_model  # noqa: F401
    from kd_keras.teachers import text  # noqa: F401


def _damaged_archive(path):
    """Why `path` is not a readable `.keras` zip archive, or None.

    Keras reports an unreadable archive as "File not found", which misleads
    when the file is right there.

    Example:

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".keras") as f:
    ...     _ = f.write(b"PK\\x03\\x04 truncated"); f.flush()
    ...     _damaged_archive(f.name)
    'not a zip file'
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return "not a zip file"
    except (OSError, EOFError) as e:
        return str(e) or type(e).__name__
    if bad is not None:
        return f"{bad} fails its CRC check"
    if "config.json" not in names:
        return "no config.json inside"
    return None
