"""`TextExport`: what `export_model` adds for a model that reads token ids
made from text.

A student trained on WordPiece ids ships with its tokenizer: the SavedModel
gets a `serving_text` signature, and optionally a text TFLite file and
MediaPipe's text classifier, each verified on raw sentences against the
Keras model. The options travel together, so `export_model` takes them as
one object (`export_model(..., text=TextExport(...))`).
"""

import dataclasses

from kd_keras.errors import UsageError


@dataclasses.dataclass(frozen=True)
class TextExport:
    """The raw-text artifacts of an export and the sentences that verify them.

    Args:
        preprocessor: a callable from strings to the model's inputs (e.g.
            `kd_keras.export.text.WordPiecePreprocessor`); adds the
            SavedModel's `serving_text` signature (and raw-text TF Serving
            warmup requests). `None` with `mediapipe_vocabulary` alone.
        tflite: also convert `serving_text`, tokenizer included, to
            `tflite/model_text[_<quantization>].tflite`, one per TFLite
            quantization, with the TF-Text custom ops (KerasHub tokenizers
            use regex ops TFLite lacks).
        validation_text: `texts` or `(texts, labels)`: raw strings the text
            artifacts are verified on; required with `tflite` or
            `mediapipe_vocabulary`.
        representative_text: sentences to calibrate the int8 text model
            (default: the validation text).
        reference_inputs: the model inputs `validation_text` stands for
            (e.g. the training pipeline's own token ids): the text artifacts
            are compared with the Keras model on these, so a tokenizer that
            differs from training's fails. Default: the preprocessor's
            output.
        mediapipe_vocabulary: the `vocab.txt` of the model's ids; also
            writes MediaPipe's text classifier, `mediapipe/model.tflite` and
            (with `"int8"`) `mediapipe/model_int8.tflite`, verified in
            MediaPipe's `TextClassifier` on `validation_text`. Without
            `mediapipe` (the `mobile` extra) they are skipped with one line.

    Example:

    >>> TextExport(validation_text=["a fine film"], mediapipe_vocabulary="vocab.txt").tflite
    False
    """

    preprocessor: object = None
    tflite: bool = False
    validation_text: object = None
    representative_text: object = None
    reference_inputs: object = None
    mediapipe_vocabulary: object = None

    def __post_init__(self):
        if not isinstance(self.tflite, bool):
            raise UsageError(f"text.tflite: must be true or false, got {self.tflite!r}")
        if self.preprocessor is not None and not callable(self.preprocessor):
            raise UsageError("text.preprocessor: must be a callable from strings to the "
                             f"model's inputs, got {type(self.preprocessor).__name__}")
