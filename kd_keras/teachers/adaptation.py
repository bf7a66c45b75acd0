"""Adapting a pretrained text teacher to the task: one path for all callers.

A `TextTeacher` on a bare backbone (e.g. all-MiniLM-L6-v2) has an untrained
head. `adapt_text_teacher` adapts it in one of three ways, as an
`Adaptation` says, and returns its logits on every split:

- `"head"`: the backbone stays frozen; its pooled features of every text
  are computed once (optionally cached on disk with `kd_keras.cache`) and
  the head is solved exactly on them (`solve_head`: no epochs, no learning
  rate). Fast; the features stay generic.
- `"top_layers"`: the top `top_layers` transformer blocks and the head are
  fine-tuned by `TopLayerTuner` on cached activations of the frozen blocks
  below, starting from the exact head (AdamW, warm-up then cosine decay).
- `"full"`: the exact head first, then the whole backbone trains end to end
  on raw strings through `keras.Model.fit` (Adam). Slow on a CPU.

The CLI pipeline, the benchmarks and `fine_tune` all call this code.
"""

import dataclasses

import keras
import numpy as np

from kd_keras._keras_compat import producer
from kd_keras.errors import UsageError
from kd_keras.teachers.embeddings import backbone_embeddings
from kd_keras.teachers.forward import run_teacher
from kd_keras.teachers.head import as_strings
from kd_keras.teachers.head import solve_head
from kd_keras.teachers.top_layers import TopLayerTuner

METHODS = ("head", "top_layers", "full")
"""The adaptation methods, cheapest first."""

DEFAULT_LEARNING_RATES = {"top_layers": 1e-4, "full": 2e-5}
"""The learning rate of each fine-tuning method when none is given."""


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class Adaptation:
    """How to adapt a text teacher (see the module docstring).

    Attributes:
        method: `"head"`, `"top_layers"` or `"full"`.
        top_layers: how many top transformer blocks train; required (> 0)
            for `"top_layers"`, `None` otherwise.
        epochs: fine-tuning epochs; unused by `"head"`.
        learning_rate: peak learning rate, or `None` for the method's
            default (`DEFAULT_LEARNING_RATES`).
        batch_size: texts per fine-tuning batch.
        seed: seeds every shuffle and initialisation of the fine-tuning.

    Example:

    >>> Adaptation("top_layers", top_layers=3, epochs=2).resolved_learning_rate
    0.0001
    >>> Adaptation("top_layers")
    Traceback (most recent call last):
    ...
    kd_keras.errors.UsageError: top_layers: must be a positive integer for method 'top_layers', got None
    """

    method: str = "head"
    top_layers: int | None = None
    epochs: int = 3
    learning_rate: float | None = None
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise UsageError(
                f"method: unknown method {self.method!r} (known: {', '.join(METHODS)})")
        if self.method == "top_layers":
            if not (_is_int(self.top_layers) and self.top_layers > 0):
                raise UsageError("top_layers: must be a positive integer for method "
                                 f"'top_layers', got {self.top_layers!r}")
        elif self.top_layers is not None:
            raise UsageError(f"top_layers: only used by method 'top_layers' "
                             f"(method is {self.method!r}), got {self.top_layers!r}")
        if not (_is_int(self.epochs) and self.epochs >= 0):
            raise UsageError(f"epochs: must be a non-negative integer, got {self.epochs!r}")
        lr = self.learning_rate
        if lr is not None and not (isinstance(lr, (int, float, np.floating))
                                   and not isinstance(lr, bool) and lr > 0):
            raise UsageError(f"learning_rate: must be a positive number or None, got {lr!r}")
        if not (_is_int(self.batch_size) and self.batch_size > 0):
            raise UsageError(
                f"batch_size: must be a positive integer, got {self.batch_size!r}")
        if not (_is_int(self.seed) and self.seed >= 0):
            raise UsageError(f"seed: must be a non-negative integer, got {self.seed!r}")

    @property
    def resolved_learning_rate(self):
        """`learning_rate`, or the method's default (`None` for `"head"`)."""
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return DEFAULT_LEARNING_RATES.get(self.method)


@dataclasses.dataclass(frozen=True)
class AdaptedTeacher:
    """What `adapt_text_teacher` returns.

    Attributes:
        logits: split name -> float32 `[n, num_classes]`, one entry per split
            of the `texts` given.
        route: `"frozen backbone + head"`, `"fine-tuned top N layers"` or
            `"fine-tuned all layers"`.
        history: the fine-tuning `History.history` dict, or `None` for
            `"head"`.
        pooled: with `with_pooling=True`, split name -> float32
            `[n, hidden_dim]`: the adapted teacher's sentence vectors (the
            classifier's `pooling` output) from the same pass as the
            logits; else `None`.
    """

    logits: dict
    route: str
    history: dict | None
    pooled: dict | None = None


def _checked_inputs(teacher, texts, labels, train, validation):
    """Validates the splits; returns `(texts, labels, validation)` with
    texts as string arrays, labels as int64 arrays and `validation` `None`
    when there is nothing labeled to validate on."""
    if not hasattr(texts, "items"):
        raise UsageError(f"texts: must map split names to texts, got {type(texts).__name__}")
    if not hasattr(labels, "items"):
        raise UsageError(f"labels: must map split names to labels, got {type(labels).__name__}")
    if train not in texts or train not in labels:
        raise UsageError(f"texts, labels: both need the {train!r} split "
                         f"(texts has {sorted(texts)}, labels has {sorted(labels)})")
    units = int(teacher.classifier.get_layer("head").units)
    texts = {s: as_strings(t) for s, t in texts.items()}
    checked = {}
    for split, y in labels.items():
        y = np.asarray(y)
        if split not in texts:
            raise UsageError(f"labels[{split!r}]: no texts for this split")
        if y.ndim != 1 or len(y) != len(texts[split]) or (
                y.size and not np.issubdtype(y.dtype, np.integer)):
            raise UsageError(f"labels[{split!r}]: expected {len(texts[split])} integer "
                             f"labels (one per text), got shape {y.shape} {y.dtype}")
        y = y.astype(np.int64)
        if y.size and y.min() < -1:
            raise UsageError(f"labels[{split!r}]: labels must be >= -1 (-1 = unlabeled), "
                             f"got {y.min()}")
        if y.size and y.max() >= units:
            raise UsageError(f"teacher: has {units} classes but labels[{split!r}] has "
                             f"class {y.max()} (at least {y.max() + 1} classes)")
        checked[split] = y
    if not (checked[train] >= 0).any():
        raise UsageError(f"labels[{train!r}]: no labeled texts (every label is -1)")
    if validation is not None and not (validation in checked
                                       and (checked[validation] >= 0).any()):
        validation = None
    return texts, checked, validation


def _head_logits(head, features):
    if len(features) == 0:
        return np.zeros((0, head.units), np.float32)
    return np.asarray(keras.ops.convert_to_numpy(head(features)), np.float32)


def _exact_head(teacher, texts, labels, train, feature_cache_dir, verbose, l2):
    """Solves the head on frozen features of `texts` (a dict of splits);
    returns `(solve_head's dict, features)`."""
    features = backbone_embeddings(teacher, texts, feature_cache_dir, verbose=verbose)
    keep = labels[train] >= 0
    head = teacher.classifier.get_layer("head")
    return solve_head(head, features[train][keep], labels[train][keep], l2), features


def _tune_top_layers(teacher, texts, labels, adaptation, train, validation, verbose, l2,
                     predict):
    """Returns `(logits, pooled, history, head)` (empty dicts without
    `predict`)."""
    backbone = teacher.classifier.get_layer("backbone")
    if adaptation.top_layers > backbone.num_layers:
        raise UsageError(f"top_layers: the backbone has {backbone.num_layers} transformer "
                         f"blocks, got {adaptation.top_layers}")
    tuner = TopLayerTuner(teacher, adaptation.top_layers, batch_size=adaptation.batch_size)
    names = list(texts) if predict else [s for s in (train, validation) if s is not None]
    for split in names:
        if verbose:
            print(f"teacher: caching the frozen blocks [{split}]")
        tuner.add(split, texts[split], verbose=verbose)
    head = tuner.fit_head(train, labels[train], l2=l2)
    history = tuner.fit(
        train, labels[train], epochs=adaptation.epochs,
        learning_rate=adaptation.resolved_learning_rate,
        validation=(validation, labels[validation]) if validation is not None else None,
        seed=adaptation.seed, verbose=1 if verbose else 0)  # A bar, as the student's.
    outputs = {split: tuner.predict_with_pooling(split) for split in texts} if predict else {}
    logits = {split: out[0] for split, out in outputs.items()}
    pooled = {split: out[1] for split, out in outputs.items()}
    return logits, pooled, history, head


def _train_whole_backbone(teacher, texts, labels, adaptation, train, validation, verbose):
    """`keras.Model.fit` of the whole teacher (not the tokenizer) on the
    labeled raw strings; returns the `History.history` dict."""
    import tensorflow as tf

    teacher.trainable = True
    teacher.preprocessor.trainable = False
    classifier = teacher.classifier
    pooling = classifier.get_layer("pooling")
    backbone = classifier.get_layer("backbone")
    # BERT's tanh pooler gets no gradient unless the head reads it ("pooled"
    # mode: an Identity fed straight by the backbone's pooled output).
    if not (isinstance(pooling, keras.layers.Identity)
            and producer(pooling.input) is backbone):
        backbone.get_layer("pooled_dense").trainable = False

    def dataset(split, shuffle):
        keep = labels[split] >= 0
        data = tf.data.Dataset.from_tensor_slices(
            (tf.constant(list(texts[split][keep]), tf.string),
             labels[split][keep].astype(np.int32)))
        if shuffle:
            data = data.shuffle(int(keep.sum()), seed=adaptation.seed)
        return data.batch(adaptation.batch_size)

    keras.utils.set_random_seed(adaptation.seed)
    teacher.compile(
        optimizer=keras.optimizers.Adam(adaptation.resolved_learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["sparse_categorical_accuracy"],
    )
    history = teacher.fit(
        dataset(train, True), epochs=adaptation.epochs, shuffle=False,
        validation_data=dataset(validation, False) if validation is not None else None,
        verbose=1 if verbose else 0)  # A bar per epoch, as the student's training shows.
    return history.history


def _adapt(teacher, texts, labels, adaptation, train, validation, feature_cache_dir,
           verbose, l2="auto", predict=True, with_pooling=False):
    """`adapt_text_teacher`, plus `solve_head`'s dict; `predict=False`
    skips the logits (for `fine_tune`)."""
    if not isinstance(adaptation, Adaptation):
        raise UsageError(
            f"adaptation: must be a kd_keras.teachers.Adaptation, got {type(adaptation).__name__}")
    texts, labels, validation = _checked_inputs(teacher, texts, labels, train, validation)
    history = None
    if adaptation.method == "top_layers":
        logits, pooled, history, head = _tune_top_layers(
            teacher, texts, labels, adaptation, train, validation, verbose, l2, predict)
        route = f"fine-tuned top {adaptation.top_layers} layers"
    elif adaptation.method == "head":
        wanted = texts if predict else {train: texts[train]}
        head, features = _exact_head(teacher, wanted, labels, train, feature_cache_dir,
                                     verbose, l2)
        layer = teacher.classifier.get_layer("head")
        logits = {split: _head_logits(layer, f) for split, f in features.items()}
        logits, pooled = (logits, features) if predict else ({}, {})
        route = "frozen backbone + head"
    else:
        head, _ = _exact_head(teacher, {train: texts[train]}, labels, train,
                              feature_cache_dir, verbose, l2)
        history = _train_whole_backbone(teacher, texts, labels, adaptation, train,
                                        validation, verbose)
        pooling = f"{teacher.classifier.name}/pooling"
        outputs = {split: run_teacher(teacher, as_strings(t), [pooling],
                                      desc=f"teacher [{split}]" if verbose else None)
                   for split, t in texts.items()} if predict else {}
        logits = {split: out.logits for split, out in outputs.items()}
        pooled = {split: out.layers[pooling] for split, out in outputs.items()}
        route = "fine-tuned all layers"
    teacher.trainable = False
    return AdaptedTeacher(logits=logits, route=route, history=history,
                          pooled=pooled if with_pooling else None), head


def adapt_text_teacher(teacher, texts, labels, adaptation, train="train",
                       validation="validation", feature_cache_dir=None, verbose=1,
                       with_pooling=False):
    """Adapts a text teacher to the task and returns its logits on every split.

    Args:
        teacher: a `TextTeacher` from `build_text_teacher`; updated in place
            and left frozen (`trainable=False`).
        texts: mapping split name -> sequence of strings.
        labels: mapping split name -> integer labels aligned with those
            texts; `-1` marks an unlabeled text (not used for fitting).
            Needs `train`; other splits are optional.
        adaptation: an `Adaptation`.
        train: the split the teacher is fitted on.
        validation: the split evaluated after each fine-tuning epoch; ignored
            when absent, empty or unlabeled.
        feature_cache_dir: optional folder where the frozen pooled features
            (`"head"`, and the exact head that starts `"full"`) are cached
            with `kd_keras.cache`, fingerprinted by the backbone and pooling
            weights, the sequence length and the texts, so that a re-run or
            another seed reuses them.
        verbose: 1 prints progress.
        with_pooling: also return the adapted teacher's pooled sentence
            vectors on every split (`AdaptedTeacher.pooled`), computed in
            the same pass as the logits: for the top-blocks method, from
            the cached activations of the frozen blocks, so no second pass
            of the whole teacher is needed for a pooled-feature term.

    Returns:
        An `AdaptedTeacher`.

    Raises:
        UsageError: bad splits or labels, a label the teacher has no class
            for, or more `top_layers` than the backbone has.

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", 2)       # doctest: +SKIP
    >>> adapted = adapt_text_teacher(
    ...     teacher, data.texts, data.labels,
    ...     Adaptation("top_layers", top_layers=3, epochs=2))   # doctest: +SKIP
    >>> adapted.route, adapted.logits["test"].shape              # doctest: +SKIP
    ('fine-tuned top 3 layers', (1066, 2))
    """
    adapted, _ = _adapt(teacher, texts, labels, adaptation, train, validation,
                        feature_cache_dir, verbose, with_pooling=with_pooling)
    return adapted


def fine_tune(teacher, texts, labels, epochs=3, train_backbone=False,
              num_trainable_layers=None, learning_rate=None, batch_size=32, l2="auto",
              validation_data=None, verbose=1, seed=0):
    """Adapts a text teacher given its training texts: `adapt_text_teacher`
    with an `Adaptation` spelled as arguments.

    `train_backbone=False` solves the head on frozen features (`"head"`;
    `epochs` and `learning_rate` unused); with `train_backbone=True`,
    `num_trainable_layers=N` fine-tunes the top N blocks (`"top_layers"`) and
    `None` the whole backbone (`"full"`), both from the exact head.

    Args:
        teacher: a `TextTeacher` from `build_text_teacher`, updated in place
            and left frozen.
        texts: training texts.
        labels: integer labels (-1 = unlabeled).
        epochs: fine-tuning epochs.
        train_backbone: whether to train backbone weights.
        num_trainable_layers: how many top transformer blocks to train;
            `None` trains the whole backbone, embeddings included.
        learning_rate: peak learning rate; `None` for the method's default
            (1e-4 for the top blocks, 2e-5 for the whole backbone).
        batch_size: texts per fine-tuning batch.
        l2: `solve_head`'s inverse regularisation strength, or `"auto"`.
        validation_data: optional `(texts, labels)` evaluated each epoch.
        verbose: 1 shows progress.
        seed: seeds the shuffles and initialisations of the fine-tuning.

    Returns:
        A dict: `head` (what `solve_head` returned) and `history` (the
        fine-tuning `History.history`, or `None`).

    Example:

    >>> teacher = build_text_teacher("path/to/minilm", 2, 32)   # doctest: +SKIP
    >>> fine_tune(teacher, texts, labels, epochs=1, train_backbone=True,
    ...           num_trainable_layers=2)                       # doctest: +SKIP
    """
    if not train_backbone:
        method = "head"
    elif num_trainable_layers is None:
        method = "full"
    else:
        method = "top_layers"
    try:
        adaptation = Adaptation(
            method, top_layers=num_trainable_layers if method == "top_layers" else None,
            epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, seed=seed)
    except UsageError as e:
        raise UsageError(str(e).replace("top_layers:", "num_trainable_layers:", 1)) from None
    split_texts, split_labels = {"train": texts}, {"train": labels}
    if validation_data:
        split_texts["validation"], split_labels["validation"] = validation_data
    adapted, head = _adapt(teacher, split_texts, split_labels, adaptation, "train",
                           "validation", None, verbose, l2=l2, predict=False)
    return {"head": head, "history": adapted.history}
