"""The TinyBERT recipe as feature terms, for KerasHub BERT-family backbones.

`transformer_terms(teacher, student)` returns the `FeatureDistillation`
terms of transformer-layer distillation (Jiao et al., 2020):

- `embedding_mse`: MSE between the embedding outputs (the input of the
  first transformer layer), through a learned projection when the student
  is narrower;
- `hidden_mse_<j>`: MSE between the output of the student's layer `j` and
  of the teacher's layer `layer_map[j]`, through a projection;
- `attention_kl_<j>`: KL between the attention probabilities of the same
  layers, per head, averaged (a teacher with more heads than the student
  has its heads averaged in groups, see
  `kd_keras.feature_losses.attention_kl`).

The backbones are found inside the models (any nested layer with
`transformer_layers`, as KerasHub's `BertBackbone`), or named by path.

Example:

>>> uniform_layer_map(12, 4)
(2, 5, 8, 11)
"""

import keras

from kd_keras.distillation.feature_views import layer_paths
from kd_keras.distillation.features import FeatureDistillation
from kd_keras.errors import UsageError
from kd_keras.number_checks import is_int


def uniform_layer_map(teacher_layers, student_layers):
    """TinyBERT's uniform map: student layer `j` (0-based) learns from
    teacher layer `(j + 1) * N // M - 1`, so the last layers meet.

    Args:
        teacher_layers: the teacher's number of transformer layers `N`.
        student_layers: the student's `M`, `<= N`.

    Returns:
        A tuple of `M` teacher layer indices.
    """
    if not 0 < student_layers <= teacher_layers:
        raise UsageError(
            f"layer_map: a uniform map needs 1 <= student layers "
            f"({student_layers}) <= teacher layers ({teacher_layers})")
    return tuple((j + 1) * teacher_layers // student_layers - 1
                 for j in range(student_layers))


def find_backbone(model, what, path=None):
    """Returns `(path, backbone)` of the transformer backbone in `model`.

    Args:
        model: a `keras.Model` that is or contains a KerasHub backbone.
        what: `"teacher"` or `"student"`, for error messages.
        path: the backbone's path in `model`, or `None` to search.

    Returns:
        `(path prefix ending in "/" or "", backbone layer)`.
    """
    if path is None and hasattr(model, "transformer_layers"):
        return "", model
    paths = layer_paths(model)
    if path is not None:
        if path not in paths or not hasattr(paths[path],
                                            "transformer_layers"):
            raise UsageError(f"{what}_backbone: no transformer backbone "
                             f"{path!r} in {model.name!r}")
        return path + "/", paths[path]
    found = [p for p, layer in paths.items()
             if hasattr(layer, "transformer_layers")]
    if len(found) != 1:
        raise UsageError(
            f"{what}: {'no' if not found else 'more than one'} KerasHub "
            f"transformer backbone in {model.name!r}"
            + (f" ({', '.join(found)}); pass {what}_backbone" if found else
               ""))
    return found[0] + "/", paths[found[0]]


def _block_names(backbone, what):
    """The names of a backbone's transformer blocks, bottom first. ALBERT's
    (a factorised `tiny_bert`) come in groups; a block run more than once
    (shared weights) has no one output to distil."""
    blocks, pending = [], list(backbone.transformer_layers)
    while pending:
        block = pending.pop(0)
        if isinstance(block, (list, tuple)):
            pending[:0] = list(block)
        else:
            blocks.append(block)
    names = [block.name for block in blocks]
    if len(set(map(id, blocks))) != len(blocks) or len(set(names)) != len(names):
        raise UsageError(f"{what}: its backbone {backbone.name!r} runs a block more than "
                         "once (shared weights), so a block has no one output to distil; "
                         "name the layers with kd_keras.FeatureDistillation instead")
    return names


def transformer_terms(teacher, student, layer_map="uniform", embeddings=1.0,
                      hidden_states=1.0, attention=1.0,
                      teacher_backbone=None, student_backbone=None):
    """The TinyBERT terms between two KerasHub transformer backbones.

    Args:
        teacher: the teacher `keras.Model` (or its backbone).
        student: the student `keras.Model` (or its backbone).
        layer_map: `"uniform"` (`uniform_layer_map`), or for each student
            layer the teacher layer it learns from (a list of 0-based
            indices, or a dict `{student_layer: teacher_layer}` for some
            layers only).
        embeddings: the weight (a number or a `kd_keras.schedules`
            schedule) of the embedding term, or `None` to leave it out.
        hidden_states: the same for the hidden-state terms.
        attention: the same for the attention terms.
        teacher_backbone: the teacher backbone's path, when the teacher
            holds several.
        student_backbone: the same for the student.

    Returns:
        A list of `kd_keras.FeatureDistillation`.
    """
    for what, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise UsageError(f"{what}: expected a keras.Model holding a KerasHub transformer "
                             f"backbone, got {type(model).__name__}")
    t_prefix, t_backbone = find_backbone(teacher, "teacher", teacher_backbone)
    s_prefix, s_backbone = find_backbone(student, "student", student_backbone)
    t_layers = _block_names(t_backbone, "teacher")
    s_layers = _block_names(s_backbone, "student")
    pairs = _pairs(layer_map, len(t_layers), len(s_layers))
    terms = []
    if embeddings is not None:
        terms.append(FeatureDistillation(
            f"{t_prefix}{t_layers[0]}:input", f"{s_prefix}{s_layers[0]}:input",
            loss="mse", weight=embeddings, name="embedding_mse"))
    for j, i in pairs:
        if hidden_states is not None:
            terms.append(FeatureDistillation(
                f"{t_prefix}{t_layers[i]}", f"{s_prefix}{s_layers[j]}",
                loss="mse", weight=hidden_states, name=f"hidden_mse_{j}"))
        if attention is not None:
            terms.append(FeatureDistillation(
                f"{t_prefix}{t_layers[i]}:attention",
                f"{s_prefix}{s_layers[j]}:attention", loss="attention_kl",
                weight=attention, projection=None, name=f"attention_kl_{j}"))
    return terms


def _pairs(layer_map, teacher_layers, student_layers):
    """`[(student_layer, teacher_layer)]` from a `layer_map`."""
    if isinstance(layer_map, str):
        if layer_map != "uniform":
            raise UsageError(f"layer_map: unknown map {layer_map!r} (known: "
                             "'uniform', a list or a dict of indices)")
        layer_map = uniform_layer_map(teacher_layers, student_layers)
    if isinstance(layer_map, dict):
        pairs = sorted(layer_map.items())
    elif isinstance(layer_map, (list, tuple)):
        if len(layer_map) != student_layers:
            raise UsageError(f"layer_map: expected {student_layers} teacher "
                             f"layers (one per student layer), got "
                             f"{len(layer_map)}")
        pairs = list(enumerate(layer_map))
    else:
        raise UsageError(f"layer_map: expected 'uniform', a list or a dict, "
                         f"got {layer_map!r}")
    for j, i in pairs:
        if not all(is_int(k) for k in (j, i)):
            raise UsageError(f"layer_map: pair {j!r} -> {i!r}: layers are given by "
                             "their integer index")
        if not (0 <= j < student_layers and 0 <= i < teacher_layers):
            raise UsageError(
                f"layer_map: pair {j} -> {i} is out of range (student "
                f"layers 0..{student_layers - 1}, teacher layers "
                f"0..{teacher_layers - 1})")
    return pairs


__all__ = ["find_backbone", "transformer_terms", "uniform_layer_map"]
