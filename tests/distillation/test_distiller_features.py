"""`Distiller` with feature terms: training equals an independent
GradientTape loop (with schedules), the student runs once per step,
projections stay out of the student, hooks and cached features."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras
from kd_keras.distillation import feature_losses
from kd_keras.distillation.schedules import Linear
from kd_keras.distillation.schedules import Step

BATCH, EPOCHS, LR = 16, 2, 0.1


def make_models(seed=0):
    keras.utils.set_random_seed(seed)
    teacher = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(16, activation="relu", name="t_hidden"),
        keras.layers.Dense(4, name="t_logits")], name="teacher")
    student = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="tanh", name="s_hidden"),
        keras.layers.Dense(4, name="s_logits")], name="student")
    return teacher, student


def make_data(n=50, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = rng.integers(0, 4, size=n).astype("int32")
    y[::3] = -1
    w = rng.uniform(0.5, 2.0, size=n).astype("float32")
    return x, y, w


def terms(mse_weight=0.5):
    return [
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss="mse",
                                     weight=mse_weight),
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss="cosine",
                                     weight=0.3, name="cos")]


def reference(teacher, params, x, y, w, alpha, mse_weight, temperature=2.0):
    """An independent float64 GradientTape loop of the documented loss;
    `alpha` and `mse_weight` are functions of the progress k / steps."""
    params = [tf.Variable(np.asarray(p, np.float64)) for p in params]
    w1, b1, w2, b2, p1, c1, p2, c2 = params
    steps = EPOCHS * -(-len(x) // BATCH)
    k = 0
    for _ in range(EPOCHS):
        for start in range(0, len(x), BATCH):
            xb = tf.constant(x[start:start + BATCH], tf.float64)
            yb, wb = y[start:start + BATCH], w[start:start + BATCH]
            t_hidden = tf.nn.relu(xb @ teacher.layers[0].kernel.numpy().astype(
                np.float64) + teacher.layers[0].bias.numpy())
            t = tf.cast(teacher(xb, training=False), tf.float64) / temperature
            a, m = alpha(k / steps), mse_weight(k / steps)
            with tf.GradientTape() as tape:
                h = tf.tanh(xb @ w1 + b1)
                s = (h @ w2 + b2) / temperature
                p = tf.nn.softmax(t)
                kl = tf.reduce_sum(p * (tf.math.log(p) - tf.nn.log_softmax(s)),
                                   -1)
                soft = tf.reduce_sum(kl * temperature**2 * wb) / len(xb)
                mask = yb >= 0
                ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=np.where(mask, yb, 0), logits=s * temperature)
                hard = tf.reduce_sum(ce * mask * wb) / max(mask.sum(), 1)
                mse = tf.reduce_mean((h @ p1 + c1 - t_hidden) ** 2, -1)
                sc = h @ p2 + c2
                cos = 1 - tf.reduce_sum(sc * t_hidden, -1) / (
                    tf.norm(sc, axis=-1) * tf.norm(t_hidden, axis=-1))
                loss = (a * hard + (1 - a) * soft
                        + m * tf.reduce_sum(mse * wb) / len(xb)
                        + 0.3 * tf.reduce_sum(cos * wb) / len(xb))
            for v, g in zip(params, tape.gradient(loss, params)):
                v.assign_sub(LR * g)
            k += 1
    return [v.numpy() for v in params]


def run(alpha, mse_weight, x, y, w):
    teacher, student = make_models()
    distiller = kd_keras.Distiller(teacher, student,
                                   features=terms(mse_weight))
    distiller.compile(optimizer=keras.optimizers.SGD(LR), alpha=alpha,
                      temperature=2.0)
    init = [v.numpy() for v in student.weights + [
        w for p in distiller.projections for w in p.weights]]
    history = distiller.fit(x, y, sample_weight=w, batch_size=BATCH,
                            epochs=EPOCHS, shuffle=False, verbose=0)
    got = [v.numpy() for v in student.weights + [
        w for p in distiller.projections for w in p.weights]]
    return teacher, init, got, history.history


def test_fit_with_feature_terms_equals_gradient_tape_loop():
    x, y, w = make_data()
    teacher, init, got, history = run(0.3, 0.5, x, y, w)
    want = reference(teacher, init, x, y, w, lambda p: 0.3, lambda p: 0.5)
    assert not np.allclose(got[0], init[0])
    assert not np.allclose(got[4], init[4])  # The projections train too.
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, atol=1e-5)
    assert set(history) == {"loss", "student_loss", "distillation_loss",
                            "s_hidden_mse", "cos"}


def test_schedules_change_the_values_used_inside_train_step():
    x, y, w = make_data()
    alpha, mse_weight = Linear(0.8, 0.0), Step([0.0, 2.0], [0.5])
    teacher, init, got, history = run(alpha, mse_weight, x, y, w)
    want = reference(teacher, init, x, y, w, lambda p: 0.8 * (1 - p),
                     lambda p: 0.0 if p < 0.5 else 2.0)
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, atol=1e-5)
    # Constant schedules would give other weights.
    _, _, constant, _ = run(0.8, 0.0, x, y, w)
    assert not np.allclose(constant[0], got[0], atol=1e-4)
    # Logged: the value of the epoch's last step (steps 3 and 7 of 8).
    np.testing.assert_allclose(history["alpha"], [0.8 * 5 / 8, 0.8 / 8],
                               rtol=1e-6)
    assert history["s_hidden_mse_weight"] == [0.0, 2.0]
    assert "cos_weight" not in history  # Constant: not logged.


class CountCalls(keras.layers.Layer):
    """Identity that counts its executions in a variable."""

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer="zeros",
                                     trainable=False, name="calls")

    def call(self, x):
        with tf.control_dependencies([self.calls.assign_add(1.0)]):
            return tf.identity(x)


def test_student_and_teacher_run_once_per_step():
    teacher = keras.Sequential([
        keras.Input((6,)), CountCalls(name="count"),
        keras.layers.Dense(16, name="t_hidden"), keras.layers.Dense(4)])
    student = keras.Sequential([
        keras.Input((6,)), CountCalls(name="count"),
        keras.layers.Dense(8, name="s_hidden"), keras.layers.Dense(4)])
    distiller = kd_keras.Distiller(teacher, student, features=[
        kd_keras.FeatureDistillation("t_hidden", "s_hidden"),
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss="cosine")])
    distiller.compile(optimizer="sgd")
    x, y, _ = make_data(n=40)
    distiller.fit(x, y, batch_size=8, epochs=2, verbose=0)
    steps = 2 * 5
    assert float(student.get_layer("count").calls.numpy()) == steps
    assert float(teacher.get_layer("count").calls.numpy()) == steps


@pytest.mark.slow
def test_projections_stay_out_of_the_saved_student(tmp_path):
    teacher, student = make_models()
    _, bare = make_models()
    distiller = kd_keras.Distiller(teacher, student, features=terms())
    distiller.compile(optimizer="adam")
    x, y, _ = make_data()
    distiller.fit(x, y, epochs=1, verbose=0)
    assert len(distiller.projections) == 2
    assert len(distiller.trainable_weights) == (
        len(student.trainable_weights) + 4)
    assert distiller.student.count_params() == bare.count_params()
    path = tmp_path / "student.keras"
    distiller.student.save(path)
    code = (
        "import json, sys, keras\n"
        f"m = keras.saving.load_model({str(path)!r}, safe_mode=True)\n"
        "assert not any(k.startswith('kd_keras') for k in sys.modules)\n"
        "print(json.dumps([len(m.weights), m.count_params(),"
        " [l.name for l in m.layers]]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, timeout=300)
    weights, params, names = json.loads(out.stdout.strip().splitlines()[-1])
    assert weights == len(bare.weights)
    assert params == bare.count_params()
    assert names == ["s_hidden", "s_logits"]


class HookedStudent(keras.Model):
    """A subclassed student declaring its features."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.out = keras.layers.Dense(4)

    def call(self, x, training=False):
        return self.out(self.hidden(x))

    def call_with_features(self, x, training=None):
        h = self.hidden(x)
        return self.out(h), {"hidden": h}


def test_subclassed_student_with_the_hook_equals_sequential():
    x, y, w = make_data()
    teacher, student = make_models()
    hooked = HookedStudent()
    hooked(x[:1])
    student_init = student.get_weights()
    hooked.set_weights(student_init)
    sequential = kd_keras.Distiller(teacher, student, features=[
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", name="f")])
    sequential.compile(optimizer=keras.optimizers.SGD(LR))
    projection_init = sequential.projections[0].get_weights()
    sequential.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=1,
                   shuffle=False, verbose=0)

    distiller = kd_keras.Distiller(teacher, hooked, features=[
        kd_keras.FeatureDistillation("t_hidden", "hidden", name="f")])
    distiller.compile(optimizer=keras.optimizers.SGD(LR))
    assert not distiller.projections[0].built  # Widths known at a step.
    distiller.fit(x[:1], y[:1], epochs=1, verbose=0)
    hooked.set_weights(student_init)
    distiller.projections[0].set_weights(projection_init)
    distiller.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=1,
                  shuffle=False, verbose=0)
    for a, b in zip(student.get_weights() + sequential.projections[0]
                    .get_weights(), hooked.get_weights()
                    + distiller.projections[0].get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("features, message", [
    # One term not in a list: "TypeError: 'FeatureDistillation' object is not iterable".
    (kd_keras.FeatureDistillation("t_hidden", "s_hidden"),
     "features: expected a list of kd_keras.FeatureDistillation, got one term; wrap it in a list"),
    ("t_hidden", "features: expected a list of kd_keras.FeatureDistillation, got str"),
    (["t_hidden"], "features[0]: expected a kd_keras.FeatureDistillation, got str"),
])
def test_features_that_are_not_a_list_of_terms_are_one_line(features, message):
    teacher, student = make_models()
    with pytest.raises(kd_keras.errors.UsageError) as info:
        kd_keras.Distiller(teacher, student, features=features)
    assert str(info.value) == message


def test_bad_hook_key_names_close_matches():
    teacher, _ = make_models()
    hooked = HookedStudent()
    hooked(np.zeros((1, 6), "float32"))
    distiller = kd_keras.Distiller(teacher, hooked, features=[
        kd_keras.FeatureDistillation("t_hidden", "hiden")])
    distiller.compile(optimizer="sgd")
    x, y, _ = make_data()
    with pytest.raises(kd_keras.errors.UsageError,
                       match=r"^student_layer: .*returned no feature 'hiden' "
                             r"\(close matches: hidden\)$"):
        distiller.fit(x, y, epochs=1, verbose=0)


def test_cached_teacher_features_equal_online_training():
    x, y, w = make_data()
    teacher, student = make_models()
    init = student.get_weights()
    online = kd_keras.Distiller(teacher, student, features=terms())
    online.compile(optimizer=keras.optimizers.SGD(LR))
    projections = [v.numpy() for p in online.projections for v in p.weights]
    online.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=1,
               shuffle=False, verbose=0)

    hidden = keras.Model(teacher.inputs, teacher.get_layer("t_hidden").output)
    targets = {"labels": y, "teacher_logits": teacher.predict(x, verbose=0),
               "teacher_features": {"t_hidden": hidden.predict(x, verbose=0)}}
    _, student2 = make_models()
    student2.set_weights(init)
    offline = kd_keras.Distiller(None, student2, features=terms())
    offline.compile(optimizer=keras.optimizers.SGD(LR))
    ds = tf.data.Dataset.from_tensor_slices((x, targets, w)).batch(BATCH)
    offline.fit(ds.take(1), epochs=1, verbose=0)  # builds the projections
    student2.set_weights(init)
    for v, value in zip([v for p in offline.projections for v in p.weights],
                        projections):
        v.assign(value)
    offline.fit(ds, epochs=1, verbose=0)
    for a, b in zip(student.weights, student2.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_float16_cached_features_train_as_their_float32_values():
    """Teacher features held in float16 (`distill.feature_dtype: float16`)
    train exactly as float32 targets with the same (rounded) values: the
    terms cast them to float32, nothing else changes. The float32 path is
    checked against the float64 loop above."""
    x, y, w = make_data()
    teacher, student = make_models()
    init = student.get_weights()
    hidden = keras.Model(teacher.inputs, teacher.get_layer("t_hidden").output)
    half = hidden.predict(x, verbose=0).astype(np.float16)
    assert np.abs(half.astype(np.float32) - hidden.predict(x, verbose=0)).max() > 0
    logits = teacher.predict(x, verbose=0)
    weights = []
    for values in (half, half.astype(np.float32)):
        student.set_weights(init)
        keras.utils.set_random_seed(5)  # the projections' initial weights
        distiller = kd_keras.Distiller(None, student, features=terms())
        distiller.compile(optimizer=keras.optimizers.SGD(LR))
        targets = {"labels": y, "teacher_logits": logits, "teacher_features": {"t_hidden": values}}
        ds = tf.data.Dataset.from_tensor_slices((x, targets, w)).batch(BATCH)
        assert ds.element_spec[1]["teacher_features"]["t_hidden"].dtype == values.dtype
        distiller.fit(ds, epochs=EPOCHS, verbose=0)
        weights.append([v.numpy() for v in student.weights])
    assert any(np.abs(a - b).max() > 1e-3 for a, b in zip(weights[0], init))  # it trained
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_distiller_with_terms_and_schedules_saves_and_loads(tmp_path):
    """`keras.saving` round trip of a Distiller with feature terms (one with
    a scheduled weight) and scheduled alpha and temperature, part-way
    through training: the loaded one has the same terms, schedules,
    weights (projections too) and optimizer state, so one more epoch on
    each gives the same loss and the same student."""
    teacher, student = make_models()
    x, y, w = make_data()
    features = [kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss="mse",
                                             weight=Step([0.5, 0.1], [0.5])),
                kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss="cosine",
                                             weight=0.3, name="cos")]
    distiller = kd_keras.Distiller(teacher=teacher, student=student, features=features)
    distiller.compile(optimizer=keras.optimizers.SGD(LR), alpha=Linear(0.9, 0.1),
                      temperature=Linear(4.0, 2.0))
    distiller.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0)
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)

    assert [t.get_config() for t in loaded.features] == [t.get_config() for t in features]
    assert isinstance(loaded.alpha, Linear) and loaded.alpha.get_config() == {
        "start": 0.9, "end": 0.1}
    assert loaded.temperature.get_config() == {"start": 4.0, "end": 2.0}
    assert isinstance(loaded.features[0].weight, Step)
    assert len(loaded.weights) == len(distiller.weights)  # the projection included
    for a, b in zip(loaded.weights, distiller.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    logs = [m.fit(x, y, sample_weight=w, batch_size=BATCH, epochs=1, shuffle=False,
                  verbose=0).history for m in (distiller, loaded)]
    np.testing.assert_allclose(logs[1]["loss"], logs[0]["loss"], rtol=1e-5)
    np.testing.assert_allclose(loaded.student.predict(x, verbose=0),
                               distiller.student.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("loss", [feature_losses.feature_mse, feature_losses.feature_cosine])
def test_a_term_with_a_loss_function_saves_and_loads(tmp_path, loss):
    # The file was written, and then could not be loaded ("Could not locate
    # function"): the functions were not registered for saving.
    teacher, student = make_models()
    term = kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss=loss)
    distiller = kd_keras.Distiller(teacher=teacher, student=student, features=[term])
    distiller.compile(optimizer="sgd")
    path = tmp_path / "distiller.keras"
    distiller.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.features[0].loss is loss


def test_a_schedule_given_as_a_dict_trains_as_the_schedule_object():
    """The guide's `weight: {"type": "linear", ...}` form (the config's too)."""
    x, y, w = make_data()
    histories = []
    for weight in ({"type": "linear", "start": 1.0, "end": 0.0}, Linear(1.0, 0.0)):
        teacher, student = make_models()
        distiller = kd_keras.Distiller(teacher, student, features=[
            kd_keras.FeatureDistillation("t_hidden", "s_hidden", weight=weight)])
        distiller.compile(optimizer=keras.optimizers.SGD(LR))
        histories.append(distiller.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
                                       verbose=0).history)
    assert histories[0] == histories[1]
    assert histories[0]["s_hidden_mse_weight"][0] > histories[0]["s_hidden_mse_weight"][1]


def test_a_lambda_loss_names_its_term_and_projection_validly():
    x, y, _ = make_data()
    teacher, student = make_models()
    term = kd_keras.FeatureDistillation(
        "t_hidden", "s_hidden", loss=lambda t, s: tf.reduce_mean(tf.abs(t - s), -1))
    assert term.name == "s_hidden_lambda"
    distiller = kd_keras.Distiller(teacher, student, features=[term])
    distiller.compile(optimizer="sgd")
    assert "s_hidden_lambda" in distiller.fit(x, y, epochs=1, verbose=0).history
    with pytest.raises(kd_keras.errors.UsageError, match=r"^FeatureDistillation.name: "):
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", name="a/b")


@pytest.mark.parametrize("name, metrics, message", [
    ("val_cos", None, r"^features: the name 'val_cos' is taken by the Distiller's own logs"),
    ("h_weight", None, r"^features: the name 'h_weight' is taken"),
    ("acc", ["acc"], r"^metrics: 'acc' is also the name of a feature term"),
])
def test_a_term_name_that_another_log_uses_is_refused(name, metrics, message):
    teacher, student = make_models()
    features = [kd_keras.FeatureDistillation("t_hidden", "s_hidden", name="h", weight=Linear(
        1.0, 0.0)), kd_keras.FeatureDistillation("t_hidden", "s_hidden", loss="cosine",
                                                 name=name)]
    with pytest.raises(kd_keras.errors.UsageError, match=message):
        kd_keras.Distiller(teacher, student, features=features).compile(metrics=metrics)


def test_validation_logs_the_schedules_as_the_epochs_training_did():
    """Each epoch logs a schedule's value at its last training step, with or
    without validation data."""
    x, y, _ = make_data(n=32)
    logged = []
    for validation in (None, (x, y)):
        teacher, student = make_models()
        distiller = kd_keras.Distiller(teacher, student, features=[
            kd_keras.FeatureDistillation("t_hidden", "s_hidden", name="h",
                                         weight=Linear(1.0, 0.0))])
        distiller.compile(optimizer=keras.optimizers.SGD(LR), alpha=Linear(0.9, 0.1))
        logged.append(distiller.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False,
                                    validation_data=validation, verbose=0).history)
    steps = EPOCHS * 2  # 32 examples in batches of 16
    last = [(e + 1) * 2 - 1 for e in range(EPOCHS)]  # each epoch's last step
    np.testing.assert_allclose(logged[0]["alpha"], [0.9 - 0.8 * k / steps for k in last],
                               rtol=1e-6)
    for key in ("alpha", "h_weight"):
        assert logged[1][key] == logged[1][f"val_{key}"] == logged[0][key]


def test_projections_sized_by_a_batch_come_back_with_their_trained_weights(tmp_path):
    """A Distiller without a teacher (from a cache, as `kd-keras distill`
    runs it) sizes its projection on the first batch; a saved one loads it
    built, with the weights it trained, before any batch."""
    x, y, _ = make_data(n=16)
    rng = np.random.default_rng(3)
    targets = {"labels": y, "teacher_logits": rng.normal(size=(16, 4)).astype("float32"),
               "teacher_features": {"t_hidden": rng.normal(size=(16, 16)).astype("float32")}}
    data = tf.data.Dataset.from_tensor_slices((x, targets)).batch(BATCH)
    _, student = make_models()
    distiller = kd_keras.Distiller(None, student, features=[
        kd_keras.FeatureDistillation("t_hidden", "s_hidden")])
    distiller.compile(optimizer=keras.optimizers.SGD(LR))
    distiller.fit(data, epochs=2, verbose=0)
    trained = [np.asarray(v) for v in distiller.projections[0].weights]
    distiller.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    assert loaded.projections[0].built
    for a, b in zip(loaded.projections[0].weights, trained):
        np.testing.assert_array_equal(np.asarray(a), b)
    np.testing.assert_allclose(loaded.evaluate(data, verbose=0, return_dict=True)["s_hidden_mse"],
                               distiller.evaluate(data, verbose=0, return_dict=True)["s_hidden_mse"],
                               rtol=1e-6)


def test_a_loaded_distiller_evaluates_where_its_schedules_stood(tmp_path):
    teacher, student = make_models()
    x, y, _ = make_data()
    distiller = kd_keras.Distiller(teacher, student, features=[
        kd_keras.FeatureDistillation("t_hidden", "s_hidden", weight=Linear(1.0, 0.0))])
    distiller.compile(optimizer=keras.optimizers.SGD(LR), alpha=Linear(0.9, 0.1))
    history = distiller.fit(x, y, batch_size=BATCH, epochs=EPOCHS, verbose=0)
    distiller.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    scores = [m.evaluate(x, y, verbose=0, return_dict=True) for m in (distiller, loaded)]
    # Where the last step trained left it (the last epoch's logged value).
    last = history.history["alpha"][-1]
    steps = EPOCHS * -(-len(x) // BATCH)
    assert last == pytest.approx(0.9 + (0.1 - 0.9) * (steps - 1) / steps)
    assert scores[1]["alpha"] == pytest.approx(scores[0]["alpha"]) == pytest.approx(last)
    assert scores[1]["loss"] == pytest.approx(scores[0]["loss"], rel=1e-6)
