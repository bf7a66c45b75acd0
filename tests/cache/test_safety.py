"""The cache never deletes or writes through what it did not write.

Each test puts a file outside the cache (or a user's file inside it) and
shows it is still there, byte for byte, after the operation that used to
delete it or might follow a link to it.
"""

import json
import os

import numpy as np
import pytest

from kd_keras.cache import cache_teacher_outputs
from kd_keras.cache import load
from kd_keras.errors import DataError

from .cache_helpers import LinearTeacher
from .cache_helpers import make_inputs

X = make_inputs(100)
PRECIOUS = b"the user's data\n"


def _build(directory, x=X, **kwargs):
    teacher = kwargs.pop("teacher", None) or LinearTeacher()
    return cache_teacher_outputs(teacher, x, str(directory), batch_size=16, shard_size=32,
                                 verbose=0, **kwargs)


def _edit_metadata(directory, edit):
    path = directory / "metadata.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("name", ["../../victim.txt", "VICTIM"])
def test_a_file_name_in_metadata_is_never_deleted(tmp_path, name):
    """The reproduced bug: a shard file name `../../victim.txt` (or an
    absolute path) in metadata.json, then overwrite=True, deleted it."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(PRECIOUS)
    cache = tmp_path / "runs" / "cache"
    _build(cache)
    name = str(victim) if name == "VICTIM" else name
    assert os.path.exists(os.path.join(cache, name))  # It resolves to the victim.

    def point_at_victim(raw):
        raw["shards"][0]["files"]["logits"]["file"] = name

    _edit_metadata(cache, point_at_victim)
    for call in (lambda: _build(cache, overwrite=True), lambda: _build(cache), lambda: load(cache)):
        with pytest.raises(DataError, match=r"^damaged cache: .*shards\[0\]\.files\.logits\.file: "):
            call()
    assert victim.read_bytes() == PRECIOUS


def test_overwrite_deletes_only_names_the_cache_writes(tmp_path):
    cache = tmp_path / "cache"
    _build(cache)
    user_files = {
        "notes.txt": PRECIOUS,
        "logits-final.npy": PRECIOUS,
        "logits-00001.npy.bak": PRECIOUS,
        "metadata.json.orig": PRECIOUS,
        ".tmp-my-notes.txt": PRECIOUS,
        ".tmp-20240101": PRECIOUS,  # As an early version's temp files were named.
        "logits-0000001.npy": PRECIOUS,  # Shard numbers are never padded beyond 5 digits.
    }
    for name, data in user_files.items():
        (cache / name).write_bytes(data)
    (cache / "logits-00009.npy").mkdir()  # A folder with a shard's name.
    (cache / "logits-00009.npy" / "inside.txt").write_bytes(PRECIOUS)
    (cache / "logits-00007.npy").write_bytes(b"stale shard")  # The cache's own name.
    (cache / ".kd-cache-tmp-abc123").write_bytes(b"stale temp")
    (cache / ".logits-00003.npy.tmp-0a1b2c3d").write_bytes(b"stale temp")

    teacher = LinearTeacher(seed=5)
    rebuilt = _build(cache, teacher=teacher, overwrite=True)
    np.testing.assert_allclose(rebuilt.logits(), teacher.reference(X), atol=1e-6)
    for name, data in user_files.items():
        assert (cache / name).read_bytes() == data, name
    assert (cache / "logits-00009.npy" / "inside.txt").read_bytes() == PRECIOUS
    assert not (cache / "logits-00007.npy").exists()
    assert not (cache / ".kd-cache-tmp-abc123").exists()
    assert not (cache / ".logits-00003.npy.tmp-0a1b2c3d").exists()


def test_a_shard_link_out_of_the_cache_is_not_followed(tmp_path):
    """A shard file replaced by a link to a file outside: reading refuses it,
    rebuilding replaces the link, and the target is untouched."""
    victim = tmp_path / "victim.npy"
    victim.write_bytes(PRECIOUS)
    cache = tmp_path / "cache"
    _build(cache)
    link = cache / "logits-00001.npy"
    os.remove(link)
    os.symlink(victim, link)
    with pytest.raises(DataError, match=r"^damaged cache: .*logits-00001.npy: not a regular file"):
        load(cache)
    teacher = LinearTeacher()
    _build(cache, teacher=teacher)
    assert teacher.calls == 2  # Only shard 1 is recomputed.
    assert not link.is_symlink()
    np.testing.assert_allclose(load(cache).logits(), LinearTeacher().reference(X), atol=1e-6)
    assert victim.read_bytes() == PRECIOUS


@pytest.mark.parametrize("name", ["logits-00002.npy", ".kd-cache-tmp-x1"])
def test_overwrite_removes_a_link_not_its_target(tmp_path, name):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(PRECIOUS)
    cache = tmp_path / "cache"
    _build(cache)
    if os.path.lexists(cache / name):
        os.remove(cache / name)
    os.symlink(victim, cache / name)
    _build(cache, overwrite=True)
    assert victim.read_bytes() == PRECIOUS
    assert not (cache / name).is_symlink()


def test_a_metadata_link_out_of_the_cache_is_refused(tmp_path):
    victim = tmp_path / "victim.json"
    cache = tmp_path / "cache"
    _build(cache)
    os.replace(cache / "metadata.json", victim)
    before = victim.read_bytes()
    os.symlink(victim, cache / "metadata.json")
    for overwrite in (False, True):
        with pytest.raises(DataError, match=r"metadata.json: is a symbolic link"):
            _build(cache, overwrite=overwrite)
    assert victim.read_bytes() == before


def test_a_smaller_rebuild_removes_only_its_own_stale_shards(tmp_path):
    """Resuming an unfinished build with fewer inputs drops the shards past
    the end by their name pattern, whatever the old metadata listed."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(PRECIOUS)
    cache = tmp_path / "cache"
    _build(cache)

    def unfinished(raw):
        raw.update(complete=False, count=None, inputs_fingerprint=None)

    _edit_metadata(cache, unfinished)
    (cache / "logits-00003.npy.keep").write_bytes(PRECIOUS)
    smaller = _build(cache, x=X[:64])  # Shards 0 and 1 are reused.
    assert smaller.count == 64
    assert sorted(n for n in os.listdir(cache) if n.endswith(".npy")) == [
        "logits-00000.npy", "logits-00001.npy"]
    assert (cache / "logits-00003.npy.keep").read_bytes() == PRECIOUS
    assert victim.read_bytes() == PRECIOUS


def test_a_folder_without_metadata_holding_lookalike_files_is_left_alone(tmp_path):
    """No `metadata.json`: files named like a cache's are the user's, and
    the build neither deletes nor replaces them."""
    from kd_keras.errors import UsageError

    folder = tmp_path / "mine"
    folder.mkdir()
    names = ("logits-00000.npy", "logits-00007.npy", ".kd-cache-tmp-abc123")
    for name in names:
        (folder / name).write_bytes(PRECIOUS)
    with pytest.raises(UsageError, match=r"mine: holds \.kd-cache-tmp-abc123 and 2 more, named "
                                         r"like a cache's files, but no metadata.json"):
        _build(folder)
    assert sorted(os.listdir(folder)) == sorted(names)
    assert all((folder / name).read_bytes() == PRECIOUS for name in names)


def test_a_build_killed_before_its_first_shard_starts_over(tmp_path):
    from kd_keras.cache import shards

    cache = tmp_path / "cache"
    shards.start_build(str(cache), "another teacher", shard_size=4)  # Then killed.
    (cache / ".logits-00000.npy.tmp-0a1b2c3d").write_bytes(b"half a shard")
    teacher = LinearTeacher(seed=5)
    built = _build(cache, teacher=teacher)
    np.testing.assert_allclose(built.logits(), teacher.reference(X), atol=1e-6)
    assert not (cache / ".logits-00000.npy.tmp-0a1b2c3d").exists()


def test_a_folder_where_a_shard_goes_is_refused_and_kept(tmp_path):
    from kd_keras.errors import UsageError

    cache = tmp_path / "cache"
    _build(cache)
    os.remove(cache / "logits-00001.npy")
    (cache / "logits-00001.npy").mkdir()
    (cache / "logits-00001.npy" / "mine.txt").write_bytes(PRECIOUS)
    with pytest.raises(UsageError, match=r"logits-00001.npy: is a folder, where the cache "
                                         r"writes a file; kd_keras did not make it"):
        _build(cache)
    assert (cache / "logits-00001.npy" / "mine.txt").read_bytes() == PRECIOUS
