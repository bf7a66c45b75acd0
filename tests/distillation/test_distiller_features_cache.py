"""Distilling from a cache of teacher features equals online distillation:
the same student weights within 1e-5, with per-token and pooled feature
terms, a projection, sample weights and unlabeled (-1) examples."""

import keras
import numpy as np
import pytest

import kd_keras
from kd_keras.cache import cache_teacher_outputs
from pipeline.resume_helpers import Stop
from pipeline.resume_helpers import StopAtEpoch

N, SEQ, DIM, BATCH, EPOCHS, LR = 45, 4, 5, 8, 2, 0.1


def make_models():
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([
        keras.Input((SEQ, DIM)),
        keras.layers.Dense(12, activation="relu", name="t_tokens"),
        keras.layers.GlobalAveragePooling1D(name="t_pooled"),
        keras.layers.Dense(3, name="t_logits")], name="teacher")
    student = keras.Sequential([
        keras.Input((SEQ, DIM)),
        keras.layers.Dense(6, activation="tanh", name="s_tokens"),
        keras.layers.GlobalAveragePooling1D(name="s_pooled"),
        keras.layers.Dense(3, name="s_logits")], name="student")
    return teacher, student


def make_data():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(N, SEQ, DIM)).astype("float32")
    y = rng.integers(0, 3, size=N).astype("int32")
    y[::3] = -1
    w = rng.uniform(0.5, 2.0, size=N).astype("float32")
    return x, y, w


def terms():
    return [
        kd_keras.FeatureDistillation("t_tokens", "s_tokens", loss="mse", weight=0.7),
        kd_keras.FeatureDistillation("t_pooled", "s_pooled", loss="cosine", weight=0.4)]


def projection_weights(distiller):
    return [v for p in distiller.projections for v in p.weights]


@pytest.mark.parametrize("source", ["arrays", "dataset"])
def test_fit_from_the_feature_cache_equals_online_fit(tmp_path, source):
    import tensorflow as tf

    x, y, w = make_data()
    teacher, student = make_models()
    init = student.get_weights()
    online = kd_keras.Distiller(teacher, student, features=terms())
    online.compile(optimizer=keras.optimizers.SGD(LR), alpha=0.3, temperature=2.0)
    projections = [v.numpy() for v in projection_weights(online)]
    assert len(projections) == 4  # Both terms project 6 -> 12.
    online.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
               verbose=0)

    cache = cache_teacher_outputs(teacher, x, tmp_path, batch_size=7, shard_size=16,
                                  features=terms(), verbose=0)
    assert cache.feature_names == ("t_tokens", "t_pooled")
    _, student2 = make_models()
    offline = kd_keras.Distiller(None, student2, features=terms())
    offline.compile(optimizer=keras.optimizers.SGD(LR), alpha=0.3, temperature=2.0)
    data = x if source == "arrays" else tf.data.Dataset.from_tensor_slices(x)
    ds = cache.as_dataset(data, y, sample_weight=w, batch_size=BATCH, shuffle=False)
    offline.fit(ds.take(1), epochs=1, shuffle=False, verbose=0)  # Sizes the projections.
    student2.set_weights(init)
    for v, value in zip(projection_weights(offline), projections):
        v.assign(value)
    history = offline.fit(ds, epochs=EPOCHS, shuffle=False, verbose=0)

    assert {"s_tokens_mse", "s_pooled_cosine"} <= set(history.history)
    assert not np.allclose(student.weights[0].numpy(), init[0])
    moved = [not np.allclose(v.numpy(), p) for v, p in zip(projection_weights(online),
                                                            projections)]
    assert all(moved)  # The feature terms reach the projections.
    for a, b in zip(student.weights + projection_weights(online),
                    student2.weights + projection_weights(offline)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, rtol=0)


def test_fit_from_a_cache_without_the_terms_features_names_them(tmp_path):
    x, y, _ = make_data()
    teacher, student = make_models()
    cache = cache_teacher_outputs(teacher, x, tmp_path, features=["t_pooled"], verbose=0)
    offline = kd_keras.Distiller(None, student, features=terms())
    offline.compile(optimizer=keras.optimizers.SGD(LR))
    with pytest.raises(kd_keras.errors.UsageError,
                       match=r"^y: targets\['teacher_features'\] has no 't_tokens' "
                             r"\(has: \['t_pooled'\]\)$"):
        offline.fit(cache.as_dataset(x, y, batch_size=BATCH), epochs=1, shuffle=False,
                    verbose=0)


def test_a_backup_and_restore_resume_from_the_cache_builds_the_projections_first(tmp_path):
    """`BackupAndRestore` restores the optimizer before the first batch,
    which sizes the projections: `fit` builds them first, and the resumed
    run ends where the uninterrupted one does."""
    x, y, w = make_data()
    teacher, _ = make_models()
    cache = cache_teacher_outputs(teacher, x, tmp_path / "cache", batch_size=7,
                                  features=terms(), verbose=0)
    ds = cache.as_dataset(x, y, batch_size=BATCH, shuffle=False)

    def distiller():
        _, student = make_models()
        keras.utils.set_random_seed(3)
        d = kd_keras.Distiller(None, student, features=terms())
        d.compile(optimizer=keras.optimizers.Adam(0.01), alpha=0.3, temperature=2.0)
        return d

    whole = distiller()
    whole.fit(ds, epochs=2, verbose=0)
    backup = str(tmp_path / "backup")
    with pytest.raises(Stop):  # as a killed run: the backup stays
        distiller().fit(ds, epochs=2, verbose=0, callbacks=[
            keras.callbacks.BackupAndRestore(backup), StopAtEpoch(0)])
    resumed = distiller()
    resumed.fit(ds, epochs=2, verbose=0, callbacks=[keras.callbacks.BackupAndRestore(backup)])
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_backup_and_restore_reads_no_batch_before_training(tmp_path):
    """The projections are built from the dataset's shapes: a seeded
    shuffle gives the same order, and weights, with the callback as without."""
    x, y, _ = make_data()
    teacher, _ = make_models()
    cache = cache_teacher_outputs(teacher, x, tmp_path / "cache", batch_size=7,
                                  features=terms(), verbose=0)
    weights = []
    for callbacks in ([], [keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))]):
        keras.utils.set_random_seed(3)
        ds = cache.as_dataset(x, y, batch_size=BATCH, shuffle=False)
        ds = ds.unbatch().shuffle(N, seed=7).batch(BATCH)  # its orders follow its reads
        _, student = make_models()
        keras.utils.set_random_seed(3)
        d = kd_keras.Distiller(None, student, features=terms())
        d.compile(optimizer=keras.optimizers.Adam(0.01), alpha=0.3, temperature=2.0)
        d.fit(ds, epochs=2, verbose=0, callbacks=callbacks)
        weights.append(d.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
