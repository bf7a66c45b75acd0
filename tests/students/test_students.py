import os
import sys

import numpy as np
import pytest
import tensorflow as tf

from kd_keras.errors import ConfigError
from kd_keras.students import BUILTIN_STUDENTS
from kd_keras.students import build_student
from kd_keras.students import get_student

TEXT = dict(vocab_size=120, sequence_length=10)


def _inputs(model, n=8, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n,) + tuple(model.input.shape[1:])
    if model.input.dtype == "int32":
        return rng.integers(0, 120, shape).astype("int32")
    return rng.random(shape).astype("float32")


@pytest.mark.parametrize("name", sorted(BUILTIN_STUDENTS))
def test_builtin_students_output_logits(name):
    kwargs = {} if name == "small_cnn" else dict(TEXT)
    if name == "tiny_bert":
        kwargs.update(hidden_dim=16, intermediate_dim=32)
    model = build_student(name, 3, **kwargs)
    x = _inputs(model)
    y = np.asarray(model(x, training=False))
    assert y.shape == (8, 3) and np.isfinite(y).all()
    # Logits, not probabilities: rows do not sum to one.
    assert not np.allclose(y.sum(axis=1), 1.0)
    assert model.count_params() > 0


def test_text_cnn_default_size_is_about_two_million_params():
    model = build_student("text_cnn", 2, sequence_length=48)
    assert 1.9e6 < model.count_params() < 2.2e6
    assert model.input.dtype == "int32"


def test_mlp_on_features():
    model = build_student("mlp", 10, input_shape=(64,), hidden_units=(16,))
    assert model(np.zeros((2, 64), "float32")).shape == (2, 10)
    with pytest.raises(ValueError, match="input_shape"):
        build_student("mlp", 10)


def test_unknown_and_custom_students(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="student.architecture: unknown student 'resnet9000'"):
        get_student("resnet9000")
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg_x'"):
        get_student("no_such_pkg_x:build")
    for empty in (":text_cnn", ".rel:build"):  # importlib's ValueError, not a traceback
        with pytest.raises(ConfigError, match=r"^student.architecture: cannot import module"):
            get_student(empty)
    (tmp_path / "my_students.py").write_text(
        "import keras\n"
        "def tiny(num_classes, vocab_size=None, sequence_length=None, width=4):\n"
        "    return keras.Sequential([keras.Input((sequence_length,)),\n"
        "                             keras.layers.Dense(width),\n"
        "                             keras.layers.Dense(num_classes)])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_student("my_students:tiny", 5, sequence_length=3, width=2)
    assert model(np.zeros((2, 3), "float32")).shape == (2, 5)
    with pytest.raises(ValueError, match="has no function 'nope'"):
        get_student("my_students:nope")


def test_text_cnn_converts_to_int8_tflite_builtins_only(tmp_path):
    """Converts with builtin int8 ops only (no Flex / SELECT_TF_OPS) and runs
    the result in the LiteRT interpreter against the Keras logits."""
    from ai_edge_litert.interpreter import Interpreter

    model = build_student("text_cnn", 3, **TEXT)
    x = _inputs(model, n=16)
    reference = model.predict(x, verbose=0)
    path = str(tmp_path / "sm")
    model.export(path, format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(path)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(16))
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,
    ]
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    logits = []
    for i in range(16):
        interpreter.set_tensor(inp, x[i : i + 1])
        interpreter.invoke()
        logits.append(interpreter.get_tensor(out)[0])
    logits = np.stack(logits)
    scale = np.abs(reference).max()
    assert np.abs(logits - reference).max() <= 0.1 * scale + 1e-3
    assert (logits.argmax(1) == reference.argmax(1)).mean() >= 0.8


def test_mlp_refuses_features_and_token_ids_at_once():
    # The token ids won and input_shape was dropped without a word.
    from kd_keras.errors import ConfigError
    from kd_keras.students import mlp

    with pytest.raises(ConfigError, match=r"^student.options.input_shape: \(64,\) with token "
                                          r"ids \(vocab_size and sequence_length\) would be "
                                          r"ignored"):
        mlp(2, vocab_size=100, sequence_length=8, input_shape=(64,))
