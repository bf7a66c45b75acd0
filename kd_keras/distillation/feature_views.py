"""Intermediate outputs of a model, from the same forward pass as its logits.

A layer is named by a *spec*:

- `"name"`: a layer of the model, or a layer of a nested model when exactly
  one layer has that name (e.g. `"transformer_layer_1"`);
- `"outer/inner/..."`: a path through nested models (e.g.
  `"bert_backbone/transformer_layer_1"`);
- either, followed by `":input"` (the layer's first input, e.g. the
  embedding output that enters the first transformer layer) or
  `":attention"` (the attention probabilities `[batch, heads, queries,
  keys]` of a KerasHub `TransformerEncoder` or a
  `keras.layers.MultiHeadAttention`).

`FeatureView(model, refs)` is a callable returning `(logits, [features])`
from one forward pass. For a Functional or Sequential model (nested ones
included) it is a Functional model that calls the model's own layers (same
weights) and also outputs the named tensors: nested models on the way are
inlined. A subclassed model declares its features with the hook

    def call_with_features(self, inputs, training=None):
        ...
        return logits, {"name": tensor, ...}

and its specs are the keys of that dict.
"""

import dataclasses
import difflib

import keras

from kd_keras._keras_compat import is_functional
from kd_keras._keras_compat import run_graph
from kd_keras.errors import UsageError

OUTPUT = "output"
INPUT = "input"
ATTENTION = "attention"
PARTS = (OUTPUT, INPUT, ATTENTION)
HOOK = "call_with_features"


@dataclasses.dataclass(frozen=True)
class LayerRef:
    """One intermediate output of a model.

    Attributes:
        path: layer names from the model down to the layer.
        part: `"output"`, `"input"` or `"attention"`.
    """

    path: tuple
    part: str = OUTPUT

    @property
    def key(self):
        """The canonical spec, e.g. `"backbone/transformer_layer_0:attention"`
        (the key of a cached teacher feature)."""
        name = "/".join(self.path)
        return name if self.part == OUTPUT else f"{name}:{self.part}"


def has_hook(model):
    """Whether `model` declares its features with `call_with_features`."""
    return callable(getattr(model, HOOK, None))


def is_graph(model):
    """Whether `model` is a Functional or Sequential model (walkable)."""
    return is_functional(model) or isinstance(model, keras.Sequential)


def layer_paths(model, prefix=()):
    """Every layer path of `model`, through nested Functional/Sequential
    models, as a dict `{"a/b": layer}`."""
    paths = {}
    for layer in model.layers:
        path = prefix + (layer.name,)
        paths["/".join(path)] = layer
        if is_graph(layer):
            paths.update(layer_paths(layer, path))
    return paths


def resolve(model, spec, what):
    """Finds the layer `spec` names in `model`.

    Args:
        model: a `keras.Model`.
        spec: a layer spec (see the module doc).
        what: the argument's name, for error messages.

    Returns:
        A `LayerRef`.

    Raises:
        UsageError: an unknown or ambiguous layer (with the close matches),
            or a part the layer cannot give.

    Example:

    >>> import keras
    >>> inner = keras.Sequential([keras.Input((3,)),
    ...                           keras.layers.Dense(2, name="hidden")],
    ...                          name="inner")
    >>> outer = keras.Sequential([keras.Input((3,)), inner,
    ...                           keras.layers.Dense(1)])
    >>> resolve(outer, "hidden", "student_layer").key
    'inner/hidden'
    """
    if not isinstance(spec, str) or not spec.strip(":/"):
        raise UsageError(f"{what}: expected a layer name or path, got "
                         f"{spec!r}")
    name, _, part = spec.partition(":")
    part = part or OUTPUT
    if part not in PARTS:
        raise UsageError(f"{what}: unknown part ':{part}' in {spec!r} "
                         "(known: :input, :attention)")
    if has_hook(model):
        return LayerRef((name,), part)
    if not is_graph(model):
        raise UsageError(
            f"{what}: {model.name!r} is a subclassed {type(model).__name__}; "
            f"give it a {HOOK}(inputs, training) method returning (logits, "
            "{name: tensor}), or use a Functional or Sequential model")
    paths = layer_paths(model)
    if name not in paths:
        found = [p for p in paths if p.rsplit("/", 1)[-1] == name]
        if len(found) > 1:
            raise UsageError(f"{what}: {name!r} is ambiguous in "
                             f"{model.name!r}; use one of {found}")
        if not found:
            leaves = {p.rsplit("/", 1)[-1]: p for p in paths}
            close = difflib.get_close_matches(
                name, list(paths) + list(leaves), n=5, cutoff=0.5)
            close = list(dict.fromkeys(leaves.get(c, c) for c in close))
            hint = (f"close matches: {', '.join(close)}" if close else
                    f"layers: {', '.join(list(paths)[:8])}")
            raise UsageError(f"{what}: no layer {name!r} in {model.name!r} "
                             f"({hint})")
        name = found[0]
    if part == ATTENTION and not _has_attention(paths[name]):
        raise UsageError(
            f"{what}: layer {name!r} ({type(paths[name]).__name__}) returns "
            "no attention scores (use a TransformerEncoder or "
            "MultiHeadAttention layer)")
    return LayerRef(tuple(name.split("/")), part)


def _has_attention(layer):
    import inspect

    try:
        return "return_attention_scores" in inspect.signature(
            layer.call).parameters
    except (TypeError, ValueError):
        return False


class FeatureView:
    """Calls `model` once; returns its logits and the tensors `refs` name.

    Args:
        model: a Functional or Sequential model, or one with the
            `call_with_features` hook.
        refs: `LayerRef`s from `resolve`.
        what: the model's role, for error messages (`"student"`).

    Example:

    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((3,)),
    ...                       keras.layers.Dense(4, name="hidden"),
    ...                       keras.layers.Dense(2)])
    >>> view = FeatureView(m, [resolve(m, "hidden", "student_layer")])
    >>> logits, (hidden,) = view(np.ones((5, 3), "float32"))
    >>> tuple(logits.shape), tuple(hidden.shape)
    ((5, 2), (5, 4))
    """

    def __init__(self, model, refs, what="model"):
        self.model = model
        self.refs = tuple(refs)
        self.what = what
        self.hooked = has_hook(model)
        self.functional = None if self.hooked else _graph_view(
            model, self.refs, what)

    @property
    def feature_shapes(self):
        """The features' static shapes, or `None` for a hooked model."""
        if self.functional is None:
            return None
        return [tuple(t.shape) for t in self.functional.outputs[1:]]

    def __call__(self, inputs, training=False):
        if self.hooked:
            logits, features = getattr(self.model, HOOK)(
                inputs, training=training)
            return logits, [self._pick(features, ref) for ref in self.refs]
        outputs = self.functional(inputs, training=training)
        return outputs[0], list(outputs[1:])

    def _pick(self, features, ref):
        if ref.key in features:
            return features[ref.key]
        close = difflib.get_close_matches(ref.key, list(features), n=5,
                                          cutoff=0.5)
        raise UsageError(
            f"{self.what}_layer: {self.model.name!r}.{HOOK} returned no "
            f"feature {ref.key!r} (close matches: "
            f"{', '.join(close or sorted(features))})")


def _graph_view(model, refs, what):
    """A Functional model over `model`'s layers with outputs `[logits,
    *features]`."""
    if isinstance(model, keras.Sequential):
        if not model.built or not model.inputs:
            raise UsageError(f"{what}: the Sequential {model.name!r} has no "
                             "input shape yet; start it with keras.Input")
        struct = model.inputs[0]
    else:
        struct = model.input
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype,
                              name=t.name), struct)
    wanted = {(ref.path, ref.part) for ref in refs}
    found = {}
    logits = _trace(model, inputs, wanted, (), found)
    missing = [ref.key for ref in refs if (ref.path, ref.part) not in found]
    if missing:
        raise UsageError(f"{what}_layer: {missing[0]!r} is not on the path "
                         f"from {model.name!r}'s inputs to its outputs")
    features = [found[(ref.path, ref.part)] for ref in refs]
    for ref, feature in zip(refs, features):
        if not isinstance(feature, keras.KerasTensor):  # A list, a dict of outputs.
            count = len(feature) if hasattr(feature, "__len__") else "several"
            raise UsageError(f"{what}_layer: {ref.key!r} returns {count} outputs, not one "
                             "tensor; name a layer that returns one (or add a layer that "
                             "picks it)")
    return keras.Model(inputs, [logits, *features],
                       name=f"{model.name}_features")


def _trace(model, inputs, wanted, prefix, found):
    """Calls `model`'s layers on `inputs` one by one, recording the wanted
    tensors in `found`; returns the model's outputs."""

    def call(layer, *args, **kwargs):
        return _call(layer, args, kwargs, wanted, prefix, found)

    if isinstance(model, keras.Sequential):
        x = inputs
        for layer in model.layers:
            x = call(layer, x)
        return x
    outputs = run_graph(model, inputs, call)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        outputs = outputs[0]
    return outputs


def _call(layer, args, kwargs, wanted, prefix, found):
    path = prefix + (layer.name,)
    here = {part for p, part in wanted if p == path}
    deeper = any(len(p) > len(path) and p[:len(path)] == path
                 for p, _ in wanted)
    _record(found, path, INPUT, here, args[0] if args else None)
    if deeper and is_graph(layer):
        outputs = _trace(layer, args[0], wanted, path, found)
    elif ATTENTION in here:
        outputs, scores = _AttentionTap(layer)(*args, **kwargs)
        _record(found, path, ATTENTION, here, scores)
    else:
        outputs = layer(*args, **kwargs)
    _record(found, path, OUTPUT, here, outputs)
    return outputs


class _AttentionTap(keras.layers.Layer):
    """Calls an attention layer with `return_attention_scores=True`.

    KerasHub's `TransformerEncoder` declares one output shape whatever that
    argument says; this wrapper lets Keras trace the call itself."""

    def __init__(self, layer):
        super().__init__(name=f"{layer.name}_attention", dtype=layer.dtype_policy)
        self.layer = layer

    def call(self, *args, training=None, **kwargs):
        return self.layer(*args, return_attention_scores=True,
                          training=training, **kwargs)


def _record(found, path, part, here, tensor):
    # A shared layer called twice gives its first call.
    if part in here and (path, part) not in found:
        found[(path, part)] = tensor


__all__ = ["ATTENTION", "FeatureView", "HOOK", "INPUT", "LayerRef", "OUTPUT",
           "PARTS", "has_hook", "is_graph", "layer_paths", "resolve"]
