"""What MediaPipe's text classifier reads in a TFLite model besides the graph.

MediaPipe Tasks' `TextClassifier` finds its three inputs by their names
(`INPUTS`, with metadata names `ids`, `mask`, `segment_ids`), its output
by `OUTPUT`, and its tokenizer and class names in the model's metadata:
a BERT tokenizer process unit naming `vocab.txt`, and `labels.txt` as the
output's axis labels. `with_metadata` writes all of it into a converted
model (`kd_keras.export.mediapipe_model` does the conversion);
`builtin_ops`, `input_tensor_names` and `subgraph_count` read a model's
flatbuffer.

The metadata is written here, with the flatbuffer classes MediaPipe's wheel
ships (`metadata_schema_py_generated`, `schema_py_generated`, pure Python),
not with its `metadata_writers`: their populator imports a compiled module
(`_pywrap_metadata_version`, only used to compute the minimum parser
version) that the 1.2.3 wheel does not ship, so they fail on import. What
the populator does is small and documented in MediaPipe's metadata schema:
the `ModelMetadata` flatbuffer (identifier `M001`) goes into a model buffer
listed under the model's `metadata` as `TFLITE_METADATA`, and the associated
files (`vocab.txt`, `labels.txt`) are appended to the model as a zip
archive. The minimum parser version is the one MediaPipe's
`metadata_version.cc` computes for what this metadata uses: 1.1.0, for the
input process unit with `BertTokenizerOptions` (its `VOCABULARY` file alone
needs 1.0.1).
"""

import io
import zipfile

import numpy as np

from kd_keras.errors import UsageError
from kd_keras.errors import require
from kd_keras.export.layout import LABELS_FILE

# The inputs, in MediaPipe's names: tensors `serving_default_<name>:0`, the
# names MediaPipe Model Maker's BERT classifiers use.
INPUTS = ("input_word_ids", "input_mask", "input_type_ids")
# The tensor metadata names MediaPipe finds the three inputs by.
_METADATA_NAMES = {"input_word_ids": "ids", "input_mask": "mask",
                   "input_type_ids": "segment_ids"}
OUTPUT = "probabilities"
VOCAB_FILE = "vocab.txt"
MIN_PARSER_VERSION = "1.1.0"
EXTRA = "mobile"
FEATURE = "The MediaPipe text classifier"


def require_mediapipe():
    """Imports `mediapipe`, or stops with the `pip install` line naming the
    `mobile` extra (`MissingDependencyError`)."""
    return require("mediapipe", EXTRA, FEATURE)


def _schemas():
    require_mediapipe()
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb
    from mediapipe.tasks.metadata import schema_py_generated as schema_fb

    return metadata_fb, schema_fb


def _tensor_metadata(metadata_fb, name, description, label_file=None):
    tensor = metadata_fb.TensorMetadataT()
    tensor.name = name
    tensor.description = description
    content = metadata_fb.ContentT()
    content.contentProperties = metadata_fb.FeaturePropertiesT()
    content.contentPropertiesType = metadata_fb.ContentProperties.FeatureProperties
    tensor.content = content
    tensor.stats = metadata_fb.StatsT()
    if label_file is not None:
        tensor.stats.max, tensor.stats.min = [1.0], [0.0]
        labels = metadata_fb.AssociatedFileT()
        labels.name = label_file
        labels.description = "The class names, one a line, in class-id order."
        labels.type = metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS
        tensor.associatedFiles = [labels]
    return tensor


def metadata_buffer(input_tensor_names):
    """The `ModelMetadata` flatbuffer of the classifier.

    Args:
        input_tensor_names: the model's input tensor names, in its order.

    Returns:
        `bytes` with the `M001` identifier.
    """
    import flatbuffers

    metadata_fb, _ = _schemas()
    inputs = []
    for tensor_name in input_tensor_names:
        key = next((k for k in INPUTS if k in tensor_name), None)
        if key is None:
            raise UsageError(f"MediaPipe export: unexpected input tensor {tensor_name!r}")
        inputs.append(_tensor_metadata(metadata_fb, _METADATA_NAMES[key], {
            "input_word_ids": "Tokenized ids of the input text.",
            "input_mask": "Mask with 1 for real tokens and 0 for padding tokens.",
            "input_type_ids": "0 for the first sequence, 1 for the second sequence if exists.",
        }[key]))
    vocab = metadata_fb.AssociatedFileT()
    vocab.name = VOCAB_FILE
    vocab.description = "WordPiece vocabulary, one token a line."
    vocab.type = metadata_fb.AssociatedFileType.VOCABULARY
    tokenizer = metadata_fb.ProcessUnitT()
    tokenizer.optionsType = metadata_fb.ProcessUnitOptions.BertTokenizerOptions
    tokenizer.options = metadata_fb.BertTokenizerOptionsT()
    tokenizer.options.vocabFile = [vocab]

    subgraph = metadata_fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = inputs
    subgraph.outputTensorMetadata = [
        _tensor_metadata(metadata_fb, OUTPUT, "Probabilities of the classes.", LABELS_FILE)]
    subgraph.inputProcessUnits = [tokenizer]
    model = metadata_fb.ModelMetadataT()
    model.name = "TextClassifier"
    model.description = "Classifies a sentence into known classes (kd_keras student)."
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"M001")
    return bytes(builder.Output())


def builtin_ops(flatbuffer):
    """The names of the builtin ops a TFLite model uses (`"CUSTOM"` for a
    custom or Flex op)."""
    _, schema_fb = _schemas()
    names = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if k.isupper()}
    model = schema_fb.Model.GetRootAs(flatbuffer, 0)
    codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
    return {names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())] for c in codes}


def input_tensor_names(flatbuffer):
    """The names of a TFLite model's subgraph-0 inputs, in order."""
    _, schema_fb = _schemas()
    subgraph = schema_fb.Model.GetRootAs(flatbuffer, 0).Subgraphs(0)
    return [subgraph.Tensors(subgraph.Inputs(i)).Name().decode("utf-8")
            for i in range(subgraph.InputsLength())]


def with_metadata(flatbuffer, vocabulary, labels):
    """Puts the metadata and the associated files into a TFLite model.

    Args:
        flatbuffer: the model (`convert`'s bytes).
        vocabulary: the `vocab.txt` path.
        labels: the class names, in class-id order.

    Returns:
        `bytes`: the model with `TFLITE_METADATA`, then a zip of
        `vocab.txt` and `labels.txt`.
    """
    import flatbuffers

    _, schema_fb = _schemas()
    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAs(flatbuffer, 0))
    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(metadata_buffer(input_tensor_names(flatbuffer)), np.uint8)
    model.buffers = list(model.buffers or []) + [buffer]
    entry = schema_fb.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or [])
                      if m.name not in (b"TFLITE_METADATA", "TFLITE_METADATA")] + [entry]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"TFL3")
    out = io.BytesIO(bytes(builder.Output()))
    out.seek(0, io.SEEK_END)
    with open(vocabulary, "rb") as f:
        vocab_bytes = f.read()
    # Stored, not deflated: MediaPipe refuses a compressed archive (measured:
    # "Expected uncompressed zip archive").
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(VOCAB_FILE, vocab_bytes)
        archive.writestr(LABELS_FILE, "".join(f"{l}\n" for l in labels))
    return out.getvalue()


def subgraph_count(flatbuffer):
    """The number of subgraphs in a TFLite model (one unless it has loops)."""
    _, schema_fb = _schemas()
    return schema_fb.Model.GetRootAs(flatbuffer, 0).SubgraphsLength()
