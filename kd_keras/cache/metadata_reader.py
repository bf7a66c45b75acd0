"""Reading a teacher-output cache's `metadata.json`: every field checked.

Nothing in the file is trusted: `read` checks every field's type, that the
counts add up, that digests are SHA-256 hex strings, and that each shard's
file names are exactly the names the cache itself writes
(`metadata.shard_filename`), so no name read from the file ever reaches the
file system. Anything else is a one-line `DataError` naming the file and
the field.

Example:

>>> from kd_keras.cache.metadata import CacheMetadata
>>> m = CacheMetadata(teacher_fingerprint="t", shard_size=4)
>>> from_json(m.to_json(), "c/metadata.json") == m
True
>>> from_json({**m.to_json(), "shard_size": -1}, "c/metadata.json")
Traceback (most recent call last):
...
kd_keras.errors.DataError: damaged cache: c/metadata.json: shard_size: expected an integer >= 1, found -1
"""

import json
import os
import re

from kd_keras.cache import fingerprint as fp
from kd_keras.cache.metadata import FEATURE_DTYPES
from kd_keras.cache.metadata import FORMAT_VERSION
from kd_keras.cache.metadata import LOGITS_DTYPE
from kd_keras.cache.metadata import CacheMetadata
from kd_keras.cache.metadata import FeatureSpec
from kd_keras.cache.metadata import Shard
from kd_keras.cache.metadata import ShardFile
from kd_keras.cache.metadata import array_names
from kd_keras.cache.metadata import metadata_path
from kd_keras.cache.metadata import shard_filename
from kd_keras.errors import DataError
from kd_keras.errors import one_line

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _show(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Checker:
    """Raises a one-line `DataError` naming the file and the field."""

    def __init__(self, path):
        self.path = path

    def fail(self, field, what):
        where = f"{field}: " if field else ""
        raise DataError(f"damaged cache: {self.path}: {where}{what}")

    def get(self, raw, key, prefix=""):
        if key not in raw:
            self.fail(prefix + key, "missing")
        return raw[key]

    def integer(self, value, field, minimum, maximum=None):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        if ok and (maximum is None or value <= maximum):
            return value
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        self.fail(field, f"expected an integer {bound}, found {_show(value)}")

    def optional_integer(self, value, field, minimum):
        return None if value is None else self.integer(value, field, minimum)

    def digest(self, value, field, optional=False):
        if optional and value is None:
            return None
        if isinstance(value, str) and _HEX64.fullmatch(value):
            return value
        self.fail(field, f"expected a SHA-256 hex digest, found {_show(value)}")

    def mapping(self, value, field):
        if not isinstance(value, dict):
            self.fail(field, f"expected a JSON object, found {_show(value)}")
        return value

    def input_spec(self, value):
        if value is None:
            return None
        if not isinstance(value, dict) or not value:
            self.fail("input_spec", f"expected a non-empty JSON object, found {_show(value)}")
        for key, leaf in value.items():
            field = f"input_spec.{key}"
            leaf = self.mapping(leaf, field)
            shape = self.get(leaf, "shape", field + ".")
            dtype = self.get(leaf, "dtype", field + ".")
            if not isinstance(shape, list):
                self.fail(field + ".shape", f"expected a list, found {_show(shape)}")
            for i, dim in enumerate(shape):
                self.integer(dim, f"{field}.shape[{i}]", 0)
            if not isinstance(dtype, str) or not dtype:
                self.fail(field + ".dtype", f"expected a dtype name, found {_show(dtype)}")
        return value

    def features(self, raw):
        """The optional `features` and `feature_dtype` keys."""
        dtype = raw.get("feature_dtype", FEATURE_DTYPES[0])
        if dtype not in FEATURE_DTYPES:
            self.fail("feature_dtype", f"expected one of {_show(list(FEATURE_DTYPES))}, "
                      f"found {_show(dtype)}")
        value = raw.get("features", [])
        if not isinstance(value, list):
            self.fail("features", f"expected a list, found {_show(value)}")
        features = []
        for j, entry in enumerate(value):
            field = f"features[{j}]"
            entry = self.mapping(entry, field)
            name = self.get(entry, "name", field + ".")
            shape = self.get(entry, "shape", field + ".")
            if sorted(entry) != ["name", "shape"]:
                self.fail(field, f"expected the keys [\"name\", \"shape\"], found "
                          f"{_show(sorted(entry))}")
            if not isinstance(name, str) or not name:
                self.fail(field + ".name", f"expected a non-empty string, found {_show(name)}")
            if name in (f.name for f in features):
                self.fail(field + ".name", f"{_show(name)} is listed twice")
            if shape is not None:
                if not isinstance(shape, list):
                    self.fail(field + ".shape", f"expected a list or null, found {_show(shape)}")
                shape = tuple(self.integer(d, f"{field}.shape[{k}]", 1)
                              for k, d in enumerate(shape))
            features.append(FeatureSpec(name=name, shape=shape))
        return tuple(features), dtype

    def shard(self, raw, i, shard_size, num_features=0):
        field = f"shards[{i}]"
        raw = self.mapping(raw, field)
        get = lambda key: self.get(raw, key, field + ".")  # noqa: E731
        index = self.integer(get("index"), field + ".index", 0)
        count = self.integer(get("count"), field + ".count", 1, shard_size)
        inputs_sha256 = self.digest(get("inputs_sha256"), field + ".inputs_sha256")
        files_raw = self.mapping(get("files"), field + ".files")
        expected = array_names(num_features)
        if sorted(files_raw) != sorted(expected):
            self.fail(f"{field}.files", f"expected arrays {_show(list(expected))}, "
                      f"found {_show(sorted(files_raw))}")
        files = {}
        for name in expected:
            where = f"{field}.files.{name}"
            entry = self.mapping(files_raw[name], where)
            filename = self.get(entry, "file", where + ".")
            if filename != shard_filename(name, index):
                self.fail(where + ".file",
                          f"expected {_show(shard_filename(name, index))}, found {_show(filename)}")
            files[name] = ShardFile(
                name=filename,
                size_bytes=self.integer(self.get(entry, "size_bytes", where + "."),
                                        where + ".size_bytes", 0),
                sha256=self.digest(self.get(entry, "sha256", where + "."), where + ".sha256"),
            )
        return Shard(index=index, count=count, inputs_sha256=inputs_sha256, files=files)

    def consistency(self, m):
        """Cross-field checks: the counts add up, indices are in order."""
        indices = [s.index for s in m.shards]
        for i in range(1, len(indices)):
            if indices[i] <= indices[i - 1]:
                self.fail(f"shards[{i}].index",
                          f"{indices[i]} after {indices[i - 1]}; expected increasing indices")
        for i, s in enumerate(m.shards[:-1]):
            if s.count != m.shard_size:
                self.fail(f"shards[{i}].count",
                          f"{s.count} in a shard before the last; expected shard_size "
                          f"{m.shard_size}")
        if m.shards and (m.num_classes is None or m.input_spec is None):
            self.fail("num_classes" if m.num_classes is None else "input_spec",
                      "missing (null) in a cache with shards")
        if m.count is not None and m.done > m.count:
            self.fail("count", f"{m.count}, but the shards hold {m.done} examples")
        for j, feature in enumerate(m.features):
            if m.shards and feature.shape is None:
                self.fail(f"features[{j}].shape", "missing (null) in a cache with shards")
        if not m.complete:
            return
        for key in ("count", "num_classes", "input_spec", "inputs_fingerprint"):
            if getattr(m, key) is None:
                self.fail(key, "missing (null) in a complete cache")
        if indices != list(range(len(indices))):
            self.fail("shards", f"expected shards 0..{len(indices) - 1} in a complete cache, "
                      f"found indices {_show(indices)}")
        if m.done != m.count:
            self.fail("count", f"{m.count}, but the shards hold {m.done} examples")
        expected = fp.inputs_fingerprint(m.input_spec, m.count,
                                         [s.inputs_sha256 for s in m.shards])
        if m.inputs_fingerprint != expected:
            self.fail("inputs_fingerprint", "does not match the input spec, count and "
                      "shard digests")


_KEYS = ("format_version", "complete", "teacher_fingerprint", "inputs_fingerprint",
         "input_spec", "count", "num_classes", "logits_dtype", "shard_size", "shards")


def from_json(raw, path):
    """Validates a parsed `metadata.json` and returns it typed.

    Args:
        raw: what `json.load` returned.
        path: the file's path, for messages.

    Returns:
        A `CacheMetadata`.

    Raises:
        DataError: `damaged cache: PATH: FIELD: what was expected and found`,
            or `PATH: cache format version N; ...` for another version.
    """
    check = _Checker(path)
    if not isinstance(raw, dict):
        check.fail("", f"expected a JSON object, found {_show(raw)}")
    if "format_version" not in raw:
        check.fail("", "not a kd_keras teacher-output cache (no format_version)")
    version = check.integer(raw["format_version"], "format_version", 0)
    if version != FORMAT_VERSION:
        raise DataError(f"{path}: cache format version {version}; this kd_keras reads "
                        f"version {FORMAT_VERSION} (rebuild it with overwrite=True)")
    for key in _KEYS:
        check.get(raw, key)
    if not isinstance(raw["complete"], bool):
        check.fail("complete", f"expected true or false, found {_show(raw['complete'])}")
    teacher = raw["teacher_fingerprint"]
    if not isinstance(teacher, str) or not teacher:
        check.fail("teacher_fingerprint", f"expected a non-empty string, found {_show(teacher)}")
    if raw["logits_dtype"] != LOGITS_DTYPE:
        check.fail("logits_dtype",
                   f"expected {_show(LOGITS_DTYPE)}, found {_show(raw['logits_dtype'])}")
    shard_size = check.integer(raw["shard_size"], "shard_size", 1)
    if not isinstance(raw["shards"], list):
        check.fail("shards", f"expected a list, found {_show(raw['shards'])}")
    features, feature_dtype = check.features(raw)
    metadata = CacheMetadata(
        teacher_fingerprint=teacher,
        shard_size=shard_size,
        complete=raw["complete"],
        inputs_fingerprint=check.digest(raw["inputs_fingerprint"], "inputs_fingerprint",
                                        optional=True),
        input_spec=check.input_spec(raw["input_spec"]),
        count=check.optional_integer(raw["count"], "count", 1),
        num_classes=check.optional_integer(raw["num_classes"], "num_classes", 1),
        shards=tuple(check.shard(s, i, shard_size, len(features))
                     for i, s in enumerate(raw["shards"])),
        features=features,
        feature_dtype=feature_dtype,
    )
    check.consistency(metadata)
    return metadata


def read(directory):
    """Reads and validates `DIRECTORY/metadata.json`; `None` if there is none.

    Raises:
        DataError: if the file is not valid JSON, is a symbolic link or a
            folder, or fails `from_json`'s checks.
    """
    path = metadata_path(directory)
    check = _Checker(path)
    if os.path.islink(path):
        check.fail("", "is a symbolic link; a cache writes a regular file")
    if not os.path.exists(path):
        return None
    if not os.path.isfile(path):
        check.fail("", "is not a regular file")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError
        check.fail("", f"not valid JSON ({one_line(e)})")
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    return from_json(raw, path)

