"""Export a trained student and verify every artifact against Keras.

- `export_model(model, out_dir, ...)`: SavedModel (TF Serving layout),
  TFLite/LiteRT and ONNX, each quantized as asked, run in its own runtime
  and compared with the Keras logits; writes `report.json`/`.md`/`.png`
  (artifact paths stored relative to `report.json`, so the folder can move).
- `verify_export(out_dir)`: re-runs everything listed in `report.json`.
- `FORMATS`, `QUANTIZATIONS`: the names both accept (owned by
  `kd_keras.export.formats`).
- `FastWordpiecePreprocessor`: an in-graph tokenizer TFLite can keep
  (TF-Text custom ops), for `export_model(..., tflite_text=True)`.

Importing this package loads no converter or runtime: tf2onnx, onnx,
onnxruntime, ai-edge-litert (the `export` extra) and tensorflow-serving-api
(the `serving` extra) are imported when an export or a check needs them.
"""

from kd_keras.export.exporter import ExportMismatchError
from kd_keras.export.exporter import export_model
from kd_keras.export.exporter import load_model
from kd_keras.export.formats import FORMATS
from kd_keras.export.formats import QUANTIZATIONS
from kd_keras.export.text import FastWordpiecePreprocessor
from kd_keras.export.verify import TOLERANCES
from kd_keras.export.verify import ArtifactCheck
from kd_keras.export.verify import verify_export

__all__ = [
    "FORMATS",
    "QUANTIZATIONS",
    "ArtifactCheck",
    "ExportMismatchError",
    "FastWordpiecePreprocessor",
    "TOLERANCES",
    "export_model",
    "load_model",
    "verify_export",
]
