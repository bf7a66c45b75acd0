import json
import os

import numpy as np
import pytest

from kd_keras.cache import store


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    d = str(tmp_path)
    store.write_metadata(d, {"format_version": store.FORMAT_VERSION, "n": 1})

    def explode(f):
        f.write(b'{"half": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store._atomic_write(store.metadata_path(d), explode)
    assert store.read_metadata(d) == {"format_version": store.FORMAT_VERSION, "n": 1}
    assert os.listdir(d) == ["metadata.json"]


def test_shard_checksums_and_sizes(tmp_path):
    d = str(tmp_path)
    logits = np.arange(12, dtype=np.float32).reshape(4, 3)
    files = store.write_shard(d, 7, {"logits": logits})
    shard = {"index": 7, "count": 4, "files": files}
    assert files["logits"]["file"] == "logits-00007.npy"
    assert store.check_shard(d, shard) is None
    np.testing.assert_array_equal(store.open_shard(d, shard)["logits"], logits)
    path = tmp_path / "logits-00007.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    assert "fails its SHA-256" in store.check_shard(d, shard)
    assert store.check_shard(d, shard, checksums=False) is None  # Same size.
    path.write_bytes(bytes(raw[:-4]))
    assert "truncated" in store.check_shard(d, shard, checksums=False)
    os.remove(path)
    assert "missing" in store.check_shard(d, shard)


def test_bad_metadata_is_named(tmp_path):
    (tmp_path / "metadata.json").write_text("{oops")
    with pytest.raises(ValueError, match="metadata.json is not valid JSON"):
        store.read_metadata(str(tmp_path))
    (tmp_path / "metadata.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError, match="format version 99"):
        store.read_metadata(str(tmp_path))
