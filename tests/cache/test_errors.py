"""Bad arguments and a missing cache: kd_keras error types, one line that
starts with the culprit, still caught by `except ValueError` (or
`FileNotFoundError` for a missing cache)."""

import os

import numpy as np
import pytest

from kd_keras.cache import cache_teacher_outputs
from kd_keras.cache import load
from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError

from .cache_helpers import LinearTeacher
from .cache_helpers import make_inputs

X = make_inputs(40)


class FlatTeacher(LinearTeacher):
    def predict_on_batch(self, x):
        return super().predict_on_batch(x)[:, 0]


class ProbabilityTeacher(LinearTeacher):
    def predict_on_batch(self, x):
        logits = super().predict_on_batch(x).astype(np.float64)
        e = np.exp(logits - logits.max(1, keepdims=True))
        return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _softmax_model():
    import keras

    return keras.Sequential([keras.Input((X.shape[1],)),
                             keras.layers.Dense(3, activation="softmax")])


def _build(d, x=X, teacher=None, **kwargs):
    kwargs.setdefault("shard_size", 16)
    return cache_teacher_outputs(teacher or LinearTeacher(), x, str(d), verbose=0, **kwargs)


CASES = [
    ("batch_size", lambda d: _build(d, batch_size=0), "batch_size: must be a positive integer, got 0"),
    ("shard_size", lambda d: _build(d, shard_size=-1), "shard_size: must be a positive integer, got -1"),
    ("shard_size bool", lambda d: _build(d, shard_size=True), "shard_size: must be a positive integer"),
    ("x list", lambda d: _build(d, x=[[1.0] * 6]), "x: must be an array, a dict of arrays"),
    ("x empty", lambda d: _build(d, x=X[:0]), "x: has no examples"),
    ("x scalar", lambda d: _build(d, x=np.float32(1)), "x: is a scalar"),
    ("x lengths", lambda d: _build(d, x={"a": X, "b": X[:3]}), "x: its arrays have different numbers"),
    ("teacher", lambda d: _build(d, teacher=FlatTeacher()), "teacher: returned logits of shape [16]"),
    ("probabilities", lambda d: _build(d, teacher=ProbabilityTeacher()),
     "teacher: outputs probabilities"),
    ("probabilities one a batch", lambda d: _build(d, teacher=ProbabilityTeacher(),
                                                   batch_size=1),
     "teacher: outputs probabilities"),
    ("softmax model", lambda d: _build(d, teacher=_softmax_model()),
     "teacher: ends in a softmax"),
    ("directory", lambda d: (d.write_text("a file"), _build(d)), "{d}: exists and is not a directory"),
    ("other teacher", lambda d: (_build(d), _build(d, teacher=LinearTeacher(seed=3))),
     "{d}: the cache there was built from another teacher"),
    ("other inputs", lambda d: (_build(d), _build(d, x=X + 1)),
     "{d}: the cache there does not match x: examples 0..15 differ"),
    ("dataset batch", lambda d: _build(d).as_dataset(X, batch_size=0), "batch_size: must be a positive integer"),
    ("dataset y", lambda d: _build(d).as_dataset(X, np.zeros(3)), "y: has 3 entries"),
    ("check inputs", lambda d: _build(d).check_inputs(X[:30]), "x: has 30 examples"),
]


@pytest.mark.parametrize("case, call, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_argument_is_one_usage_error_line(tmp_path, case, call, expected):
    d = tmp_path / "cache"
    with pytest.raises(UsageError) as err:
        call(d)
    message = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "\n" not in message
    assert message.startswith(expected.format(d=d)), message


@pytest.mark.parametrize("teacher", [FlatTeacher, ProbabilityTeacher])
def test_a_teacher_refused_on_its_first_batch_leaves_no_folder(tmp_path, teacher):
    # The new folder stayed, holding the metadata of an empty, incomplete cache.
    d = tmp_path / "cache"
    with pytest.raises(UsageError):
        _build(d, teacher=teacher())
    assert os.listdir(tmp_path) == []
    (d / "mine").mkdir(parents=True)  # A folder that was there before is kept, and its files.
    with pytest.raises(UsageError):
        _build(d, teacher=teacher())
    assert sorted(os.listdir(d)) == ["metadata.json", "mine"]


@pytest.mark.parametrize("make_folder", [False, True])
def test_missing_cache_is_a_missing_file_error(tmp_path, make_folder):
    d = tmp_path / "cache"
    if make_folder:
        d.mkdir()
    with pytest.raises(MissingFileError) as err:
        load(d)
    assert isinstance(err.value, FileNotFoundError)
    expected = f"{d}/metadata.json: not found" if make_folder else f"{d}: no such cache folder"
    assert str(err.value).startswith(expected)


def test_read_only_locations_are_one_line(tmp_path, monkeypatch):
    import errno
    import os

    parent = tmp_path / "file"
    parent.write_text("not a folder")
    with pytest.raises(UsageError, match=rf"^{parent}/cache: cannot create the cache folder \("):
        _build(parent / "cache")

    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:  # Creating a file: what a read-only mount refuses.
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    d = tmp_path / "cache"
    with pytest.raises(UsageError) as err:
        _build(d)
    assert str(err.value) == f"{d}: cannot write the cache there (Read-only file system)"
