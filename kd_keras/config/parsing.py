"""A parsed YAML mapping -> `RunConfig`: building and path resolution
(`kd_keras.config.loading` reads the file).

`parse_config(mapping)` builds the typed objects of
`kd_keras.config.schema` (an unknown key is an error that lists the known
ones), then `kd_keras.config.validation.validate` checks every value and
raises `ConfigError` with a one-line message naming the key, e.g.
`distill.epochs: must be a positive integer, got -1`.

Relative input paths (data files, `teacher.model`, `teacher.backbone`,
`student.vocabulary`, `distill.cache_dir`) are resolved against the config
file's folder; `output` is relative to the current directory; `~` is the
home folder in each of them.

An integer is a number wherever the schema declares a float (it becomes a
float, as Keras wants). A key that the configured route does not read
(`teacher.fine_tune` with a ready `teacher.model`, the file options with
`data.builtin`) is an error unless its value is the default.
"""

import dataclasses
import os
from typing import Optional

from kd_keras.config import schema
from kd_keras.config.validation import validate
from kd_keras.config.values import as_float as _as_float
from kd_keras.config.values import check as _check
from kd_keras.number_checks import is_int as _is_int
from kd_keras.errors import ConfigError

_FLOATS = (float, Optional[float], "float", "Optional[float]")  # (as annotations, too)
# Keys that a route never reads (not an error when given their default).
_UNUSED = (
    ("data", "builtin", ("validation", "test", "format", "header", "text_column",
                         "label_column", "labels"),
     "a built-in dataset has its own splits and labels"),
    ("teacher", "model", ("fine_tune", "pooling"), "a ready teacher is used as it is"),
)


def _build(cls, given, path):
    """`cls` from a mapping, recursively; unknown keys are errors."""
    key = ".".join(path) or "config"
    if not isinstance(given, dict):
        _check(False, key, "a mapping", given)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for name, value in given.items():
        here = path + (str(name),)
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{'.'.join(here)}: unknown key (known: {known})")
        meta = fields[name].metadata
        section = meta.get("section")
        if section is not None and meta.get("optional"):
            # Only null and false switch a section off (not 0, "" or []).
            _check(value is None or isinstance(value, (bool, dict)), ".".join(here),
                   "a mapping, true, null or false", value)
            values[name] = (None if value is None or value is False
                            else section() if value is True else _build(section, value, here))
        elif section is not None:
            values[name] = _build(section, {} if value is None else value, here)
        elif meta.get("items") is not None and value is None:
            values[name] = None  # Left to the default recipe; [] is none.
        elif meta.get("items") is not None:
            _check(isinstance(value, list), ".".join(here), "a list", value)
            values[name] = tuple(
                _build(meta["items"], item, path + (f"{name}[{i}]",))
                for i, item in enumerate(value))
        elif meta.get("free_form"):
            _check(isinstance(value, dict), ".".join(here), "a mapping", value)
            values[name] = dict(value)
        elif isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = value
    return cls(**values)


def parse_config(raw, base_dir="."):
    """Builds and validates a `RunConfig` from a parsed YAML mapping.

    Args:
        raw: the mapping (`None` gives the defaults, which lack data).
        base_dir: folder that relative input paths are resolved against.

    Returns:
        A validated `RunConfig`, paths resolved.

    Raises:
        ConfigError: naming the first bad key.

    Example:

    >>> cfg = parse_config({"data": {"builtin": "rt_polarity"},
    ...                     "teacher": {"backbone": "minilm"}})
    >>> cfg.distill.epochs, cfg.student.architecture  # the default recipe's, or its to choose
    (10, None)
    >>> parse_config({"distill": {"epochs": -1}})
    Traceback (most recent call last):
    ...
    kd_keras.errors.ConfigError: distill.epochs: must be a positive integer, got -1
    """
    cfg = _build(schema.RunConfig, {} if raw is None else raw, ())
    validate(cfg)
    _check_unused(raw or {}, cfg)
    return _resolve_paths(_with_floats(cfg), base_dir)


def header_resolved(d):
    """`DataConfig` `d` with `header` as the files are read: unset (`null`),
    true when a TSV/CSV column is given by name (`kd_keras.data.reads_header`),
    false for built-in data and JSONL, which have no header row. Configs
    that earlier versions wrote say `header: false` where it is now unset;
    compare configs in this form.

    Example:

    >>> from kd_keras.config import DataConfig
    >>> header_resolved(DataConfig(train="t.csv", text_column="review")).header
    True
    >>> header_resolved(DataConfig(train="t.jsonl", text_column="review")).header
    False
    """
    from kd_keras.data import reads_header
    from kd_keras.data.readers import infer_format

    fmt = d.format or (infer_format(d.train) if isinstance(d.train, str) else None)
    return dataclasses.replace(d, header=reads_header(d.header, d.text_column,
                                                      d.label_column, fmt))


def _with_floats(config):
    """A config object with every integer in a float field as a float (for
    Keras, which wants a float learning rate), once validated (messages show
    the value as written)."""
    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            changes[f.name] = _with_floats(value)
        elif f.type in _FLOATS and _is_int(value):
            changes[f.name] = _as_float(value)
    return dataclasses.replace(config, **changes)


def _check_unused(raw, cfg):
    """Refuses a key that the configured route does not read when the raw
    mapping sets it to anything but its default (a default value changes
    nothing, so `to_dict` output still reads back)."""
    for section, route, keys, why in _UNUSED:
        built = getattr(cfg, section)
        if getattr(built, route) is None:
            continue
        given = raw.get(section) or {}
        default = type(built)()
        # What the default becomes once resolved (`null` -> `header: false`).
        resolved = header_resolved(default) if section == "data" else default
        for key in keys:
            if key in given and getattr(built, key) not in (getattr(default, key),
                                                            getattr(resolved, key)):
                raise ConfigError(f"{section}.{key}: not used with {section}.{route} "
                                  f"({why}); remove it")
    for key, unused, why in _unused_by_value(raw, cfg):
        if unused:
            raise ConfigError(f"{key}: not used {why}; remove it")


def _given(raw, *path):
    """Whether the raw config sets the key at `path` (to anything)."""
    for part in path[:-1]:
        raw = raw.get(part) if isinstance(raw, dict) else None
    return isinstance(raw, dict) and path[-1] in raw and raw[path[-1]] is not None


def _unused_by_value(raw, cfg):
    """`(key, unused, why)` of keys that another key's value makes unused."""
    ft, augment = cfg.teacher.fine_tune, cfg.distill.augment
    no_copies = augment.copies == 0
    default_augment = schema.AugmentConfig()
    yield ("teacher.fine_tune.top_layers",
           _given(raw, "teacher", "fine_tune", "top_layers") and not ft.train_backbone,
           "with teacher.fine_tune.train_backbone: false (an exact head on the frozen "
           "backbone trains no block)")
    yield ("distribute.address",
           cfg.distribute.address != schema.DistributeConfig().address
           and cfg.distribute.engine != "ray", "with distribute.engine: local (no Ray)")
    yield ("distill.cache_dir", _given(raw, "distill", "cache_dir") and cfg.teacher.model,
           "with teacher.model (it caches a backbone's frozen features)")
    # `replace_prob: 0` is what the default recipe writes with no copies (so
    # that a completed config, e.g. a run's config.json, reads back).
    moot = {"replace_prob": 0.0}
    for key in ("word_dropout", "ngram_prob", "max_ngram", "replace_prob", "per_epoch"):
        yield (f"distill.augment.{key}",
               no_copies and _given(raw, "distill", "augment", key)
               and getattr(augment, key) not in (getattr(default_augment, key), moot.get(key)),
               "with distill.augment.copies: 0 (no copies are made)")


def _resolve(path, base):
    if path is None:
        return path
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def _resolve_paths(cfg, base_dir):
    from kd_keras.teachers import MINILM_NAMES

    data = dataclasses.replace(cfg.data, **{
        k: _resolve(getattr(cfg.data, k), base_dir) for k in ("train", "validation", "test")})
    def backbone_path(name):  # A MiniLM alias or a preset name stays a name.
        if name is None or name.lower() in MINILM_NAMES:
            return name
        local = _resolve(name, base_dir)
        return local if os.path.exists(local) else name

    teacher = dataclasses.replace(cfg.teacher, backbone=backbone_path(cfg.teacher.backbone),
                                  model=_resolve(cfg.teacher.model, base_dir))
    options = dict(cfg.student.options)
    if options.get("embedding_init") is not None:
        options["embedding_init"] = backbone_path(options["embedding_init"])
    student = dataclasses.replace(cfg.student, options=options,
                                  vocabulary=_resolve(cfg.student.vocabulary, base_dir))
    distill = dataclasses.replace(cfg.distill,
                                  cache_dir=_resolve(cfg.distill.cache_dir, base_dir))
    return dataclasses.replace(cfg, data=data, teacher=teacher, student=student,
                               distill=distill, output=os.path.expanduser(cfg.output))
