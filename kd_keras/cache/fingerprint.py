"""Fingerprints of teacher inputs, computed in a stream.

A cache must only be used with the inputs it was built from. The inputs
fingerprint is a SHA-256 over every byte of every example, in order, computed
one chunk (one cache shard) at a time so the inputs never sit in memory at
once:

- each chunk gets its own digest over its leaves (sorted by name; per-example
  shape, dtype and the raw C-order bytes; strings are hashed element by
  element with a length prefix, so `str` and `bytes` of the same UTF-8 text
  agree);
- the inputs fingerprint hashes the input spec, the example count and the
  chunk digests in order.

Any change of an example, of the order, or of the number of examples changes
the fingerprint; the per-chunk digests also say *where* two inputs first
differ.
"""

import hashlib
import json

import numpy as np


def _is_string(array):
    return array.dtype.kind in ("U", "S", "O")


def leaf_spec(array):
    """The per-example spec of one leaf: `{"shape": [...], "dtype": str}`.

    Args:
        array: a NumPy array of examples (leading dimension = examples).

    Returns:
        A JSON-serialisable dict; string-like dtypes are all called `"string"`.

    Example:

    >>> import numpy as np
    >>> leaf_spec(np.zeros((4, 48), "int32"))
    {'shape': [48], 'dtype': 'int32'}
    """
    dtype = "string" if _is_string(array) else str(array.dtype)
    return {"shape": [int(d) for d in array.shape[1:]], "dtype": dtype}


def chunk_spec(chunk):
    """The spec of every leaf of a chunk, keyed by leaf name."""
    return {key: leaf_spec(chunk[key]) for key in sorted(chunk)}


def _update_strings(digest, array):
    for item in array.reshape(-1):
        item = _item_bytes(item)
        digest.update(len(item).to_bytes(8, "little"))
        digest.update(item)


def _item_bytes(item):
    """The bytes of one item of an object array: a string's UTF-8, and for
    anything else its type with its whole value (`str` of an array elides
    the middle, and `str(1)` is the string "1")."""
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytes, np.bytes_)):
        return bytes(item)
    if isinstance(item, np.ndarray):
        head = f"\0ndarray {item.dtype.str} {item.shape} ".encode("utf-8")
        if item.dtype != object:
            return head + np.ascontiguousarray(item).tobytes()
        parts = [_item_bytes(part) for part in item.reshape(-1)]
        return head + b"".join(len(part).to_bytes(8, "little") + part for part in parts)
    return f"\0{type(item).__name__} {item!r}".encode("utf-8")


def chunk_digest(chunk):
    """SHA-256 hex digest of one chunk of inputs.

    Args:
        chunk: a dict `{leaf name: np.ndarray}` of the same leading dimension.

    Returns:
        A hex string that depends on the leaf names, the spec and every byte.

    Example:

    >>> import numpy as np
    >>> a = chunk_digest({"x": np.arange(4)})
    >>> a == chunk_digest({"x": np.arange(4)[::-1]})
    False
    """
    digest = hashlib.sha256()
    for key in sorted(chunk):
        array = chunk[key]
        header = json.dumps([key, len(array), leaf_spec(array)])
        digest.update(header.encode("utf-8"))
        if _is_string(array):
            _update_strings(digest, np.asarray(array))
        else:
            digest.update(np.ascontiguousarray(array).view(np.uint8).reshape(-1))
    return digest.hexdigest()


def inputs_fingerprint(spec, count, chunk_digests):
    """Combines the input spec, the count and the chunk digests.

    Args:
        spec: the dict returned by `chunk_spec`.
        count: the total number of examples.
        chunk_digests: the per-chunk digests, in order.

    Returns:
        A SHA-256 hex digest.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([spec, int(count)], sort_keys=True).encode("utf-8"))
    for item in chunk_digests:
        digest.update(item.encode("ascii"))
    return digest.hexdigest()
