"""Damaged `metadata.json`: one line, `damaged cache: DIR/metadata.json: ...`.

Each case damages the metadata of a real cache (100 examples, shards of 32:
counts 32, 32, 32, 4) and checks `load` and `cache_teacher_outputs` (with and
without `overwrite`) stop with that one line, and delete nothing.
"""

import json
import os
import shutil

import numpy as np
import pytest

from kd_keras.cache import cache_teacher_outputs
from kd_keras.cache import load
from kd_keras.errors import DataError

from .cache_helpers import DELETE
from .cache_helpers import LinearTeacher
from .cache_helpers import json_edit
from .cache_helpers import make_inputs

X = make_inputs(100)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    d = tmp_path_factory.mktemp("template")
    cache_teacher_outputs(LinearTeacher(), X, str(d), batch_size=16, shard_size=32, verbose=0)
    return d


def _set(path, value):
    """`json_edit` with the path as one tuple (`DELETE` deletes the key)."""
    return json_edit(*path, value=value)


_FILE0 = ("shards", 0, "files", "logits")
_HEX = "ab" * 32

CASES = [
    # (case id, damage: bytes or a function editing the parsed JSON, the rest of the line)
    ("truncated", lambda text: text[: len(text) // 2], "not valid JSON ("),
    ("empty", lambda text: b"", "not valid JSON (Expecting value"),
    ("not utf-8", lambda text: b"\xff\xfe{}", "not valid JSON ("),
    ("nested bomb", lambda text: b"[" * 100000 + b"]" * 100000, "not valid JSON ("),
    ("list", lambda text: b"[1, 2]", "expected a JSON object, found [1, 2]"),
    ("null", lambda text: b"null", "expected a JSON object, found null"),
    ("string", lambda text: b'"cache"', 'expected a JSON object, found "cache"'),
    ("no version", _set(("format_version",), DELETE),
     "not a kd_keras teacher-output cache (no format_version)"),
    ("version text", _set(("format_version",), "1"),
     'format_version: expected an integer >= 0, found "1"'),
    ("no shards key", _set(("shards",), DELETE), "shards: missing"),
    ("no count key", _set(("count",), DELETE), "count: missing"),
    ("complete text", _set(("complete",), "yes"), 'complete: expected true or false, found "yes"'),
    ("negative count", _set(("count",), -5), "count: expected an integer >= 1, found -5"),
    ("float count", _set(("count",), 1.5), "count: expected an integer >= 1, found 1.5"),
    ("NaN count", _set(("count",), float("nan")), "count: expected an integer >= 1, found NaN"),
    ("count off", _set(("count",), 99), "count: 99, but the shards hold 100 examples"),
    ("count too big", _set(("count",), 101), "count: 101, but the shards hold 100 examples"),
    ("classes text", _set(("num_classes",), "3"),
     'num_classes: expected an integer >= 1, found "3"'),
    ("classes null", _set(("num_classes",), None), "num_classes: missing (null) in a cache with shards"),
    ("shard_size 0", _set(("shard_size",), 0), "shard_size: expected an integer >= 1, found 0"),
    ("shard_size small", _set(("shard_size",), 16),
     "shards[0].count: expected an integer in [1, 16], found 32"),
    ("dtype", _set(("logits_dtype",), "float16"), 'logits_dtype: expected "float32", found "float16"'),
    ("teacher number", _set(("teacher_fingerprint",), 7),
     "teacher_fingerprint: expected a non-empty string, found 7"),
    ("inputs fingerprint", _set(("inputs_fingerprint",), "abc"),
     'inputs_fingerprint: expected a SHA-256 hex digest, found "abc"'),
    ("inputs fingerprint other", _set(("inputs_fingerprint",), _HEX),
     "inputs_fingerprint: does not match the input spec, count and shard digests"),
    ("inputs digest other", _set(("shards", 1, "inputs_sha256"), _HEX),
     "inputs_fingerprint: does not match the input spec, count and shard digests"),
    ("inputs fingerprint null", _set(("inputs_fingerprint",), None),
     "inputs_fingerprint: missing (null) in a complete cache"),
    ("spec shape", _set(("input_spec", "x", "shape"), [-1]),
     "input_spec.x.shape[0]: expected an integer >= 0, found -1"),
    ("spec dtype", _set(("input_spec", "x", "dtype"), None),
     "input_spec.x.dtype: expected a dtype name, found null"),
    ("spec text", _set(("input_spec",), "x"), 'input_spec: expected a non-empty JSON object, found "x"'),
    ("shards dict", _set(("shards",), {"0": 1}), 'shards: expected a list, found {"0": 1}'),
    ("shard number", _set(("shards", 0), 5), "shards[0]: expected a JSON object, found 5"),
    ("shard no files", _set(("shards", 0, "files"), DELETE), "shards[0].files: missing"),
    ("shard index text", _set(("shards", 0, "index"), "0"),
     'shards[0].index: expected an integer >= 0, found "0"'),
    ("shard index twice", _set(("shards", 1, "index"), 0),
     "shards[1].files.logits.file: expected \"logits-00000.npy\", found \"logits-00001.npy\""),
    ("shard listed twice", lambda raw: raw["shards"].__setitem__(1, raw["shards"][0]),
     "shards[1].index: 0 after 0; expected increasing indices"),
    ("shard count 0", _set(("shards", 3, "count"), 0),
     "shards[3].count: expected an integer in [1, 32], found 0"),
    ("short middle shard", _set(("shards", 0, "count"), 31),
     "shards[0].count: 31 in a shard before the last; expected shard_size 32"),
    ("inputs digest", _set(("shards", 2, "inputs_sha256"), "00"),
     'shards[2].inputs_sha256: expected a SHA-256 hex digest, found "00"'),
    ("extra array", _set(("shards", 0, "files", "evil"), {"file": "../evil"}),
     'shards[0].files: expected arrays ["logits"], found ["evil", "logits"]'),
    ("parent path", _set(_FILE0 + ("file",), "../../victim.txt"),
     'shards[0].files.logits.file: expected "logits-00000.npy", found "../../victim.txt"'),
    ("absolute path", _set(_FILE0 + ("file",), "/etc/passwd"),
     'shards[0].files.logits.file: expected "logits-00000.npy", found "/etc/passwd"'),
    ("sub folder", _set(_FILE0 + ("file",), "sub/logits-00000.npy"),
     'shards[0].files.logits.file: expected "logits-00000.npy", found "sub/logits-00000.npy"'),
    ("other shard's file", _set(_FILE0 + ("file",), "logits-00003.npy"),
     'shards[0].files.logits.file: expected "logits-00000.npy", found "logits-00003.npy"'),
    ("file name number", _set(_FILE0 + ("file",), 0),
     'shards[0].files.logits.file: expected "logits-00000.npy", found 0'),
    ("negative size", _set(_FILE0 + ("size_bytes",), -1),
     "shards[0].files.logits.size_bytes: expected an integer >= 0, found -1"),
    ("upper-case sha", _set(_FILE0 + ("sha256",), _HEX.upper()),
     "shards[0].files.logits.sha256: expected a SHA-256 hex digest"),
    ("missing shard", lambda raw: raw["shards"].pop(1),
     "shards: expected shards 0..2 in a complete cache, found indices [0, 2, 3]"),
]


def _damage(directory, damage):
    path = directory / "metadata.json"
    text = path.read_bytes()
    try:
        new = damage(text)
    except TypeError:  # An edit of the parsed JSON.
        new = None
    if not isinstance(new, bytes):
        raw = json.loads(text)
        damage(raw)
        new = json.dumps(raw).encode("utf-8")
    path.write_bytes(new)


def _listing(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


@pytest.mark.parametrize("case, damage, expected", CASES, ids=[c[0] for c in CASES])
def test_damaged_metadata_is_one_line(template, tmp_path, case, damage, expected):
    d = tmp_path / "cache"
    shutil.copytree(template, d)
    _damage(d, damage)
    before = _listing(d)
    prefix = f"damaged cache: {d}/metadata.json: "
    calls = [
        lambda: load(d),
        lambda: cache_teacher_outputs(LinearTeacher(), X, str(d), shard_size=32, verbose=0),
        lambda: cache_teacher_outputs(LinearTeacher(), X, str(d), shard_size=32, verbose=0,
                                      overwrite=True),
    ]
    for call in calls:
        with pytest.raises(DataError) as err:
            call()
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(prefix + expected), message
        assert isinstance(err.value, ValueError)
    assert _listing(d) == before  # Nothing deleted or rewritten.


def test_a_cache_from_before_top_k_was_dropped_still_reads(template, tmp_path):
    """Earlier builds wrote `"top_k": null` (dense logits): the same cache."""
    d = tmp_path / "cache"
    shutil.copytree(template, d)
    assert "top_k" not in json.loads((d / "metadata.json").read_text())
    _damage(d, _set(("top_k",), None))
    np.testing.assert_array_equal(load(d).logits(), load(template).logits())


def test_another_format_version_is_named(template, tmp_path):
    d = tmp_path / "cache"
    shutil.copytree(template, d)
    _damage(d, _set(("format_version",), 2))
    with pytest.raises(DataError) as err:
        load(d)
    assert str(err.value) == (
        f"{d}/metadata.json: cache format version 2; this kd_keras reads version 1 "
        "(rebuild it with overwrite=True)")


@pytest.mark.parametrize("kind", ["folder", "link"])
def test_metadata_that_is_not_a_regular_file(template, tmp_path, kind):
    d = tmp_path / "cache"
    shutil.copytree(template, d)
    outside = tmp_path / "outside.json"
    os.replace(d / "metadata.json", outside)
    if kind == "folder":
        (d / "metadata.json").mkdir()
    else:
        os.symlink(outside, d / "metadata.json")
    for overwrite in (False, True):
        with pytest.raises(DataError, match=r"^damaged cache: .*/metadata.json: is "):
            cache_teacher_outputs(LinearTeacher(), X, str(d), shard_size=32, verbose=0,
                                  overwrite=overwrite)
    assert json.loads(outside.read_text())["count"] == 100
    assert (d / "metadata.json").is_dir() if kind == "folder" else (d / "metadata.json").is_symlink()


def test_an_unfinished_build_is_not_damage_and_resumes(template, tmp_path):
    """A build killed after shards 0 and 1: count, fingerprint and the
    complete flag not written yet. Only shards 2 and 3 are computed."""
    d = tmp_path / "cache"
    shutil.copytree(template, d)
    raw = json.loads((d / "metadata.json").read_text())
    finished = dict(raw)
    raw.update(complete=False, count=None, inputs_fingerprint=None, shards=raw["shards"][:2])
    (d / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r": incomplete cache \(64 examples in 2 shards\); .*resume"):
        load(d)
    teacher = LinearTeacher()
    cache = cache_teacher_outputs(teacher, X, str(d), batch_size=16, shard_size=32, verbose=0)
    assert teacher.calls == 2 + 1  # Shard 2 (32 examples / 16) and shard 3 (4).
    assert json.loads((d / "metadata.json").read_text()) == finished
    assert cache.count == 100
