import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras
from kd_keras.errors import UsageError

NUM_CLASSES = 4


def make_models(seed=0, features=6, classes=NUM_CLASSES, student_classes=None):
    keras.utils.set_random_seed(seed)
    teacher = keras.Sequential([
        keras.Input((features,)), keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(classes)], name="teacher")
    student = keras.Sequential([
        keras.Input((features,)), keras.layers.Dense(8, activation="tanh"),
        keras.layers.Dense(student_classes or classes)], name="student")
    return teacher, student


def make_data(n=50, features=6, seed=1, unlabeled_every=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=n).astype("int32")
    y[::unlabeled_every] = -1
    w = rng.uniform(0.5, 2.0, size=n).astype("float32")
    return x, y, w


def reference_weights(teacher, student, x, y, w, batch_size, epochs, lr,
                      alpha, temperature):
    """An independent GradientTape loop of the documented loss."""
    variables = student.trainable_variables
    for _ in range(epochs):
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            yb = y[start:start + batch_size]
            wb = w[start:start + batch_size]
            t = tf.cast(teacher(xb, training=False), tf.float64) / temperature
            with tf.GradientTape() as tape:
                s = tf.cast(student(xb, training=True),
                            tf.float64) / temperature
                p = tf.nn.softmax(t)
                kl = tf.reduce_sum(
                    p * (tf.math.log(p) - tf.nn.log_softmax(s)), -1)
                soft = tf.reduce_sum(kl * temperature**2 * wb) / len(xb)
                mask = yb >= 0
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=np.where(mask, yb, 0),
                    logits=s * temperature)
                hard = tf.reduce_sum(ce * mask * wb) / max(mask.sum(), 1)
                loss = alpha * hard + (1 - alpha) * soft
            grads = tape.gradient(loss, variables)
            for v, g in zip(variables, grads):
                v.assign(v - lr * tf.cast(g, tf.float32))
    return [v.numpy() for v in variables]


def test_fit_matches_independent_gradient_tape_loop():
    x, y, w = make_data()
    teacher, student = make_models()
    init = [v.numpy() for v in student.weights]
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), alpha=0.3,
                      temperature=2.0)
    distiller.fit(x, y, sample_weight=w, batch_size=16, epochs=2,
                  shuffle=False, verbose=0)
    got = [v.numpy() for v in student.weights]

    _, ref_student = make_models()
    for v, value in zip(ref_student.weights, init):
        v.assign(value)
    want = reference_weights(teacher, ref_student, x, y, w, 16, 2, 0.1, 0.3,
                             2.0)
    assert not np.allclose(got[0], init[0])
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, atol=1e-5)


def test_history_has_losses_and_metrics():
    x, y, _ = make_data()
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", metrics=["sparse_categorical_accuracy"])
    history = distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert set(history.history) == {
        "loss", "student_loss", "distillation_loss",
        "sparse_categorical_accuracy"}
    results = distiller.evaluate(x, y, return_dict=True, verbose=0)
    # Accuracy on labeled examples only, against NumPy.
    mask = y >= 0
    pred = np.argmax(student.predict(x, verbose=0), -1)
    assert results["sparse_categorical_accuracy"] == pytest.approx(
        (pred[mask] == y[mask]).mean(), abs=1e-6)
    np.testing.assert_allclose(
        results["loss"],
        0.1 * results["student_loss"] + 0.9 * results["distillation_loss"],
        rtol=1e-5)


def test_unlabeled_only_with_alpha_one_leaves_weights_unchanged():
    x, y, _ = make_data()
    teacher, student = make_models()
    before = [v.numpy() for v in student.weights]
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer=keras.optimizers.Adam(0.1), alpha=1.0)
    history = distiller.fit(x, np.full_like(y, -1), batch_size=16, epochs=2,
                            verbose=0)
    for b, a in zip(before, student.weights):
        np.testing.assert_array_equal(b, a.numpy())
    assert history.history["student_loss"] == [0.0, 0.0]


def test_alpha_zero_ignores_labels():
    x, y, _ = make_data(unlabeled_every=1000)
    results = []
    for labels in (y, (y + 1) % NUM_CLASSES):
        teacher, student = make_models()
        distiller = kd_keras.Distiller(teacher=teacher, student=student)
        distiller.compile(optimizer=keras.optimizers.Adam(0.05), alpha=0.0)
        distiller.fit(x, labels, batch_size=16, epochs=2, shuffle=False,
                      verbose=0)
        results.append([v.numpy() for v in student.weights])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_cached_logits_in_targets_equal_online_teacher():
    x, y, _ = make_data()
    teacher, student = make_models()
    init = [v.numpy() for v in student.weights]
    online = kd_keras.Distiller(teacher=teacher, student=student)
    online.compile(optimizer=keras.optimizers.SGD(0.1))
    online.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    want = [v.numpy() for v in student.weights]

    logits = teacher.predict(x, verbose=0)
    _, student2 = make_models()
    for v, value in zip(student2.weights, init):
        v.assign(value)
    offline = kd_keras.Distiller(teacher=None, student=student2)
    offline.compile(optimizer=keras.optimizers.SGD(0.1))
    ds = tf.data.Dataset.from_tensor_slices(
        (x, {"labels": y, "teacher_logits": logits})).batch(16)
    offline.fit(ds, epochs=1, verbose=0)
    for a, b in zip(want, student2.weights):
        np.testing.assert_allclose(a, b.numpy(), atol=1e-6)


def test_bad_inputs_fail_before_training():
    teacher, student = make_models(student_classes=3)
    with pytest.raises(ValueError, match=r"\(None, 4\).*\(None, 3\)"):
        kd_keras.Distiller(teacher=teacher, student=student)
    teacher, student = make_models()
    with pytest.raises(UsageError, match="^student: is the teacher itself"):
        kd_keras.Distiller(teacher=teacher, student=teacher)
    shared = keras.Sequential([teacher.layers[0], keras.layers.Dense(4)])
    with pytest.raises(UsageError, match=r"^student: shares the weight .* with the teacher"):
        kd_keras.Distiller(teacher=teacher, student=shared)
    assert teacher.layers[0].trainable  # refused before the teacher was frozen
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    for kwargs, match in (
            ({"alpha": 1.5}, r"^alpha: must be in \[0, 1\], got 1.5$"),
            ({"alpha": -0.1}, r"^alpha: must be in"),
            ({"temperature": 0}, r"^temperature: must be in \[0.01, 100\], got 0$"),
            ({"temperature": -2.0}, r"^temperature: must be in \[0.01, 100\]"),
            ({"temperature": 1e-300}, r"^temperature: must be in \[0.01, 100\], got 1e-300$"),
            ({"temperature": 1e300}, r"^temperature: must be in \[0.01, 100\], got 1e\+300$"),
            ({"temperature": {"type": [1]}}, r"^temperature: unknown schedule \[1\]"),
            ({"temperature": {"type": "linear", 3: 4}}, r"^temperature: bad arguments for "
                                                        r"a linear schedule \['3'\]"),
            ({"temperature": {"type": "linear", "start": 10 ** 400, "end": 1}},
             r"^temperature: linear: start: expected a finite number"),
            ({"loss": "mse"}, r"^loss: Distiller.compile takes "
                              r"student_loss_fn and distillation_loss_fn"),
            ({"weighted_metrics": ["acc"]}, r"^weighted_metrics: "),
            ({"distillation_loss_fn": "kll"},
             r"^distillation_loss_fn: unknown loss 'kll'"),
            ({"student_loss_fn": "sparse_categorical_crossentropy"},
             r"^student_loss_fn: expected a function \(labels, student_logits\)"),
            ({"student_loss_fn": keras.losses.SparseCategoricalCrossentropy()},
             r"^student_loss_fn: SparseCategoricalCrossentropy\(from_logits=False\) reads "
             r"probabilities, but the student gives logits; pass from_logits=True$"),
            ({"student_loss_fn": keras.losses.sparse_categorical_crossentropy},
             r"^student_loss_fn: keras.losses.sparse_categorical_crossentropy reads "
             r"probabilities unless called with from_logits=True")):
        with pytest.raises(UsageError, match=match):
            distiller.compile(**kwargs)
    distiller.compile(optimizer="sgd")
    x, y, _ = make_data()
    before = [v.numpy() for v in student.weights]
    for bad in (4, -2):
        labels = y.copy()
        labels[5] = bad
        with pytest.raises(UsageError, match=rf"^y: label {bad} \(example 5\) is out of "
                                             r"range: labels must be -1 \(unlabeled\) or in \[0, 3\]$"):
            distiller.fit(x, labels, epochs=1, verbose=0)
        ds = tf.data.Dataset.from_tensor_slices((x, labels)).batch(64)
        with pytest.raises(UsageError, match=rf"^y: label {bad} is out of range: labels "
                                             r"must be -1 \(unlabeled\) or in \[0, 3\]$"):
            distiller.fit(ds, epochs=1, verbose=0)
    # Labels that are not class ids: a fraction, one-hot rows, none at all.
    with pytest.raises(UsageError, match=r"^y: label -?0.5 \(example 0\) is not a whole number"):
        distiller.fit(x, y + 0.5, epochs=1, verbose=0)
    # In a dataset they were cut to class ids: 1.5 trained as 1.
    for fraction, shown in ((0.5, "0.5"), (np.nan, "nan")):
        ds = tf.data.Dataset.from_tensor_slices((x, np.where(np.arange(len(y)) == 7, fraction,
                                                             y).astype("float32"))).batch(64)
        with pytest.raises(UsageError, match=rf"^y: label {shown} is not a whole number: "
                                             r"labels are integer class ids \(-1 = unlabeled\)$"):
            distiller.fit(ds, epochs=1, verbose=0)
    with pytest.raises(UsageError, match=r"^y: labels of shape \(\d+, 4\) look one-hot"):
        distiller.fit(x, np.eye(4, dtype="float32")[y], epochs=1, verbose=0)
    with pytest.raises(UsageError, match=r"^y: array inputs need labels"):
        distiller.fit(x, epochs=1, verbose=0)
    with pytest.raises(UsageError, match=r"^y: array inputs need labels"):
        distiller.evaluate(x, verbose=0)
    distiller.fit(x, y.astype("float32"), epochs=0, verbose=0)  # whole floats are ids
    for b, a in zip(before, student.weights):
        np.testing.assert_array_equal(b, a.numpy())


def test_non_finite_teacher_logits_stop_training():
    x, y, _ = make_data()
    teacher, student = make_models()
    teacher.layers[-1].bias.assign(np.array([np.nan, 0, 0, 0], "float32"))
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="sgd")
    with pytest.raises(FloatingPointError, match="non-finite teacher logits"):
        distiller.fit(x, y, epochs=1, verbose=0)


def test_config_round_trip_and_student_saves_alone(tmp_path):
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", alpha=0.25, temperature=4.0,
                      distillation_loss_fn=kd_keras.losses.LogitMSE())
    x, y, _ = make_data()
    distiller.fit(x, y, epochs=1, verbose=0)
    clone = kd_keras.Distiller.from_config(distiller.get_config())
    assert clone.student.count_params() == student.count_params()
    assert clone.teacher.count_params() == teacher.count_params()

    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.alpha == 0.25 and loaded.temperature == 4.0
    assert isinstance(loaded.distillation_loss_fn, kd_keras.losses.LogitMSE)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               student.predict(x, verbose=0), atol=1e-6)

    path = tmp_path / "student.keras"
    distiller.student.save(path)
    alone = keras.saving.load_model(path, safe_mode=True)
    assert alone.count_params() == student.count_params()
    assert "teacher" not in [layer.name for layer in alone.layers]
    np.testing.assert_allclose(alone.predict(x, verbose=0),
                               student.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("loss", [
    kd_keras.losses.soft_target_kl, kd_keras.losses.soft_target_cross_entropy,
    kd_keras.losses.logit_mse, kd_keras.losses.cosine_distance])
def test_a_distiller_compiled_with_a_loss_function_saves_and_loads(tmp_path, loss):
    # Saved as {"module": "builtins", ...}: the file was written, and then
    # could not be loaded ("Could not locate function").
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="sgd", distillation_loss_fn=loss)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.distillation_loss_fn is loss


@pytest.mark.parametrize("loss", [
    kd_keras.losses.soft_target_kl, kd_keras.losses.SoftTargetKL(),
    kd_keras.losses.soft_target_cross_entropy,
    pytest.param(kd_keras.losses.SoftTargetCrossEntropy(temperature=2.0), marks=pytest.mark.slow),
    kd_keras.losses.logit_mse, pytest.param(kd_keras.losses.LogitMSE(), marks=pytest.mark.slow),
    kd_keras.losses.cosine_distance,
    pytest.param(kd_keras.losses.CosineDistance(), marks=pytest.mark.slow),
    "logit_mse"])
def test_every_loss_is_accepted(loss):
    x, y, _ = make_data()
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="adam", distillation_loss_fn=loss, alpha=0.0)
    history = distiller.fit(x, y, epochs=1, verbose=0)
    t = teacher.predict(x, verbose=0)
    s = student.predict(x, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = distiller.evaluate(x, y, return_dict=True, verbose=0)
    fn = kd_keras.losses.get(loss)
    if isinstance(fn, kd_keras.losses.DistillationLoss):
        want = fn.per_example(t, s, 3.0)
    else:
        want = fn(t, s, temperature=3.0)
    np.testing.assert_allclose(after["distillation_loss"],
                               np.mean(keras.ops.convert_to_numpy(want)),
                               rtol=1e-4)


@pytest.mark.slow
def test_a_custom_loss_without_get_config_is_taken_as_student_loss():
    class Plain(keras.losses.Loss):  # no get_config: a custom loss may have none
        def call(self, y_true, y_pred):
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred,
                                                                from_logits=True)

        def get_config(self):
            raise NotImplementedError

    teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    student = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile(optimizer="sgd", student_loss_fn=Plain())
    history = distiller.fit(np.ones((4, 3), "float32"), np.zeros(4, "int32"), verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_jit_compile_gives_the_same_weights():
    x, y, w = make_data()
    weights = []
    for jit in (False, True):
        teacher, student = make_models()
        distiller = kd_keras.Distiller(teacher=teacher, student=student)
        distiller.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
        distiller.fit(x, y, sample_weight=w, batch_size=16, epochs=1,
                      shuffle=False, verbose=0)
        assert distiller.jit_compile == jit
        weights.append([v.numpy() for v in student.weights])
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains(policy):
    x, y, _ = make_data()
    keras.config.set_dtype_policy(policy)
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01))
    if policy == "mixed_float16":
        assert isinstance(distiller.optimizer,
                          keras.optimizers.LossScaleOptimizer)
    before = distiller.evaluate(x, y, return_dict=True, verbose=0)["loss"]
    history = distiller.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    after = distiller.evaluate(x, y, return_dict=True, verbose=0)["loss"]
    assert after < before
    assert student.layers[-1].kernel.dtype == "float32"


def test_non_finite_loss_stops_before_the_update():
    x, y, _ = make_data()
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="sgd", distillation_loss_fn=(
        lambda t, s: keras.ops.log(keras.ops.zeros_like(t[:, 0]) - 1.0)))
    before = [v.numpy() for v in student.weights]
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        distiller.fit(x, y, epochs=1, verbose=0)
    for b, a in zip(before, student.weights):
        np.testing.assert_array_equal(b, a.numpy())


def np_softmax64(z, temperature):
    z = np.asarray(z, np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


def np_soft_kl(t, s, temperature):
    """KL(softmax(t/T) || softmax(s/T)) per example, float64, unscaled."""
    p, q = np_softmax64(t, temperature), np_softmax64(s, temperature)
    return (p * np.log(p / q)).sum(-1)


def np_soft_ce(t, s, temperature):
    p, q = np_softmax64(t, temperature), np_softmax64(s, temperature)
    return -(p * np.log(q)).sum(-1)


def distillation_loss_of(loss, temperature=3.0):
    """The evaluated distillation loss of `loss`, with the logits it saw."""
    x, y, _ = make_data()
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    distiller.compile(optimizer="sgd", distillation_loss_fn=loss,
                      temperature=temperature)
    got = distiller.evaluate(x, y, batch_size=16, return_dict=True,
                             verbose=0)["distillation_loss"]
    return got, teacher.predict(x, verbose=0), student.predict(x, verbose=0)


@pytest.mark.parametrize("loss", [
    keras.losses.KLDivergence(), keras.losses.kl_divergence,
    "kl_divergence"])
def test_keras_kl_divergence_sees_softened_probabilities(loss):
    got, t, s = distillation_loss_of(loss)
    want = np.mean(np_soft_kl(t, s, 3.0)) * 3.0**2
    # Keras clips probabilities at 1e-7; these are all far above.
    assert np_softmax64(t, 3.0).min() > 1e-3
    assert np_softmax64(s, 3.0).min() > 1e-3
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("loss", [
    keras.losses.CategoricalCrossentropy(),
    keras.losses.CategoricalCrossentropy(from_logits=True),
    "categorical_crossentropy"])
def test_keras_categorical_crossentropy_sees_teacher_probabilities(loss):
    got, t, s = distillation_loss_of(loss, temperature=2.0)
    want = np.mean(np_soft_ce(t, s, 2.0)) * 2.0**2
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("loss", [
    keras.losses.MeanSquaredError(), keras.losses.MeanAbsoluteError()])
def test_keras_value_losses_see_raw_logits(loss):
    got, t, s = distillation_loss_of(loss)
    diff = t.astype(np.float64) - s
    want = np.mean(diff**2 if isinstance(
        loss, keras.losses.MeanSquaredError) else np.abs(diff))
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("loss, name", [
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
     "SparseCategoricalCrossentropy"),
    (keras.losses.BinaryCrossentropy(), "BinaryCrossentropy"),
    (keras.losses.Hinge(), "Hinge"),
    (keras.losses.poisson, "poisson")])
def test_keras_losses_of_labels_are_refused(loss, name):
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    with pytest.raises(UsageError, match=(
            rf"^distillation_loss_fn: keras\.losses\.{name} .*; pass "
            r"keras\.losses\.KLDivergence\(\)")):
        distiller.compile(optimizer="sgd", distillation_loss_fn=loss)


@pytest.mark.slow
def test_regularisation_counts_in_training_evaluate_and_val_loss():
    x, y, w = make_data()
    keras.utils.set_random_seed(4)
    teacher, _ = make_models()
    l2 = 0.05
    student = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh",
                           kernel_regularizer=keras.regularizers.L2(l2)),
        keras.layers.Dense(NUM_CLASSES,
                           kernel_regularizer=keras.regularizers.L2(l2))])
    distiller = kd_keras.Distiller(teacher=teacher, student=student)
    alpha, temperature = 0.3, 2.0
    # A zero learning rate keeps the weights, so every loss below is the
    # loss of the same weights.
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), alpha=alpha,
                      temperature=temperature)

    t = teacher.predict(x, verbose=0).astype(np.float64)
    s = student.predict(x, verbose=0).astype(np.float64)
    labeled = y >= 0
    log_q = np.log(np_softmax64(s, 1.0))
    hard = -log_q[labeled, y[labeled]].mean()
    soft = np.mean(np_soft_kl(t, s, temperature)) * temperature**2
    reg = sum(l2 * np.sum(np.square(layer.kernel.numpy().astype(np.float64)))
              for layer in student.layers)
    want = alpha * hard + (1 - alpha) * soft + reg
    assert reg > 0.1 * want  # Large enough to be seen.

    evaluated = distiller.evaluate(x, y, batch_size=len(x), return_dict=True,
                                   verbose=0)
    np.testing.assert_allclose(evaluated["loss"], want, rtol=1e-5)
    history = distiller.fit(x, y, batch_size=len(x), epochs=1, verbose=0,
                            validation_data=(x, y))
    np.testing.assert_allclose(history.history["loss"][0], want, rtol=1e-5)
    np.testing.assert_allclose(history.history["val_loss"][0], want,
                               rtol=1e-5)


def test_class_weight_with_arrays_weighs_the_labeled_rows_and_elsewhere_is_one_line():
    import tensorflow as tf

    from kd_keras.errors import UsageError

    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    student = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    distiller = kd_keras.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), alpha=1.0)
    x = np.random.default_rng(0).normal(size=(6, 3)).astype("float32")
    y = np.array([0, 1, -1, 0, 1, -1])
    logged = distiller.fit(x, y, class_weight={0: 1.0, 1: 3.0}, batch_size=6, epochs=1,
                           verbose=0).history["student_loss"][0]
    logits = np.asarray(student(x), np.float64)
    ce = np.log(np.exp(logits).sum(-1)) - logits[np.arange(6), np.maximum(y, 0)]
    weight = np.array([1.0, 3.0, 1.0, 1.0, 3.0, 1.0])  # unlabeled rows keep 1
    labeled = y >= 0
    assert logged == pytest.approx((ce * weight)[labeled].sum() / labeled.sum(), rel=1e-5)
    for data in (dict(x=tf.data.Dataset.from_tensor_slices((x, y)).batch(3)),
                 dict(x=x, y={"labels": y, "teacher_logits": logits.astype("float32")})):
        with pytest.raises(UsageError, match="^class_weight: taken with array labels only"):
            distiller.fit(**data, class_weight={0: 1.0, 1: 3.0}, verbose=0)
