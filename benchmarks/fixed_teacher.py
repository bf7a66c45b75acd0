"""The one teacher a benchmark's variants all distil from.

`FixedTeacher` adapts the configured teacher once with the CLI's own stages
(`teacher_stage.adapt_teacher`, `teacher_stage.compute_outputs`), or loads a
finished run's (`teacher.weights.h5` and `teacher_outputs/`, written by
`make demo`), and then labels whatever the variants need: the augmented
copies of `distill.augment` and the teacher layers of `distill.features`,
both in one forward pass (the CLI's own `teacher_stage.run_teacher`),
kept in memory so variants that share copies label them once.
"""

import os
import sys

import numpy as np

from kd_keras.data import SPLITS
from kd_keras.files.atomic import atomic_path

BATCH = 128  # texts per teacher forward pass


class FixedTeacher:
    """The teacher every variant distils from: adapted here once with the
    CLI's stages, or loaded from a finished run (`run_dir`).

    Args:
        cfg: the base `RunConfig` (its teacher section).
        data: the base `PreparedData` (the split every variant shares).
        run_dir: a finished run of the same config and split, or `None`.
        work: a scratch folder for the adaptation.
    """

    def __init__(self, cfg, data, run_dir, work):
        from kd_keras.pipeline import teacher_stage
        from kd_keras.pipeline.workdir import RunDir

        self.cfg, self.data, self.run_dir, self.model = cfg, data, run_dir, None
        self._labelled = {}  # (texts, layers, dtype) -> the teacher's logits and layers on them
        self._original_features = {}  # (layers, dtype) -> their values on the base data's splits
        if run_dir is None:
            run = RunDir(os.path.join(work, "teacher"), cfg)
            state = teacher_stage.adapt_teacher(cfg, data, run, None)
            outputs = teacher_stage.compute_outputs(cfg, data, state, run)
            self.logits = {s: outputs.logits(s) for s in SPLITS}
            self.model = state.model
            if cfg.distill.features:  # the same pass gave them: kept for `features`
                layers, _ = feature_key(cfg)
                caches = {s: outputs.cache(s) for s in SPLITS}
                self._original_features[feature_key(cfg)] = {
                    s: {k: cache.features(k) for k in layers}
                    for s, cache in caches.items() if cache is not None}
            return
        from kd_keras.pipeline.teacher_store import FOLDER
        from kd_keras.pipeline.teacher_store import resumed_outputs

        path = os.path.join(run_dir, FOLDER)
        if not os.path.isdir(path):
            sys.exit(f"error: --run: {path} not found; run `make demo` first, or leave "
                     "--run out to adapt the teacher here")
        sizes = {s: len(data.labels[s]) for s in SPLITS}
        try:
            outputs = resumed_outputs(path, sizes, data.num_classes)
        except ValueError:
            sys.exit(f"error: --run: {path} does not belong to this data split "
                     "(the demo's, seed 0, without --max-examples or --data)")
        self.logits = {s: outputs.logits(s) for s in SPLITS}

    def teacher_model(self):
        """The adapted teacher (a `TextTeacher`, raw strings in)."""
        if self.model is None:
            from kd_keras import teachers

            t = self.cfg.teacher
            self.model = teachers.build_text_teacher(
                teachers.resolve_backbone(t.backbone), self.data.num_classes,
                sequence_length=t.sequence_length, pooling=t.pooling)
            self.model.load_weights(os.path.join(self.run_dir, "teacher.weights.h5"))
        return self.model

    def outputs(self, texts, layers=(), feature_dtype="float32"):
        """The teacher's logits and named layers on `texts`, one pass.

        Args:
            texts: a list of strings.
            layers: teacher layer names (`distill.features` `teacher_layer`s).
            feature_dtype: the layers' dtype (`distill.feature_dtype`).

        Returns:
            A `kd_keras.teachers.forward.TeacherPass`, one row per text (the CLI's own
            `teacher_stage.run_teacher`), kept for the next variant.
        """
        from kd_keras.pipeline import teacher_stage

        key = (tuple(texts), tuple(layers), feature_dtype)
        if key not in self._labelled:
            x = np.asarray(texts, dtype=object)
            self._labelled[key] = teacher_stage.run_teacher(
                self.teacher_model(), x, layers, BATCH, desc="teacher: labelling",
                feature_dtype=feature_dtype)
        return self._labelled[key]

    def distillation_inputs(self, cfg, data):
        """What a config's distilled student trains on: `(data, logits,
        features)`, i.e. `data` plus the config's `distill.augment` copies
        (`augmented`), the teacher's logits on it and its `distill.features`
        targets (or `None`)."""
        if cfg.distill.augment.copies:
            return self.augmented(cfg)
        features = self.features(cfg, data) if cfg.distill.features else None
        return data, self.logits, features

    def augmented(self, cfg):
        """A variant's `PreparedData` (train split plus its augmented copies),
        the teacher's logits on it and its `distill.features` targets (or
        `None`)."""
        from kd_keras.pipeline import data_stage

        data = data_stage.prepare_data(cfg)  # the pipeline's own augmentation (seed 0)
        n = len(self.data.dataset.texts["train"])
        assert list(data.dataset.texts["train"][:n]) == list(self.data.dataset.texts["train"])
        layers, dtype = feature_key(cfg)
        extra = self.outputs(list(data.dataset.texts["train"][n:]), layers, dtype)
        logits = dict(self.logits, train=np.concatenate([self.logits["train"], extra.logits]))
        if not layers:
            return data, logits, None
        features = dict(self.features(cfg, self.data))  # shared by the variants
        features["train"] = {k: np.concatenate([features["train"][k], extra.layers[k]])
                             for k in layers}
        return data, logits, features

    def features(self, cfg, data):
        """The teacher outputs that `cfg.distill.features` name on `data`
        (dict split -> {teacher_layer: array}), by the CLI's own
        `teacher_stage.compute_features`; on the base data, computed once
        (or taken from the adaptation's own teacher-output stage)."""
        from kd_keras.pipeline import teacher_stage

        key = feature_key(cfg)
        if data is self.data and key in self._original_features:
            return self._original_features[key]
        state = teacher_stage.TeacherState(teacher=None, model=self.teacher_model(),
                                           params=None, route="fixed", reads_ids=False)
        print(f"teacher: features {[t.teacher_layer for t in cfg.distill.features]}")
        features = {split: p.layers
                    for split, p in teacher_stage.compute_features(cfg, data, state).items()}
        if data is self.data:
            self._original_features[key] = features
        return features


def feature_key(cfg):
    """`(teacher layers, dtype)` of a config's feature terms."""
    layers = tuple(dict.fromkeys(t.teacher_layer for t in cfg.distill.features or ()))
    return layers, cfg.distill.feature_dtype


def outputs_key(cfg, max_train=None):
    """A short hash of what a fixed teacher's outputs depend on: the teacher
    and data sections, the augmentation options, the feature terms' teacher
    layers and dtype, the seed and a training subsample (`max_train`). It
    names the file; `save_outputs` also records the texts themselves.

    Example:

    >>> from kd_keras.config import RunConfig
    >>> cfg = RunConfig()
    >>> outputs_key(cfg) == outputs_key(cfg, 10)
    False
    """
    import hashlib
    import json

    from kd_keras.config import header_resolved
    from kd_keras.config import to_dict

    d = to_dict(cfg.replace(data=header_resolved(cfg.data)))  # the header as read
    content = {"teacher": d["teacher"], "data": d["data"],
               "augment": d["distill"]["augment"], "features": feature_key(cfg),
               "seed": cfg.seed, "max_train": max_train}
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def data_fingerprint(data):
    """A sha256 of every split's texts and labels, in order (a
    `PreparedData`, or anything with `.dataset.texts` and `.labels`).

    Example:

    >>> import types
    >>> def d(texts):
    ...     return types.SimpleNamespace(dataset=types.SimpleNamespace(
    ...         texts={"train": texts}), labels={"train": np.zeros(len(texts), int)})
    >>> data_fingerprint(d(["a", "b"])) == data_fingerprint(d(["b", "a"]))
    False
    """
    import hashlib

    digest = hashlib.sha256()
    for split in sorted(data.labels):
        digest.update(split.encode() + b"\0")
        for text in data.dataset.texts[split]:
            digest.update(str(text).encode() + b"\0")
        digest.update(np.asarray(data.labels[split], dtype=np.int64).tobytes())
    return digest.hexdigest()


def save_outputs(path, logits, features, data):
    """Writes a fixed teacher's logits (split -> array) and feature targets
    (split -> {teacher_layer: array}, or `None`) on `data` to `path`
    (`.npz`, with `data_fingerprint(data)`), through a temporary file in the
    same folder, so that a later run can skip the teacher."""
    arrays = {f"logits|{s}": v for s, v in logits.items()}
    for split, layers in (features or {}).items():
        arrays.update({f"features|{split}|{k}": v for k, v in layers.items()})
    arrays["fingerprint"] = np.array(data_fingerprint(data))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_outputs(path, data, layers=()):
    """`(logits, features or None)` as `save_outputs` wrote them; exits with
    one line unless they were computed on `data` (the same texts and labels)
    for the feature `layers` named.

    Example:

    >>> import tempfile, types
    >>> data = types.SimpleNamespace(dataset=types.SimpleNamespace(
    ...     texts={"train": ["a", "b"], "test": ["c"]}), labels={"train": [0, 1], "test": [1]})
    >>> path = os.path.join(tempfile.mkdtemp(), "t.npz")
    >>> save_outputs(path, {"train": np.ones((2, 2)), "test": np.ones((1, 2))}, None, data)
    >>> logits, features = load_outputs(path, data)
    >>> logits["train"].shape, features
    ((2, 2), None)
    """
    def fail(why):
        sys.exit(f"error: {path}: {why}; delete the file to adapt the teacher again")

    logits, features = {}, {}
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        fail(f"not a saved teacher ({type(e).__name__}: {e})")
    if str(arrays.pop("fingerprint", "")) != data_fingerprint(data):
        fail("the saved teacher labelled other texts or labels than this run's data")
    for key, value in arrays.items():
        kind, *rest = key.split("|")
        if kind == "logits" and len(rest) == 1:
            logits[rest[0]] = value
        elif kind == "features" and len(rest) == 2:
            features.setdefault(rest[0], {})[rest[1]] = value
        else:
            fail(f"unexpected array {key!r}")
    for split, rows in data.labels.items():
        for name, found in [("logits", logits.get(split))] + [
                (layer, features.get(split, {}).get(layer)) for layer in layers]:
            if found is None or len(found) != len(rows):
                fail(f"no {name} for the {len(rows)} {split} rows")
    return logits, features or None
