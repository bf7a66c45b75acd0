"""The names an export folder is laid out by: its report, the raw-text
signature, the class-name file and the TFLite sidecars.

`kd-keras export`, `verify` and `predict`, the pipeline and the exporter all
read these names here. The module imports nothing, so the command line can
use it without loading TensorFlow.

Example:

>>> REPORT_FILE, TEXT_SIGNATURE, LABELS_FILE
('report.json', 'serving_text', 'labels.txt')
"""

import os

REPORT_FILE = "report.json"
"""The export's report, at the top of its folder."""
TEXT_SIGNATURE = "serving_text"
"""The SavedModel and TFLite signature that takes raw sentences."""
LABELS_FILE = "labels.txt"
"""The class names, one a line, beside the TFLite models and in MediaPipe's
metadata."""
EXPORT_DIR = "export"
"""A `kd-keras distill` run's export folder, inside its output."""


def sidecar_path(model_path):
    """Where a TFLite model's metadata (its `.json` sidecar) sits: beside it,
    under the same name.

    Example:

    >>> sidecar_path("tflite/model_int8.tflite")
    'tflite/model_int8.json'
    """
    return os.path.splitext(model_path)[0] + ".json"


def companion_paths(model_path):
    """The files that travel with a TFLite model, whether or not they exist:
    its sidecar and the class names beside it.

    Example:

    >>> companion_paths("tflite/model_int8.tflite")
    ('tflite/model_int8.json', 'tflite/labels.txt')
    """
    folder = os.path.dirname(model_path)
    labels = f"{folder}/{LABELS_FILE}" if folder else LABELS_FILE
    return sidecar_path(model_path), labels
