"""Validation of a built `RunConfig`: every value checked, one line per bad
key.

`validate(cfg)` raises `ConfigError` with a one-line message naming the
first bad key, e.g. `distill.epochs: must be a positive integer, got
-1`. Validators only validate: defaults live in `kd_keras.config.schema`,
and `kd_keras.config.parsing` builds the objects and calls this.
"""

import math
import re

from kd_keras.config import schema
from kd_keras.config.terms import validate_feature_terms
from kd_keras.config.values import check as _check
from kd_keras.config.values import is_path as _is_path
from kd_keras.number_checks import is_finite as _is_finite
from kd_keras.number_checks import is_int as _is_int
from kd_keras.errors import ConfigError

MAX_SEED = 2**32 - 1  # NumPy's and Keras's seeds are 32-bit.


MAX_COUNT = 2**31 - 1
"""The most epochs, examples a batch or batches a call: TensorFlow counts
them in int32 or int64, and a larger number failed in training, after the
teacher's stage."""


def _check_count(value, key):
    """A positive integer, at most `MAX_COUNT`."""
    _check(_is_int(value) and value >= 1, key, "a positive integer", value)
    _check(value <= MAX_COUNT, key, f"at most {MAX_COUNT}", value)


def validate(cfg):
    """Checks every value of a `RunConfig`.

    Args:
        cfg: a `RunConfig`, as built from a mapping (before its paths are
            resolved).

    Raises:
        ConfigError: naming the first bad key and its value.

    Example:

    >>> from kd_keras.config import DataConfig, RunConfig, TeacherConfig
    >>> teacher = TeacherConfig(backbone="minilm")
    >>> validate(RunConfig(data=DataConfig(train="t.tsv", header=True), teacher=teacher))
    >>> validate(RunConfig(data=DataConfig(train="t.tsv", header="yes"), teacher=teacher))
    Traceback (most recent call last):
    ...
    kd_keras.errors.ConfigError: data.header: must be true, false or null (null: a header when a column is given by name), got 'yes'
    """
    _validate_distill(cfg.distill)
    _validate_data(cfg.data)
    _validate_teacher(cfg.teacher)
    _validate_student(cfg.student)
    _validate_export(cfg.export)
    # Ray trains under MultiWorkerMirroredStrategy too.
    multi_worker = cfg.distribute.engine == "ray" or cfg.distribute.strategy == "multi_worker"
    _check(cfg.distill.steps_per_execution == 1 or not multi_worker,
           "distill.steps_per_execution", "1 with distribute.engine: ray or "
           "distribute.strategy: multi_worker (Keras's multi-step loop fails under "
           "MultiWorkerMirroredStrategy)", cfg.distill.steps_per_execution)
    _check(not (cfg.distill.baseline and cfg.distribute.engine != "ray"
                and cfg.distribute.strategy == "multi_worker"),
           "distill.baseline", "false with distribute.strategy: multi_worker (Keras's fit of "
           "the student alone fails under MultiWorkerMirroredStrategy; distribute.engine: "
           "ray trains it on the driver)", cfg.distill.baseline)
    _check(not cfg.distill.augment.replace_prob or cfg.teacher.backbone,
           "distill.augment.replace_prob",
           "0 unless teacher.backbone is set (its word embeddings give the neighbours)",
           cfg.distill.augment.replace_prob)
    from kd_keras.data.tokenizer import TOKENIZER_MIN_COUNT_KEY

    _check(cfg.student.tokenizer_min_count is None or cfg.teacher.backbone,
           TOKENIZER_MIN_COUNT_KEY,
           "null unless teacher.backbone is set (a teacher.model may read the full "
           "vocabulary's ids; a backbone teacher reads the texts)",
           cfg.student.tokenizer_min_count)
    from kd_keras.distribute import STRATEGIES

    _check(cfg.distribute.strategy in STRATEGIES, "distribute.strategy",
           f"one of {', '.join(STRATEGIES)}", cfg.distribute.strategy)
    _validate_distribute(cfg.distribute)
    _check(_is_path(cfg.output), "output", "a folder path",
           cfg.output)
    _check(_is_int(cfg.seed) and 0 <= cfg.seed <= MAX_SEED, "seed",
           f"an integer in [0, {MAX_SEED}]", cfg.seed)
    _check(cfg.verbose in (0, 1, 2) and not isinstance(cfg.verbose, bool), "verbose",
           "0, 1 or 2", cfg.verbose)
    _check(cfg.precision in schema.PRECISIONS, "precision",
           f"one of {', '.join(schema.PRECISIONS)}", cfg.precision)
    _check(cfg.precision == "float32" or not multi_worker, "precision",
           "float32 with distribute.engine: ray or distribute.strategy: multi_worker "
           "(mixed precision is not tested there)", cfg.precision)


def _validate_data(d):
    from kd_keras.data import BUILTIN_DATASETS
    from kd_keras.data import FORMATS

    if (d.builtin is None) == (d.train is None):
        raise ConfigError(
            "data: give exactly one of `train` (a file) or `builtin` "
            f"({', '.join(BUILTIN_DATASETS)})")
    if d.builtin is not None:
        _check(d.builtin in BUILTIN_DATASETS, "data.builtin",
               f"one of {', '.join(BUILTIN_DATASETS)}", d.builtin)
    for key in ("train", "validation", "test"):
        value = getattr(d, key)
        _check(value is None or _is_path(value), f"data.{key}", "a file path", value)
    _check(d.format in (None, *FORMATS), "data.format", f"one of {', '.join(FORMATS)}",
           d.format)
    _check(d.header is None or isinstance(d.header, bool), "data.header",
           "true, false or null (null: a header when a column is given by name)", d.header)
    for key in ("text_column", "label_column"):
        v = getattr(d, key)
        _check((_is_int(v) and v >= 0) or (isinstance(v, str) and v), f"data.{key}",
               "a column index (>= 0) or name", v)
    if d.labels is not None:
        _check_boolean_labels(d.labels)
        _check(isinstance(d.labels, tuple) and len(d.labels) >= 2
               and all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in d.labels)
               and len(set(map(str, d.labels))) == len(d.labels),
               "data.labels", "a list of at least 2 distinct class names", d.labels)
    v = d.max_examples
    _check(v is None or (_is_int(v) and v > 0), "data.max_examples",
           "a positive integer or null", v)
    s = d.split
    _check(isinstance(s, tuple) and len(s) == 3 and all(_is_finite(f) and f > 0 for f in s)
           and abs(sum(s) - 1) < 1e-6, "data.split",
           "three positive fractions summing to 1 (train, validation, test)", s)
    _check(d.split_seed is None or (_is_int(d.split_seed) and 0 <= d.split_seed <= MAX_SEED),
           "data.split_seed", f"an integer in [0, {MAX_SEED}] or null", d.split_seed)
    f = d.labels_fraction
    _check(_is_finite(f) and 0 < f <= 1, "data.labels_fraction", "a number in (0, 1]", f)


def _check_boolean_labels(labels):
    """YAML reads unquoted `no`, `yes`, `off`, `on` as booleans: say so."""
    for i, label in enumerate(labels if isinstance(labels, tuple) else ()):
        if isinstance(label, bool):
            raise ConfigError(
                f"data.labels[{i}]: read as the boolean {str(label).lower()} (YAML reads "
                f"unquoted {'yes, on and true' if label else 'no, off and false'} so); "
                f"quote the class name, e.g. '{'yes' if label else 'no'}'")


def _validate_teacher(t):
    if (t.backbone is None) == (t.model is None):
        raise ConfigError(
            "teacher: give exactly one of `backbone` (a pretrained checkpoint to "
            "fine-tune) or `model` (a ready teacher, e.g. teacher.keras)")
    for key in ("backbone", "model"):
        value = getattr(t, key)
        _check(value is None or _is_path(value), f"teacher.{key}", "a path or name", value)
    v = t.sequence_length
    _check(_is_int(v) and 4 <= v <= 512, "teacher.sequence_length",
           "an integer in [4, 512]", v)
    _check(t.pooling in (None, "mean", "cls", "pooled"), "teacher.pooling",
           "one of mean, cls, pooled", t.pooling)
    ft = t.fine_tune
    _check(_is_int(ft.epochs) and 0 <= ft.epochs <= MAX_COUNT, "teacher.fine_tune.epochs",
           f"an integer in [0, {MAX_COUNT}]", ft.epochs)
    _check(isinstance(ft.train_backbone, bool), "teacher.fine_tune.train_backbone",
           "true or false", ft.train_backbone)
    _check(ft.top_layers is None or (_is_int(ft.top_layers) and ft.top_layers >= 1),
           "teacher.fine_tune.top_layers", "a positive integer or null (train_backbone: "
           "false trains no block)", ft.top_layers)
    _check(ft.learning_rate is None or (_is_finite(ft.learning_rate) and ft.learning_rate > 0),
           "teacher.fine_tune.learning_rate", "a positive number or null", ft.learning_rate)
    _check_count(ft.batch_size, "teacher.fine_tune.batch_size")


def _validate_student(s):
    from kd_keras.data.tokenizer import TOKENIZER_MIN_COUNT_KEY
    from kd_keras.students.vocabulary import MAX_ROWS_KEY
    from kd_keras.students.vocabulary import MIN_COUNT_KEY
    from kd_keras.students.vocabulary import PRUNE_KEY

    _check_student_architecture(s)
    v = s.sequence_length
    _check(v is None or (_is_int(v) and 4 <= v <= 4096), "student.sequence_length",
           "an integer in [4, 4096] or null", v)
    _check(s.vocabulary is None or _is_path(s.vocabulary), "student.vocabulary",
           "a vocab.txt path", s.vocabulary)
    _check(s.tokenizer_min_count is None or (_is_int(s.tokenizer_min_count)
                                             and 1 <= s.tokenizer_min_count <= 1_000_000),
           TOKENIZER_MIN_COUNT_KEY, "an integer in [1, 1000000] or null", s.tokenizer_min_count)
    _check(isinstance(s.prune_vocabulary, bool), PRUNE_KEY, "true or false",
           s.prune_vocabulary)
    _check(_is_int(s.vocabulary_min_count) and 1 <= s.vocabulary_min_count <= 1_000_000,
           MIN_COUNT_KEY, "an integer in [1, 1000000]", s.vocabulary_min_count)
    _check(s.vocabulary_max_rows is None or (_is_int(s.vocabulary_max_rows)
                                             and 2 <= s.vocabulary_max_rows <= 10_000_000),
           MAX_ROWS_KEY, "an integer in [2, 10000000] or null", s.vocabulary_max_rows)
    for key, given in ((MIN_COUNT_KEY, s.vocabulary_min_count > 1),
                       (MAX_ROWS_KEY, s.vocabulary_max_rows is not None)):
        if given and not s.prune_vocabulary:
            raise ConfigError(f"{key}: needs {PRUNE_KEY}: true (it prunes the rarer ids "
                              "of the pruned vocabulary)")
    for key, given in ((PRUNE_KEY, s.prune_vocabulary),
                       (TOKENIZER_MIN_COUNT_KEY, s.tokenizer_min_count is not None)):
        if given and s.options.get("embedding_init") is not None:
            raise ConfigError(f"{key}: cannot be combined with student.options.embedding_init "
                              "(a table for the full vocabulary)")
    for key, value in s.options.items():
        _check(isinstance(key, str) and key.isidentifier(), "student.options",
               "a mapping of builder argument names", key)
        _check(not (isinstance(value, float) and not math.isfinite(value)),
               f"student.options.{key}", "a finite value", value)
    init = s.options.get("embedding_init")  # In a config, only a name or folder can be.
    _check(init is None or _is_path(init), "student.options.embedding_init",
           "a teacher backbone name (minilm) or a checkpoint folder", init)
    name = s.options.get("name")  # The model's name: a TF scope, the serving name.
    _check(name is None or (isinstance(name, str)
                            and re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*", name)),
           "student.options.name", "a name of letters, digits, '_', '.' and '-' (it names "
           "the model in TensorFlow and TF Serving)", name)


def _check_student_architecture(s):
    """A known architecture whose builder takes `student.options` (left out,
    the default recipe's student must take them)."""
    from kd_keras.config.recipe import STUDENT
    from kd_keras.students import get_student

    try:
        builder = get_student(s.architecture or STUDENT)
    except ValueError as e:  # Already names student.architecture.
        raise ConfigError(str(e)) from None
    _check_student_options(s, builder)


def _check_student_options(s, builder):
    """Each `student.options` key must be an argument of the builder."""
    import inspect

    from kd_keras.config.recipe import STUDENT

    parameters = inspect.signature(builder).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    fixed = ("num_classes", "vocab_size", "sequence_length")
    for key in s.options:
        if key in fixed or (key not in parameters and not takes_any):
            known = ", ".join(k for k in parameters if k not in fixed)
            raise ConfigError(f"student.options.{key}: not an option of "
                              f"{s.architecture or STUDENT + ' (the default student)'} "
                              f"(known: {known})")


def _validate_distill(d):
    from kd_keras.cache.metadata import FEATURE_DTYPES
    from kd_keras.distillation.losses import NAMES as DISTILLATION_LOSSES
    from kd_keras.distillation.losses import TEMPERATURE_RANGE

    _check_count(d.epochs, "distill.epochs")
    _check_count(d.batch_size, "distill.batch_size")
    _check_count(d.steps_per_execution, "distill.steps_per_execution")
    _check(_is_finite(d.alpha) and 0 <= d.alpha <= 1, "distill.alpha", "a number in [0, 1]",
           d.alpha)
    low, high = TEMPERATURE_RANGE
    _check(_is_finite(d.temperature) and low <= d.temperature <= high, "distill.temperature",
           f"a number in [{low:g}, {high:g}]", d.temperature)
    _check(d.loss in DISTILLATION_LOSSES, "distill.loss",
           f"one of {', '.join(DISTILLATION_LOSSES)}", d.loss)
    _check(_is_finite(d.learning_rate) and 0 < d.learning_rate <= 10, "distill.learning_rate",
           "a positive number (at most 10)", d.learning_rate)
    for key in ("cache_teacher", "baseline"):
        _check(isinstance(getattr(d, key), bool), f"distill.{key}", "true or false",
               getattr(d, key))
    _check(d.cache_dir is None or _is_path(d.cache_dir),
           "distill.cache_dir", "a folder path or null", d.cache_dir)
    a = d.augment
    _check(a.copies is None or (_is_int(a.copies) and 0 <= a.copies <= 100),
           "distill.augment.copies", "an integer in [0, 100] or null", a.copies)
    for key in ("word_dropout", "ngram_prob", "replace_prob"):
        v = getattr(a, key)
        _check((v is None and key == "replace_prob") or (_is_finite(v) and 0 <= v < 1),
               f"distill.augment.{key}", "a number in [0, 1)", v)
    _check(_is_int(a.max_ngram) and a.max_ngram >= 1, "distill.augment.max_ngram",
           "a positive integer", a.max_ngram)
    _check(isinstance(a.per_epoch, bool), "distill.augment.per_epoch", "true or false",
           a.per_epoch)
    _check(d.feature_dtype in FEATURE_DTYPES, "distill.feature_dtype",
           f"one of {', '.join(FEATURE_DTYPES)}", d.feature_dtype)
    validate_feature_terms(d)
    es = d.early_stopping
    if es is not None:
        _check(_is_int(es.patience) and es.patience >= 0, "distill.early_stopping.patience",
               "a non-negative integer", es.patience)


def _validate_distribute(d):
    from kd_keras.distribute import ENGINES
    from kd_keras.distribute.ray_cluster import check_settings

    _check(d.engine in ENGINES, "distribute.engine", f"one of {', '.join(ENGINES)}", d.engine)
    try:
        check_settings(d.address, d.workers, d.cpus_per_worker, d.gpus_per_worker)
    except ValueError as e:  # Already names the distribute.* key.
        raise ConfigError(str(e)) from None


def _validate_export(e):
    if e is None:
        return
    from kd_keras.export import FORMATS
    from kd_keras.export import QUANTIZATIONS

    for key, allowed in (("formats", FORMATS), ("quantization", QUANTIZATIONS)):
        v = getattr(e, key)
        _check(isinstance(v, tuple) and v and all(x in allowed for x in v)
               and len(set(v)) == len(v), f"export.{key}",
               f"a non-empty list of distinct values among {', '.join(allowed)}", v)
    _check(isinstance(e.text, bool), "export.text", "true or false", e.text)
    _check(isinstance(e.allow_mismatch, bool), "export.allow_mismatch", "true or false",
           e.allow_mismatch)
