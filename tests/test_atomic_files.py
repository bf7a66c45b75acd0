"""`atomic_path`: the rename on success, the clean-up on failure, and what a
half-done write leaves behind (nothing but the old file)."""

import os
import stat

import pytest

from kd_keras.atomic_files import atomic_path


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


def test_a_writer_that_removed_its_temporary_still_gets_its_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "a.npz") as tmp:
            os.remove(tmp)
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
    # The reference: a file created by open() under the same umask.
    reference = tmp_path / "by_open"
    _write(reference, "x")
    with atomic_path(tmp_path / "by_atomic_path") as tmp:
        _write(tmp, "x")
    mode = stat.S_IMODE(os.stat(tmp_path / "by_atomic_path").st_mode)
    assert mode == stat.S_IMODE(os.stat(reference).st_mode)


def test_a_missing_folder_is_an_error_before_the_block(tmp_path):
    entered = []
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "absent" / "a.json"):
            entered.append(True)
    assert entered == []
