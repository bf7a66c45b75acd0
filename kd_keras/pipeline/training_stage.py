"""Stages 4 and 5: the distilled student and the baseline, one training path.

`train_student(cfg, data, run, kind)` trains the configured student either
with the teacher's logits (`kind="distill"`, through `kd_keras.Distiller`)
or on the labeled examples alone (`kind="baseline"`, the same student, the
same budget; with `student.prune_vocabulary` each gets the table of the rows
it trains on).

The two choose their epochs on different data, so that the validation split
that picks the distilled student's epochs does not also pick the baseline's:
the baseline first trains on the labelled training rows less a seeded
`HELD_OUT` slice and stops early on that slice; then the same student,
from the same start, trains on every labelled row for the epochs that
scored best there (`baseline_epochs`). Every training resumes from its last
finished epoch, and a resumed run ends with exactly the weights and history
of an uninterrupted one:

- weights and optimizer state come back through `keras.callbacks.
  BackupAndRestore`;
- every epoch's randomness is a function of the epoch (`EpochCounter`):
  the shuffle order of epoch `e` is `stateless_shuffle(seed=[seed, e])`,
  and dropout generators are re-seeded from `(their seed, e)`;
- `EpochLog` keeps every epoch's logs in `OUTPUT.partial/`, so the history
  and the curves cover the epochs of both runs;
- `ResumableEarlyStopping` keeps its counters and best weights there too.

The three callbacks are public, in `kd_keras.callbacks`.
"""

import dataclasses
import itertools
import os
import sys

import keras
import numpy as np
import tensorflow as tf

import kd_keras
from kd_keras.callbacks import AtomicBackupAndRestore
from kd_keras.callbacks import EpochCounter
from kd_keras.callbacks import EpochLog
from kd_keras.callbacks import ResumableEarlyStopping
from kd_keras.cache.epoch_order import index_batches
from kd_keras.config.recipe import unset_keys
from kd_keras.data.labels import accuracy
from kd_keras.errors import ConfigError
from kd_keras.errors import KdKerasError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.number_checks import is_int
from kd_keras.files.json_files import read_json
from kd_keras.files.resume import resumed
from kd_keras.pipeline.precision import building
from kd_keras.pipeline.precision import float32_copy
from kd_keras.students.registry import check_logits_shape
from kd_keras.students.registry import check_student
from kd_keras.students.vocabulary import PRUNE_KEY
from kd_keras.students.vocabulary import prune_vocabulary
from kd_keras.students.vocabulary import used_vocabulary

ACCURACY = "sparse_categorical_accuracy"
KINDS = ("distill", "baseline")
EPOCHS_KIND = "baseline_epochs"
"""The training that chooses the baseline's epochs on the held-out slice."""
HELD_OUT = 0.1
"""The share of the labelled training rows that chooses the baseline's epochs."""
MIN_HELD_OUT = 2
"""Below this many held-out rows the baseline trains `distill.epochs` epochs."""
SAVED_NAMES = {"distill": "student.keras", "baseline": "student_without_distillation.keras"}


@dataclasses.dataclass(frozen=True)
class TrainedStudent:
    """A trained student and its history (every epoch, across resumes)."""

    model: keras.Model
    history: dict


def _student(path):
    return keras.saving.load_model(path, safe_mode=True)


def configured_student(cfg, num_classes, vocab_size, train_ids=None):
    """Builds the configured student for token-id inputs.

    Args:
        cfg: the `RunConfig`.
        num_classes: the number of logits.
        vocab_size: the size of the ids' vocabulary.
        train_ids: the ids of the rows the student trains on; with
            `student.prune_vocabulary: true` its embedding gets a row for
            each id they use only (`kd_keras.students.prune_vocabulary`).

    Raises:
        ConfigError: an image student, or option values it cannot be built
            with (unknown options are refused by the config already).
    """
    s = cfg.student
    if s.architecture == "small_cnn":
        raise ConfigError(
            "student.architecture: small_cnn is an image model; use text_cnn, "
            "dilated_cnn, bigru, tiny_bert or mlp for text data")
    builder = kd_keras.students.get_student(s.architecture)

    def build(size):
        model = builder(num_classes, vocab_size=size,
                        sequence_length=cfg.student_sequence_length, **s.options)
        return check_student(model, s.architecture, num_classes)

    vocabulary = None
    if s.prune_vocabulary:
        if train_ids is None:
            raise ValueError(f"{PRUNE_KEY}: configured_student needs train_ids")
        vocabulary = used_vocabulary(train_ids, vocab_size, s.vocabulary_min_count,
                                     s.vocabulary_max_rows)
    try:
        return build(vocab_size) if vocabulary is None else prune_vocabulary(build, vocabulary)
    except KdKerasError:  # The builder named the option itself.
        raise
    except (ValueError, TypeError) as e:  # The builder or a layer refused an option.
        if not s.options:
            raise
        raise ConfigError(f"student.options: {s.architecture} cannot be built with "
                          f"{s.options}: {one_line(e)}") from e


def check_strategy(cfg, strategy):
    """Refuses what `cfg` asks for that `strategy` cannot run.

    The config refuses the same for `strategy: multi_worker` and Ray before
    any work; `auto` can still resolve to MultiWorkerMirroredStrategy from
    `TF_CONFIG` at run time, so `run_distill` calls this as soon as it has
    its strategy, and every training calls it again with the one it runs
    under (a Ray worker's, or a library caller's).

    Raises:
        ConfigError: `distill.steps_per_execution` above 1, or with a
            baseline a batch size that does not split evenly, under a
            strategy of several replicas; a mixed `precision`, or a baseline
            outside Ray, under MultiWorkerMirroredStrategy.
    """
    replicas = strategy.num_replicas_in_sync
    if cfg.distill.baseline and replicas > 1 and cfg.distill.batch_size % replicas:
        raise ConfigError(
            f"distill.batch_size: {cfg.distill.batch_size} does not split evenly over "
            f"{replicas} replicas, which Keras's fit of the student alone "
            f"(distill.baseline) needs; use a multiple of {replicas}")
    if cfg.distill.steps_per_execution > 1 and strategy.num_replicas_in_sync > 1:
        raise ConfigError(f"distill.steps_per_execution: must be 1 under a strategy of "
                          f"{strategy.num_replicas_in_sync} replicas (Keras's multi-step "
                          f"loop fails there), got {cfg.distill.steps_per_execution}")
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    if cfg.precision != "float32":
        raise ConfigError(f"precision: must be float32 under MultiWorkerMirroredStrategy "
                          f"(mixed precision is not tested there), got {cfg.precision}")
    if cfg.distill.baseline and cfg.distribute.engine != "ray":  # `auto` from TF_CONFIG.
        raise ConfigError("distill.baseline: must be false under MultiWorkerMirroredStrategy "
                          "(Keras's fit of the student alone fails there; distribute.engine: "
                          "ray trains it on the driver)")


def _compiled(cfg, kind, num_classes, vocab_size, train_ids):
    d = cfg.distill
    check_strategy(cfg, tf.distribute.get_strategy())
    with building(cfg.precision):  # The student, and the Distiller's projections.
        student = configured_student(cfg, num_classes, vocab_size, train_ids)
        if kind == "distill":
            features = [kd_keras.FeatureDistillation(**dataclasses.asdict(t))
                        for t in d.features]
            distiller = kd_keras.Distiller(teacher=None, student=student,
                                           features=features or None)
    optimizer = keras.optimizers.Adam(d.learning_rate)
    if kind != "distill":  # The baseline, or the training that picks its epochs.
        student.compile(optimizer=optimizer, metrics=[ACCURACY],
                        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                        steps_per_execution=d.steps_per_execution)
        return student
    distiller.compile(optimizer=optimizer, metrics=[ACCURACY],
                      alpha=d.schedules.get("alpha", d.alpha),
                      temperature=d.schedules.get("temperature", d.temperature),
                      distillation_loss_fn=d.loss, steps_per_execution=d.steps_per_execution)
    return distiller


def _early_stopping_dir(run, kind):
    return run.file("backup", f"{kind}-early-stopping")


def _callbacks(cfg, run, kind, epoch, stops_early, extra):
    es = cfg.distill.early_stopping
    callbacks = [EpochCounter(epoch), EpochLog(run.file(f"history-{kind}.json")),
                 keras.callbacks.TensorBoard(run.file("logs", kind))]
    if es is not None and stops_early:
        callbacks.append(ResumableEarlyStopping(
            _early_stopping_dir(run, kind), monitor=f"val_{ACCURACY}",
            mode="max", patience=es.patience, restore_best_weights=True))
    callbacks.append(AtomicBackupAndRestore(run.file("backup", kind)))
    return callbacks + list(extra or [])


def _check_backup(folder):
    """Refuses a backup that cannot be read (a truncated file on resume)."""
    import h5py

    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        path = os.path.join(folder, name)
        try:
            if name.endswith(".h5"):
                with h5py.File(path, "r"):
                    pass
            elif name.endswith(".json"):
                read_json(path)
        except (OSError, ValueError):
            raise UsageError(f"--resume: {path} is damaged; run without --resume to "
                             "start over") from None


def held_out_rows(labels, seed, share=HELD_OUT):
    """`(fit, held)`: the labelled rows of `labels` (train labels, `-1`
    unlabelled) split by a seeded permutation, `held` the `share` that
    chooses the baseline's epochs (`None` when it would be smaller than
    `MIN_HELD_OUT`).

    Example:

    >>> fit, held = held_out_rows(np.array([0, 1, -1] * 10), seed=0)
    >>> len(fit), len(held), sorted(set(fit) | set(held)) == [
    ...     i for i in range(30) if i % 3 != 2]
    (18, 2, True)
    """
    labelled = np.flatnonzero(np.asarray(labels) >= 0)
    count = int(round(share * len(labelled)))
    if count < MIN_HELD_OUT:
        return labelled, None
    order = np.random.default_rng(seed).permutation(labelled)
    return np.sort(order[count:]), np.sort(order[:count])


def _datasets(cfg, data, kind, outputs, epoch, rows=None, held=None):
    """`(train, validation)`: the rows a training reads, in the order that
    `epoch` fixes (`kd_keras.cache.epoch_order`).

    The distilled student streams the teacher's store through
    `TeacherCache.as_dataset`, the builder library users call; the baseline
    gathers the labelled rows (or `rows`) by the same order, and validates
    on the training rows `held` when given, else on the validation split."""
    ids, labels, size = data.ids, data.labels, cfg.distill.batch_size
    if kind == "distill":
        augment = cfg.distill.augment
        views = augment.copies if augment.per_epoch and augment.copies else None
        names = list(dict.fromkeys(t.teacher_layer for t in cfg.distill.features))
        train = outputs.cache("train").as_dataset(
            ids["train"], labels["train"], batch_size=size, shuffle=True, seed=cfg.seed,
            verify=False, features=names, epoch=epoch, views=views)
        cache = outputs.cache("validation")
        validation = None if cache is None else cache.as_dataset(
            ids["validation"], labels["validation"], batch_size=size, verify=False,
            features=names)
        return train, validation
    if rows is None:
        rows = np.flatnonzero(labels["train"] >= 0)
    x, y = tf.constant(ids["train"][rows]), tf.constant(labels["train"][rows])
    train = index_batches(len(y), size, epoch, seed=cfg.seed).map(
        lambda order: (tf.gather(x, order), tf.gather(y, order)))
    if held is not None:
        pairs = (ids["train"][held], labels["train"][held])
    else:
        pairs = (ids["validation"], labels["validation"])
    validation = (tf.data.Dataset.from_tensor_slices(pairs).batch(size)
                  if len(pairs[0]) else None)
    return train.prefetch(2), validation


def train_student(cfg, data, run, kind, outputs=None, strategy=None, extra_callbacks=None):
    """Stage 4 (`kind="distill"`) or 5 (`kind="baseline"`).

    Args:
        cfg: the `RunConfig`.
        data: the `PreparedData`.
        run: the `RunDir` (checkpoints, history; the student is saved there).
        kind: `"distill"` (labels plus the teacher's outputs) or
            `"baseline"` (the labeled examples alone).
        outputs: the `TeacherOutputs` (`teacher_stage.compute_outputs`),
            for `"distill"`: the logits and the features that
            `distill.features` name.
        strategy: a `tf.distribute.Strategy` (default: the current one).
        extra_callbacks: Keras callbacks added to the fit.

    Returns:
        A `TrainedStudent`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {KINDS}, got {kind!r}")
    unset = unset_keys(cfg)
    if unset:
        raise ValueError(f"cfg: {', '.join(unset)} left to the default recipe; train with "
                         "the config that prepare_data completes (PreparedData.config)")
    saved, log = run.file(SAVED_NAMES[kind]), run.file(f"history-{kind}.json")
    if run.done(kind) is not None:
        return TrainedStudent(resumed(saved, _student), resumed(log, read_json))
    if cfg.distribute.engine == "ray" and kind == "distill":  # See _train_on_ray.
        return _train_on_ray(cfg, data, run, kind, outputs, extra_callbacks)
    strategy = strategy or tf.distribute.get_strategy()
    if kind == "distill":
        model = _fit(cfg, data, run, kind, outputs, strategy, extra_callbacks)
    else:
        epochs = baseline_epochs(cfg, data, run, strategy, extra_callbacks)
        model = _fit(cfg, data, run, kind, None, strategy, extra_callbacks, epochs=epochs,
                     stops_early=False)
    model = float32_copy(model)  # What export, predict and users get.
    model.save(saved)
    history = read_json(log) if os.path.isfile(log) else {}
    run.finish(kind, {"epochs": len(history.get("loss", []))},
               files=(SAVED_NAMES[kind], f"history-{kind}.json"))
    return TrainedStudent(model, history)


def baseline_epochs(cfg, data, run, strategy=None, extra_callbacks=None):
    """The epochs the baseline trains: those that scored best on a held-out
    slice of the labelled training rows (`held_out_rows`), trained on the
    rest with early stopping. `distill.epochs` without early stopping or
    with too few labelled rows.

    Args:
        cfg: the `RunConfig`.
        data: the `PreparedData`.
        run: the `RunDir` (the choice is recorded as its `baseline_epochs`
            stage, so a resumed run does not train it again).
        strategy: a `tf.distribute.Strategy` (default: the current one).
        extra_callbacks: Keras callbacks added to the fit.

    Returns:
        The number of epochs, at least 1 when `distill.epochs` is.
    """
    fit_rows, held = held_out_rows(data.labels["train"], cfg.seed)
    if held is None and cfg.distill.early_stopping is not None and cfg.verbose:
        needed = next(n for n in itertools.count(1) if round(HELD_OUT * n) >= MIN_HELD_OUT)
        print(f"baseline: {len(fit_rows)} labelled training rows are too few to hold a tenth "
              f"out (it takes {needed}); it trains distill.epochs ({cfg.distill.epochs})",
              file=sys.stderr)
    if cfg.distill.early_stopping is None or held is None or not cfg.distill.epochs:
        return cfg.distill.epochs
    if run.done(EPOCHS_KIND) is None:
        _fit(cfg, data, run, EPOCHS_KIND, None, strategy or tf.distribute.get_strategy(),
             extra_callbacks, rows=fit_rows, held=held)
        scores = read_json(run.file(f"history-{EPOCHS_KIND}.json"))[f"val_{ACCURACY}"]
        run.finish(EPOCHS_KIND, {"epochs": int(np.argmax(scores)) + 1,
                                 "held_out_rows": len(held)})
    epochs = run.done(EPOCHS_KIND).get("epochs")
    if not is_int(epochs) or not 1 <= epochs <= cfg.distill.epochs:
        raise UsageError(f"--resume: {run.file('stages.json')}: {EPOCHS_KIND}: epochs "
                         f"{epochs!r} is not a number of epochs from 1 to distill.epochs; run "
                         "without --resume to start over")
    return epochs


def _fit(cfg, data, run, kind, outputs, strategy, extra_callbacks, rows=None, held=None,
         epochs=None, stops_early=True):
    """One training of `train_student` (or of `baseline_epochs`): the student
    it ends with."""
    ids, labels = data.ids, data.labels
    if kind == "distill":
        train_ids = ids["train"]
    else:
        if rows is None:
            rows = np.flatnonzero(labels["train"] >= 0)
        train_ids = ids["train"][rows]
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        model = _compiled(cfg, kind, data.num_classes, data.vocab_size, train_ids)
        logits = model(ids["train"][:1])  # BackupAndRestore needs a built model.
    # A subclassed student declares no outputs: its first call shows them.
    check_logits_shape(logits.shape, cfg.student.architecture, data.num_classes)
    train, validation = _datasets(cfg, data, kind, outputs, epoch, rows, held)
    if kind == "distill" and cfg.distill.features:
        # Built before `BackupAndRestore` restores the optimizer that trains them.
        with strategy.scope():
            model.build_for_batch(next(iter(train)))
    callbacks = _callbacks(cfg, run, kind, epoch, stops_early and validation is not None,
                           extra_callbacks)
    _check_backup(run.file("backup", kind))
    stopped = ResumableEarlyStopping.stopped_weights(_early_stopping_dir(run, kind))
    if stopped is not None:  # Stopped early, then interrupted before the end.
        model.set_weights(stopped)
    else:  # The datasets fix each epoch's order (`EpochCounter`), not `fit`.
        model.fit(train, validation_data=validation,
                  epochs=cfg.distill.epochs if epochs is None else epochs,
                  callbacks=callbacks, verbose=cfg.verbose, shuffle=False)
    return model.student if kind == "distill" else model


def _train_on_worker(payload, strategy, folder, callbacks):
    """One Ray Train worker: this training, in the worker's own folder."""
    from kd_keras.distribute.ray_train import WorkerDir

    cfg, data, kind, outputs, extra = payload
    train_student(cfg, data, WorkerDir(folder), kind, outputs, strategy,
                  [*extra, *callbacks])


def _train_on_ray(cfg, data, run, kind, outputs, extra_callbacks):
    """`train_student` on Ray Train workers (`kd_keras.distribute.fit_on_ray`):
    each runs `train_student` under `MultiWorkerMirroredStrategy`, resuming
    from the last epoch's checkpoint when a worker was replaced; the first
    worker's student, history and TensorBoard logs come back into `run`.

    The baseline stays in this process: a plain Keras model cannot `fit`
    under that strategy (the Keras bugs `kd_keras.distillation.replicas`
    works around for the Distiller only)."""
    from kd_keras import distribute

    # Bad options fail here, once.
    configured_student(cfg, data.num_classes, data.vocab_size, data.ids["train"])
    local = dataclasses.replace(
        cfg, distribute=dataclasses.replace(cfg.distribute, engine="local"))
    saved, log = SAVED_NAMES[kind], f"history-{kind}.json"
    distribute.fit_on_ray(
        _train_on_worker,
        (local, data, kind, outputs, tuple(extra_callbacks or ())),
        distribute.RayCluster.from_config(cfg.distribute), run.file("backup", f"{kind}-ray"),
        run.file(), keep=(saved, log, os.path.join("logs", kind)), name=kind)
    history = read_json(run.file(log))
    run.finish(kind, {"epochs": len(history.get("loss", []))}, files=(saved, log))
    return TrainedStudent(keras.saving.load_model(run.file(saved), safe_mode=True), history)


def model_accuracy(model, x, y, batch_size=256):
    """Top-1 accuracy of a logits model on `x` (`labels.accuracy`)."""
    if len(x) == 0:
        return None
    return accuracy(model.predict(x, batch_size=batch_size, verbose=0), y)
