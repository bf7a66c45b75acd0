"""On-disk layout of a teacher-output cache: shard files, checksums, clean-up.

A cache directory holds

- `metadata.json` (see `kd_keras.cache.metadata`): format version, teacher
  and inputs fingerprints, input spec, count, number of classes, shard size,
  and one entry per complete shard (example count, inputs
  digest, and for every file its name, size in bytes and SHA-256). A
  `"complete"` flag says whether the build finished; the file is rewritten
  atomically after each shard, so it only ever lists shards that were fully
  written.
- one `.npy` file per shard and array: `logits-00000.npy` (float32
  `[n, C]`), and with teacher features `feature0-00000.npy`, `feature1-00000.npy`, ... (`[n, *feature shape]`
  in the cache's `feature_dtype`, in the order of `metadata.features`).

Every file is written through `kd_keras.files.atomic.atomic_path` with
`fsync=True`: to a temporary name in the same directory, synced to disk and
moved into place with `os.replace`, so a killed process never leaves a
half-written file under a real name (and a symbolic link at that name is
replaced, never written through).

What is deleted: only files whose names the cache itself writes
(`is_cache_file_name`), found by listing the directory, never a name read
from `metadata.json`; a symbolic link is removed, not its target. What is
read: shard files must be regular files, not links.

Example:

>>> is_cache_file_name("logits-00012.npy"), is_cache_file_name("../x.npy")
(True, False)
"""

import errno
import json
import mmap
import os
import re
import stat

import numpy as np

from kd_keras.cache import metadata as meta
from kd_keras.errors import DataError
from kd_keras.errors import UsageError
from kd_keras.errors import one_line
from kd_keras.files.atomic import atomic_path
from kd_keras.files.atomic import leftover_target
from kd_keras.files.hashing import sha256_path

# The temporary names an earlier kd_keras version gave, still cleaned up
# when found. (Another gave ".tmp-" and 8 characters, which a user's file
# may be named too: those are left alone.)
_OLD_TEMP_PATTERN = re.compile(r"\.kd-cache-tmp-[a-z0-9_]+")


def _is_own_name(name):
    return bool(name == meta.METADATA or meta.SHARD_FILE_PATTERN.fullmatch(name))


def _is_temp_name(name):
    """A temporary file of one of the cache's own files."""
    target = leftover_target(name)
    return bool((target and _is_own_name(target)) or _OLD_TEMP_PATTERN.fullmatch(name))


def is_cache_file_name(name):
    """Whether `name` is a file name the cache writes (so may delete)."""
    return _is_own_name(name) or _is_temp_name(name)


def _atomic_write(path, write):
    """Calls `write(file)` on a temp file next to `path`, syncs it to disk,
    then renames it.

    Raises:
        UsageError: if the folder is read-only or not ours to write, or a
            folder (not the cache's) stands where the file goes.
    """
    if os.path.isdir(path) and not os.path.islink(path):
        raise UsageError(f"{path}: is a folder, where the cache writes a file; kd_keras did "
                         "not make it: move it out")
    try:
        with atomic_path(path, fsync=True) as tmp, open(tmp, "wb") as f:
            write(f)
    except OSError as e:
        if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        directory = os.path.dirname(path) or "."
        raise UsageError(f"{directory}: cannot write the cache there ({e.strerror})") from None


def write_metadata(directory, metadata):
    """Writes a `CacheMetadata` as `metadata.json`, atomically."""
    text = json.dumps(metadata.to_json(), indent=1, sort_keys=True).encode("utf-8")
    _atomic_write(meta.metadata_path(directory), lambda f: f.write(text))


def write_arrays(directory, index, arrays):
    """Writes one shard's arrays as `.npy` files.

    Args:
        directory: the cache directory.
        index: the shard number.
        arrays: dict `{array name: np.ndarray}`.

    Returns:
        dict `{array name: ShardFile}` for the metadata.
    """
    files = {}
    for name, array in arrays.items():
        filename = meta.shard_filename(name, index)
        path = os.path.join(directory, filename)
        _atomic_write(path, lambda f, a=array: np.save(f, a, allow_pickle=False))
        files[name] = meta.ShardFile(
            name=filename, size_bytes=os.path.getsize(path), sha256=sha256_path(path)
        )
    return files


def _shard_paths(directory, shard):
    # The names follow from the index; `metadata_reader.read` checked that the
    # recorded ones are the same.
    for name, entry in shard.files.items():
        yield name, entry, os.path.join(directory, meta.shard_filename(name, shard.index))


def check_shard(directory, shard, checksums=True):
    """Says what is wrong with a shard's files, or `None` if nothing is.

    Args:
        directory: the cache directory.
        shard: a `Shard`.
        checksums: also compare SHA-256 digests (reads every byte); sizes
            are always compared.

    Returns:
        `None`, or a message that starts with the bad file.
    """
    for _, entry, path in _shard_paths(directory, shard):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return f"{path}: missing"
        if not stat.S_ISREG(info.st_mode):
            return f"{path}: not a regular file (a link or a folder)"
        if info.st_size != entry.size_bytes:
            return (
                f"{path}: has {info.st_size} bytes, expected {entry.size_bytes} "
                "(truncated or overwritten)"
            )
        if checksums and sha256_path(path) != entry.sha256:
            return f"{path}: fails its SHA-256 checksum (corrupted)"
    return None


def _expected_arrays(shard, num_classes, features=(), feature_dtype="float32"):
    """`{name: (dtype, shape)}` of a shard's arrays."""
    n = shard.count
    expected = {meta.LOGITS_ARRAY: (meta.LOGITS_DTYPE, (n, num_classes))}
    for j, feature in enumerate(features):
        expected[meta.feature_array(j)] = (feature_dtype, (n, *feature.shape))
    return expected


class ShardArrays(dict):
    """A shard's arrays, `{array name: read-only np.ndarray}`, mapped from
    their files.

    `release()` drops the pages read so far from the process's memory
    (`madvise(MADV_DONTNEED)`; the data stays in the operating system's file
    cache and is read again on the next access). A reader that walks a whole
    cache releases each shard after a batch, so its resident memory stays
    that of one batch, whatever the size of the cache.
    """

    def __init__(self, arrays, maps):
        super().__init__(arrays)
        self._maps = maps

    def release(self):
        """Drops the shard's mapped pages from this process's memory."""
        if hasattr(mmap, "MADV_DONTNEED"):  # Linux and macOS; elsewhere a no-op.
            for mapped in self._maps:
                mapped.madvise(mmap.MADV_DONTNEED)


def _map_npy(path):
    """`(array, mmap)`: a read-only view of a `.npy` file through its own map."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran_order, dtype = read_header(f)
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
        if dtype.hasobject or size < offset + dtype.itemsize * int(np.prod(shape)):
            raise ValueError(f"{size} bytes cannot hold {dtype} {list(shape)}")
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    order = "F" if fortran_order else "C"
    if mapped is None or int(np.prod(shape)) == 0:
        return np.zeros(shape, dtype, order=order), mapped
    return np.ndarray(shape, dtype, buffer=mapped, offset=offset, order=order), mapped


def open_shard(directory, shard, num_classes, features=(), feature_dtype="float32"):
    """Memory-maps a shard's arrays (read-only) after checking their type.

    Args:
        directory: the cache directory.
        shard: a `Shard`.
        num_classes: the cache's number of classes.
        features: the cache's `metadata.features` (`FeatureSpec`s with
            shapes).
        feature_dtype: the cache's `metadata.feature_dtype`.

    Returns:
        A `ShardArrays`, `{array name: np.ndarray}`.

    Raises:
        DataError: if a file is not a `.npy` array of the recorded dtype and
            shape.
    """
    expected = _expected_arrays(shard, num_classes, features, feature_dtype)
    arrays, maps = {}, []
    for name, _, path in _shard_paths(directory, shard):
        if os.path.islink(path):
            raise DataError(f"damaged cache: {path}: is a symbolic link")
        try:
            array, mapped = _map_npy(path)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"damaged cache: {path}: not a .npy array ({one_line(e)})") from None
        dtype, shape = expected[name]
        if array.dtype != np.dtype(dtype) or array.shape != shape:
            raise DataError(
                f"damaged cache: {path}: expected {dtype} {list(shape)}, found "
                f"{array.dtype} {list(array.shape)}"
            )
        arrays[name] = array
        maps.extend([mapped] if mapped is not None else [])
    return ShardArrays(arrays, maps)


def _remove_matching(directory, keep):
    """Removes the files in `directory` whose names the cache writes and
    `keep(name)` is false; links are removed, never followed."""
    for name in os.listdir(directory):
        if not is_cache_file_name(name) or keep(name):
            continue
        path = os.path.join(directory, name)
        try:
            if stat.S_ISDIR(os.lstat(path).st_mode):
                continue  # Not something the cache wrote.
            os.remove(path)
        except FileNotFoundError:
            pass


def remove_cache_files(directory):
    """Deletes what a cache writes in `directory`: its metadata, shard and
    temp files, by name pattern. Nothing else, whatever the metadata says."""
    _remove_matching(directory, keep=lambda name: False)


def remove_stale_temp_files(directory):
    """Deletes temp files a killed build left behind."""
    _remove_matching(directory, keep=lambda name: not _is_temp_name(name))


def remove_shards_from(directory, first):
    """Deletes the shard files numbered `first` and above (left over from a
    cache of more examples)."""

    def keep(name):
        match = meta.SHARD_FILE_PATTERN.fullmatch(name)
        return match is None or int(match.group(2)) < first

    _remove_matching(directory, keep)
