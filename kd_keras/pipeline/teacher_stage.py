"""Stages 2 and 3, the teacher: adaptation to the task, then its outputs.

Two routes, as the config says:

- `teacher.backbone`: a pretrained BERT checkpoint (e.g. all-MiniLM-L6-v2)
  becomes a text teacher (`kd_keras.teachers.build_text_teacher`) and is
  adapted by `kd_keras.teachers.adapt_text_teacher`, the one adaptation path
  that library users and the benchmarks call too (an exact head on frozen
  features, its top blocks fine-tuned, or the whole backbone). The adapted
  weights are saved in `OUTPUT.partial/`, so `--resume` never adapts a
  teacher twice. When the adaptation reads every text, its own pass gives
  the logits of every split and, for a pooled-sentence-vector term
  (`classifier/pooling`), the pooled vectors (for the top blocks, from the
  cached activations of the frozen blocks), and they are stored at once:
  the teacher never runs twice over a text. With feature terms at other
  layers, the adaptation reads only the labelled training rows and the
  validation split, and stage 3's one pass over every split gives the
  logits and the features together (`run_teacher`).
- `teacher.model`: a ready teacher (`.keras`, SavedModel, ONNX, ...) loaded
  with `kd_keras.teachers.load_teacher`; it reads raw strings or, when its
  input is integer, the same WordPiece ids as the student. Its logits are
  computed by `kd_keras.cache.cache_teacher_outputs` (`distill.cache_teacher`),
  which resumes a pass that was interrupted, or on Ray; with
  `distill.features`, one local pass gives the logits and the features.

Every route ends in the same store, one teacher cache per split
(`teacher_store.TeacherOutputs`), which the training streams from.
"""

import dataclasses
import functools
import os
from typing import Optional

import keras
import numpy as np

from kd_keras import cache as cache_lib
from kd_keras import teachers
from kd_keras.data import SPLITS
from kd_keras.distillation import checks
from kd_keras.errors import ConfigError
from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.files.atomic import atomic_path
from kd_keras.files.resume import resumed
from kd_keras.pipeline.precision import building
from kd_keras.pipeline.ready_teacher import check_teacher_inputs
from kd_keras.pipeline.ready_teacher import check_teacher_vocabulary
from kd_keras.pipeline.teacher_store import TeacherOutputs
from kd_keras.pipeline.teacher_store import resumed_outputs
from kd_keras.pipeline.teacher_store import FOLDER
from kd_keras.pipeline.teacher_store import store_outputs
from kd_keras.teachers.forward import as_feature_dtype
from kd_keras.teachers.forward import teacher_logits
from kd_keras.teachers.forward import run_teacher

ADAPTATION = "teacher_adaptation"
OUTPUTS = "teacher_outputs"


@dataclasses.dataclass(frozen=True)
class TeacherState:
    """The teacher after stage 2.

    Attributes:
        teacher: the `kd_keras.teachers.Teacher` that gives logits.
        model: its `keras.Model` (`None` for non-Keras teachers).
        params: its parameter count, when known.
        route: how it was obtained, for the results.
        reads_ids: True when it reads the student's WordPiece ids.
        outputs: the `TeacherOutputs` the adaptation already stored (its
            pass read every text), or `None` when stage 3 computes them.
    """

    teacher: object
    model: Optional[keras.Model]
    params: Optional[int]
    route: str
    reads_ids: bool
    outputs: Optional[TeacherOutputs] = None


def adaptation_of(cfg):
    """The `kd_keras.teachers.Adaptation` that `teacher.fine_tune` describes."""
    ft = cfg.teacher.fine_tune
    if not ft.train_backbone or ft.top_layers == 0:
        method = "head"
    elif ft.top_layers is None:
        method = "full"
    else:
        method = "top_layers"
    return teachers.Adaptation(
        method=method, top_layers=ft.top_layers if method == "top_layers" else None,
        epochs=ft.epochs, learning_rate=ft.learning_rate, batch_size=ft.batch_size,
        seed=cfg.seed)


def _strings(texts):
    return np.asarray([str(t) for t in texts], dtype=object)


def pooling_layer(model):
    """The `teacher_layer` that names a text teacher's pooled sentence
    vector, e.g. `"classifier/pooling"`."""
    return f"{model.classifier.name}/pooling"


def _adaptation_gives_features(cfg, model):
    """Whether the adaptation's own pass gives every feature the config
    names: true when they name at most the pooled sentence vector, which
    the adaptation computes beside the logits (for the top-blocks method,
    from the cached activations of the frozen blocks)."""
    return {t.teacher_layer for t in cfg.distill.features} <= {pooling_layer(model)}


def _adaptation_inputs(cfg, data, gives_features):
    """What the adaptation reads: `(texts, labels, labels_everything)`.

    When the adaptation's pass gives the logits and features of every
    split (`gives_features`), it reads every text. Otherwise stage 3 runs
    the whole teacher over every split anyway and that one pass gives the
    logits too, so the adaptation reads only what it fits and validates
    on: the labelled training rows and the validation split. Each
    unlabeled row (the `distill.augment` copies, the rest of
    `data.labels_fraction`) then goes through the teacher once instead of
    twice.
    """
    texts, labels = data.dataset.texts, data.labels
    if gives_features:
        return texts, labels, True
    keep = np.asarray(labels["train"]) >= 0
    return ({"train": np.asarray(texts["train"], object)[keep],
             "validation": texts["validation"]},
            {"train": np.asarray(labels["train"])[keep], "validation": labels["validation"]},
            False)


def _store(cfg, data, run, teacher, inputs, logits, features=None):
    """Checks the teacher's logits against the data, then stores them with
    `features` (`{split: {teacher_layer: array}}`) in the run's store,
    keyed by the `inputs` the teacher read."""
    _check_logits(cfg, data, logits)
    if features is not None:
        features = {split: {layer: as_feature_dtype(layer, value, cfg.distill.feature_dtype)
                            for layer, value in layers.items()}
                    for split, layers in features.items()}
    return store_outputs(run.file(FOLDER), inputs, logits, teacher.fingerprint(),
                         data.num_classes, features, cfg.distill.feature_dtype)


def _check_logits(cfg, data, logits):
    """Refuses logits of another class count, or that are not finite."""
    source = cfg.teacher.model or cfg.teacher.backbone
    for split in SPLITS:
        found = logits[split].shape[-1] if logits[split].ndim == 2 else logits[split].shape
        if len(logits[split]) and found != data.num_classes:
            raise ConfigError(
                f"teacher.model: {source} outputs {found} logits but the data has "
                f"{data.num_classes} classes ({', '.join(map(str, data.dataset.label_names))})")
        finite = np.isfinite(logits[split]).all(axis=-1) if len(logits[split]) else []
        if not np.all(finite):
            raise ConfigError(
                f"teacher.model: {source} gives non-finite logits (NaN or inf) for "
                f"{split} example {int(np.argmin(finite))}; check the teacher and its inputs")
    checks.check_gives_logits(f"teacher.model: {source}",
                              values=np.concatenate([logits[s] for s in SPLITS]))


def _sizes(data):
    return {split: len(data.labels[split]) for split in SPLITS}


def check_teacher_layers(cfg, model):
    """Refuses, before the teacher runs, a `distill.features` term whose
    `teacher_layer` names no layer of `model` (a Keras teacher, or a
    `TextTeacher` whose layers are named from its classifier)."""
    import difflib

    from kd_keras.distillation.feature_views import resolve

    classifier = getattr(model, "classifier", None)
    offered = getattr(model, "feature_names", None)  # a text teacher's hook
    for i, term in enumerate(cfg.distill.features or ()):
        target, key = model, term.teacher_layer
        if classifier is not None and key.startswith(f"{classifier.name}/"):
            target, key = classifier, key[len(classifier.name) + 1:]
        elif callable(offered):  # The hook would take any name until it runs.
            names = offered()
            if key not in names:
                close = difflib.get_close_matches(key, names, n=5, cutoff=0.5)
                raise ConfigError(
                    f"distill.features[{i}].teacher_layer: the teacher offers no feature "
                    f"{key!r} (close matches: {', '.join(close or names[:8])})")
            continue
        try:
            resolve(target, key, f"distill.features[{i}].teacher_layer")
        except UsageError as e:
            raise ConfigError(one_line(e)) from None


def _adapt_backbone(cfg, data, run, feature_cache_dir):
    t = cfg.teacher
    with building(cfg.precision):
        try:
            model = teachers.build_text_teacher(
                teachers.resolve_backbone(t.backbone), data.num_classes,
                sequence_length=t.sequence_length, pooling=t.pooling)
        except UsageError as e:  # The argument is a config key here.
            message = one_line(e)
            if not message.startswith("sequence_length:"):
                raise
            raise ConfigError(f"teacher.{message}") from None
    check_teacher_layers(cfg, model)
    weights = run.file("teacher.weights.h5")
    gives_features = _adaptation_gives_features(cfg, model)
    texts, labels, labels_everything = _adaptation_inputs(cfg, data, gives_features)
    with_features = bool(cfg.distill.features) and labels_everything
    record = run.done(ADAPTATION)
    outputs = None
    if record is not None:
        resumed(weights, model.load_weights)
        model.trainable = False
        if labels_everything:
            outputs = resumed_outputs(run.file(FOLDER), _sizes(data), data.num_classes)
        route = record["route"]
    else:
        adapted = teachers.adapt_text_teacher(
            model, texts, labels, adaptation_of(cfg),
            feature_cache_dir=feature_cache_dir, verbose=cfg.verbose,
            with_pooling=with_features)
        with atomic_path(weights, suffix=".weights.h5") as tmp:
            model.save_weights(tmp)
        route = adapted.route
        if labels_everything:  # Else its logits cover some rows only.
            layer = pooling_layer(model)
            features = ({s: {layer: v} for s, v in adapted.pooled.items()}
                        if with_features else None)
            outputs = _store(cfg, data, run, teachers.as_teacher(model),
                             {s: _strings(data.dataset.texts[s]) for s in SPLITS},
                             adapted.logits, features)
        run.finish(ADAPTATION, {"route": route},
                   files=("teacher.weights.h5",) + ((FOLDER,) if labels_everything else ()))
    return TeacherState(teacher=teachers.as_teacher(model), model=model,
                        params=int(model.count_params()), route=route, reads_ids=False,
                        outputs=outputs)


def adapt_teacher(cfg, data, run, feature_cache_dir):
    """Stage 2: builds or loads the teacher and adapts it to the task.

    Args:
        cfg: the `RunConfig`.
        data: the `PreparedData`.
        run: the `RunDir`.
        feature_cache_dir: where frozen backbone features are cached across
            runs (the head route).

    Returns:
        A `TeacherState`.
    """
    if cfg.teacher.backbone is not None:
        return _adapt_backbone(cfg, data, run, feature_cache_dir)
    try:
        teacher = teachers.load_teacher(cfg.teacher.model)
    except KdKerasError as e:  # Names the file; say which key holds it.
        raise type(e)(f"teacher.model: {_naming_the_file(cfg, one_line(e))}") from None
    model = getattr(teacher, "model", None)  # One output: `KerasTeacher` refuses more.
    checks.check_gives_logits(f"teacher.model: {cfg.teacher.model}", model=model)
    if model is not None:
        check_teacher_layers(cfg, model)
    reads_ids = check_teacher_inputs(teacher, cfg.teacher.model)
    if reads_ids:
        length = teachers.input_specs(teacher)[0][2][1]
        if length is not None and length != cfg.student_sequence_length:
            # Left to the recipe, the student's length is teacher.sequence_length.
            key = ("teacher.sequence_length"
                   if any(c.key == "student.sequence_length" for c in data.recipe)
                   else "student.sequence_length")
            raise ConfigError(
                f"{key}: the teacher {cfg.teacher.model} reads {length} token ids but the "
                f"student's sequence length is {cfg.student_sequence_length}; set {key}: "
                f"{length}")
        check_teacher_vocabulary(teacher, data.vocab_size, cfg.teacher.model,
                                 cfg.student_sequence_length)
    if run.done(ADAPTATION) is None:
        run.finish(ADAPTATION, {"route": "ready teacher model"})
    params = int(model.count_params()) if model is not None else None
    return TeacherState(teacher=teacher, model=model, params=params,
                        route="ready teacher model", reads_ids=reads_ids)


def teacher_inputs(state, data, split):
    """What the teacher reads for a split: the ids or the raw strings."""
    return data.ids[split] if state.reads_ids else _strings(data.dataset.texts[split])


def _naming_the_file(cfg, message):
    """A teacher's message about itself (`teacher: ...`) with its file's
    name in front instead."""
    prefix = "teacher: "
    return f"{cfg.teacher.model}: {message[len(prefix):]}" if message.startswith(prefix) \
        else message


def _cached_logits(cfg, state, data, run):
    """The logits of every split through a teacher cache built in the run's
    store: on Ray, or by `cache_teacher_outputs` (`distill.cache_teacher`),
    which resumes an interrupted pass. `None` for a local pass."""
    if cfg.distribute.engine != "ray" and not cfg.distill.cache_teacher:
        return None
    directories = {}
    for split in SPLITS:
        x = teacher_inputs(state, data, split)
        directories[split] = run.file(FOLDER, split) if len(x) else None
        if not len(x):
            continue
        if cfg.distribute.engine == "ray":  # The cache is how Ray hands logits back.
            from kd_keras import distribute

            source = state.teacher if cfg.teacher.model is None else functools.partial(
                teachers.load_teacher, cfg.teacher.model)  # Each actor loads the file.
            distribute.ray_cache_teacher_outputs(
                source, x, directories[split],
                cluster=distribute.RayCluster.from_config(cfg.distribute), batch_size=256,
                verbose=cfg.verbose, fingerprint=state.teacher.fingerprint())
        else:
            try:
                cache_lib.cache_teacher_outputs(state.teacher, x, directories[split],
                                                batch_size=256, verbose=cfg.verbose)
            except KdKerasError as e:  # e.g. "teacher: outputs probabilities"
                message = one_line(e)
                if cfg.teacher.model is None or not message.startswith("teacher: "):
                    raise
                raise type(e)(f"teacher.model: {_naming_the_file(cfg, message)}") from None
    return directories


def _predict(state, x, num_classes):
    """The logits of a local pass without the cache (`distill.cache_teacher:
    false`), through the batch function the cache builder calls."""
    if len(x) == 0:
        return np.zeros((0, num_classes), np.float32)
    return teacher_logits(state.teacher, x)


def compute_features(cfg, data, state):
    """The teacher's logits and the outputs that `distill.features` name,
    for every split, in one forward pass per split (`run_teacher`).

    Args:
        cfg: the `RunConfig` (its `distill.features` name the layers,
            `distill.feature_dtype` their dtype).
        data: the `PreparedData`.
        state: the `TeacherState` (a Keras teacher).

    Returns:
        A dict split -> `kd_keras.teachers.forward.TeacherPass`.

    Raises:
        ConfigError: the teacher is not a Keras model.
    """
    if state.model is None:
        raise ConfigError(f"distill.features: needs a Keras teacher; {cfg.teacher.model} "
                          "gives logits only")
    keys = list(dict.fromkeys(t.teacher_layer for t in cfg.distill.features))
    desc = "teacher: logits + features [{}]" if cfg.verbose else None
    return {split: run_teacher(state.model, teacher_inputs(state, data, split), keys,
                               desc=desc and desc.format(split),
                               feature_dtype=cfg.distill.feature_dtype)
            for split in SPLITS}


def compute_outputs(cfg, data, state, run):
    """Stage 3: the teacher's logits (and features) for every split, in the
    run's store.

    With `distill.features`, one local pass gives the logits and the
    features (`compute_features`); else the logits come from a cache build
    (`distill.cache_teacher`, Ray) or a local pass.

    Returns:
        A `TeacherOutputs`.

    Raises:
        ConfigError: the teacher's class count differs from the data's.
    """
    if run.done(OUTPUTS) is not None:
        return resumed_outputs(run.file(FOLDER), _sizes(data), data.num_classes)
    inputs = {split: teacher_inputs(state, data, split) for split in SPLITS}
    outputs = state.outputs
    if outputs is None and cfg.distill.features:
        passes = compute_features(cfg, data, state)
        logits = {s: p.logits if len(p.logits) else np.zeros((0, data.num_classes), np.float32)
                  for s, p in passes.items()}
        outputs = _store(cfg, data, run, state.teacher, inputs, logits,
                         {s: p.layers for s, p in passes.items()})
    elif outputs is None:
        directories = _cached_logits(cfg, state, data, run)
        if directories is None:
            logits = {s: _predict(state, inputs[s], data.num_classes) for s in SPLITS}
            outputs = _store(cfg, data, run, state.teacher, inputs, logits)
        else:
            cached = TeacherOutputs(directories, data.num_classes)
            _check_logits(cfg, data, {s: cached.logits(s) for s in SPLITS})
            outputs = cached
    # A resumed run checks the store's bytes (another teacher's reads as
    # well); one the adaptation wrote is in its record already.
    wrote = state.outputs is None and os.path.isdir(run.file(FOLDER))
    run.finish(OUTPUTS, files=(FOLDER,) if wrote else ())
    return outputs
