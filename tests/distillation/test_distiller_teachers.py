"""`Distiller(teacher=...)` takes what `kd_keras.teachers.load_teacher`
returns: in-graph teachers run in the graph, others (ONNX) through
`tf.numpy_function`, and both train the student as the same teacher given as
a `keras.Model` or as cached logits does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kd_keras
from kd_keras.errors import UsageError
from kd_keras.teachers import load_teacher
from kd_keras.teachers.base import KerasTeacher
from kd_keras.teachers.saved_model import SavedModelTeacher

FEATURES = 5
CLASSES = 4


def make_teacher(classes=CLASSES):
    keras.utils.set_random_seed(11)
    return keras.Sequential([
        keras.Input((FEATURES,), name="features"),
        keras.layers.Dense(12, activation="relu"),
        keras.layers.Dense(classes)])


def make_student(classes=CLASSES):
    keras.utils.set_random_seed(12)
    return keras.Sequential([
        keras.Input((FEATURES,)), keras.layers.Dense(6, activation="tanh"),
        keras.layers.Dense(classes)])


def make_data(n=40):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    y = rng.integers(0, CLASSES, size=n).astype("int32")
    y[::4] = -1
    return x, y


def to_onnx(model, path):
    import tf2onnx

    spec = (tf.TensorSpec([None, FEATURES], tf.float32, name="features"),)
    tf2onnx.convert.from_function(
        tf.function(lambda features: model(features)), input_signature=spec,
        opset=17, output_path=str(path))
    return str(path)


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory):
    return to_onnx(make_teacher(),
                   tmp_path_factory.mktemp("onnx") / "teacher.onnx")


def train(teacher, data=None, strategy=None, epochs=2):
    """Trains a fresh student; returns its weights and the history."""
    x, y = make_data()
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        distiller = kd_keras.Distiller(teacher=teacher, student=make_student())
        distiller.compile(optimizer=keras.optimizers.SGD(0.2), alpha=0.3,
                          temperature=2.0)
    if data is None:
        history = distiller.fit(x, y, batch_size=16, epochs=epochs,
                                shuffle=False, verbose=0)
    else:
        history = distiller.fit(data, epochs=epochs, shuffle=False,
                                verbose=0)
    return [v.numpy() for v in distiller.student.weights], history.history


def assert_same(got, want, atol=1e-5):
    (got_weights, got_history), (want_weights, want_history) = got, want
    initial = [v.numpy() for v in make_student().weights]
    assert max(np.abs(a - b).max() for a, b in zip(want_weights, initial)) \
        > 1e-2  # The runs really trained.
    for a, b in zip(got_weights, want_weights):
        np.testing.assert_allclose(a, b, atol=atol)
    for key in ("loss", "student_loss", "distillation_loss"):
        np.testing.assert_allclose(got_history[key], want_history[key],
                                   atol=atol)


@pytest.fixture(scope="module")
def with_keras_model():
    return train(make_teacher())


def test_keras_teacher_equals_its_keras_model(with_keras_model):
    teacher = load_teacher(make_teacher())
    assert isinstance(teacher, KerasTeacher) and teacher.in_graph
    assert_same(train(teacher), with_keras_model, atol=0)


def test_saved_model_teacher_equals_its_keras_model(with_keras_model,
                                                    tmp_path):
    make_teacher().export(str(tmp_path / "sm"), verbose=False)
    teacher = load_teacher(str(tmp_path / "sm"))
    assert isinstance(teacher, SavedModelTeacher) and teacher.in_graph
    assert_same(train(teacher), with_keras_model)


def test_kd_keras_export_loads_as_a_teacher(tmp_path):
    """`export_model`'s SavedModel (TF Serving layout) is a teacher, like a
    `model.export()` folder: its `serving_default` is also a restored
    function attribute, whose signature is the one to call."""
    model = make_teacher()
    report = kd_keras.export.export_model(model, tmp_path / "out", formats=("saved_model",),
                                          latency_runs=0, verbose=0)
    teacher = load_teacher(report["artifacts"][0]["path"], output_key="logits")
    x, _ = make_data()
    np.testing.assert_allclose(teacher.predict_on_batch(x), model.predict(x, verbose=0),
                               atol=1e-5)


def test_onnx_teacher_equals_its_keras_model_and_its_cache(
        with_keras_model, onnx_path, tmp_path):
    teacher = load_teacher(onnx_path)
    assert not teacher.in_graph
    online = train(teacher)
    assert_same(online, with_keras_model)

    x, y = make_data()
    cache = kd_keras.cache.cache_teacher_outputs(
        teacher, x, str(tmp_path / "cache"), batch_size=16, verbose=0)
    cached = train(None, cache.as_dataset(x, y, batch_size=16, shuffle=False))
    assert_same(online, cached, atol=1e-6)


@pytest.mark.slow
def test_onnx_teacher_under_mirrored_strategy(with_keras_model, onnx_path, mirrored_strategy):
    strategy = mirrored_strategy
    assert_same(train(load_teacher(onnx_path), strategy=strategy),
                with_keras_model)


def test_onnx_teacher_errors_are_one_line_usage_errors(onnx_path, tmp_path):
    teacher = load_teacher(onnx_path)
    x, y = make_data()
    distiller = kd_keras.Distiller(teacher=teacher, student=make_student())
    with pytest.raises(UsageError, match=r"^jit_compile: a OnnxTeacher .*"
                       r"kd_keras\.cache\.cache_teacher_outputs"):
        distiller.compile(optimizer="sgd", jit_compile=True)
    distiller.compile(optimizer="sgd")
    assert distiller.jit_compile is False
    kept = tmp_path / "distiller.keras"
    distiller.student.save(kept)  # A file of the user's at that path.
    before = kept.read_bytes()
    with pytest.raises(UsageError, match="^teacher: a OnnxTeacher cannot be "
                       "saved"):
        distiller.save(kept)
    assert kept.read_bytes() == before  # refused before Keras opened it
    distiller.student.save(tmp_path / "student.keras")  # The student can.

    # The ONNX teacher has 3 classes, the student 4: found when it runs.
    small = to_onnx(make_teacher(classes=3), tmp_path / "small.onnx")
    distiller = kd_keras.Distiller(teacher=load_teacher(small),
                                   student=make_student())
    distiller.compile(optimizer="sgd")
    with pytest.raises(UsageError) as info:
        distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert str(info.value) == (
        "teacher: the OnnxTeacher returned logits of shape (16, 3), expected "
        "(16, 4) (the student's classes)")


def test_other_teacher_types_are_refused():
    with pytest.raises(UsageError, match="^teacher: expected a keras.Model, "
                       "a kd_keras.teachers.Teacher or None, got str"):
        kd_keras.Distiller(teacher="teacher.onnx", student=make_student())
    with pytest.raises(UsageError, match="^student: expected a keras.Model"):
        kd_keras.Distiller(teacher=None, student=load_teacher(make_teacher()))


def test_steps_per_execution_under_several_replicas_is_one_line(mirrored_strategy):
    # Accepted, it failed in fit with TensorFlow's "You must feed a value for
    # placeholder tensor" (Keras's multi-step loop), some 110 lines.
    with mirrored_strategy.scope():
        teacher = keras.Sequential([keras.Input((FEATURES,)), keras.layers.Dense(CLASSES)])
        distiller = kd_keras.Distiller(teacher=teacher, student=make_student())
        with pytest.raises(UsageError, match=r"^steps_per_execution: must be 1 under a "
                                             r"strategy of 2 replicas .*, got 4$"):
            distiller.compile(optimizer="sgd", steps_per_execution=4)
        distiller.compile(optimizer="sgd", steps_per_execution=1)
