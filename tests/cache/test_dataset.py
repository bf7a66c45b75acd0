import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras
from kd_keras.cache import cache_teacher_outputs

from .cache_helpers import LinearTeacher
from .cache_helpers import make_inputs

N = 100


@pytest.fixture
def built(tmp_path):
    teacher, x = LinearTeacher(), make_inputs(N)
    cache = cache_teacher_outputs(
        teacher, x, str(tmp_path), batch_size=16, shard_size=32, verbose=0
    )
    y = np.arange(N) % 3
    return cache, teacher, x, y


def _collect(ds):
    xs, labels, logits, tags = [], [], [], []
    for batch in ds:
        xs.append(batch[0].numpy())
        labels.append(batch[1]["labels"].numpy())
        logits.append(batch[1]["teacher_logits"].numpy())
        if len(batch) == 3:
            tags.append(batch[2].numpy())
    cat = np.concatenate
    return cat(xs), cat(labels), cat(logits), (cat(tags) if tags else None)


def test_in_order_without_shuffle(built):
    cache, teacher, x, y = built
    ds = cache.as_dataset(x, y, batch_size=24, shuffle=False)
    assert [b[0].shape[0] for b in ds] == [24, 24, 24, 24, 4]
    xs, labels, logits, _ = _collect(ds)
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_allclose(logits, teacher.reference(x), atol=1e-6)


@pytest.mark.parametrize("as_tf_dataset", [False, True])
def test_shuffled_logits_follow_their_examples(built, as_tf_dataset):
    cache, teacher, x, y = built
    tag = np.arange(N, dtype=np.float32)  # sample weight = example index
    x_in = tf.data.Dataset.from_tensor_slices(x) if as_tf_dataset else x
    ds = cache.as_dataset(
        x_in, y, sample_weight=tag, batch_size=16, shuffle=True, seed=0, shuffle_buffer=40
    )
    xs, labels, logits, tags = _collect(ds)
    order = tags.astype(int)
    assert not np.array_equal(order, np.arange(N))
    assert sorted(order) == list(range(N))
    np.testing.assert_array_equal(xs, x[order])
    np.testing.assert_array_equal(labels, y[order])
    np.testing.assert_allclose(logits, teacher.reference(x[order]), atol=1e-6)
    # A new order each epoch, reproducible from the seed.
    again = cache.as_dataset(x_in, y, sample_weight=tag, batch_size=16, shuffle=True, seed=0, shuffle_buffer=40)
    np.testing.assert_array_equal(_collect(again)[3], tags)


def test_no_shuffled_batch_is_read_as_a_slice(built):
    """A shuffled batch whose first and last rows lie len - 1 apart (rows
    24, 2, 26) is not consecutive: each example keeps its own logits, label
    and weight. Small batches over many orders meet such batches often."""
    cache, teacher, x, y = built
    tag = np.arange(N, dtype=np.float32)
    seen = 0
    for seed in range(8):
        ds = cache.as_dataset(x, y, sample_weight=tag, batch_size=3, shuffle=True, seed=seed)
        xs, labels, logits, tags = _collect(ds)
        order = tags.astype(int)
        np.testing.assert_array_equal(xs, x[order])
        np.testing.assert_array_equal(labels, y[order])
        np.testing.assert_allclose(logits, teacher.reference(xs), atol=1e-6)
        batches = order[:len(order) // 3 * 3].reshape(-1, 3)
        seen += int(np.sum((batches[:, 2] - batches[:, 0] == 2)
                           & (batches[:, 1] != batches[:, 0] + 1)))
    assert seen > 0  # the orders held such batches


def test_unlabeled_by_default_and_dict_inputs(tmp_path):
    x = make_inputs(40)
    teacher = LinearTeacher()

    class DictTeacher(LinearTeacher):
        def predict_on_batch(self, inputs):
            return super().predict_on_batch(np.concatenate([inputs["a"], inputs["b"]], 1))

    inputs = {"a": x[:, :2], "b": x[:, 2:]}
    cache = cache_teacher_outputs(DictTeacher(), inputs, str(tmp_path), verbose=0)
    xb, targets = next(iter(cache.as_dataset(inputs, batch_size=40)))
    assert set(xb) == {"a", "b"}
    np.testing.assert_array_equal(targets["labels"].numpy(), -np.ones(40))
    np.testing.assert_allclose(targets["teacher_logits"], teacher.reference(x), atol=1e-6)


def test_other_inputs_are_refused(built):
    cache, _, x, y = built
    swapped = x.copy()
    swapped[[40, 41]] = swapped[[41, 40]]
    with pytest.raises(ValueError, match="examples 32..63 differ"):
        cache.as_dataset(swapped, y)
    with pytest.raises(ValueError, match="x: has 99 examples; the cache .* holds 100"):
        cache.as_dataset(x[:99], y[:99])
    with pytest.raises(ValueError, match="y: has 99 entries"):
        cache.as_dataset(x, y[:99])


def test_distributes_under_mirrored_strategy(built, mirrored_strategy):
    cache, teacher, x, y = built
    strategy = mirrored_strategy
    ds = cache.as_dataset(x, y, sample_weight=np.arange(N, dtype="float32"), batch_size=20, shuffle=True, seed=1)
    seen = []
    for xb, targets, tag in strategy.experimental_distribute_dataset(ds):
        locals_ = [strategy.experimental_local_results(t) for t in (xb, targets["teacher_logits"], tag)]
        assert len(locals_[0]) == 2
        for xr, lr, tr in zip(*locals_):
            idx = tr.numpy().astype(int)
            np.testing.assert_array_equal(xr.numpy(), x[idx])
            np.testing.assert_allclose(lr.numpy(), teacher.reference(x[idx]), atol=1e-6)
            seen.extend(idx)
    assert sorted(seen) == list(range(N))


def test_training_under_a_strategy_never_writes_into_the_callers_arrays(
        built, mirrored_strategy):
    # In order, batches are slices of the caller's arrays; TensorFlow may
    # reuse an input buffer for an op's output (here the Rescaling), so a
    # batch that is a view let training write into `x` and `sample_weight`.
    cache, _, x, y = built
    weights = np.linspace(0.5, 1.5, N).astype("float32")
    x_before, weights_before = x.copy(), weights.copy()
    ds = cache.as_dataset(x, y, sample_weight=weights, batch_size=14)
    with mirrored_strategy.scope():
        keras.utils.set_random_seed(3)
        student = keras.Sequential([keras.Input((6,)), keras.layers.Rescaling(2.0),
                                    keras.layers.Dense(3)])
        distiller = kd_keras.Distiller(teacher=None, student=student)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1), alpha=0.3, temperature=2.0)
    distiller.fit(ds, epochs=3, verbose=0)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(weights, weights_before)


def _student():
    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])


def test_training_from_cache_equals_online_distillation(tmp_path):
    x, y = make_inputs(64), np.arange(64) % 3
    y[::5] = -1
    keras.utils.set_random_seed(2)
    teacher = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(3)])

    online = kd_keras.Distiller(teacher=teacher, student=_student())
    online.compile(optimizer=keras.optimizers.Adam(1e-2), alpha=0.3, temperature=3.0)
    online.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)

    cache = cache_teacher_outputs(teacher, x, str(tmp_path), batch_size=32, verbose=0)
    offline = kd_keras.Distiller(teacher=None, student=_student())
    offline.compile(optimizer=keras.optimizers.Adam(1e-2), alpha=0.3, temperature=3.0)
    offline.fit(cache.as_dataset(x, y, batch_size=16, shuffle=False), epochs=2, shuffle=False, verbose=0)

    moved = 0.0
    for a, b, init in zip(online.student.weights, offline.student.weights, _student().weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
        moved = max(moved, np.abs(a.numpy() - init.numpy()).max())
    assert moved > 1e-2  # The runs really trained.
