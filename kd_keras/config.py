"""The `kd-keras distill` configuration: schema, defaults and validation.

A config is a YAML mapping (read with `yaml.safe_load`). `load_config` checks
every key and value *before* any work starts and fills in defaults; an
unknown key or a bad value raises `ConfigError` (a `ValueError`) whose
one-line message names the key, e.g.
`distill.epochs: must be a non-negative integer, got -1`.

Relative input paths (data files, `teacher.model`, `teacher.backbone`,
`student.vocabulary`) are resolved against the config file's folder;
`output` is relative to the current directory.
"""

import copy
import os

import yaml

from kd_keras.data.readers import FORMATS
from kd_keras.losses import NAMES as DISTILLATION_LOSSES

STUDENT_OPTIONS = "options"
MINILM_NAMES = ("all-minilm-l6-v2", "minilm", "minilm-l6")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
EXPORT_FORMATS = ("saved_model", "tflite", "onnx")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")

DEFAULTS = {
    "data": {
        "builtin": None,
        "train": None,
        "validation": None,
        "test": None,
        "format": None,
        "header": False,
        "text_column": 0,
        "label_column": 1,
        "labels": None,
        "max_examples": None,
        "split": [0.8, 0.1, 0.1],
        "labels_fraction": 1.0,
    },
    "teacher": {
        "backbone": None,
        "model": None,
        "sequence_length": 64,
        "pooling": None,
        "fine_tune": {
            "epochs": 3,
            "train_backbone": False,
            "top_layers": None,
            "learning_rate": None,
            "batch_size": 32,
        },
    },
    "student": {
        "architecture": "text_cnn",
        "sequence_length": None,
        "vocabulary": None,
        STUDENT_OPTIONS: {},
    },
    "distill": {
        "epochs": 5,
        "batch_size": 64,
        "alpha": 0.1,
        "temperature": 3.0,
        "loss": "soft_target_kl",
        "learning_rate": 1e-3,
        "cache_teacher": True,
        "cache_dir": None,
        "baseline": False,
        "early_stopping": None,
        "augment": {"copies": 0, "word_dropout": 0.1, "ngram_prob": 0.25, "max_ngram": 5,
                    "replace_prob": 0.0},
    },
    "export": {
        "formats": ["saved_model", "tflite", "onnx"],
        "quantization": ["none", "int8"],
    },
    "distribute": {"strategy": "default"},
    "output": "runs/my_run",
    "seed": 0,
    "verbose": 1,
}

# Keys whose value is a free-form mapping (not checked key by key).
_FREE_FORM = {("student", STUDENT_OPTIONS)}
# Sections that may be set to `null`/`false` to switch them off.
_OPTIONAL_SECTIONS = {("export",), ("distill", "early_stopping")}


class ConfigError(ValueError):
    """A bad config key or value; the message is one line naming the key."""


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check(cond, key, what, value):
    if not cond:
        raise ConfigError(f"{key}: must be {what}, got {value!r}")


def _merge(defaults, given, path):
    if not isinstance(given, dict):
        key = ".".join(path) or "config"
        raise ConfigError(f"{key}: must be a mapping, got {given!r}")
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        here = path + (str(key),)
        if key not in defaults:
            known = ", ".join(sorted(defaults))
            raise ConfigError(f"{'.'.join(here)}: unknown key (known: {known})")
        if here in _OPTIONAL_SECTIONS and value in (None, False):
            merged[key] = None
        elif isinstance(defaults[key], dict) and here not in _FREE_FORM:
            merged[key] = _merge(defaults[key], {} if value is None else value, here)
        elif here == ("distill", "early_stopping") and value is True:
            merged[key] = {"patience": 2}
        else:
            merged[key] = value
    return merged


def _resolve(path, base):
    if path is None or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, path))


def _validate_data(d):
    source = [k for k in ("builtin", "train") if d[k] is not None]
    if len(source) != 1:
        raise ConfigError(
            "data: give exactly one of `train` (a file) or `builtin` "
            "(rt_polarity)"
        )
    if d["builtin"] is not None:
        _check(d["builtin"] == "rt_polarity", "data.builtin", "'rt_polarity'", d["builtin"])
    for key in ("train", "validation", "test"):
        _check(d[key] is None or isinstance(d[key], str), f"data.{key}", "a file path", d[key])
    _check(d["format"] in (None, *FORMATS), "data.format", f"one of {', '.join(FORMATS)}", d["format"])
    _check(isinstance(d["header"], bool), "data.header", "true or false", d["header"])
    for key in ("text_column", "label_column"):
        v = d[key]
        _check((_is_int(v) and v >= 0) or (isinstance(v, str) and v), f"data.{key}",
               "a column index (>= 0) or name", v)
    if d["labels"] is not None:
        _check(isinstance(d["labels"], list) and len(d["labels"]) >= 2
               and len(set(map(str, d["labels"]))) == len(d["labels"]),
               "data.labels", "a list of at least 2 distinct class names", d["labels"])
    v = d["max_examples"]
    _check(v is None or (_is_int(v) and v > 0), "data.max_examples", "a positive integer or null", v)
    s = d["split"]
    _check(isinstance(s, list) and len(s) == 3 and all(_is_number(f) and f > 0 for f in s)
           and abs(sum(s) - 1) < 1e-6, "data.split",
           "three positive fractions summing to 1 (train, validation, test)", s)
    f = d["labels_fraction"]
    _check(_is_number(f) and 0 < f <= 1, "data.labels_fraction", "a number in (0, 1]", f)


def _validate_teacher(t):
    source = [k for k in ("backbone", "model") if t[k] is not None]
    if len(source) != 1:
        raise ConfigError(
            "teacher: give exactly one of `backbone` (a pretrained checkpoint to "
            "fine-tune) or `model` (a ready teacher, e.g. teacher.keras)"
        )
    for key in ("backbone", "model"):
        _check(t[key] is None or (isinstance(t[key], str) and t[key]), f"teacher.{key}",
               "a path or name", t[key])
    v = t["sequence_length"]
    _check(_is_int(v) and 4 <= v <= 512, "teacher.sequence_length", "an integer in [4, 512]", v)
    _check(t["pooling"] in (None, "mean", "cls", "pooled"), "teacher.pooling",
           "one of mean, cls, pooled", t["pooling"])
    ft = t["fine_tune"]
    _check(_is_int(ft["epochs"]) and ft["epochs"] >= 0, "teacher.fine_tune.epochs",
           "a non-negative integer", ft["epochs"])
    _check(isinstance(ft["train_backbone"], bool), "teacher.fine_tune.train_backbone",
           "true or false", ft["train_backbone"])
    v = ft["top_layers"]
    _check(v is None or (_is_int(v) and v >= 0), "teacher.fine_tune.top_layers",
           "a non-negative integer or null", v)
    v = ft["learning_rate"]
    _check(v is None or (_is_number(v) and v > 0), "teacher.fine_tune.learning_rate",
           "a positive number or null", v)
    v = ft["batch_size"]
    _check(_is_int(v) and v > 0, "teacher.fine_tune.batch_size", "a positive integer", v)


def _validate_student(s, teacher):
    from kd_keras.students import get_student

    try:
        get_student(s["architecture"])
    except ValueError as e:  # Already names student.architecture.
        raise ConfigError(str(e)) from None
    v = s["sequence_length"]
    _check(v is None or (_is_int(v) and v >= 4), "student.sequence_length",
           "an integer >= 4 or null", v)
    if v is None:
        s["sequence_length"] = teacher["sequence_length"]
    _check(s["vocabulary"] is None or isinstance(s["vocabulary"], str),
           "student.vocabulary", "a vocab.txt path", s["vocabulary"])
    _check(isinstance(s[STUDENT_OPTIONS], dict), f"student.{STUDENT_OPTIONS}",
           "a mapping of builder arguments", s[STUDENT_OPTIONS])


def _validate_distill(d):
    for key in ("epochs",):
        _check(_is_int(d[key]) and d[key] >= 0, f"distill.{key}", "a non-negative integer", d[key])
    _check(_is_int(d["batch_size"]) and d["batch_size"] > 0, "distill.batch_size",
           "a positive integer", d["batch_size"])
    _check(_is_number(d["alpha"]) and 0 <= d["alpha"] <= 1, "distill.alpha",
           "a number in [0, 1]", d["alpha"])
    _check(_is_number(d["temperature"]) and d["temperature"] > 0, "distill.temperature",
           "a positive number", d["temperature"])
    _check(d["loss"] in DISTILLATION_LOSSES, "distill.loss",
           f"one of {', '.join(DISTILLATION_LOSSES)}", d["loss"])
    _check(_is_number(d["learning_rate"]) and d["learning_rate"] > 0,
           "distill.learning_rate", "a positive number", d["learning_rate"])
    for key in ("cache_teacher", "baseline"):
        _check(isinstance(d[key], bool), f"distill.{key}", "true or false", d[key])
    _check(d["cache_dir"] is None or isinstance(d["cache_dir"], str), "distill.cache_dir",
           "a folder path or null", d["cache_dir"])
    a = d["augment"]
    _check(_is_int(a["copies"]) and a["copies"] >= 0, "distill.augment.copies",
           "a non-negative integer", a["copies"])
    for key in ("word_dropout", "ngram_prob", "replace_prob"):
        _check(_is_number(a[key]) and 0 <= a[key] < 1, f"distill.augment.{key}",
               "a number in [0, 1)", a[key])
    _check(_is_int(a["max_ngram"]) and a["max_ngram"] >= 1, "distill.augment.max_ngram",
           "a positive integer", a["max_ngram"])
    es = d["early_stopping"]
    if es is not None:
        _check(isinstance(es, dict) and set(es) <= {"patience"}, "distill.early_stopping",
               "true, false or {patience: N}", es)
        p = es.setdefault("patience", 2)
        _check(_is_int(p) and p >= 0, "distill.early_stopping.patience",
               "a non-negative integer", p)


def _validate_export(e):
    if e is None:
        return
    for key, allowed in (("formats", EXPORT_FORMATS), ("quantization", QUANTIZATIONS)):
        v = e[key]
        if isinstance(v, str):
            v = e[key] = [v]
        _check(isinstance(v, list) and v and all(x in allowed for x in v), f"export.{key}",
               f"a non-empty list of {', '.join(allowed)}", v)


def validate_config(config, base_dir="."):
    """Validates a config mapping and returns it with defaults filled in.

    Args:
        config: the parsed YAML mapping.
        base_dir: folder that relative input paths are resolved against.

    Returns:
        A new dict with every section and key present.

    Raises:
        ConfigError: naming the first bad key.

    Example:

    >>> cfg = validate_config({"data": {"builtin": "rt_polarity"},
    ...                        "teacher": {"backbone": "minilm"}})
    >>> cfg["distill"]["epochs"], cfg["student"]["architecture"]
    (5, 'text_cnn')
    >>> validate_config({"distill": {"epochs": -1}})
    Traceback (most recent call last):
    ...
    kd_keras.config.ConfigError: distill.epochs: must be a non-negative integer, got -1
    """
    if config is None:
        config = {}
    cfg = _merge(DEFAULTS, config, ())
    _validate_distill(cfg["distill"])
    _validate_data(cfg["data"])
    _validate_teacher(cfg["teacher"])
    _validate_student(cfg["student"], cfg["teacher"])
    _validate_export(cfg["export"])
    _check(cfg["distill"]["augment"]["replace_prob"] == 0 or cfg["teacher"]["backbone"],
           "distill.augment.replace_prob",
           "0 unless teacher.backbone is set (its word embeddings give the neighbours)",
           cfg["distill"]["augment"]["replace_prob"])
    strategy = cfg["distribute"]["strategy"]
    _check(strategy in STRATEGIES, "distribute.strategy", f"one of {', '.join(STRATEGIES)}", strategy)
    _check(isinstance(cfg["output"], str) and cfg["output"], "output", "a folder path", cfg["output"])
    _check(_is_int(cfg["seed"]) and cfg["seed"] >= 0, "seed", "a non-negative integer", cfg["seed"])
    _check(cfg["verbose"] in (0, 1, 2), "verbose", "0, 1 or 2", cfg["verbose"])

    for key in ("train", "validation", "test"):
        cfg["data"][key] = _resolve(cfg["data"][key], base_dir)
    backbone = cfg["teacher"]["backbone"]
    if backbone is not None and backbone.lower() not in MINILM_NAMES:
        local = _resolve(backbone, base_dir)
        cfg["teacher"]["backbone"] = local if os.path.exists(local) else backbone
    cfg["teacher"]["model"] = _resolve(cfg["teacher"]["model"], base_dir)
    cfg["student"]["vocabulary"] = _resolve(cfg["student"]["vocabulary"], base_dir)
    if cfg["distill"]["cache_dir"] is not None:
        cfg["distill"]["cache_dir"] = _resolve(cfg["distill"]["cache_dir"], base_dir)
    return cfg


def check_files(cfg):
    """Checks that every input file the config names exists.

    Raises:
        FileNotFoundError: naming the config key and the path.
    """
    checks = [(f"data.{k}", cfg["data"][k]) for k in ("train", "validation", "test")]
    checks += [("teacher.model", cfg["teacher"]["model"]),
               ("student.vocabulary", cfg["student"]["vocabulary"])]
    for key, path in checks:
        if path is not None and not os.path.exists(path):
            raise FileNotFoundError(f"{key}: file not found: {path}")


def load_config(path, overrides=None):
    """Reads, validates and completes a YAML config file.

    Args:
        path: the YAML file.
        overrides: optional dict of top-level values replacing the file's
            (e.g. `{"output": "elsewhere"}` from `--output`).

    Returns:
        The validated config dict (see `validate_config`).

    Raises:
        FileNotFoundError: the config or an input file is missing.
        ConfigError: unparsable YAML (naming the file and line) or a bad key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: cannot parse YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping, got {type(raw).__name__}")
    raw = dict(raw or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value
    cfg = validate_config(raw, base_dir=os.path.dirname(os.path.abspath(path)))
    check_files(cfg)
    return cfg
