"""Export a trained student and verify every artifact against Keras.

- `export_model(model, out_dir, ...)`: SavedModel (TF Serving layout),
  TFLite/LiteRT and ONNX, each quantized as asked, run in its own runtime
  and compared with the Keras logits; writes `report.json`/`.md`/`.png`
  (artifact paths stored relative to `report.json`, so the folder can move).
- `verify_export(out_dir)`: re-runs every artifact in the folder against
  `report.json` (one it does not list fails; `rejected/` is skipped).
- `FORMATS`, `QUANTIZATIONS`: the names both accept (owned by
  `kd_keras.export.formats`).
- `WordPiecePreprocessor`: the pipeline's tokenizer (`WordPieceEncoder`) as
  TFLite-convertible ops, for `export_model(..., text=TextExport(preprocessor=...,
  tflite=True))`: `serving_text` and `tflite/model_text*.tflite` take
  raw sentences. `FastWordpiecePreprocessor`: a plainer in-graph tokenizer.

Names are imported on first use, so `kd_keras.export.formats` (and the
command line's help) loads no TensorFlow. Importing this package loads no
converter or runtime either: tf2onnx, onnx,
onnxruntime, ai-edge-litert (the `export` extra) and tensorflow-serving-api
(the `serving` extra) are imported when an export or a check needs them.
"""

from kd_keras._lazy import lazy_exports

_ATTRIBUTES = {
    "ExportMismatchError": "kd_keras.export.exporter",
    "export_model": "kd_keras.export.exporter",
    "load_model": "kd_keras.files.models",
    "FORMATS": "kd_keras.export.formats",
    "QUANTIZATIONS": "kd_keras.export.formats",
    "FastWordpiecePreprocessor": "kd_keras.export.text",
    "WordPiecePreprocessor": "kd_keras.export.text",
    "TOLERANCES": "kd_keras.export.tolerances",
    "TextExport": "kd_keras.export.text_options",
    "ArtifactCheck": "kd_keras.export.verify",
    "verify_export": "kd_keras.export.verify",
}


__getattr__, __dir__ = lazy_exports(__name__, _ATTRIBUTES)


__all__ = sorted(_ATTRIBUTES)
