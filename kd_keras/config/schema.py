"""The `kd-keras distill` configuration as typed, frozen objects.

Every key of the YAML file is a field here, and its default is declared here
and nowhere else. `kd_keras.config.parsing` turns a parsed YAML mapping into
a `RunConfig` and validates it; the pipeline stages read these objects, never
string-keyed dicts.

Example:

>>> cfg = RunConfig()
>>> cfg.distill.epochs, cfg.distill.temperature, cfg.export.formats
(10, 1.0, ('saved_model', 'tflite', 'onnx'))
>>> cfg.student.architecture is None  # the default recipe chooses
True
"""

import dataclasses
from typing import Optional

from kd_keras.export.formats import FORMATS

PRECISIONS = ("float32", "mixed_bfloat16")
"""The values of `precision`: Keras dtype policies."""


class ReadOnlyDict(dict):
    """A `dict` that refuses changes: the free-form mappings of a frozen
    config (`student.options`, `distill.schedules`), so that a run cannot
    change the config it was checked against. It still pickles, copies and
    serialises as a `dict`; `dict(mapping)` gives a copy to change.

    Example:

    >>> options = ReadOnlyDict(filters=64)
    >>> options["filters"] = 128
    Traceback (most recent call last):
    ...
    TypeError: a config mapping is read-only; pass a new one to dataclasses.replace
    >>> options == {"filters": 64}
    True
    """

    def _refuse(self, *args, **kwargs):
        raise TypeError("a config mapping is read-only; pass a new one to dataclasses.replace")

    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse

    def __reduce__(self):
        return (type(self), (dict(self),))


def _free_form():
    """A free-form mapping field (the keys are checked elsewhere)."""
    return dataclasses.field(default_factory=ReadOnlyDict, metadata={"free_form": True})


def _freeze_free_form(config):
    """`__post_init__` of a section with `_free_form` fields: wraps each in a
    `ReadOnlyDict`, however the section was built."""
    for field in dataclasses.fields(config):
        if field.metadata.get("free_form"):
            value = getattr(config, field.name)
            object.__setattr__(config, field.name, ReadOnlyDict(value))


def _section(cls, optional=False):
    """A nested section field (`optional`: it may be `null` to switch it off)."""
    return dataclasses.field(default_factory=cls,
                             metadata={"section": cls, "optional": optional})


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """`data:` where the labelled texts come from and how they are split."""

    builtin: Optional[str] = None
    train: Optional[str] = None
    validation: Optional[str] = None
    test: Optional[str] = None
    format: Optional[str] = None
    header: Optional[bool] = None  # None: when a column is given by name
    text_column: object = 0
    label_column: object = 1
    labels: Optional[tuple] = None
    max_examples: Optional[int] = None
    split: tuple = (0.8, 0.1, 0.1)
    split_seed: Optional[int] = None  # None: the run's `seed`
    labels_fraction: float = 1.0


@dataclasses.dataclass(frozen=True)
class FineTuneConfig:
    """`teacher.fine_tune:` how a pretrained backbone is adapted to the task.

    `train_backbone: false` fits an exact head on frozen features;
    `train_backbone: true` with `top_layers: N` fine-tunes the top N blocks
    and the head; with `top_layers: null` the whole backbone trains.
    """

    epochs: int = 3
    train_backbone: bool = False
    top_layers: Optional[int] = None
    learning_rate: Optional[float] = None
    batch_size: int = 32


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """`teacher:` a pretrained `backbone` to adapt, or a ready `model`."""

    backbone: Optional[str] = None
    model: Optional[str] = None
    sequence_length: int = 64
    pooling: Optional[str] = None
    fine_tune: FineTuneConfig = _section(FineTuneConfig)


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """`student:` a built-in architecture or `package.module:function`.

    `architecture` and `sequence_length` left out (`None`) are chosen by the
    default recipe (`kd_keras.config.recipe`).

    `options` are the builder's keyword arguments (a read-only mapping).
    `prune_vocabulary: true` gives the embedding a row only for the ids the
    training rows use (`kd_keras.students.vocabulary`), and with
    `vocabulary_min_count: N` only for those they use at least N times, and
    with `vocabulary_max_rows: N` only for the N - 1 they use most.
    `tokenizer_min_count: N` gives the student its own, smaller WordPiece
    vocabulary: the tokens of `vocabulary` (the teacher's by default) that
    the training texts use at least N times (`kd_keras.data.tokenizer`).
    """

    architecture: Optional[str] = None
    sequence_length: Optional[int] = None
    vocabulary: Optional[str] = None
    tokenizer_min_count: Optional[int] = None
    prune_vocabulary: bool = False
    vocabulary_min_count: int = 1
    vocabulary_max_rows: Optional[int] = None
    options: dict = _free_form()

    __post_init__ = _freeze_free_form


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """`distill.augment:` unlabeled perturbed copies of the training texts.

    The teacher labels every copy once. `per_epoch: false` trains on all the
    copies in every epoch; `per_epoch: true` trains each epoch on the
    original texts plus one copy of each, copy `epoch % copies + 1`, so the
    student meets a fresh perturbation per epoch, with the teacher's
    outputs for exactly that perturbation (consistent teaching, Beyer et
    al. 2022), at the cost of one copy per epoch rather than all of them.
    `copies` and `replace_prob` left out (`None`) are chosen by the default
    recipe (`kd_keras.config.recipe`)."""

    copies: Optional[int] = None
    word_dropout: float = 0.1
    ngram_prob: float = 0.25
    max_ngram: int = 5
    replace_prob: Optional[float] = None
    per_epoch: bool = False


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig:
    """`distill.early_stopping:` stop when validation accuracy stalls (on by
    default; `null` switches it off)."""

    patience: int = 3


@dataclasses.dataclass(frozen=True)
class FeatureTermConfig:
    """One item of `distill.features:` (a `kd_keras.FeatureDistillation`).

    `weight` is a number or a schedule mapping (`kd_keras.schedules`).
    """

    teacher_layer: str = ""
    student_layer: str = ""
    loss: str = "mse"
    weight: object = 1.0
    projection: Optional[str] = "auto"
    name: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """`distill:` the student's training, distilled and baseline alike.

    The defaults are the default recipe's fixed part; `features` left out
    (`None`) is chosen by the recipe (`kd_keras.config.recipe`), `[]` is no
    feature term."""

    epochs: int = 10
    batch_size: int = 64
    alpha: float = 0.1
    temperature: float = 1.0
    loss: str = "soft_target_kl"
    learning_rate: float = 1e-3
    # Batches per compiled call of `fit` (Keras's `steps_per_execution`): the
    # same steps in the same order, with less Python and dispatch per batch;
    # callbacks' batch hooks and the progress bar run once per call. Only 1
    # under MultiWorkerMirroredStrategy (and so on Ray), where Keras's
    # multi-step loop fails.
    steps_per_execution: int = 1
    cache_teacher: bool = True
    cache_dir: Optional[str] = None
    baseline: bool = False
    early_stopping: Optional[EarlyStoppingConfig] = _section(EarlyStoppingConfig, optional=True)
    augment: AugmentConfig = _section(AugmentConfig)
    features: Optional[tuple] = dataclasses.field(default=None,
                                                  metadata={"items": FeatureTermConfig})
    # How the teacher's feature targets are held (`float16` halves per-token
    # and attention targets; the losses compute in float32).
    feature_dtype: str = "float32"
    # `alpha` and `temperature` as schedules over training progress.
    schedules: dict = _free_form()

    __post_init__ = _freeze_free_form


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """`export:` the artifacts to write and verify (`null` skips export).
    `text`: also the raw-sentence artifacts (the SavedModel's `serving_text`,
    `tflite/model_text*.tflite`), tokenizer inside. `allow_mismatch`: keep
    an artifact that misses its verification tolerance where it is (its
    report entry says `passed: false`); by default it is set aside in
    `export/rejected/` and the run, published, exits with an error."""

    formats: tuple = FORMATS
    quantization: tuple = ("none", "int8")
    text: bool = True
    allow_mismatch: bool = False


@dataclasses.dataclass(frozen=True)
class DistributeConfig:
    """`distribute:` where the teacher outputs and the trainings run.

    `engine: local` runs them in this process, with the `tf.distribute`
    `strategy`. `engine: ray` runs the teacher over the inputs on a pool of
    Ray actors and trains on `workers` Ray Train workers under
    `MultiWorkerMirroredStrategy` (`kd_keras.distribute.RayCluster`);
    `address: auto` joins the cluster running here or starts a local one.
    """

    strategy: str = "default"
    engine: str = "local"
    address: str = "auto"
    workers: int = 2
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A whole `kd-keras distill` run."""

    data: DataConfig = _section(DataConfig)
    teacher: TeacherConfig = _section(TeacherConfig)
    student: StudentConfig = _section(StudentConfig)
    distill: DistillConfig = _section(DistillConfig)
    export: Optional[ExportConfig] = _section(ExportConfig, optional=True)
    distribute: DistributeConfig = _section(DistributeConfig)
    output: str = "runs/my_run"
    seed: int = 0
    verbose: int = 1
    # The compute dtype of the models the run builds (the backbone teacher
    # and the students): one of `PRECISIONS`. `mixed_bfloat16` keeps the
    # variables in float32 and saves a float32 student
    # (`kd_keras.pipeline.precision`).
    precision: str = "float32"

    @property
    def student_sequence_length(self):
        """The student's sequence length (the teacher's unless set)."""
        return self.student.sequence_length or self.teacher.sequence_length

    def replace(self, **changes):
        """A copy with top-level fields replaced (`dataclasses.replace`)."""
        return dataclasses.replace(self, **changes)


def to_dict(config):
    """A config object as plain JSON-ready Python values (tuples as lists).

    Example:

    >>> to_dict(EarlyStoppingConfig(patience=3))
    {'patience': 3}
    """
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return plain(config)
