"""Feature terms: `FeatureDistillation` and how `Distiller` computes them.

A term compares one intermediate output of the student with one of the
teacher. `Distiller(teacher, student, features=[...])` adds to each batch's
loss `weight * feature`, where `feature` is the mean over the global batch
of the term's per-example value (weighted by `sample_weight`, unlabeled
examples included, as the soft loss).

`FeatureSet` is the part the `Distiller` owns: the layer lookups, one
`FeatureView` per model (so the student runs once per step), the learned
projections and the per-example values.

Example:

>>> import keras, numpy as np
>>> teacher = keras.Sequential([keras.Input((4,)),
...     keras.layers.Dense(16, name="t_hidden"), keras.layers.Dense(3)])
>>> student = keras.Sequential([keras.Input((4,)),
...     keras.layers.Dense(8, name="s_hidden"), keras.layers.Dense(3)])
>>> term = FeatureDistillation("t_hidden", "s_hidden", weight=0.5)
>>> term.name
's_hidden_mse'
>>> features = FeatureSet([term], teacher, student)
>>> [p.name for p in features.projection_layers]
['s_hidden_mse_projection']
"""

import dataclasses
import re

import keras
import tensorflow as tf

from kd_keras._keras_compat import output_spec
from kd_keras.distillation import feature_losses
from kd_keras.distillation import schedules
from kd_keras.distillation.feature_views import ATTENTION
from kd_keras.distillation.feature_views import FeatureView
from kd_keras.distillation.feature_views import LayerRef
from kd_keras.distillation.feature_views import PARTS
from kd_keras.distillation.feature_views import has_hook
from kd_keras.distillation.feature_views import is_graph
from kd_keras.distillation.feature_views import resolve
from kd_keras.distillation.targets import TEACHER_FEATURES_KEY
from kd_keras.errors import UsageError

PROJECTIONS = ("auto", "dense", None)


@dataclasses.dataclass(frozen=True)
class FeatureDistillation:
    """One feature term of a `kd_keras.Distiller`.

    Args:
        teacher_layer: the teacher's layer: a name, a path into nested
            models (`"backbone/transformer_layer_3"`), optionally with
            `":input"` or `":attention"` (see `kd_keras.distillation.feature_views`).
        student_layer: the student's layer, in the same form.
        loss: `"mse"`, `"cosine"`, `"attention_kl"`, a `keras.losses.Loss`
            or a callable `fn(teacher_feature, student_feature)` returning
            per-example values (`kd_keras.feature_losses`).
        weight: the term's weight, `>= 0`, or a `kd_keras.schedules`
            schedule.
        projection: `"auto"` (a learned Dense, or a 1x1 convolution for
            feature maps `[batch, h, w, c]`, from the student's width to the
            teacher's when they differ), `"dense"` (always) or `None`
            (never: the shapes must be equal).
        name: the term's key in `history.history`; default
            `"<student layer>_<loss>"`.
    """

    teacher_layer: str
    student_layer: str
    loss: object = "mse"
    weight: object = 1.0
    projection: object = "auto"
    name: object = None

    def __post_init__(self):
        for field in ("teacher_layer", "student_layer"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip(":/"):
                raise UsageError(f"FeatureDistillation.{field}: expected a "
                                 f"layer name or path, got {value!r}")
        feature_losses.get(self.loss, "FeatureDistillation.loss")
        weight = schedules.get(self.weight, "FeatureDistillation.weight")
        schedules.check_range(weight, "FeatureDistillation.weight", low=0.0)
        if isinstance(self.weight, dict):  # `{"type": "linear", ...}`: the schedule.
            object.__setattr__(self, "weight", weight)
        if self.projection not in PROJECTIONS:
            raise UsageError(
                f"FeatureDistillation.projection: unknown projection "
                f"{self.projection!r} (known: 'auto', 'dense', None)")
        name = self.name if self.name is not None else _default_name(self)
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
            raise UsageError(f"FeatureDistillation.name: expected a name of letters, digits, "
                             f"'_', '.' and '-' (a history key and a layer name), got {name!r}")
        object.__setattr__(self, "name", name)

    @property
    def weight_schedule(self):
        """The weight as a `kd_keras.schedules.Schedule`."""
        return schedules.get(self.weight)

    def get_config(self):
        config = dataclasses.asdict(self)
        for key in ("loss", "weight"):
            if not isinstance(config[key], (str, int, float)):
                config[key] = keras.saving.serialize_keras_object(config[key])
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("loss", "weight"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key])
        return cls(**config)


def _default_name(term):
    leaf = term.student_layer.replace(":", "/").strip("/").split("/")
    leaf = "_".join(leaf[-2:]) if leaf[-1] in PARTS else leaf[-1]
    loss = term.loss if isinstance(term.loss, str) else getattr(
        term.loss, "__name__", type(term.loss).__name__)
    return re.sub(r"[^A-Za-z0-9.-]+", "_", f"{leaf}_{loss}").strip("_")  # `<lambda>`


def teacher_feature_keys(features):
    """The keys a batch's `targets["teacher_features"]` must hold when the
    teacher's features come from the data (e.g. a cache): each term's
    `teacher_layer`, as written.

    Args:
        features: a list of `FeatureDistillation`.

    Returns:
        A tuple of strings, without repeats, in the terms' order.
    """
    return tuple(dict.fromkeys(term.teacher_layer for term in features))


def feature_names(features):
    """The names under which `features` are cached.

    Args:
        features: `None`, or a list of layer specs (strings) and
            `kd_keras.FeatureDistillation` terms (each gives its
            `teacher_layer`, as written).

    Returns:
        A tuple of distinct names, in order.

    Example:

    >>> feature_names(["t_hidden", FeatureDistillation("t_hidden", "s")])
    ('t_hidden',)
    """
    if features is None:
        return ()
    if isinstance(features, (str, FeatureDistillation)) or not isinstance(
            features, (list, tuple)):
        raise UsageError(f"features: expected a list of layer names or "
                         f"FeatureDistillation terms, got {features!r}")
    names = []
    for i, item in enumerate(features):
        if isinstance(item, FeatureDistillation):
            item = teacher_feature_keys([item])[0]
        elif not isinstance(item, str) or not item.strip(":/"):
            raise UsageError(f"features[{i}]: expected a layer name or path, or a "
                             f"FeatureDistillation, got {item!r}")
        names.append(item)
    return tuple(dict.fromkeys(names))



def as_terms(terms):
    """`terms` as a tuple of `FeatureDistillation`s (`None` is none).

    Raises:
        UsageError: one term not in a list, or an item that is not a term.

    Example:

    >>> as_terms(None)
    ()
    >>> as_terms(FeatureDistillation("t", "s"))
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: features: expected a list of kd_keras.FeatureDistillation, got one term; wrap it in a list
    """
    if terms is None:
        return ()
    if isinstance(terms, FeatureDistillation):
        raise UsageError("features: expected a list of kd_keras.FeatureDistillation, "
                         "got one term; wrap it in a list")
    if not isinstance(terms, (list, tuple)):
        raise UsageError("features: expected a list of kd_keras.FeatureDistillation, "
                         f"got {type(terms).__name__}")
    for i, term in enumerate(terms):
        if not isinstance(term, FeatureDistillation):
            raise UsageError(f"features[{i}]: expected a kd_keras.FeatureDistillation, "
                             f"got {type(term).__name__}")
    return tuple(terms)


class FeatureSet:
    """The feature terms of one `Distiller`.

    Args:
        terms: a list of `FeatureDistillation`.
        teacher: the teacher's layer (`None`: features come from the data).
        student: the student model.
        reserved: names the terms may not take (other logs' keys).

    Raises:
        UsageError: an unknown layer, duplicate names, incompatible shapes
            with `projection=None`, or a teacher that cannot give features.
    """

    def __init__(self, terms, teacher, student, reserved=()):
        terms = as_terms(terms)
        names = [term.name for term in terms]
        weights = {f"{name}_weight" for name in names}  # Each term's schedule log.
        for name in names:
            if name in reserved or name in weights or name.startswith("val_"):
                raise UsageError(f"features: the name {name!r} is taken by "
                                 "the Distiller's own logs; choose another")
            if names.count(name) > 1:
                raise UsageError(f"features: two terms are named {name!r}; "
                                 "give each a distinct name")
        self.terms = terms
        self.losses = [feature_losses.get(t.loss) for t in terms]
        self.student_refs = [
            resolve(student, t.student_layer, f"features[{i}].student_layer")
            for i, t in enumerate(terms)]
        self.student_view = FeatureView(
            student, list(dict.fromkeys(self.student_refs)), "student")
        self.teacher_keys = teacher_feature_keys(terms)
        self.teacher_view = None
        if teacher is not None:
            if not (is_graph(teacher) or has_hook(teacher)):
                raise UsageError(
                    f"features: the teacher {teacher.name!r} "
                    f"({type(teacher).__name__}) cannot give intermediate "
                    "outputs; use a Functional or Sequential teacher, one "
                    "with call_with_features, or teacher=None with the "
                    f"features in the targets' {TEACHER_FEATURES_KEY!r}")
            refs = [resolve(teacher, key, f"features[{i}].teacher_layer")
                    for i, key in enumerate(self.teacher_keys)]
            self.teacher_view = FeatureView(teacher, refs, "teacher")
        # Created now so that the Distiller tracks them; an "auto" one
        # whose widths turn out equal stays an identity without weights.
        self._projections = [
            _Projection(t.name) if t.projection is not None
            and not self._is_attention(i) else None
            for i, t in enumerate(terms)]
        self.projection_layers = [p for p in self._projections
                                  if p is not None]
        self.built = False
        self.shapes = None  # `(teacher_shapes, student_shapes)` once built.
        shapes = self.static_shapes()
        if shapes is not None:
            self.build(*shapes)

    def _is_attention(self, i):
        teacher_part = self.terms[i].teacher_layer.partition(":")[2]
        return ATTENTION in (self.student_refs[i].part, teacher_part)

    def static_shapes(self):
        """`(teacher_shapes, student_shapes)` per term when the models give
        them without running, else `None`."""
        student = self.student_view.feature_shapes
        teacher = (None if self.teacher_view is None
                   else self.teacher_view.feature_shapes)
        if student is None or teacher is None:
            return None
        by_key = dict(zip(self.student_view.refs, student))
        teacher_by_key = dict(zip(self.teacher_keys, teacher))
        return ([teacher_by_key[t.teacher_layer] for t in self.terms],
                [by_key[ref] for ref in self.student_refs])

    def build(self, teacher_shapes, student_shapes):
        """Checks the shapes and builds the projections.

        Args:
            teacher_shapes, student_shapes: one shape per term, batch
                axis included.
        """
        for i, (term, t, s) in enumerate(zip(self.terms, teacher_shapes,
                                             student_shapes)):
            t, s = tuple(t)[1:], tuple(s)[1:]
            where = (f"features[{i}] ({term.name}): student "
                     f"{term.student_layer!r} {_shape(s)} vs teacher "
                     f"{term.teacher_layer!r} {_shape(t)}")
            layer = self._projections[i]
            kl = term.loss in ("attention_kl", feature_losses.attention_kl)
            if kl and not self._is_attention(i):
                raise UsageError(f"{where}: attention_kl compares attention probabilities; "
                                 "name the layers' ':attention' part, or use mse or cosine")
            if self._is_attention(i):
                if term.projection == "dense":
                    raise UsageError(f"{where}: attention probabilities "
                                     "cannot be projected; use "
                                     "projection=None")
                if len(t) != 3 or len(s) != 3 or not _compatible(
                        t[1:], s[1:]):
                    raise UsageError(f"{where}: expected attention "
                                     "probabilities [heads, queries, keys] "
                                     "over the same tokens")
                if None not in (t[0], s[0]) and t[0] % s[0]:
                    raise UsageError(f"{where}: the teacher's heads cannot "
                                     "be grouped into the student's")
                if not kl and not _compatible(t[:1], s[:1]):
                    raise UsageError(f"{where}: only attention_kl groups the teacher's "
                                     "heads into the student's; use loss='attention_kl'")
                continue
            if not _compatible(t[:-1], s[:-1]) or len(t) != len(s):
                raise UsageError(f"{where}: only the last axis may differ")
            same = _compatible(t[-1:], s[-1:])
            if term.projection is None and not same:
                raise UsageError(f"{where}: the shapes differ and "
                                 "projection=None; use projection='auto'")
            if term.projection is None:
                continue
            if term.projection == "auto" and same:
                layer.built = True  # The identity.
                continue
            if t[-1] is None:
                raise UsageError(f"{where}: the teacher's width is unknown")
            layer.configure(t[-1], rank=len(s) + 1)
            layer.build((None,) + s)
        self.built = True
        self.shapes = ([list(map(_plain, t)) for t in teacher_shapes],
                       [list(map(_plain, s)) for s in student_shapes])

    def build_from(self, teacher_features, student_features):
        """`build` from the outputs of `teacher_outputs` and
        `student_outputs` (tensors or `KerasTensor`s)."""
        self.build([teacher_features[t.teacher_layer].shape
                    for t in self.terms],
                   [student_features[ref].shape for ref in self.student_refs])

    def build_for_batch(self, data_batch, outputs):
        """Builds (when not built) from the shapes that
        `outputs(x, y) -> (teacher_features, student_features)` gives on a
        batch like `data_batch`, without running the models."""
        if self.built:
            return
        x, y, _ = keras.utils.unpack_x_y_sample_weight(
            keras.tree.map_structure(
                lambda v: keras.KerasTensor(v.shape, v.dtype.name),
                data_batch))
        self.build_from(*output_spec(outputs, x, y))

    def teacher_outputs(self, x, cached):
        """Returns `(teacher_logits or None, {teacher_layer: feature})`.

        Args:
            x: the batch's inputs.
            cached: the targets' `"teacher_features"` dict, or `None`.
        """
        if cached is not None:
            missing = [k for k in self.teacher_keys if k not in cached]
            if missing:
                raise UsageError(
                    f"y: targets[{TEACHER_FEATURES_KEY!r}] has no "
                    f"{missing[0]!r} (has: {sorted(cached)})")
            return None, {k: cached[k] for k in self.teacher_keys}
        if self.teacher_view is None:
            raise UsageError(
                "teacher: None, so each batch's targets must carry the "
                f"features {list(self.teacher_keys)} under "
                f"{TEACHER_FEATURES_KEY!r}")
        logits, features = self.teacher_view(x, training=False)
        return logits, dict(zip(self.teacher_keys, features))

    def student_outputs(self, x, training):
        """Returns `(student_logits, {student LayerRef: feature})` from one
        forward pass of the student."""
        logits, features = self.student_view(x, training=training)
        return logits, dict(zip(self.student_view.refs, features))

    def per_example(self, teacher_features, student_features):
        """Returns each term's float32 values `[batch]`."""
        values = []
        for i, term in enumerate(self.terms):
            student = student_features[self.student_refs[i]]
            layer = self._projections[i]
            if layer is not None and layer.inner is not None:
                student = layer(student)
            teacher = tf.stop_gradient(tf.cast(
                teacher_features[term.teacher_layer], "float32"))
            values.append(self.losses[i](teacher, student))
        return values


def _plain(dim):
    """A shape's dimension as JSON holds it (an int or `None`)."""
    return None if dim is None else int(dim)


class _Projection(keras.layers.Layer):
    """A Dense on the last axis, or a 1x1 convolution for `[b, h, w, c]`
    feature maps, configured once the widths are known."""

    def __init__(self, term_name):
        super().__init__(name=f"{term_name}_projection")
        self.inner = None

    def configure(self, width, rank):
        if rank == 4:
            self.inner = keras.layers.Conv2D(width, 1, name="conv1x1")
        else:
            self.inner = keras.layers.Dense(width, name="dense")

    def build(self, input_shape):
        self.inner.build(input_shape)
        self.built = True

    def call(self, x):
        return self.inner(x)


def _compatible(a, b):
    return len(a) == len(b) and all(
        p is None or q is None or p == q for p, q in zip(a, b))


def _shape(shape):
    return "(" + ", ".join("None" if d is None else str(d)
                           for d in (None,) + tuple(shape)) + ")"


__all__ = ["FeatureDistillation", "FeatureSet", "LayerRef", "PROJECTIONS", "as_terms",
           "teacher_feature_keys"]
