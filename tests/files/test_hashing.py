"""`sha256_path`: a file's digest is hashlib's over its bytes (read in blocks),
a folder's changes with any file's name or bytes, and a FIFO is refused."""

import hashlib
import os

import numpy as np
import pytest

from kd_keras.errors import DataError
from kd_keras.files.hashing import sha256_path


def test_a_file_digest_is_the_sha256_of_all_its_bytes(tmp_path):
    # Over 2 MiB, so the digest spans several read blocks.
    data = np.random.default_rng(0).bytes(2 * (1 << 20) + 123)
    path = tmp_path / "shard.npy"
    path.write_bytes(data)
    assert sha256_path(path) == hashlib.sha256(data).hexdigest()


def test_a_folder_digest_changes_with_any_name_or_byte(tmp_path):
    folder = tmp_path / "saved_model"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables" / "v.data").write_bytes(b"weights")
    digest = sha256_path(folder)
    assert digest == sha256_path(folder)
    (folder / "variables" / "v.data").write_bytes(b"weightz")
    changed = sha256_path(folder)
    os.rename(folder / "variables" / "v.data", folder / "variables" / "w.data")
    renamed = sha256_path(folder)
    assert len({digest, changed, renamed}) == 3


def test_a_fifo_is_refused_in_one_line(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=rf"^{fifo}: not a regular file \(a FIFO, device or socket\)$"):
        sha256_path(fifo)


def test_a_folder_digest_is_independent_math_over_names_and_bytes(tmp_path):
    """Recomputed by hand: each file's name as the file system spells it
    (bytes, so a name that is not UTF-8 hashes too), a NUL, its digest; a
    folder's own files before its sub-folders'."""
    folder = tmp_path / "saved_model"
    (folder / "assets").mkdir(parents=True)
    raw_name = b"\xff-not-utf8"
    with open(os.path.join(os.fsencode(folder / "assets"), raw_name), "wb") as f:
        f.write(b"asset")
    (folder / "saved_model.pb").write_bytes(b"graph")
    expected = hashlib.sha256()
    for rel, data in ((b"saved_model.pb", b"graph"), (b"assets/" + raw_name, b"asset")):
        expected.update(rel + b"\0" + hashlib.sha256(data).hexdigest().encode("ascii"))
    assert sha256_path(folder) == expected.hexdigest()


def test_a_symlinked_sub_folder_is_hashed_through_and_a_loop_ends(tmp_path):
    weights = tmp_path / "elsewhere"
    weights.mkdir()
    (weights / "v.data").write_bytes(b"weights")
    folder = tmp_path / "saved_model"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"graph")
    (folder / "variables").symlink_to(weights)
    (weights / "loop").symlink_to(folder)  # Back up: hashed once, not forever.
    digest = sha256_path(folder)
    expected = hashlib.sha256()
    for rel, data in ((b"saved_model.pb", b"graph"), (b"variables/v.data", b"weights")):
        expected.update(rel + b"\0" + hashlib.sha256(data).hexdigest().encode("ascii"))
    assert digest == expected.hexdigest()
    (weights / "v.data").write_bytes(b"weightz")
    assert sha256_path(folder) != digest
