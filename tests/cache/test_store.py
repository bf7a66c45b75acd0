import os

import numpy as np
import pytest

from kd_keras.cache import metadata
from kd_keras.cache import metadata_reader
from kd_keras.cache import store
from kd_keras.errors import DataError

META = metadata.CacheMetadata(teacher_fingerprint="t", shard_size=4)


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    d = str(tmp_path)
    store.write_metadata(d, META)

    def explode(f):
        f.write(b'{"half": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store._atomic_write(metadata.metadata_path(d), explode)
    assert metadata_reader.read(d) == META
    assert os.listdir(d) == ["metadata.json"]


def test_every_cache_file_is_synced_to_disk_before_its_rename(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd).st_size))
    d = str(tmp_path)
    store.write_arrays(d, 0, {"logits": np.zeros((4, 3), np.float32)})
    store.write_metadata(d, META)
    sizes = [os.path.getsize(tmp_path / name) for name in ("logits-00000.npy", "metadata.json")]
    assert synced == sizes


def _shard(d, index, array):
    files = store.write_arrays(d, index, {"logits": array})
    return metadata.Shard(index=index, count=len(array), inputs_sha256="0" * 64, files=files)


def test_shard_checksums_and_sizes(tmp_path):
    d = str(tmp_path)
    logits = np.arange(12, dtype=np.float32).reshape(4, 3)
    shard = _shard(d, 7, logits)
    assert shard.files["logits"].name == "logits-00007.npy"
    assert store.check_shard(d, shard) is None
    np.testing.assert_array_equal(store.open_shard(d, shard, 3)["logits"], logits)
    path = tmp_path / "logits-00007.npy"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    assert "fails its SHA-256" in store.check_shard(d, shard)
    assert store.check_shard(d, shard, checksums=False) is None  # Same size.
    path.write_bytes(bytes(raw[:-4]))
    assert "truncated" in store.check_shard(d, shard, checksums=False)
    os.remove(path)
    assert store.check_shard(d, shard).endswith("logits-00007.npy: missing")


@pytest.mark.parametrize(
    "array, found",
    [
        (np.zeros((4, 3), np.float64), "found float64 [4, 3]"),
        (np.zeros((4, 2), np.float32), "found float32 [4, 2]"),
        (np.zeros((5, 3), np.float32), "found float32 [5, 3]"),
    ],
)
def test_shard_of_another_dtype_or_shape_is_damage(tmp_path, array, found):
    d = str(tmp_path)
    shard = _shard(d, 0, array)
    shard = metadata.Shard(index=0, count=4, inputs_sha256="0" * 64, files=shard.files)
    assert store.check_shard(d, shard) is None  # Size and checksum agree ...
    with pytest.raises(DataError) as err:  # ... but the array is not the cache's.
        store.open_shard(d, shard, 3)
    assert str(err.value) == (
        f"damaged cache: {d}/logits-00000.npy: expected float32 [4, 3], {found}")


def test_not_an_npy_file_is_damage(tmp_path):
    d = str(tmp_path)
    shard = _shard(d, 0, np.zeros((4, 3), np.float32))
    (tmp_path / "logits-00000.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match=r"^damaged cache: .*logits-00000.npy: not a .npy array"):
        store.open_shard(d, shard, 3)


@pytest.mark.parametrize(
    "name, ours",
    [
        ("metadata.json", True),
        ("logits-00000.npy", True),
        ("feature3-123456.npy", True),
        (".kd-cache-tmp-abc_12", True),
        (".tmp-abcd1234", False),  # A user's name too: never deleted.
        (".metadata.json.tmp-0a1b2c3d", True),
        (".logits-00000.npy.tmp-0a1b2c3d", True),
        ("../logits-00000.npy", False),
        ("logits-0000.npy", False),
        ("logits-00000.npy.bak", False),
        ("weights-00000.npy", False),
        (".tmp-my-notes.txt", False),
        (".notes.txt.tmp-0a1b2c3d", False),
        (".logits-00000.npy.tmp-mine", False),
        ("metadata.json~", False),
        ("/etc/passwd", False),
    ],
)
def test_cache_file_names(name, ours):
    assert store.is_cache_file_name(name) is ours
