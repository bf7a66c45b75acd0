import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO_ROOT

from kd_keras.cache import cache_teacher_outputs
from kd_keras.cache import load

from .cache_helpers import LinearTeacher
from .cache_helpers import make_inputs


def _build(teacher, x, directory, **kwargs):
    kwargs.setdefault("batch_size", 16)
    kwargs.setdefault("shard_size", 32)
    return cache_teacher_outputs(teacher, x, str(directory), verbose=0, **kwargs)


def test_logits_match_numpy_reference_across_shards(tmp_path):
    teacher, x = LinearTeacher(), make_inputs(100)
    cache = _build(teacher, x, tmp_path, batch_size=7, shard_size=30)
    assert (cache.count, cache.num_classes) == (100, 3)
    assert len(cache.metadata.shards) == 4
    np.testing.assert_allclose(cache.logits(), teacher.reference(x), atol=1e-6)
    idx = np.array([99, 0, 31, 30, 64, 2])
    np.testing.assert_allclose(cache.gather(idx), teacher.reference(x[idx]), atol=1e-6)
    meta = json.load(open(tmp_path / "metadata.json"))
    assert meta["complete"] and meta["count"] == 100
    assert meta["teacher_fingerprint"] == teacher.fingerprint()
    assert meta["input_spec"] == {"x": {"shape": [6], "dtype": "float32"}}
    assert all(len(f["sha256"]) == 64 for s in meta["shards"] for f in s["files"].values())


def test_keras_model_teacher(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    x = make_inputs(50)
    cache = _build(model, x, tmp_path)
    np.testing.assert_allclose(cache.logits(), model.predict(x, verbose=0), atol=1e-5)


def test_complete_cache_is_read_not_recomputed(tmp_path):
    x = make_inputs(100)
    _build(LinearTeacher(), x, tmp_path)
    again = LinearTeacher()
    cache = _build(again, x, tmp_path)
    assert again.calls == 0
    np.testing.assert_allclose(cache.logits(), again.reference(x), atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        ("teacher", "another teacher"),
        ("reordered", "examples 0..31 differ"),
        ("fewer", "built from 100 examples; x has 90"),
        ("dtype", "input spec"),
    ],
)
def test_mismatched_cache_is_refused(tmp_path, change, message):
    x = make_inputs(100)
    _build(LinearTeacher(), x, tmp_path)
    teacher = LinearTeacher(seed=1) if change == "teacher" else LinearTeacher()
    other = {
        "teacher": x,
        "reordered": x[::-1].copy(),
        "fewer": x[:90],
        "dtype": x.astype(np.float64),
    }[change]
    with pytest.raises(ValueError, match=message) as err:
        _build(teacher, other, tmp_path)
    assert str(tmp_path) in str(err.value)
    assert teacher.calls == 0
    # overwrite=True rebuilds for the new teacher/inputs.
    cache = _build(teacher, other, tmp_path, overwrite=True)
    np.testing.assert_allclose(cache.logits(), teacher.reference(other), atol=1e-6)


def test_fewer_inputs_from_an_unsized_dataset_are_refused(tmp_path):
    x = make_inputs(100)
    _build(LinearTeacher(), x, tmp_path)
    ds = tf.data.Dataset.from_tensor_slices(x[:96]).filter(lambda _: True)
    with pytest.raises(ValueError, match="x has 96"):
        _build(LinearTeacher(), ds, tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_detected_and_recomputed(tmp_path, damage):
    teacher, x = LinearTeacher(), make_inputs(100)
    _build(teacher, x, tmp_path)
    path = tmp_path / "logits-00001.npy"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[:-8]
    else:
        data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="logits-00001.npy"):
        load(tmp_path)
    again = LinearTeacher()
    cache = _build(again, x, tmp_path)
    assert again.calls == 2  # Only the damaged shard (32 examples / 16).
    np.testing.assert_allclose(load(tmp_path).logits(), teacher.reference(x), atol=1e-6)
    assert cache.count == 100


def test_dict_and_dataset_inputs_give_the_same_cache(tmp_path):
    x = make_inputs(70)
    teacher = LinearTeacher()

    class DictTeacher(LinearTeacher):
        def predict_on_batch(self, inputs):
            return super().predict_on_batch(np.concatenate([inputs["a"], inputs["b"]], 1))

    dict_teacher = DictTeacher()
    from_dict = _build(dict_teacher, {"a": x[:, :2], "b": x[:, 2:]}, tmp_path / "d")
    np.testing.assert_allclose(from_dict.logits(), teacher.reference(x), atol=1e-6)
    from_arrays = _build(teacher, x, tmp_path / "a")
    from_ds = _build(LinearTeacher(), tf.data.Dataset.from_tensor_slices(x), tmp_path / "t")
    assert from_ds.inputs_fingerprint == from_arrays.inputs_fingerprint
    np.testing.assert_array_equal(from_ds.logits(), from_arrays.logits())


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        _build(LinearTeacher(), make_inputs(4), tmp_path, batch_size=0)
    with pytest.raises(ValueError, match="no examples"):
        _build(LinearTeacher(), make_inputs(0), tmp_path)
    with pytest.raises(ValueError, match="different numbers of examples"):
        _build(LinearTeacher(), {"a": np.zeros((3, 1)), "b": np.zeros((4, 1))}, tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing: no such cache folder"):
        load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty/metadata.json: not found"):
        load(tmp_path / "empty")


@pytest.mark.parametrize("logits, features, message", [
    (np.ones((9, 3)), None, r"^logits: shape \[9, 3\] for 10 examples of x; expected \[10, "),
    (np.ones((15, 3)), None, r"^logits: shape \[15, 3\] for 10 examples of x"),
    (np.full((10, 3), np.nan), None, r"^logits: must be finite numbers"),
    (np.full((10, 2), 0.5), None, r"^logits: outputs probabilities"),
    (np.ones((10, 3)), {"p": np.ones((9, 4))}, r"^features\['p'\]: 9 rows for 10 examples"),
])
def test_saved_outputs_are_checked_before_the_old_cache_is_replaced(tmp_path, logits, features,
                                                                    message):
    # The old cache was deleted first, then the write failed part way
    # ("shape [1, 3] for 2 rows"), leaving half a cache; 15 logits for 10
    # examples, NaN and probabilities were stored without a word.
    from kd_keras.cache import save_teacher_outputs

    x = make_inputs(10)
    good = np.arange(30, dtype="float32").reshape(10, 3)
    save_teacher_outputs(tmp_path, x, good, "t1", shard_size=4)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ValueError, match=message):
        save_teacher_outputs(tmp_path, x, logits, "t2", features=features, shard_size=4)
    assert sorted(os.listdir(tmp_path)) == before
    np.testing.assert_array_equal(load(tmp_path).logits(), good)


@pytest.mark.slow
def test_killed_build_resumes_and_equals_an_uninterrupted_build(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = dict(os.environ, PYTHONPATH=REPO_ROOT)
    child = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), "kill_child.py"), str(killed)],
        env=env,
        cwd=REPO_ROOT,
    )
    meta_path = killed / "metadata.json"
    deadline = time.time() + 120
    done = 0
    while time.time() < deadline and child.poll() is None:
        if meta_path.exists():
            done = len(json.loads(meta_path.read_text())["shards"])
            if done >= 3:
                os.kill(child.pid, signal.SIGKILL)
                break
        time.sleep(0.02)
    assert child.wait(timeout=60) == -signal.SIGKILL, "the build was not killed mid-way"
    meta = json.loads(meta_path.read_text())
    assert not meta["complete"] and 3 <= len(meta["shards"]) < 10
    with pytest.raises(ValueError, match="incomplete"):
        load(killed)

    x = make_inputs()
    resumed_teacher = LinearTeacher()
    resumed = _build(resumed_teacher, x, killed)
    assert resumed_teacher.calls == 2 * (10 - len(meta["shards"]))
    uninterrupted = _build(LinearTeacher(), x, clean)

    assert resumed.inputs_fingerprint == uninterrupted.inputs_fingerprint
    assert sorted(os.listdir(killed)) == sorted(os.listdir(clean))
    for name in os.listdir(clean):
        if name != "metadata.json":
            assert (killed / name).read_bytes() == (clean / name).read_bytes(), name
    a, b = (json.loads((d / "metadata.json").read_text()) for d in (killed, clean))
    assert a == b
    np.testing.assert_allclose(load(killed).logits(), LinearTeacher().reference(x), atol=1e-6)
