"""The `Teacher` interface and its Keras implementation."""

import hashlib
import json

import keras
import numpy as np

from kd_keras.errors import UsageError


class Teacher:
    """A source of teacher logits.

    A teacher maps a batch of inputs (an array or a dict of arrays) to float32
    logits of shape `[batch, num_classes]`.

    Attributes:
        in_graph: `True` when `model` is a `keras.Model` that can run inside
            `Distiller.train_step` (Keras, SavedModel, KerasHub teachers).
            Teachers outside the graph (PyTorch, ONNX) go through the cache.
        model: the in-graph `keras.Model`, or `None`.
    """

    in_graph = False
    model = None

    def predict_on_batch(self, x):
        """Returns the logits of one batch as a float32 NumPy array."""
        raise NotImplementedError

    def fingerprint(self):
        """Returns a hex string that changes whenever the teacher's outputs
        could change (architecture, weights, preprocessing)."""
        raise NotImplementedError


def _as_trainable(config):
    """`config` with every `trainable` flag true: freezing a model (the
    `Distiller` freezes its teacher) changes no output, and a model never
    frozen keeps the digest that earlier versions gave it."""
    if isinstance(config, dict):
        return {key: True if key == "trainable" else _as_trainable(value)
                for key, value in config.items()}
    if isinstance(config, (list, tuple)):
        return [_as_trainable(value) for value in config]
    return config


def fingerprint_keras_model(model):
    """Hashes a Keras model's architecture and weights (whether its layers
    are trainable does not count).

    Args:
        model: a built `keras.Model`.

    Returns:
        A SHA-256 hex digest.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> len(fingerprint_keras_model(m))
    64
    """
    digest = hashlib.sha256()
    try:
        config = json.dumps(_as_trainable(model.get_config()), sort_keys=True,
                            default=str)
    except Exception:  # Subclassed models without get_config.
        config = type(model).__qualname__
    digest.update(config.encode("utf-8"))
    # Weights are hashed by position, not by `weight.path`: a model reloaded
    # from a `.keras` file has the same weights under shorter paths.
    for index, weight in enumerate(model.weights):
        value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value))
        digest.update(str(index).encode("utf-8"))
        digest.update(str(value.dtype).encode("utf-8"))
        digest.update(str(value.shape).encode("utf-8"))
        digest.update(value.tobytes())
    vocabularies = _vocabularies(model)
    if vocabularies:  # (A model without any hashes as it always did.)
        digest.update(json.dumps(vocabularies).encode("utf-8"))
    return digest.hexdigest()


def _vocabularies(model):
    """The vocabularies of the tokenizers and lookup layers in `model`, in
    a fixed order. Their configs leave them out (KerasHub keeps one as an
    asset), so two teachers that differ only there hashed alike."""
    found, seen, queue = [], set(), [model]
    while queue:
        layer = queue.pop(0)
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        if callable(getattr(layer, "get_vocabulary", None)):
            found.append(_vocabulary(layer))
        queue.extend(getattr(layer, "layers", None) or ())
        queue.extend((getattr(layer, "preprocessor", None), getattr(layer, "tokenizer", None)))
    return found


def _vocabulary(layer):
    """A tokenizer's or lookup layer's tokens as strings (`None` before it
    is given a vocabulary)."""
    try:
        return [str(token) for token in layer.get_vocabulary()]
    except ValueError:
        return None


def tokenizer_fingerprint(tokenizer):
    """Hashes a tokenizer's vocabulary and options (not its name).

    Args:
        tokenizer: a KerasHub tokenizer (or any layer with `get_config` and
            `get_vocabulary`).

    Returns:
        A SHA-256 hex digest.

    Example:

    >>> import keras_hub
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good"]
    >>> a = keras_hub.tokenizers.BertTokenizer(vocabulary=vocab)
    >>> b = keras_hub.tokenizers.BertTokenizer(vocabulary=vocab, lowercase=True)
    >>> tokenizer_fingerprint(a) == tokenizer_fingerprint(b)
    False
    """
    config = {k: v for k, v in tokenizer.get_config().items() if k not in ("name", "vocabulary")}
    return hashlib.sha256(json.dumps([config, _vocabulary(tokenizer)], sort_keys=True,
                                     default=str).encode("utf-8")).hexdigest()


class KerasTeacher(Teacher):
    """A teacher backed by a `keras.Model` that outputs logits.

    Args:
        model: a `keras.Model` whose output is `[batch, num_classes]` logits.

    Example:

    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> KerasTeacher(m).predict_on_batch(np.zeros((4, 3))).shape
    (4, 2)
    """

    in_graph = True

    def __init__(self, model):
        from kd_keras.distillation.checks import check_gives_logits

        check_gives_logits("teacher", model=model)  # probabilities are not logits
        try:
            outputs = model.outputs  # Functional and Sequential models
        except (AttributeError, ValueError):  # Subclassed, or not built yet.
            outputs = None
        if outputs is not None and len(outputs) != 1:
            raise several_outputs(len(outputs))
        self.model = model

    def predict_on_batch(self, x):
        logits = self.model(x, training=False)
        if isinstance(logits, (list, tuple, dict)):
            raise several_outputs(len(logits))
        return np.asarray(keras.ops.convert_to_numpy(logits), dtype=np.float32)

    def fingerprint(self):
        """The model's architecture and weights as they are now: hashed at
        every call, since the wrapped model may be trained or given other
        weights between two caches."""
        return fingerprint_keras_model(self.model)


def several_outputs(count):
    """The error for a Keras teacher that gives `count` outputs, not one."""
    return UsageError(f"teacher: a Keras model with {count} outputs; a teacher gives one, "
                      "its logits: pass keras.Model(model.inputs, model.outputs[i])")


def as_teacher(obj):
    """Wraps `obj` in the `Teacher` interface.

    Args:
        obj: a `Teacher` (returned as is) or a `keras.Model`.

    Returns:
        A `Teacher`.
    """
    if isinstance(obj, Teacher):
        return obj
    if isinstance(obj, keras.Model):
        return KerasTeacher(obj)
    raise TypeError(
        "A teacher must be a keras.Model or a kd_keras.teachers.Teacher; "
        f"got {type(obj).__name__}. Use kd_keras.teachers.load_teacher(path) "
        "to load one from a file."
    )
