"""Export a trained student and verify every artifact against Keras.

- `export_model(model, out_dir, ...)`: SavedModel (TF Serving layout),
  TFLite/LiteRT and ONNX, each quantized as asked, run in its own runtime
  and compared with the Keras logits; writes `report.json`/`.md`/`.png`.
- `verify_export(out_dir)`: re-runs everything listed in `report.json`.
- `FastWordpiecePreprocessor`: an in-graph tokenizer TFLite can keep
  (TF-Text custom ops), for `export_model(..., tflite_text=True)`.
"""

from kd_keras.export.exporter import ExportMismatchError
from kd_keras.export.exporter import export_model
from kd_keras.export.exporter import load_model
from kd_keras.export.text import FastWordpiecePreprocessor
from kd_keras.export.verify import TOLERANCES
from kd_keras.export.verify import verify_export

__all__ = [
    "ExportMismatchError",
    "FastWordpiecePreprocessor",
    "TOLERANCES",
    "export_model",
    "load_model",
    "verify_export",
]
