"""`atomic_path`: the rename on success, the clean-up on failure, and what a
half-done write leaves behind (nothing but the old file)."""

import os
import stat

import pytest

from kd_keras.files.atomic import atomic_path
from kd_keras.files.atomic import leftover_target


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def test_the_file_appears_only_when_the_block_ends(tmp_path):
    path = tmp_path / "result.json"
    with atomic_path(path) as tmp:
        _write(tmp, "new")
        assert not path.exists()
        assert os.path.dirname(tmp) == str(tmp_path)
    assert path.read_text() == "new"
    assert os.listdir(tmp_path) == ["result.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            _write(tmp, "half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["result.json"]


def test_a_failed_rename_is_raised_and_removes_the_temporary(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()  # a folder: os.replace cannot put a file there
    with pytest.raises(OSError):
        with atomic_path(target) as tmp:
            _write(tmp, "x")
    assert os.listdir(tmp_path) == ["taken"]


def test_an_interrupt_removes_the_temporary(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "a.json") as tmp:
            _write(tmp, "half")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_the_suffix_ends_the_temporary_name_and_names_are_unique(tmp_path):
    with atomic_path(tmp_path / "w.weights.h5", suffix=".weights.h5") as a, \
            atomic_path(tmp_path / "w.weights.h5", suffix=".weights.h5") as b:
        assert a != b
        assert a.endswith(".weights.h5") and b.endswith(".weights.h5")
        assert os.path.basename(a).startswith(".w.weights.h5.tmp-")
        _write(a, "a")
        _write(b, "b")
    # The last block to end (the outer one) wins.
    assert (tmp_path / "w.weights.h5").read_text() == "a"
    assert os.listdir(tmp_path) == ["w.weights.h5"]


def test_permissions_are_those_open_gives(tmp_path):
    # The reference: a file created by open() under the same umask; 022, so
    # that mkstemp's 0600 would differ from it.
    old = os.umask(0o022)
    try:
        reference = tmp_path / "by_open"
        _write(reference, "x")
        with atomic_path(tmp_path / "by_atomic_path") as tmp:
            _write(tmp, "x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "by_atomic_path").st_mode)
    assert mode == stat.S_IMODE(os.stat(reference).st_mode) == 0o644


def test_a_relative_path_is_written_where_it_named_when_the_block_began(tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with atomic_path("a.json") as tmp:
        _write(tmp, "x")
        os.chdir(tmp_path / "elsewhere")
    assert (tmp_path / "a.json").read_text() == "x"
    assert os.listdir(tmp_path / "elsewhere") == []


def test_a_missing_folder_is_an_error_before_the_block(tmp_path):
    entered = []
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "absent" / "a.json"):
            entered.append(True)
    assert entered == []


@pytest.mark.parametrize("fsync", [False, True])
def test_fsync_syncs_the_written_file_before_the_rename(tmp_path, monkeypatch, fsync):
    path = tmp_path / "metadata.json"
    synced = []

    def record(fd):
        # What the sync saw: the temporary file, complete, the target not yet there.
        synced.append((os.fstat(fd).st_ino, os.fstat(fd).st_size, path.exists()))

    monkeypatch.setattr(os, "fsync", record)
    with atomic_path(path, fsync=fsync) as tmp:
        _write(tmp, "complete")
        inode = os.stat(tmp).st_ino
    assert synced == ([(inode, len("complete"), False)] if fsync else [])
    assert path.read_text() == "complete"


def test_a_leftover_names_the_file_it_was_for(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "logits-00000.npy", suffix=".npy") as tmp:
            raise KeyboardInterrupt  # Stands in for a kill: keep the name, not the file.
    assert leftover_target(os.path.basename(tmp)) == "logits-00000.npy"
    assert leftover_target("logits-00000.npy") is None
    assert leftover_target(".notes.tmp-mine") is None
