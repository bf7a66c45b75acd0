import hashlib

import numpy as np
import tensorflow as tf

from kd_keras.cache import fingerprint as fp
from kd_keras.cache.inputs import Inputs


def _digests(x, size):
    return [fp.chunk_digest(c) for c in Inputs(x).chunks(size)]


def test_digest_is_sha256_of_header_and_bytes():
    x = np.arange(12, dtype=np.int32).reshape(4, 3)
    ref = hashlib.sha256(b'["x", 4, {"shape": [3], "dtype": "int32"}]' + x.tobytes())
    assert fp.chunk_digest({"x": x}) == ref.hexdigest()


def test_any_change_order_or_count_changes_the_digest():
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    base = fp.chunk_digest({"x": x})
    y = x.copy()
    y[7, 2] = np.nextafter(y[7, 2], 1)
    assert fp.chunk_digest({"x": y}) != base
    assert fp.chunk_digest({"x": x[[1, 0, *range(2, 10)]]}) != base
    assert fp.chunk_digest({"x": x[:9]}) != base
    assert fp.chunk_digest({"x": x.astype(np.float64)}) != base
    assert fp.chunk_digest({"y": x}) != base


def test_arrays_dataset_and_strings_agree():
    text = np.array(["a movie", "ünïcode", ""])
    as_bytes = np.array([s.encode("utf-8") for s in text], dtype=object)
    assert fp.chunk_digest({"x": text}) == fp.chunk_digest({"x": as_bytes})
    ids = np.arange(20, dtype=np.int64).reshape(10, 2)
    x = {"ids": ids, "text": np.array([f"s{i}" for i in range(10)])}
    ds = tf.data.Dataset.from_tensor_slices(x)
    assert _digests(x, 4) == _digests(ds, 4)
    assert len(_digests(x, 4)) == 3


def test_inputs_fingerprint_depends_on_spec_count_and_order():
    spec = {"x": {"shape": [3], "dtype": "float32"}}
    a = fp.inputs_fingerprint(spec, 8, ["d1", "d2"])
    assert a != fp.inputs_fingerprint(spec, 8, ["d2", "d1"])
    assert a != fp.inputs_fingerprint(spec, 7, ["d1", "d2"])
    assert a == fp.inputs_fingerprint(dict(spec), 8, ["d1", "d2"])


def test_object_items_are_hashed_whole_and_by_type():
    # str() of a long array elides its middle, and str(1) == "1": ragged rows
    # differing in the middle, or numbers against strings, hashed alike and
    # a cache of other inputs was served.
    def ragged(value):
        rows = np.empty(2, dtype=object)
        rows[0], rows[1] = np.zeros(2000), np.ones(3)
        rows[0][1000] = value
        return {"x": rows}

    assert fp.chunk_digest(ragged(0.0)) != fp.chunk_digest(ragged(7.0))
    numbers, strings = np.array([1, 2], dtype=object), np.array(["1", "2"], dtype=object)
    assert fp.chunk_digest({"x": numbers}) != fp.chunk_digest({"x": strings})


def test_string_inputs_hash_as_they_always_did():
    """A cache of texts built by an earlier kd_keras stays valid: each text
    is its length (8 bytes, little-endian) and its UTF-8 after the header."""
    import json

    texts = np.array(["a gem", "dull", "naïve"], dtype=object)
    reference = hashlib.sha256(json.dumps(["x", 3, fp.leaf_spec(texts)]).encode("utf-8"))
    for text in texts:
        data = text.encode("utf-8")
        reference.update(len(data).to_bytes(8, "little") + data)
    assert fp.chunk_digest({"x": texts}) == reference.hexdigest()
