"""The names an export folder is laid out by: its report, the raw-text
signature and the class-name file.

`kd-keras export`, `verify` and `predict`, the pipeline and the exporter all
read these names here. The module imports nothing, so the command line can
use it without loading TensorFlow.

Example:

>>> REPORT_FILE, TEXT_SIGNATURE, LABELS_FILE
('report.json', 'serving_text', 'labels.txt')
"""

REPORT_FILE = "report.json"
"""The export's report, at the top of its folder."""
TEXT_SIGNATURE = "serving_text"
"""The SavedModel and TFLite signature that takes raw sentences."""
LABELS_FILE = "labels.txt"
"""The class names, one a line, beside the TFLite models and in MediaPipe's
metadata."""
EXPORT_DIR = "export"
"""A `kd-keras distill` run's export folder, inside its output."""
