"""BERT-family teachers converted by KerasHub (presets or local Hugging Face
checkpoint directories), running in the TensorFlow graph.

KerasHub's `BertBackbone` always uses the tanh approximation of GELU (as the
original TensorFlow BERT did), while Hugging Face checkpoints declare their
activation in `config.json` (`hidden_act`, exact `"gelu"` by default, and in
all-MiniLM-L6-v2). `BertEncoder` is a `BertBackbone` that honours
`hidden_act`, so a converted checkpoint gives the same outputs as
`transformers` does.
"""

import os

import keras
import keras_hub

from kd_keras._keras_compat import set_feedforward_activation
from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.teachers.checkpoints import MINILM_NAMES
from kd_keras.teachers.checkpoints import read_checkpoint_json


@keras.saving.register_keras_serializable(package="kd_keras")
def exact_gelu(x):
    """GELU with the exact erf form, as `torch.nn.GELU()`."""
    return keras.activations.gelu(x, approximate=False)


@keras.saving.register_keras_serializable(package="kd_keras")
def approximate_gelu(x):
    """GELU with the tanh approximation, as KerasHub's BERT."""
    return keras.activations.gelu(x, approximate=True)


# `config.json` `hidden_act` values -> Keras activations.
_ACTIVATIONS = {
    "gelu": exact_gelu,
    "gelu_new": approximate_gelu,
    "gelu_pytorch_tanh": approximate_gelu,
    "gelu_fast": approximate_gelu,
    "relu": keras.activations.relu,
}


@keras.saving.register_keras_serializable(package="kd_keras")
class BertEncoder(keras_hub.models.BertBackbone):
    """A `keras_hub.models.BertBackbone` with a chosen feed-forward activation.

    Args:
        hidden_act: the Hugging Face `hidden_act` name: `"gelu"` (exact),
            `"gelu_new"` / `"gelu_pytorch_tanh"` (tanh approximation, what
            `BertBackbone` uses) or `"relu"`.
        **kwargs: `BertBackbone` arguments.

    Example:

    >>> enc = BertEncoder(vocabulary_size=30, num_layers=1, num_heads=2,
    ...                   hidden_dim=8, intermediate_dim=16, hidden_act="gelu")
    >>> enc.hidden_act
    'gelu'
    """

    def __init__(self, hidden_act="gelu_new", **kwargs):
        if hidden_act not in _ACTIVATIONS:
            raise UsageError(
                f"hidden_act: {hidden_act!r} is not supported (known: "
                f"{', '.join(sorted(_ACTIVATIONS))})")
        super().__init__(**kwargs)
        self.hidden_act = hidden_act
        activation = _ACTIVATIONS[hidden_act]
        for i in range(self.num_layers):
            block = self.get_layer(f"transformer_layer_{i}")
            set_feedforward_activation(block, activation)

    def get_config(self):
        config = super().get_config()
        config["hidden_act"] = self.hidden_act
        return config


@keras.saving.register_keras_serializable(package="kd_keras")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of the token vectors where the padding mask is true (the pooling
    sentence-transformers models such as all-MiniLM-L6-v2 were trained with).

    Call arguments:
        sequence: `[batch, length, hidden]` float tensor.
        padding_mask: `[batch, length]` bool or 0/1 tensor.

    Example:

    >>> import numpy as np
    >>> x = np.array([[[1.0], [3.0], [100.0]]])
    >>> float(MaskedMeanPooling()(x, np.array([[1, 1, 0]]))[0, 0])
    2.0
    """

    def call(self, sequence, padding_mask):
        mask = keras.ops.cast(padding_mask, sequence.dtype)[:, :, None]
        total = keras.ops.sum(sequence * mask, axis=1)
        count = keras.ops.maximum(keras.ops.sum(mask, axis=1), 1e-9)
        return total / count

    def compute_output_shape(self, sequence_shape, padding_mask_shape=None):
        return (sequence_shape[0], sequence_shape[2])


def _is_local_hf_checkpoint(source):
    return os.path.isdir(source) and os.path.isfile(
        os.path.join(source, "config.json")
    )


def load_bert_backbone(source):
    """Loads a BERT-family encoder with KerasHub, faithful to its checkpoint.

    Args:
        source: a KerasHub preset name or directory, or a local Hugging Face
            checkpoint directory (`config.json` + `model.safetensors`).

    Returns:
        A `BertEncoder` with the checkpoint's weights, taking a dict of
        `token_ids`, `padding_mask`, `segment_ids` and returning
        `sequence_output` and `pooled_output`.

    Example:

    >>> backbone = load_bert_backbone("path/to/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> backbone.hidden_dim                                          # doctest: +SKIP
    384
    """
    source = str(source)
    if "://" not in source and os.path.sep in source and not os.path.exists(source):
        raise MissingFileError(f"{source}: no such checkpoint directory")
    hidden_act = "gelu_new"  # KerasHub presets: tanh-approximate GELU.
    if _is_local_hf_checkpoint(source):
        config = read_checkpoint_json(os.path.join(source, "config.json"))
        if "model_type" in config:  # Hugging Face, not a KerasHub preset.
            if config["model_type"] != "bert":
                raise UsageError(
                    f"{source}: model_type '{config['model_type']}' is not "
                    "BERT; load it with runtime='torch' instead")
            hidden_act = config.get("hidden_act", "gelu")
    presets = keras_hub.models.BertBackbone.presets
    if "://" not in source and not os.path.exists(source) and source not in presets:
        raise UsageError(
            f"{source}: unknown backbone; known: {', '.join(MINILM_NAMES)} (the installed "
            f"all-MiniLM-L6-v2), the KerasHub presets {', '.join(sorted(presets))}, a local "
            "checkpoint folder, or an hf:// or kaggle:// URI")
    try:
        converted = keras_hub.models.BertBackbone.from_preset(source)
    except (ValueError, FileNotFoundError, KeyError) as e:  # KerasHub's are multi-line.
        raise UsageError(f"{source}: cannot load a BERT backbone ({' '.join(str(e).split())})"
                         ) from e
    encoder = BertEncoder(hidden_act=hidden_act, **converted.get_config())
    encoder.set_weights(converted.get_weights())
    return encoder


def _classifier_weights(source):
    """Returns the `(kernel, bias)` of a `BertForSequenceClassification`
    checkpoint's head, or `None` when it has none. A sharded checkpoint's
    head is read from the shards its `model.safetensors.index.json` names."""
    from safetensors import safe_open

    tensors = {}
    for path in _safetensors_files(source):
        with safe_open(path, framework="np") as f:
            for key in f.keys():
                if key in HEAD_KEYS:
                    tensors[key] = f.get_tensor(key)
    for prefix in ("", "bert."):
        kernel, bias = (tensors.get(f"{prefix}classifier.{part}") for part in ("weight", "bias"))
        if kernel is not None and bias is not None:
            return kernel.T, bias
    return None


HEAD_KEYS = ("classifier.weight", "classifier.bias", "bert.classifier.weight",
             "bert.classifier.bias")
"""Where a `BertForSequenceClassification` checkpoint keeps its head."""


def _safetensors_files(source):
    """The checkpoint's safetensors files: `model.safetensors`, or the
    shards its index names (each a plain file of the folder: a name read
    from a file is not trusted to point anywhere else)."""
    single = os.path.join(source, "model.safetensors")
    index = os.path.join(source, "model.safetensors.index.json")
    if os.path.isfile(single) or not os.path.isfile(index):
        return [single] if os.path.isfile(single) else []
    weight_map = read_checkpoint_json(index)
    weight_map = weight_map.get("weight_map") if isinstance(weight_map, dict) else None
    if not isinstance(weight_map, dict):
        raise DataError(f"{index}: has no weight_map object")
    files = []
    for name in sorted({weight_map[key] for key in HEAD_KEYS if key in weight_map}):
        path = os.path.join(source, str(name))
        if (not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", "..")
                or os.path.islink(path) or not os.path.isfile(path)):
            raise DataError(f"{index}: the shard {name!r} is not a file of the checkpoint's "
                            "folder")
        files.append(path)
    return files


def _default_pooling(source):
    pooling_config = os.path.join(str(source), "1_Pooling", "config.json")
    if os.path.isfile(pooling_config):
        config = read_checkpoint_json(pooling_config)
        if config.get("pooling_mode_cls_token"):
            return "cls"
        return "mean"
    return "pooled"


def build_bert_classifier(backbone, num_classes, pooling="mean", name="bert_teacher"):
    """Puts a pooling and a dense logits head on a BERT backbone.

    Args:
        backbone: a `BertBackbone` (or `BertEncoder`).
        num_classes: number of logits.
        pooling: `"mean"` (masked mean of the token vectors), `"cls"` (the
            `[CLS]` vector) or `"pooled"` (BERT's tanh pooler on `[CLS]`, what
            `BertForSequenceClassification` uses).
        name: the model's name.

    Returns:
        A functional `keras.Model` taking `{"token_ids", "padding_mask",
        "segment_ids"}` and returning `[batch, num_classes]` logits. Its
        layers are named `backbone`, `pooling` and `head`.
    """
    inputs = {
        "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
        "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
        "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
    }
    backbone.name = "backbone"
    outputs = backbone(inputs)
    if pooling == "mean":
        features = MaskedMeanPooling(name="pooling")(
            outputs["sequence_output"], inputs["padding_mask"]
        )
    elif pooling == "cls":
        features = keras.layers.Identity(name="pooling")(
            outputs["sequence_output"][:, 0, :]
        )
    elif pooling == "pooled":
        features = keras.layers.Identity(name="pooling")(outputs["pooled_output"])
    else:
        raise UsageError(f"pooling: must be 'mean', 'cls' or 'pooled', got {pooling!r}")
    logits = keras.layers.Dense(num_classes, name="head")(features)
    return keras.Model(inputs, logits, name=name)


def load_bert_teacher(source, num_classes=None, pooling=None):
    """Loads a BERT-family checkpoint as an in-graph classifier teacher.

    A `BertForSequenceClassification` checkpoint keeps its trained head and
    pooler, and gives the logits `transformers` gives. A bare encoder (such as
    all-MiniLM-L6-v2) gets a new, untrained head of `num_classes` logits: adapt
    it with `kd_keras.teachers.fit_head` or `fine_tune` first.

    Args:
        source: a KerasHub preset or a local Hugging Face checkpoint directory.
        num_classes: required when the checkpoint has no classification head.
        pooling: `"mean"`, `"cls"` or `"pooled"`; by default the checkpoint's
            own (`1_Pooling/config.json` for sentence-transformers, else
            `"pooled"`).

    Returns:
        A `keras.Model` from token dicts to logits (see
        `build_bert_classifier`).

    Example:

    >>> model = load_bert_teacher("path/to/minilm", num_classes=2)  # doctest: +SKIP
    """
    backbone = load_bert_backbone(source)
    head = _classifier_weights(source) if _is_local_hf_checkpoint(source) else None
    if head is not None:
        kernel, bias = head
        if num_classes not in (None, kernel.shape[1]):
            raise UsageError(
                f"{source}: the checkpoint's head has {kernel.shape[1]} classes, "
                f"not num_classes={num_classes}")
        model = build_bert_classifier(backbone, kernel.shape[1], pooling or "pooled")
        model.get_layer("head").set_weights([kernel, bias])
        return model
    if num_classes is None:
        raise UsageError(
            f"{source}: the checkpoint has no classification head; pass "
            "num_classes=... to add one")
    return build_bert_classifier(
        backbone, num_classes, pooling or _default_pooling(source)
    )
