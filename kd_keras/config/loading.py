"""A YAML config file -> `RunConfig`: safe reading, overrides, file checks.

`read_yaml` parses a file with a `yaml.SafeLoader` that also refuses
aliases, duplicate keys and files over 1 MiB (a folder, FIFO or device is
refused without being opened for reading); `apply_overrides` sets dotted keys (the CLI's
`--set`); `load_config` hands the mapping to
`kd_keras.config.parsing.parse_config` (paths relative to the file's folder)
and checks that every input file it names exists.
"""

import os
import re
import stat

import yaml

from kd_keras.config.parsing import parse_config
from kd_keras.errors import ConfigError
from kd_keras.errors import DataError
from kd_keras.errors import KdKerasError
from kd_keras.errors import MissingFileError
from kd_keras.errors import one_line

MAX_CONFIG_BYTES = 1 << 20


def check_files(cfg):
    """Checks that every input file the config names exists.

    Raises:
        MissingFileError: naming the config key and the path.
        DataError: a data or vocabulary file that is a folder.
    """
    checks = [(f"data.{k}", getattr(cfg.data, k)) for k in ("train", "validation", "test")]
    checks += [("teacher.model", cfg.teacher.model),
               ("student.vocabulary", cfg.student.vocabulary)]
    for key, path in checks:
        if path is not None and not os.path.exists(path):
            raise MissingFileError(f"{key}: file not found: {path}")
        if path is not None and key != "teacher.model" and os.path.isdir(path):
            raise DataError(f"{key}: {path} is a folder, not a file")


class _DuplicateKey(yaml.YAMLError):
    """A mapping gives one key twice."""


class _AmbiguousNumber(yaml.YAMLError):
    """An integer YAML 1.1 reads unlike most readers (`010` is 8)."""


class _NoAliasLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses anchors and aliases (a config has no use
    for them, and nested aliases blow a small file up exponentially), a
    key given twice in a mapping (where the last one would silently win)
    and the integers YAML 1.1 reads as octal or base 60 (`010` is 8, `1:30`
    is 90), where a reader means 10 or a text."""

    def construct_yaml_int(self, node):
        value = super().construct_yaml_int(node)
        digits = str(node.value).replace("_", "").lstrip("+-")
        if ":" in digits or re.fullmatch(r"0[0-7]+", digits):
            base = "base 60" if ":" in digits else "octal"
            raise _AmbiguousNumber(
                f"line {node.start_mark.line + 1}: {node.value} is {value} in YAML ({base}); "
                f"write {value} for that number, or quote it for a text")
        return value

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(f"YAML aliases are not supported (line {event.start_mark.line + 1})")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<:` merges; the keys given next override its keys.
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKey(f"line {line}: duplicate key {key!r} (first "
                                            f"given on line {seen[key]})")
                except TypeError:  # Unhashable: the SafeLoader refuses it next.
                    continue
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _problem(info):
    """What makes a file with this `os.stat` result no config file, if anything."""
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not a config file"
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_size > MAX_CONFIG_BYTES:
        return f"config file larger than {MAX_CONFIG_BYTES} bytes"
    return None


def _open_regular(path):
    """`path` opened for reading once it is known to be a regular file: a
    FIFO or device is never opened (and, should one replace the file in
    between, it is opened without blocking and never read)."""
    try:
        problem = _problem(os.stat(path))
        if problem is None:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise MissingFileError(f"{path}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror})") from None
    if problem is None:
        problem = _problem(os.fstat(fd))
        if problem is not None:
            os.close(fd)
    if problem is not None:
        raise ConfigError(f"{path}: {problem}")
    os.set_blocking(fd, True)
    return open(fd, encoding="utf-8-sig")


_NoAliasLoader.add_constructor("tag:yaml.org,2002:int", _NoAliasLoader.construct_yaml_int)


def read_yaml(path):
    """Parses a YAML config file safely (no aliases, no duplicate keys, at
    most 1 MiB).

    Raises:
        MissingFileError: the file does not exist.
        ConfigError: naming the file (and line) when it is not a regular
            file or cannot be parsed.
    """
    path = os.fspath(path)
    try:
        with _open_regular(path) as f:
            raw = yaml.load(f, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)
    except (_DuplicateKey, _AmbiguousNumber) as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or one_line(e)
        if "escape" in problem:  # "C:\Users\..." in double quotes: \U is an escape.
            problem += (" (a backslash in double quotes starts an escape: write a Windows "
                        "path in single quotes, or with /)")
        raise ConfigError(f"{path}: cannot parse YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    except RecursionError:
        raise ConfigError(f"{path}: cannot parse YAML: nested too deeply") from None
    except KdKerasError:  # `_open_regular`'s own (a ValueError too)
        raise
    except (ValueError, OverflowError) as e:
        # A value the YAML reader cannot build: a date that does not exist
        # (2024-02-30), `!!int abc`, an integer of more than 4,300 digits.
        raise ConfigError(f"{path}: cannot parse YAML: a value cannot be read "
                          f"({one_line(e)})") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the config must be a YAML mapping, got {type(raw).__name__}")
    return dict(raw or {})


def load_config(path, overrides=None):
    """Reads, validates and completes a YAML config file.

    Args:
        path: the YAML file.
        overrides: optional dotted keys replacing the file's values, e.g.
            `{"output": "elsewhere", "distill.epochs": 2}`.

    Returns:
        A validated `RunConfig`.

    Raises:
        MissingFileError: the config or an input file is missing.
        ConfigError: unparsable YAML (naming the file and line) or a bad key.
    """
    raw = apply_overrides(read_yaml(path), overrides)
    cfg = parse_config(raw, base_dir=os.path.dirname(os.path.abspath(path)))
    check_files(cfg)
    return cfg


def apply_overrides(raw, overrides):
    """A copy of a raw config mapping with dotted keys set.

    Example:

    >>> apply_overrides({"distill": {"epochs": 5}}, {"distill.epochs": 2, "export": None})
    {'distill': {'epochs': 2}, 'export': None}
    """
    import copy

    raw = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        node = raw
        keys = dotted.split(".")
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = value
    return raw


def changed_keys(old, new, prefix=""):
    """The dotted keys whose values differ between two plain config dicts.

    Example:

    >>> changed_keys({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 4}, "d": 5})
    ['a.c', 'd']
    """
    keys = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys
