"""Teacher features in the cache: stored values (float32 and float16) equal
an independent NumPy reference, batches carry them with their examples, the
cache refuses other features, and damaged feature metadata is one line."""

import functools
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras
from kd_keras.cache import cache_teacher_outputs
from kd_keras.cache import load
from kd_keras.cache import shards
from kd_keras.errors import DataError
from kd_keras.errors import UsageError

from .cache_helpers import LinearTeacher
from .cache_helpers import json_edit

N, SEQ, DIM, WIDTH, CLASSES = 70, 5, 6, 8, 3
FEATURES = ["t_tokens", "t_pooled"]


def make_teacher(scale=1.0):
    """Per-token hidden states [n, SEQ, WIDTH], pooled [n, WIDTH], logits."""
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([
        keras.Input((SEQ, DIM)),
        keras.layers.Dense(WIDTH, activation="tanh", name="t_tokens"),
        keras.layers.GlobalAveragePooling1D(name="t_pooled"),
        keras.layers.Dense(CLASSES, name="t_logits")], name="teacher")
    if scale != 1.0:
        layer = teacher.get_layer("t_logits")
        layer.kernel.assign(layer.kernel * scale)
    return teacher


def reference(teacher, x):
    """The teacher's outputs in float64 NumPy, from its weights."""
    w1, b1 = (np.asarray(v, np.float64) for v in teacher.get_layer("t_tokens").get_weights())
    w2, b2 = (np.asarray(v, np.float64) for v in teacher.get_layer("t_logits").get_weights())
    tokens = np.tanh(np.asarray(x, np.float64) @ w1 + b1)
    pooled = tokens.mean(axis=1)
    return {"t_tokens": tokens, "t_pooled": pooled, "logits": pooled @ w2 + b2}


def make_x(n=N, seed=1):
    return np.random.default_rng(seed).normal(size=(n, SEQ, DIM)).astype(np.float32)


X = make_x()


@functools.lru_cache(maxsize=1)
def shared_teacher():
    """One teacher for the tests that rebuild a cache (same fingerprint)."""
    return make_teacher()


def build(directory, teacher=None, **kwargs):
    kwargs = {"batch_size": 16, "shard_size": 32, "verbose": 0, "features": FEATURES,
              **kwargs}
    return cache_teacher_outputs(teacher or shared_teacher(), X, str(directory), **kwargs)


def test_float32_features_equal_the_numpy_reference(tmp_path):
    teacher = make_teacher()
    cache = load(build(tmp_path, teacher).directory)
    want = reference(teacher, X)
    assert cache.feature_names == tuple(FEATURES) and cache.feature_dtype == "float32"
    assert cache.feature_shapes == {"t_tokens": (SEQ, WIDTH), "t_pooled": (WIDTH,)}
    for name in FEATURES:
        got = cache.features(name)
        assert got.dtype == np.float32 and got.shape == want[name].shape
        np.testing.assert_allclose(got, want[name], atol=1e-6, rtol=0)
    np.testing.assert_allclose(cache.logits(), want["logits"], atol=1e-5, rtol=0)
    # Rows across a shard boundary, in any order.
    rows = np.array([69, 31, 32, 0, 33])
    np.testing.assert_allclose(cache.gather_features("t_tokens", rows),
                               want["t_tokens"][rows], atol=1e-6, rtol=0)
    np.testing.assert_allclose(cache.features("t_pooled", 30, 40),
                               want["t_pooled"][30:40], atol=1e-6, rtol=0)


def test_float16_features_are_the_float16_rounding_of_the_online_features(tmp_path):
    teacher = make_teacher()
    half = build(tmp_path / "half", teacher, feature_dtype="float16")
    full = build(tmp_path / "full", teacher)
    for name in FEATURES:
        online = keras.Model(teacher.inputs, teacher.get_layer(name).output).predict(
            X, verbose=0)
        got = half.features(name)
        assert got.dtype == np.float16
        want = online.astype(np.float16)
        # Rounding to nearest: at most one float16 step from NumPy's cast
        # (the float32 values may differ in their last bit), and mostly equal.
        np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32),
                                   rtol=2.0**-10, atol=2.0**-24)
        assert np.mean(got == want) > 0.99
        assert np.abs(got.astype(np.float64) - reference(teacher, X)[name]).max() > 1e-6
    size = lambda d: os.path.getsize(os.path.join(d, "feature0-00000.npy"))  # noqa: E731
    assert size(half.directory) < 0.6 * size(full.directory)
    # The logits stay float32.
    np.testing.assert_array_equal(half.logits(), full.logits())


def _check_batches(ds, x_of, teacher, y=None):
    want = reference(teacher, X)
    seen = []
    for xb, targets in ds:
        xb = x_of(xb)
        rows = [int(np.argmin(np.abs(X - row).sum(axis=(1, 2)))) for row in xb]
        assert set(targets["teacher_features"]) == set(FEATURES)
        for name in FEATURES:
            np.testing.assert_allclose(targets["teacher_features"][name].numpy(),
                                       want[name][rows], atol=1e-6, rtol=0)
        np.testing.assert_allclose(targets["teacher_logits"].numpy(), want["logits"][rows],
                                   atol=1e-5, rtol=0)
        if y is not None:
            np.testing.assert_array_equal(targets["labels"].numpy(), y[rows])
        seen += rows
    return seen


def test_shuffled_batches_carry_each_examples_features(tmp_path):
    teacher = make_teacher()
    cache = build(tmp_path, teacher)
    y = np.arange(N, dtype=np.int32) % CLASSES
    ds = cache.as_dataset(X, y, batch_size=16, shuffle=True, seed=3)
    seen = _check_batches(ds, lambda xb: xb.numpy(), teacher, y)
    assert sorted(seen) == list(range(N)) and seen != list(range(N))
    # A tf.data.Dataset of inputs: features are zipped with their examples.
    ds = cache.as_dataset(tf.data.Dataset.from_tensor_slices(X), batch_size=16,
                          shuffle=True, seed=3, shuffle_buffer=20)
    seen = _check_batches(ds, lambda xb: xb.numpy(), teacher)
    assert sorted(seen) == list(range(N))
    # A subset of the features, or none.
    _, targets = next(iter(cache.as_dataset(X, y, features=["t_pooled"])))
    assert list(targets["teacher_features"]) == ["t_pooled"]
    _, targets = next(iter(cache.as_dataset(X, y, features=[])))
    assert "teacher_features" not in targets


def test_terms_name_the_features_and_a_hooked_teacher_gives_them(tmp_path):
    class Hooked(keras.Model):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x, training=False):
            return self.inner(x, training=training)

        def call_with_features(self, x, training=None):
            tokens = self.inner.get_layer("t_tokens")(x)
            pooled = self.inner.get_layer("t_pooled")(tokens)
            return self.inner.get_layer("t_logits")(pooled), {"tokens": tokens}

    teacher = make_teacher()
    hooked = Hooked(teacher)
    hooked(X[:2])
    term = kd_keras.FeatureDistillation("tokens", "s_hidden")
    cache = build(tmp_path, hooked, features=[term, "tokens"])
    assert cache.feature_names == ("tokens",)
    np.testing.assert_allclose(cache.features("tokens"), reference(teacher, X)["t_tokens"],
                               atol=1e-6, rtol=0)


def test_a_cache_with_other_features_is_refused_then_rebuilt(tmp_path):
    build(tmp_path)
    for kwargs, what in [
        ({"features": ["t_pooled"]}, r"features=\['t_pooled'\] \(float32\)"),
        ({"features": ["t_pooled", "t_tokens"]}, r"features=\['t_pooled', 't_tokens'\] \(float32\)"),
        ({"feature_dtype": "float16"}, r"features=\['t_tokens', 't_pooled'\] \(float16\)"),
        ({"features": None}, "no features"),
    ]:
        with pytest.raises(UsageError, match=(
                r"^\S+: the cache there was built with features=\['t_tokens', 't_pooled'\] "
                rf"\(float32\), not {what}; pass the same features and feature_dtype, or "
                r"overwrite=True to rebuild$")):
            build(tmp_path, **kwargs)
    # A logits-only cache is refused too.
    build(tmp_path / "plain", features=None)
    with pytest.raises(UsageError, match=r"built with no features, not features="):
        build(tmp_path / "plain")
    rebuilt = build(tmp_path, features=["t_pooled"], feature_dtype="float16", overwrite=True)
    assert load(tmp_path).feature_names == ("t_pooled",) == rebuilt.feature_names
    assert not os.path.exists(tmp_path / "feature1-00000.npy")


def test_a_cache_without_features_writes_no_feature_keys(tmp_path):
    cache = build(tmp_path, features=None)
    raw = json.loads((tmp_path / "metadata.json").read_text())
    assert "features" not in raw and "feature_dtype" not in raw
    assert cache.feature_names == ()
    _, targets = next(iter(cache.as_dataset(X)))
    assert set(targets) == {"labels", "teacher_logits"}
    with pytest.raises(UsageError, match=r"^name: the cache in \S+ holds no teacher features"):
        cache.features("t_tokens")


@pytest.mark.parametrize("kwargs, message", [
    ({"features": ["t_tokns"]},
     r"^features\[0\]: no layer 't_tokns' in 'teacher' \(close matches: t_tokens, t_logits\)$"),
    ({"features": "t_tokens"}, r"^features: expected a list of layer names"),
    ({"features": ["t_tokens", 3]}, r"^features\[1\]: expected a layer name or path"),
    ({"feature_dtype": "float64"},
     r"^feature_dtype: must be one of 'float32', 'float16', got 'float64'$"),
    ({"teacher": LinearTeacher(in_dim=DIM)},
     r"^features: the teacher \(LinearTeacher\) cannot give intermediate outputs"),
])
def test_bad_feature_arguments_are_one_line_and_write_nothing(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        build(tmp_path / "c", **kwargs)
    assert not os.path.exists(tmp_path / "c") or not os.listdir(tmp_path / "c")


def test_unknown_feature_name_when_reading(tmp_path):
    cache = build(tmp_path)
    with pytest.raises(UsageError, match=r"^name: no feature 't_pool' in the cache in \S+ "
                                         r"\(it holds: t_pooled\)$"):
        cache.features("t_pool")
    with pytest.raises(UsageError, match=r"^name: no feature 'nope'"):
        cache.as_dataset(X, features=["nope"])


def test_float16_overflow_is_refused(tmp_path):
    teacher = make_teacher()
    layer = teacher.get_layer("t_logits")
    layer.kernel.assign(layer.kernel * 1e6)
    with pytest.raises(UsageError, match=r"^features\['t_logits'\]: values beyond float16's "
                                         r"range \(largest \S+\); use feature_dtype='float32'$"):
        build(tmp_path, teacher, features=["t_logits"], feature_dtype="float16")


def test_a_damaged_feature_shard_is_recomputed(tmp_path):
    teacher = make_teacher()
    build(tmp_path, teacher)
    path = tmp_path / "feature0-00001.npy"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"^damaged cache: \S+feature0-00001.npy: has 100 bytes"):
        load(tmp_path)
    repaired = build(tmp_path, teacher)
    np.testing.assert_allclose(load(tmp_path).features("t_tokens"),
                               reference(teacher, X)["t_tokens"], atol=1e-6, rtol=0)
    assert repaired.count == N


def test_shard_steps_with_features_equal_the_one_process_build(tmp_path):
    teacher = make_teacher()
    ref = build(tmp_path / "ref", teacher, feature_dtype="float16")
    want = reference(teacher, X)
    d = str(tmp_path / "parts")
    m = shards.start_build(d, ref.teacher_fingerprint, 32, features=FEATURES,
                           feature_dtype="float16")
    ranges = shards.shard_ranges(N, 32)
    online = {name: keras.Model(teacher.inputs, teacher.get_layer(name).output).predict(
        X, batch_size=16, verbose=0) for name in FEATURES}
    logits = teacher.predict(X, batch_size=16, verbose=0)
    for i, (a, b) in reversed(list(enumerate(ranges))):
        result = shards.write_shard(d, i, X[a:b], logits[a:b],
                                    features={n: online[n][a:b] for n in FEATURES},
                                    feature_dtype="float16")
        m = shards.record_shard(d, m, result)
    m = shards.finalize(d, m)
    assert m.features == ref.metadata.features
    got = load(d)
    for name in FEATURES:
        np.testing.assert_allclose(got.features(name).astype(np.float64), want[name],
                                   rtol=2.0**-10, atol=1e-6)
    # A shard with other features, another order or dtype does not fit.
    m = shards.start_build(str(tmp_path / "x"), "t", 32, features=FEATURES)
    for features, dtype in [({"t_pooled": online["t_pooled"][:32]}, "float32"),
                            ({n: online[n][:32] for n in reversed(FEATURES)}, "float32"),
                            ({n: online[n][:32] for n in FEATURES}, "float16")]:
        result = shards.write_shard(str(tmp_path / "x"), 0, X[:32], logits[:32],
                                    features=features, feature_dtype=dtype)
        with pytest.raises(UsageError, match=r"^\S+: shard 0: holds features=\[.*\] "
                                             r"\(float\d+\); the cache holds "
                                             r"features=\['t_tokens', 't_pooled'\] \(float32\)$"):
            shards.record_shard(str(tmp_path / "x"), m, result)
    with pytest.raises(UsageError, match=r"^features\['t_pooled'\]: float32 \[3, 8\] for 32 rows"):
        shards.write_shard(str(tmp_path / "x"), 0, X[:32], logits[:32],
                           features={"t_pooled": online["t_pooled"][:3]})


# --------------------------------------------------------------- metadata

METADATA_CASES = [
    ("features text", json_edit("features", value="t_tokens"),
     'features: expected a list, found "t_tokens"'),
    ("entry number", json_edit("features", 0, value=7),
     "features[0]: expected a JSON object, found 7"),
    ("no name", json_edit("features", 0, "name"), "features[0].name: missing"),
    ("extra key", json_edit("features", 0, "file", value="../x"),
     'features[0]: expected the keys ["name", "shape"], found ["file", "name", "shape"]'),
    ("empty name", json_edit("features", 1, "name", value=""),
     'features[1].name: expected a non-empty string, found ""'),
    ("name twice", json_edit("features", 1, "name", value="t_tokens"),
     'features[1].name: "t_tokens" is listed twice'),
    ("shape text", json_edit("features", 0, "shape", value="5x8"),
     'features[0].shape: expected a list or null, found "5x8"'),
    ("shape zero", json_edit("features", 0, "shape", value=[5, 0]),
     "features[0].shape[1]: expected an integer >= 1, found 0"),
    ("shape null", json_edit("features", 1, "shape", value=None),
     "features[1].shape: missing (null) in a cache with shards"),
    ("dtype", json_edit("feature_dtype", value="float64"),
     'feature_dtype: expected one of ["float32", "float16"], found "float64"'),
    ("dropped feature", lambda raw: raw["features"].pop(),
     'shards[0].files: expected arrays ["logits", "feature0"], found ["feature0", '
     '"feature1", "logits"]'),
    ("missing file", json_edit("shards", 2, "files", "feature1"),
     'shards[2].files: expected arrays ["logits", "feature0", "feature1"], found '
     '["feature0", "logits"]'),
    ("parent path", json_edit("shards", 0, "files", "feature1", "file", value="../victim.npy"),
     'shards[0].files.feature1.file: expected "feature1-00000.npy", found "../victim.npy"'),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    d = tmp_path_factory.mktemp("features_template")
    build(d)
    return d


@pytest.mark.parametrize("case, damage, rest", METADATA_CASES, ids=[c[0] for c in METADATA_CASES])
def test_damaged_feature_metadata_is_one_line(template, tmp_path, case, damage, rest):
    d = tmp_path / "c"
    shutil.copytree(template, d)
    raw = json.loads((d / "metadata.json").read_text())
    damage(raw)
    (d / "metadata.json").write_text(json.dumps(raw))
    before = sorted(os.listdir(d))
    for call in (lambda: load(d), lambda: build(d), lambda: build(d, overwrite=True)):
        with pytest.raises(DataError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message
        assert message == f"damaged cache: {d / 'metadata.json'}: {rest}"
    assert sorted(os.listdir(d)) == before


def test_a_feature_file_of_another_dtype_is_damage(template, tmp_path):
    d = tmp_path / "c"
    shutil.copytree(template, d)
    raw = json.loads((d / "metadata.json").read_text())
    raw["features"][0]["shape"] = [SEQ * 2, WIDTH // 2]  # Same bytes, other shape.
    (d / "metadata.json").write_text(json.dumps(raw))
    with pytest.raises(DataError, match=r"^damaged cache: \S+feature0-00000.npy: expected "
                                        r"float32 \[32, 10, 4\], found float32 \[32, 5, 8\]$"):
        load(d).features("t_tokens")
