"""Stages 2 and 3, the teacher: adaptation to the task, then its outputs.

Two routes, as the config says:

- `teacher.backbone`: a pretrained BERT checkpoint (e.g. all-MiniLM-L6-v2)
  becomes a text teacher (`kd_keras.teachers.build_text_teacher`) and is
  adapted by `kd_keras.teachers.adapt_text_teacher`, the one adaptation path
  that library users and the benchmarks call too (an exact head on frozen
  features, its top blocks fine-tuned, or the whole backbone). The adapted
  weights and its logits are saved in `OUTPUT.partial/`, so `--resume`
  never adapts a teacher twice. A pooled-sentence-vector term
  (`classifier/pooling`) comes from the adaptation's own pass beside the
  logits (for the top blocks, from the cached activations of the frozen
  blocks), so the teacher never runs twice over a text. With feature
  terms at other layers, the adaptation reads only the labelled training
  rows and the validation split, and stage 3's one pass over every split
  gives the logits and the features together (`run_teacher`).
- `teacher.model`: a ready teacher (`.keras`, SavedModel, ONNX, ...) loaded
  with `kd_keras.teachers.load_teacher`; it reads raw strings or, when its
  input is integer, the same WordPiece ids as the student. Its logits are
  computed through `kd_keras.cache` (`distill.cache_teacher`), which resumes
  a pass that was interrupted; with `distill.features`, no cache and the
  local engine, the features' one pass gives them instead.
"""

import dataclasses
import functools
from typing import Optional

import keras
import numpy as np

from kd_keras import cache as cache_lib
from kd_keras import teachers
from kd_keras.data import SPLITS
from kd_keras.distillation import checks
from kd_keras.errors import ConfigError
from kd_keras.errors import KdKerasError
from kd_keras.errors import one_line
from kd_keras.files.atomic import atomic_path
from kd_keras.files.resume import load_npz
from kd_keras.files.resume import resumed
from kd_keras.files.resume import save_npz
from kd_keras.pipeline.ready_teacher import check_teacher_inputs
from kd_keras.teachers.forward import as_feature_dtype
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
        logits: logits per split that the adaptation already computed
            (`None` when stage 3's feature pass computes them: a backbone
            route with `distill.features` beyond the pooled vector).
        features_saved: True when the adaptation also saved the features
            that `distill.features` name (the pooled sentence vector, from
            the same pass as its logits).
    """

    teacher: object
    model: Optional[keras.Model]
    params: Optional[int]
    route: str
    reads_ids: bool
    logits: Optional[dict] = None
    features_saved: bool = False


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


def _save_features(cfg, run, values):
    """Saves `{split: {teacher_layer: array}}` in `distill.feature_dtype`."""
    save_npz(_features_file(run), {
        f"{split}|{layer}": as_feature_dtype(layer, value, cfg.distill.feature_dtype)
        for split, layers in values.items() for layer, value in layers.items()})


def _adapt_backbone(cfg, data, run, feature_cache_dir):
    t = cfg.teacher
    model = teachers.build_text_teacher(
        teachers.resolve_backbone(t.backbone), data.num_classes,
        sequence_length=t.sequence_length, pooling=t.pooling)
    weights, logits_file = run.file("teacher.weights.h5"), run.file("adapted_logits.npz")
    gives_features = _adaptation_gives_features(cfg, model)
    texts, labels, labels_everything = _adaptation_inputs(cfg, data, gives_features)
    with_features = bool(cfg.distill.features) and labels_everything
    record = run.done(ADAPTATION)
    if record is not None:
        resumed(weights, model.load_weights)
        model.trainable = False
        logits = resumed(logits_file, load_npz) if labels_everything else None
        if with_features:
            resumed(_features_file(run), load_npz)  # checked now, read by stage 4
        route = record["route"]
    else:
        adapted = teachers.adapt_text_teacher(
            model, texts, labels, adaptation_of(cfg),
            feature_cache_dir=feature_cache_dir, verbose=cfg.verbose,
            with_pooling=with_features)
        with atomic_path(weights, suffix=".weights.h5") as tmp:
            model.save_weights(tmp)
        route = adapted.route
        logits = adapted.logits if labels_everything else None  # else partial
        if with_features:
            layer = pooling_layer(model)
            _save_features(cfg, run, {s: {layer: v} for s, v in adapted.pooled.items()})
        if logits is not None:
            save_npz(logits_file, logits)
        run.finish(ADAPTATION, {"route": route})
    return TeacherState(teacher=teachers.as_teacher(model), model=model,
                        params=int(model.count_params()), route=route, reads_ids=False,
                        logits=logits, features_saved=with_features)


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
        raise type(e)(f"teacher.model: {one_line(e)}") from None
    model = getattr(teacher, "model", None)
    checks.check_gives_logits(f"teacher.model: {cfg.teacher.model}", model=model)
    reads_ids = check_teacher_inputs(teacher, cfg.teacher.model)
    if reads_ids:
        length = teachers.input_specs(teacher)[0][2][1]
        if length is not None and length != cfg.student_sequence_length:
            raise ConfigError(
                f"student.sequence_length: the teacher {cfg.teacher.model} reads {length} "
                f"token ids but the student's sequence length is "
                f"{cfg.student_sequence_length}; set student.sequence_length: {length}")
    if run.done(ADAPTATION) is None:
        run.finish(ADAPTATION, {"route": "ready teacher model"})
    params = int(model.count_params()) if model is not None else None
    return TeacherState(teacher=teacher, model=model, params=params,
                        route="ready teacher model", reads_ids=reads_ids)


def teacher_inputs(state, data, split):
    """What the teacher reads for a split: the ids or the raw strings."""
    return data.ids[split] if state.reads_ids else _strings(data.dataset.texts[split])


def _predict(cfg, state, data, run, split):
    x = teacher_inputs(state, data, split)
    if cfg.distribute.engine == "ray" and len(x):  # The cache is how Ray hands logits back.
        from kd_keras import distribute

        source = state.teacher if cfg.teacher.model is None else functools.partial(
            teachers.load_teacher, cfg.teacher.model)  # Each actor loads the file.
        cache = distribute.ray_cache_teacher_outputs(
            source, x, run.file("cache", f"logits-{split}"),
            cluster=distribute.RayCluster.from_config(cfg.distribute), batch_size=256,
            verbose=cfg.verbose, fingerprint=state.teacher.fingerprint())
        return np.asarray(cache.logits(), np.float32)
    if cfg.distill.cache_teacher:
        cache = cache_lib.cache_teacher_outputs(
            state.teacher, x, run.file("cache", f"logits-{split}"), batch_size=256,
            verbose=cfg.verbose)
        return np.asarray(cache.logits(), np.float32)
    if len(x) == 0:
        return np.zeros((0, data.num_classes), np.float32)
    return np.concatenate([np.asarray(state.teacher.predict_on_batch(x[i:i + 256]))
                           for i in range(0, len(x), 256)]).astype(np.float32)


def _features_file(run):
    return run.file("teacher_features.npz")


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


def teacher_features(cfg, run):
    """The saved teacher features: dict split -> {teacher_layer: array},
    or `None` when the config names no feature terms."""
    if not cfg.distill.features:
        return None
    flat = resumed(_features_file(run), load_npz)
    out = {split: {} for split in SPLITS}
    for key, value in flat.items():
        split, layer = key.split("|", 1)
        out[split][layer] = value
    return out


def _features_give_logits(cfg, state):
    """Whether the features' one pass (`compute_features`) also gives the
    logits, so that the teacher runs once: on the backbone route, whose
    adaptation labelled only what it fitted on (`_adaptation_inputs`), and
    for a ready Keras teacher unless its logits go through the cache or Ray
    (which keep their own files)."""
    if state.logits is not None or not cfg.distill.features or state.model is None:
        return False
    return cfg.teacher.backbone is not None or (
        not cfg.distill.cache_teacher and cfg.distribute.engine != "ray")


def teacher_outputs(cfg, data, state, run):
    """Stage 3: the teacher's logits for every split, saved for resume.

    Returns:
        dict split -> float32 `[n, num_classes]`.

    Raises:
        ConfigError: the teacher's class count differs from the data's.
    """
    path = run.file("teacher_logits.npz")
    if run.done(OUTPUTS) is not None:
        return resumed(path, load_npz)
    passes = None
    if _features_give_logits(cfg, state):
        passes = compute_features(cfg, data, state)
        logits = {s: p.logits if len(p.logits) else np.zeros((0, data.num_classes), np.float32)
                  for s, p in passes.items()}
    else:
        logits = state.logits or {s: _predict(cfg, state, data, run, s) for s in SPLITS}
    for split in SPLITS:
        found = logits[split].shape[-1] if logits[split].ndim == 2 else logits[split].shape
        if found != data.num_classes:
            source = cfg.teacher.model or cfg.teacher.backbone
            raise ConfigError(
                f"teacher.model: {source} outputs {found} logits but the data has "
                f"{data.num_classes} classes ({', '.join(map(str, data.dataset.label_names))})")
    checks.check_gives_logits(f"teacher.model: {cfg.teacher.model or cfg.teacher.backbone}",
                              values=np.concatenate([logits[s] for s in SPLITS]))
    if cfg.distill.features and not state.features_saved:
        passes = passes or compute_features(cfg, data, state)
        save_npz(_features_file(run), {f"{split}|{layer}": value
                                       for split, p in passes.items()
                                       for layer, value in p.layers.items()})
    save_npz(path, logits)
    run.finish(OUTPUTS)
    return logits
