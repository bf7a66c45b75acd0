import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.teachers import as_teacher
from kd_keras.teachers import load_teacher
from kd_keras.teachers.base import KerasTeacher


def _mlp(num_classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((5,), name="features"),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(num_classes),
        ]
    )


def test_keras_model_is_used_as_is(rng):
    model = _mlp()
    x = rng.normal(size=(6, 5)).astype("float32")
    teacher = load_teacher(model)
    assert teacher.model is model and teacher.in_graph
    w1, b1, w2, b2 = model.get_weights()
    expected = np.maximum(x @ w1 + b1, 0) @ w2 + b2
    np.testing.assert_allclose(teacher.predict_on_batch(x), expected, atol=1e-5)
    assert as_teacher(teacher) is teacher


def test_keras_file_loads_with_same_logits_and_fingerprint(tmp_path, rng):
    model = _mlp()
    path = str(tmp_path / "teacher.keras")
    model.save(path)
    x = rng.normal(size=(6, 5)).astype("float32")

    teacher = load_teacher(path)

    np.testing.assert_allclose(
        teacher.predict_on_batch(x), np.asarray(model(x)), atol=1e-6
    )
    assert teacher.fingerprint() == KerasTeacher(model).fingerprint()
    assert teacher.fingerprint() != KerasTeacher(_mlp(seed=1)).fingerprint()


class _TwoInputModule(tf.Module):
    """A serving signature with two named inputs and two named outputs."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="left"),
            tf.TensorSpec([None, 2], tf.float32, name="right"),
        ]
    )
    def serve(self, left, right):
        logits = self.model(tf.concat([left, right], axis=-1))
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}


def test_saved_model_signature_runs_in_graph(tmp_path, rng):
    model = _mlp()
    path = str(tmp_path / "saved_model" / "1")
    module = _TwoInputModule(model)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    x = {
        "left": rng.normal(size=(4, 3)).astype("float32"),
        "right": rng.normal(size=(4, 2)).astype("float32"),
    }
    expected = np.asarray(model(np.concatenate([x["left"], x["right"]], -1)))

    teacher = load_teacher(path, output_key="logits")

    assert teacher.in_graph and isinstance(teacher.model, keras.Model)
    np.testing.assert_allclose(teacher.predict_on_batch(x), expected, atol=1e-5)
    in_graph = tf.function(lambda batch: teacher.model(batch, training=False))
    np.testing.assert_allclose(in_graph(x).numpy(), expected, atol=1e-5)
    assert len(teacher.fingerprint()) == 64
    # The same folder and endpoint give the same fingerprint; another output,
    # or any changed file of the folder, another.
    assert load_teacher(path, output_key="logits").fingerprint() == teacher.fingerprint()
    probabilities = load_teacher(path, output_key="probabilities")
    assert probabilities.fingerprint() != teacher.fingerprint()
    with open(os.path.join(path, "assets", "note.txt"), "w") as f:
        f.write("changed")
    assert load_teacher(path, output_key="logits").fingerprint() != teacher.fingerprint()

    # Refused as the teacher loads, in one line (not inside Keras's call).
    with pytest.raises(ValueError, match=rf"^{path}: SavedModel endpoint 'serving_default' "
                                         r"returns several outputs \['logits', "
                                         r"'probabilities'\]; choose one with output_key=... "
                                         r"in Python, or export a model whose only output is "
                                         r"the logits$"):
        load_teacher(path)
    with pytest.raises(ValueError, match=rf"^{path}: SavedModel endpoint 'serving_default' "
                                         r"has no output 'scores'"):
        load_teacher(path, output_key="scores")


def _to_onnx(model, path):
    import tf2onnx

    spec = (tf.TensorSpec([None, 5], tf.float32, name="features"),)
    tf2onnx.convert.from_function(
        tf.function(lambda features: model(features)),
        input_signature=spec,
        opset=17,
        output_path=path,
    )
    return path


def test_onnx_file_runs_in_onnxruntime(tmp_path, rng):
    model = _mlp()
    path = _to_onnx(model, str(tmp_path / "teacher.onnx"))
    x = rng.normal(size=(7, 5)).astype("float32")

    teacher = load_teacher(path)

    assert not teacher.in_graph and teacher.model is None
    np.testing.assert_allclose(
        teacher.predict_on_batch(x), np.asarray(model(x)), atol=1e-5
    )
    np.testing.assert_allclose(
        teacher.predict_on_batch({"features": x}), np.asarray(model(x)), atol=1e-5
    )
    assert load_teacher(path).fingerprint() == teacher.fingerprint()
    other = _to_onnx(_mlp(seed=1), str(tmp_path / "other.onnx"))
    assert load_teacher(other).fingerprint() != teacher.fingerprint()


def test_bad_sources_are_refused_naming_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.keras"):
        load_teacher(str(tmp_path / "missing.keras"))
    with pytest.raises(FileNotFoundError, match="gone.onnx"):
        load_teacher(str(tmp_path / "gone.onnx"))
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        load_teacher(os.path.join(str(tmp_path), "nothing_here"))
    for name in ("corrupt.keras", "corrupt.onnx"):
        (tmp_path / name).write_bytes(b"\x00not a model")
        with pytest.raises(ValueError, match=name):
            load_teacher(str(tmp_path / name))
    # A teacher file fails as a student file does (one loader, one message).
    with pytest.raises(ValueError) as refused:
        load_teacher(str(tmp_path / "corrupt.keras"))
    assert str(refused.value) == (f"{tmp_path / 'corrupt.keras'}: cannot load the model "
                                  "(damaged .keras archive: not a zip file)")
    with pytest.raises(ValueError, match="unexpected option"):
        model_path = str(tmp_path / "m.keras")
        _mlp().save(model_path)
        load_teacher(model_path, output_key="logits")
    with pytest.raises(TypeError, match="int"):
        load_teacher(3)
    with pytest.raises(ValueError, match=r"^source: a Sequential: unexpected option\(s\) "
                                         r"\['output_key'\]"):
        load_teacher(_mlp(), output_key="logits")  # a model is used as it is


@pytest.mark.parametrize("content, message", [
    ("[]", r"config.json: expected a JSON object, found list$"),
    ("null", r"config.json: expected a JSON object, found NoneType$"),
    ("{not json", r"config.json: not a readable JSON file \("),
])
def test_a_checkpoint_config_that_is_not_an_object_is_one_line(tmp_path, content, message):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(ValueError, match=message):
        load_teacher(str(tmp_path))


def test_a_truncated_saved_model_is_one_line(tmp_path):
    folder = str(tmp_path / "teacher")
    _mlp().export(folder, verbose=False)
    pb = os.path.join(folder, "saved_model.pb")
    data = open(pb, "rb").read()
    with open(pb, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"^{folder}: cannot load the SavedModel \(") as info:
        load_teacher(folder)
    assert "\n" not in str(info.value)


def test_saved_model_teacher_runs_inside_the_distiller(tmp_path, rng):
    import kd_keras

    model = _mlp()
    path = str(tmp_path / "sm")
    module = _TwoInputModule(model)
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    teacher = load_teacher(path, output_key="logits")
    inputs = {"left": keras.Input((3,), name="left"),
              "right": keras.Input((2,), name="right")}
    student = keras.Model(
        inputs, keras.layers.Dense(3)(keras.layers.Concatenate()(
            [inputs["left"], inputs["right"]]))
    )
    x = {"left": rng.normal(size=(16, 3)).astype("float32"),
         "right": rng.normal(size=(16, 2)).astype("float32")}
    y = rng.integers(0, 3, size=16)

    distiller = kd_keras.Distiller(teacher=teacher.model, student=student)
    distiller.compile(optimizer="sgd", alpha=0.0, temperature=2.0)
    logs = distiller.evaluate(x, y, batch_size=16, return_dict=True, verbose=0)

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    t = log_softmax(np.asarray(model(np.concatenate([x["left"], x["right"]], -1))) / 2)
    s = log_softmax(np.asarray(student(x)) / 2)
    expected = (np.exp(t) * (t - s)).sum(-1).mean() * 4.0
    np.testing.assert_allclose(logs["distillation_loss"], expected, rtol=1e-4)


def test_onnx_weights_saved_beside_the_file_enter_the_fingerprint(tmp_path, rng):
    """Weights in an external data file: ONNX Runtime reads them, and a
    new file of weights is a new teacher (its cached logits are not reused)."""
    import onnx
    from onnx import TensorProto
    from onnx import helper
    from onnx import numpy_helper

    from kd_keras.teachers.onnx_teacher import external_data_files

    def save(weights):
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "w"], ["logits"])], "teacher",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 3])],
            [numpy_helper.from_array(weights, "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, str(tmp_path / "t.onnx"), save_as_external_data=True,
                  location="t.onnx.data", size_threshold=0)

    x = rng.normal(size=(5, 4)).astype("float32")
    first = rng.normal(size=(4, 3)).astype("float32")
    save(first)
    assert os.path.getsize(tmp_path / "t.onnx.data") == first.nbytes
    teacher = load_teacher(str(tmp_path / "t.onnx"))
    np.testing.assert_allclose(teacher.predict_on_batch(x), x.astype(np.float64) @ first,
                               rtol=1e-5, atol=1e-5)
    assert external_data_files(str(tmp_path / "t.onnx")) == ["t.onnx.data"]
    before = teacher.fingerprint()
    (tmp_path / "t.onnx.data").write_bytes((first + 1).tobytes())  # The .onnx stays as is.
    again = load_teacher(str(tmp_path / "t.onnx"))
    np.testing.assert_allclose(again.predict_on_batch(x), x.astype(np.float64) @ (first + 1),
                               rtol=1e-5, atol=1e-5)
    assert again.fingerprint() != before


@pytest.mark.parametrize("rows", [1, 2, 5])
def test_an_onnx_model_of_a_fixed_batch_size_runs_any_batch(tmp_path, rng, rows):
    """As `torch.onnx.export` writes a model without `dynamic_axes`."""
    import onnx
    from onnx import TensorProto
    from onnx import helper
    from onnx import numpy_helper

    from kd_keras.teachers import input_specs

    weights = rng.normal(size=(4, 3)).astype("float32")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["logits"])], "teacher",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    teacher = load_teacher(str(tmp_path / "fixed.onnx"))
    x = rng.normal(size=(rows, 4)).astype("float32")
    np.testing.assert_allclose(teacher.predict_on_batch(x), x.astype(np.float64) @ weights,
                               rtol=1e-5, atol=1e-5)
    assert input_specs(teacher) == [("x", "float32", (None, 4))]
    with pytest.raises(ValueError, match=r"fixed.onnx: ONNX Runtime cannot run it on inputs "
                                         r"\{'x': 'float32\[2, 5\]'\} \("):
        teacher.predict_on_batch(np.zeros((2, 5), "float32"))  # 5 features, not 4.
    with pytest.raises(ValueError, match=r"fixed.onnx: unexpected option\(s\) \['output_key'\] "
                                         r"\(known: output_name\)$"):
        load_teacher(str(tmp_path / "fixed.onnx"), output_key="logits")


def test_a_one_input_saved_model_teacher_runs_without_a_warning(tmp_path, rng):
    # Its signature names its one input: called on an array, Keras warned
    # that "the structure of `inputs` doesn't match" on every run.
    import warnings

    from kd_keras.teachers.forward import teacher_logits

    ids = keras.Input((6,), dtype="int32")
    model = keras.Model(ids, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(
        keras.layers.Embedding(50, 4)(ids))))
    model.export(str(tmp_path / "sm"), verbose=False)
    x = rng.integers(0, 50, size=(5, 6)).astype("int32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logits = teacher_logits(load_teacher(str(tmp_path / "sm")), x)
    np.testing.assert_allclose(logits, model.predict(x, verbose=0), atol=1e-6)
