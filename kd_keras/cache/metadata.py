"""The `metadata.json` of a teacher-output cache: its typed contents and
the names of the files it lists.

The file says which teacher and inputs a cache was built from and lists its
complete shards. `metadata_reader.read` trusts nothing in it: each shard's
file names must be exactly the names the cache itself writes
(`shard_filename`), and anything else is a one-line `DataError`:

    damaged cache: CACHE/metadata.json: shards[0].files.logits.file: expected "logits-00000.npy", found "../../victim.txt"

An unfinished build (`"complete": false`, with the shards written so far) is
not damage: `cache_teacher_outputs` resumes it.

A cache of teacher features (`cache_teacher_outputs(..., features=[...])`)
also lists them, in order, as `"features": [{"name": ..., "shape": [...]}]`
with their `"feature_dtype"`; feature `j` of shard `i` is the file
`feature<j>-<i>.npy` (its name never reaches the file system). A cache
without features has neither key, as before.

Example:

>>> m = CacheMetadata(teacher_fingerprint="t", shard_size=4)
>>> m.to_json()["shards"], m.complete
([], False)
"""

import dataclasses
import os
import re


FORMAT_VERSION = 1
METADATA = "metadata.json"
LOGITS_DTYPE = "float32"
LOGITS_ARRAY = "logits"
# How cached teacher features may be stored; the first is the default.
FEATURE_DTYPES = ("float32", "float16")
# Every shard file name the cache writes, and nothing else.
SHARD_FILE_PATTERN = re.compile(
    r"(logits|feature(?:0|[1-9]\d*))-(\d{5}|[1-9]\d{5,})\.npy")


def feature_array(position):
    """The array name of the cache's feature number `position`.

    Example:

    >>> feature_array(2)
    'feature2'
    """
    return f"feature{position}"


def array_names(num_features=0):
    """The arrays of one shard: the logits, then one per cached feature.

    Example:

    >>> array_names(2)
    ('logits', 'feature0', 'feature1')
    """
    return (LOGITS_ARRAY,) + tuple(feature_array(j) for j in range(num_features))


def shard_filename(array_name, index):
    """The file name of one array of one shard.

    Example:

    >>> shard_filename("logits", 3)
    'logits-00003.npy'
    >>> bool(SHARD_FILE_PATTERN.fullmatch(shard_filename("logits", 123456)))
    True
    >>> bool(SHARD_FILE_PATTERN.fullmatch("logits-0000001.npy"))  # never written
    False
    """
    return f"{array_name}-{index:05d}.npy"


@dataclasses.dataclass(frozen=True)
class ShardFile:
    """One `.npy` file of a shard: its name, size and SHA-256."""

    name: str
    size_bytes: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One cached teacher feature.

    Attributes:
        name: its key in the batches' `targets["teacher_features"]`: the
            layer spec as the terms write it (e.g. `"t_hidden"` or
            `"backbone/transformer_layer_1"`).
        shape: its per-example shape (`[seq, width]` per token, `[width]`
            pooled), or `None` until the first shard is written.
    """

    name: str
    shape: tuple | None = None


@dataclasses.dataclass(frozen=True)
class Shard:
    """One complete shard: examples `[index * shard_size, ... + count)`.

    Attributes:
        index: the shard number.
        count: its number of examples.
        inputs_sha256: `fingerprint.chunk_digest` of its inputs.
        files: `{array name: ShardFile}` (read-only by convention).
    """

    index: int
    count: int
    inputs_sha256: str
    files: dict


@dataclasses.dataclass(frozen=True)
class CacheMetadata:
    """The parsed `metadata.json`. `None` fields are not known yet (a build
    that has not written a shard); a complete cache has them all."""

    teacher_fingerprint: str
    shard_size: int
    complete: bool = False
    inputs_fingerprint: str | None = None
    input_spec: dict | None = None
    count: int | None = None
    num_classes: int | None = None
    shards: tuple = ()
    logits_dtype: str = LOGITS_DTYPE
    format_version: int = FORMAT_VERSION
    features: tuple = ()
    feature_dtype: str = FEATURE_DTYPES[0]

    @property
    def done(self):
        """Examples in the shards written so far."""
        return sum(s.count for s in self.shards)

    @property
    def feature_names(self):
        """The cached features' names, in order."""
        return tuple(f.name for f in self.features)

    def to_json(self):
        """The JSON object written to `metadata.json`."""
        shards = [
            {
                "index": s.index,
                "count": s.count,
                "inputs_sha256": s.inputs_sha256,
                "files": {
                    name: {"file": f.name, "size_bytes": f.size_bytes, "sha256": f.sha256}
                    for name, f in s.files.items()
                },
            }
            for s in self.shards
        ]
        fields = dataclasses.asdict(self)
        fields["shards"] = shards
        if self.features:
            fields["features"] = [
                {"name": f.name, "shape": None if f.shape is None else list(f.shape)}
                for f in self.features]
        else:  # A cache without features reads as before.
            del fields["features"], fields["feature_dtype"]
        return fields


def metadata_path(directory):
    return os.path.join(directory, METADATA)
