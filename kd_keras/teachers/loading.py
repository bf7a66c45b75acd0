"""`load_teacher`: one entry point for every teacher source."""

import inspect
import json
import os

import keras

from kd_keras.errors import DataError
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.files.models import load_model
from kd_keras.teachers.base import KerasTeacher
from kd_keras.teachers.base import Teacher


def _hf_config(path):
    """A checkpoint folder's `config.json` (`{}` when it has none)."""
    config_path = os.path.join(path, "config.json")
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as e:
        raise DataError(f"{config_path}: not a readable JSON file ({one_line(e)})") from None
    if not isinstance(config, dict):
        raise DataError(f"{config_path}: expected a JSON object, found "
                        f"{type(config).__name__}")
    return config


def load_teacher(source, **options):
    """Loads a teacher from any supported source.

    | `source`                                   | teacher                  | in graph |
    |--------------------------------------------|--------------------------|----------|
    | a `keras.Model` or a `Teacher`             | as is                    | yes      |
    | a list/tuple of sources                    | `EnsembleTeacher`        | if all are |
    | `*.keras` file                             | `kd_keras.files.models.load_model` (`safe_mode=True`) | yes |
    | SavedModel directory (`saved_model.pb`)    | `SavedModelTeacher`      | yes      |
    | `*.onnx` file                              | `OnnxTeacher` (ONNX Runtime) | no   |
    | Hugging Face BERT checkpoint dir, KerasHub preset or `hf://` URI | `load_bert_teacher` | yes |
    | any `transformers` id or dir, `runtime="torch"` | `TransformersTeacher` | no  |

    Args:
        source: see the table.
        **options: passed to the loader: `call_endpoint`, `output_key`
            (SavedModel); `output_name` (ONNX); `num_classes`, `pooling`
            (BERT via KerasHub); `runtime="torch"` plus `output`,
            `auto_class`, `sequence_length`, `local_files_only`
            (transformers); `weights`, `combine` (ensembles).

    Returns:
        A `kd_keras.teachers.Teacher`. In-graph teachers have `.model`, a
        `keras.Model` that `Distiller` can run inside `train_step`.

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> load_teacher(m).in_graph
    True
    """
    if isinstance(source, (Teacher, keras.Model)):
        _no_options(f"source: a {type(source).__name__}", options)
        return source if isinstance(source, Teacher) else KerasTeacher(source)
    if isinstance(source, (list, tuple)):
        from kd_keras.teachers.ensemble import EnsembleTeacher

        weights = options.pop("weights", None)
        combine = options.pop("combine", "logits")
        members = [load_teacher(s, **options) for s in source]
        return EnsembleTeacher(members, weights=weights, combine=combine)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"Cannot load a teacher from a {type(source).__name__}; pass a "
            "keras.Model, a file or directory path, or a preset name."
        )
    source = os.fspath(source)
    runtime = options.pop("runtime", None)
    if runtime not in (None, "keras", "torch"):
        raise UsageError(f"runtime: must be 'keras' or 'torch', got {runtime!r}")
    if runtime == "torch":
        from kd_keras.teachers.transformers_teacher import TransformersTeacher

        return _build(TransformersTeacher, source, options)
    if source.endswith(".keras"):
        _no_options(source, options)
        return KerasTeacher(load_model(source))
    if source.endswith(".onnx"):
        from kd_keras.teachers.onnx_teacher import OnnxTeacher

        return _build(OnnxTeacher, source, options)
    if os.path.isfile(os.path.join(source, "saved_model.pb")):
        from kd_keras.teachers.saved_model import SavedModelTeacher

        return _build(SavedModelTeacher, source, options)
    if os.path.isdir(source):
        config = _hf_config(source)
        if config.get("model_type", "bert") != "bert" and runtime is None:
            from kd_keras.teachers.transformers_teacher import TransformersTeacher

            return _build(TransformersTeacher, source, options)
        from kd_keras.teachers.bert import load_bert_teacher

        return KerasTeacher(load_bert_teacher(source, **options))
    if "://" not in source and (os.path.exists(source) or os.path.sep in source):
        raise MissingFileError(
            f"{source}: not a .keras file, .onnx file, SavedModel or "
            "checkpoint directory")
    # A KerasHub preset: a name ("bert_tiny_en_uncased") or a URI
    # ("hf://sentence-transformers/all-MiniLM-L6-v2", "kaggle://...").
    from kd_keras.teachers.bert import load_bert_teacher

    return KerasTeacher(load_bert_teacher(source, **options))


def _no_options(source, options, allowed=()):
    unexpected = sorted(set(options) - set(allowed))
    if unexpected:
        raise UsageError(f"{source}: unexpected option(s) {unexpected}"
                         + (f" (known: {', '.join(allowed)})" if allowed else ""))


def _build(cls, source, options):
    """`cls(source, **options)`, an option it does not take refused in one
    line (not a `TypeError`)."""
    allowed = [p for p in inspect.signature(cls).parameters if p not in ("self", "path",
                                                                         "source")]
    _no_options(source, options, allowed)
    return cls(source, **options)


_ONNX_DTYPES = {"float": "float32", "double": "float64", "float16": "float16"}


def input_specs(teacher):
    """The inputs a teacher declares, to check them before running it.

    Args:
        teacher: a `Teacher` or a `keras.Model`.

    Returns:
        A list of `(name, dtype, shape)`, one per input, with `None` for the
        batch and other free dimensions (e.g. `[("ids", "int32", (None,
        64))]`); `None` when the teacher declares none (a subclassed Keras
        model, a `transformers` teacher, which reads raw strings).

    Example:

    >>> import keras
    >>> m = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2)])
    >>> input_specs(m)
    [('x', 'float32', (None, 4))]
    """
    from kd_keras.teachers.onnx_teacher import OnnxTeacher
    from kd_keras.teachers.text import TextTeacher

    model = teacher.model if isinstance(teacher, Teacher) else teacher
    if isinstance(model, TextTeacher):  # Subclassed: it tokenizes raw strings.
        return [("text", "string", (None,))]
    if isinstance(model, keras.Model):
        inputs = getattr(model, "inputs", None)  # Subclassed models have none.
        if not inputs:
            return None
        return [(t.name, str(t.dtype), tuple(t.shape)) for t in keras.tree.flatten(inputs)]
    if isinstance(teacher, OnnxTeacher):
        specs = []
        for i in teacher.session.get_inputs():
            dtype = i.type[len("tensor("):-1] if i.type.startswith("tensor(") else i.type
            shape = tuple(d if isinstance(d, int) and d > 0 else None for d in i.shape)
            shape = (None,) + shape[1:]  # OnnxTeacher runs a fixed batch size in chunks.
            specs.append((i.name, _ONNX_DTYPES.get(dtype, dtype), shape))
        return specs
    return None
