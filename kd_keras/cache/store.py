"""On-disk layout of a teacher-output cache: shards, metadata, checksums.

A cache directory holds

- `metadata.json`: format version, teacher and inputs fingerprints, input
  spec, count, number of classes, shard size, compression, and one entry per
  complete shard (example count, inputs digest, and for every file its name,
  size in bytes and SHA-256). A `"complete"` flag says whether the build
  finished; the file is rewritten atomically after each shard, so it only
  ever lists shards that were fully written.
- one `.npy` file per shard and array: `logits-00000.npy` (float32
  `[n, C]`), or for top-k compression `values-00000.npy`,
  `indices-00000.npy` and `lse_rest-00000.npy`.

Every file is written to a temporary name in the same directory and moved
into place with `os.replace`, so a killed process never leaves a
half-written file under a real name.
"""

import hashlib
import json
import os
import tempfile

import numpy as np

FORMAT_VERSION = 1
METADATA = "metadata.json"
_TMP_PREFIX = ".tmp-"


def _atomic_write(path, write):
    """Calls `write(file)` on a temp file next to `path`, then renames it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def file_sha256(path):
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def metadata_path(directory):
    return os.path.join(directory, METADATA)


def read_metadata(directory):
    """Reads `metadata.json`, or returns `None` if there is none.

    Raises:
        ValueError: if the file is not valid JSON or has another format
            version.
    """
    path = metadata_path(directory)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}).") from None
    if not isinstance(metadata, dict) or "format_version" not in metadata:
        raise ValueError(f"{path} is not a kd_keras teacher-output cache.")
    if metadata["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path} has cache format version {metadata['format_version']}; "
            f"this kd_keras reads version {FORMAT_VERSION}."
        )
    return metadata


def write_metadata(directory, metadata):
    """Writes `metadata.json` atomically."""
    text = json.dumps(metadata, indent=1, sort_keys=True).encode("utf-8")
    _atomic_write(metadata_path(directory), lambda f: f.write(text))


def shard_filename(array_name, index):
    return f"{array_name}-{index:05d}.npy"


def write_shard(directory, index, arrays):
    """Writes one shard's arrays as `.npy` files.

    Args:
        directory: the cache directory.
        index: the shard number.
        arrays: dict `{array name: np.ndarray}`.

    Returns:
        dict `{array name: {"file", "size_bytes", "sha256"}}` for the
        metadata.
    """
    files = {}
    for name, array in arrays.items():
        filename = shard_filename(name, index)
        path = os.path.join(directory, filename)
        _atomic_write(path, lambda f, a=array: np.save(f, a, allow_pickle=False))
        files[name] = {
            "file": filename,
            "size_bytes": os.path.getsize(path),
            "sha256": file_sha256(path),
        }
    return files


def check_shard(directory, shard, checksums=True):
    """Says what is wrong with a shard's files, or `None` if nothing is.

    Args:
        directory: the cache directory.
        shard: the shard's metadata entry.
        checksums: also compare SHA-256 digests (reads every byte); sizes
            are always compared.

    Returns:
        `None`, or a message naming the bad file.
    """
    for entry in shard["files"].values():
        path = os.path.join(directory, entry["file"])
        if not os.path.exists(path):
            return f"shard file {path} is missing"
        size = os.path.getsize(path)
        if size != entry["size_bytes"]:
            return (
                f"shard file {path} has {size} bytes, expected "
                f"{entry['size_bytes']} (truncated or overwritten)"
            )
        if checksums and file_sha256(path) != entry["sha256"]:
            return f"shard file {path} fails its SHA-256 checksum (corrupted)"
    return None


def open_shard(directory, shard):
    """Memory-maps a shard's arrays (read-only); returns `{name: array}`."""
    return {
        name: np.load(os.path.join(directory, entry["file"]), mmap_mode="r")
        for name, entry in shard["files"].items()
    }


def remove_cache_files(directory, metadata=None):
    """Deletes what a cache wrote in `directory` (its files, nothing else)."""
    names = set()
    if metadata is not None:
        for shard in metadata.get("shards", []):
            names.update(entry["file"] for entry in shard["files"].values())
    for name in os.listdir(directory):
        if name.startswith(_TMP_PREFIX):
            names.add(name)
    names.add(METADATA)
    for name in names:
        path = os.path.join(directory, name)
        if os.path.exists(path):
            os.remove(path)


def remove_stale_temp_files(directory):
    """Deletes temp files a killed build left behind."""
    for name in os.listdir(directory):
        if name.startswith(_TMP_PREFIX):
            os.remove(os.path.join(directory, name))
