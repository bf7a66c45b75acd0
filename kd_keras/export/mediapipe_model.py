"""The MediaPipe text-classifier artifact: raw text in, on-device.

MediaPipe Tasks' `TextClassifier` (Android, iOS, web, Python) reads a TFLite
model whose metadata names a BERT WordPiece tokenizer and the class names;
it tokenizes natively, so the model itself needs builtin ops only.
`write_mediapipe_classifier` wraps a student (int32 ids -> logits) in the
three-input BERT signature MediaPipe feeds (`input_word_ids`, `input_mask`,
`input_type_ids`, each int32 `[1, L]`, `L` the student's sequence length),
puts the pipeline's `[PAD]` id wherever the mask is 0 (whatever MediaPipe
puts there) and returns softmax probabilities.

MediaPipe's tokenizer (`BertPreprocessorCalculator`) packs
`[CLS] wordpieces [SEP] 0 0 ...` truncated to `L` with `[SEP]` kept last,
as the pipeline's `WordPieceEncoder` does, but it lowercases ASCII letters
only, with no Unicode case folding (NFKC), and keeps control and format
characters inside words; `docs/mediapipe.md` measures where the ids differ.

The tensor names, the tokenizer and the class names MediaPipe reads are
written by `kd_keras.export.mediapipe_metadata`.
"""

import os
import shutil
import tempfile

import numpy as np

from kd_keras.class_ids import check_class_names
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import require
from kd_keras.export import int8_recipes
from kd_keras.export import mediapipe_metadata
from kd_keras.export.mediapipe_metadata import INPUTS
from kd_keras.export.mediapipe_metadata import OUTPUT
from kd_keras.export.tolerances import tolerance

QUANTIZATIONS = ("none", "int8")


def sequence_length(student):
    """The student's static id length `L` (its one int input is `[batch, L]`).

    Raises:
        UsageError: the student does not take one int `[batch, L]` input.
    """
    inputs = student.inputs
    if (len(inputs) != 1 or str(inputs[0].dtype) not in ("int32", "int64")
            or len(inputs[0].shape) != 2 or inputs[0].shape[1] is None):
        raise UsageError(
            f"model {student.name!r}: the MediaPipe text classifier needs one int "
            f"[batch, L] id input, got {[(t.name, str(t.dtype), tuple(t.shape)) for t in inputs]}")
    return int(inputs[0].shape[1])


def pad_id(vocabulary):
    """The id of `[PAD]` in a `vocab.txt` (0 in BERT's), which the pipeline
    pads with; 0 when it has none."""
    from kd_keras.data.tokenizer import load_vocabulary

    tokens = load_vocabulary(vocabulary)
    return tokens.index("[PAD]") if "[PAD]" in tokens else 0


def bert_inputs(ids, pad=0):
    """The three MediaPipe inputs for `[n, L]` pipeline ids, as MediaPipe's
    tokenizer fills them: the mask is 1 up to `[SEP]` (the ids that are not
    the padding id `pad`), segment ids are all 0.

    Example:

    >>> bert_inputs(np.array([[2, 7, 3, 0]]))["input_mask"].tolist()
    [[1, 1, 1, 0]]
    """
    ids = np.asarray(ids, np.int32)
    return {"input_word_ids": ids, "input_mask": (ids != pad).astype(np.int32),
            "input_type_ids": np.zeros_like(ids)}


def _write_saved_model(student, length, directory, pad):
    import keras
    import tensorflow as tf

    dtype = student.inputs[0].dtype
    archive = keras.export.ExportArchive()
    archive.track(student)

    def serve(input_word_ids, input_mask, input_type_ids):
        # Padding is the pipeline's `[PAD]` id whatever MediaPipe pads with;
        # segment ids are 0 for one sentence and the students have none.
        del input_type_ids
        ids = input_word_ids * input_mask
        if pad:
            ids += pad * (1 - input_mask)
        ids = tf.cast(ids, dtype)
        logits = tf.cast(student(ids, training=False), tf.float32)
        return {OUTPUT: tf.nn.softmax(logits, axis=-1)}

    archive.add_endpoint(
        "serving_default", serve,
        input_signature=[tf.TensorSpec([1, length], tf.int32, name=n) for n in INPUTS])
    archive.write_out(directory, verbose=False)
    return directory


# The int8 recipes tried, in order (`kd_keras.export.int8_recipes`): softmax
# always stays in float, as int8 probabilities come in steps of 1/256 and
# close classes would tie; then attention and LayerNorm in float too (tried
# only when the model has such ops); then dynamic range.
INT8_RECIPES = (
    int8_recipes.Int8Recipe("int8, float softmax", float_ops=("SOFTMAX",)),
    int8_recipes.RECIPES["tflite"][1],
    int8_recipes.DYNAMIC_RANGE,
)
# What a calibrated recipe must reach on the representative ids to be kept.
# MediaPipe's classifier must keep the Keras decisions as its tolerance says
# (`tolerances.FORMAT_TOLERANCES`: a quarter of the flips the other int8
# artifacts may make), so the logit error limit (`int8_recipes.logit_error`)
# is a tenth of theirs (docs/mediapipe.md has the measurements).
CALIBRATION_AGREEMENT = tolerance("mediapipe", "int8")["min_top1_agreement"]
CALIBRATION_LOGIT_ERROR = 0.004


def _keras_logits(student, ids, batch_size=256):
    return np.concatenate([
        np.asarray(student(ids[i:i + batch_size], training=False), np.float64)
        for i in range(0, len(ids), batch_size)])


def probabilities(flatbuffer, ids, pad=0):
    """Runs a MediaPipe model's flatbuffer in the LiteRT interpreter (builtin
    ops only, one thread) on `[n, L]` pipeline ids, one sentence a call as
    MediaPipe runs it; returns `[n, classes]` probabilities."""
    litert = require("ai_edge_litert.interpreter", "export", "TFLite verification")
    runner = litert.Interpreter(model_content=bytes(flatbuffer),
                                num_threads=1).get_signature_runner()
    feeds = bert_inputs(ids, pad)
    return np.concatenate([
        runner(**{k: v[i:i + 1] for k, v in feeds.items()})[OUTPUT]
        for i in range(len(ids))]).astype(np.float64)


def _check_calibration(flatbuffer, ids, reference_logits, pad):
    """`(top-1 agreement, logit_error)` of the model on calibration ids."""
    probs = probabilities(flatbuffer, ids, pad)
    log_probs = np.log(np.maximum(probs, 1e-30))
    centred = reference_logits - reference_logits.mean(-1, keepdims=True)
    error = int8_recipes.logit_error(log_probs - log_probs.mean(-1, keepdims=True), centred)
    agreement = float(np.mean(probs.argmax(-1) == reference_logits.argmax(-1)))
    return agreement, float(error)


def convert(student, quantization="none", representative_ids=None, pad=0, saved_model=None):
    """The student in MediaPipe's BERT signature as a TFLite flatbuffer
    (builtin ops only), without metadata.

    Args:
        student: a `keras.Model` on `[batch, L]` int ids -> logits.
        quantization: `"none"` or `"int8"`.
        representative_ids: `[n, L]` pipeline ids; required for `"int8"`.
        pad: the vocabulary's `[PAD]` id (`pad_id`).
        saved_model: optional folder for the wrapper SavedModel: written on
            first use, then reused (an export's quantizations share it);
            default: a temporary folder.

    Returns:
        `(flatbuffer bytes, recipe name)`: an int8 model takes the first of
        `INT8_RECIPES` that keeps the student's decisions on the
        representative ids (`CALIBRATION_AGREEMENT` and
        `CALIBRATION_LOGIT_ERROR`), else the closest; the recipe is None
        for `"none"`.
    """
    from kd_keras.export import tflite as tflite_export

    if quantization not in QUANTIZATIONS:
        raise UsageError(f"quantization: the MediaPipe artifact has no {quantization!r} "
                         f"(known: {', '.join(QUANTIZATIONS)})")
    length = sequence_length(student)
    if quantization == "int8":
        if representative_ids is None:
            raise UsageError("representative_ids: required by quantization 'int8'")
        ids = np.asarray(representative_ids)
        if ids.ndim != 2 or ids.shape[1] != length or ids.dtype.kind not in "iu":
            raise UsageError(f"representative_ids: expected [n, {length}] int ids, got "
                             f"{ids.dtype} {ids.shape}")
        ids = ids[:int8_recipes.CHECK_EXAMPLES].astype(np.int32)
    scratch = tempfile.mkdtemp(prefix="kd_keras_mediapipe_")
    try:
        saved_model = saved_model or os.path.join(scratch, "sm")
        if not os.path.isdir(saved_model):
            _write_saved_model(student, length, saved_model, pad)
        if quantization == "none":
            return tflite_export.convert_saved_model(saved_model), None
        reference = _keras_logits(student, ids)
        ops, tried = [], set()

        def build(recipe):
            if recipe.float_ops and ops and not (set(recipe.float_ops) & ops[0]) - tried:
                return None  # It would keep no other op in float: the same model.
            flatbuffer = tflite_export.convert_saved_model(
                saved_model, recipe.quantization, bert_inputs(ids, pad),
                float_ops=recipe.float_ops)
            ops[:] = ops or [mediapipe_metadata.builtin_ops(flatbuffer)]
            tried.update(recipe.float_ops)
            return (flatbuffer, *_check_calibration(flatbuffer, ids, reference, pad))

        recipe, flatbuffer = int8_recipes.first_that_holds(
            INT8_RECIPES, build, CALIBRATION_AGREEMENT, CALIBRATION_LOGIT_ERROR)
        return flatbuffer, recipe.name
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_mediapipe_classifier(student, vocabulary, labels, path, quantization="none",
                               representative_ids=None):
    """Writes a student as a model MediaPipe's `TextClassifier` runs.

    The file has three int32 `[1, L]` inputs (`input_word_ids`,
    `input_mask`, `input_type_ids`), softmax probabilities out, builtin
    TFLite ops only, and metadata with the BERT tokenizer and the class
    names, so MediaPipe tokenizes raw text itself.

    Args:
        student: a `keras.Model` on `[batch, L]` int32 WordPiece ids ->
            logits.
        vocabulary: the `vocab.txt` its ids come from.
        labels: the class names, in class-id order.
        path: the `.tflite` file to write.
        quantization: `"none"` or `"int8"`.
        representative_ids: `[n, L]` ids to calibrate int8 on.

    Returns:
        `path`.

    Raises:
        MissingDependencyError: `mediapipe` is not installed (the `mobile`
            extra).
        UsageError: a student without one `[batch, L]` id input or whose
            TFLite graph has loops (more than one subgraph), labels that do
            not match its classes, a quantization MediaPipe lacks.
        UnsupportedOpError: an op that is not a TFLite builtin.

    Example:

    >>> write_mediapipe_classifier(student, "vocab.txt", ["neg", "pos"],
    ...                            "out/model.tflite")  # doctest: +SKIP
    'out/model.tflite'
    """
    write_classifier(student, vocabulary, labels, path, quantization, representative_ids)
    return path


def write_classifier(student, vocabulary, labels, path, quantization="none",
                     representative_ids=None, saved_model=None):
    """`write_mediapipe_classifier`, returning the int8 recipe used (None
    for `"none"`); `saved_model` as in `convert`."""
    mediapipe_metadata.require_mediapipe()
    sequence_length(student)
    classes = student.outputs[0].shape[-1]
    labels = check_class_names(labels, len(labels) if classes is None else classes)
    if not os.path.isfile(vocabulary):
        raise MissingFileError(f"{vocabulary}: vocab.txt not found")
    flatbuffer, recipe = convert(student, quantization, representative_ids,
                                 pad_id(vocabulary), saved_model)
    subgraphs = mediapipe_metadata.subgraph_count(flatbuffer)
    if subgraphs != 1:  # MediaPipe would take it for a Gemma embedding model.
        raise UsageError(
            f"model {student.name!r}: MediaPipe's text classifier runs a TFLite model with "
            f"one subgraph, this one has {subgraphs} (a loop, e.g. a GRU that is not unrolled)")
    model = mediapipe_metadata.with_metadata(flatbuffer, vocabulary, labels)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model)
    return recipe
