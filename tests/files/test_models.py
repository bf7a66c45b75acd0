"""`load_model`: a `.keras` file, loaded with `safe_mode=True`; anything else
is one line naming the path."""

import os

import keras
import numpy as np
import pytest

from kd_keras.errors import MissingFileError
from kd_keras.errors import UsageError
from kd_keras.files.models import load_model


def test_a_keras_file_loads_with_its_weights(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(str(tmp_path / "m.keras"))
    loaded = load_model(str(tmp_path / "m.keras"))
    x = np.ones((1, 3), "float32")
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), x @ kernel + bias, rtol=1e-6)


def test_what_is_not_a_keras_file_is_one_line(tmp_path):
    (tmp_path / "folder.keras").mkdir()
    os.mkfifo(tmp_path / "pipe.keras")
    (tmp_path / "model.h5").write_bytes(b"x")
    cases = [(tmp_path / "folder.keras", UsageError, "folder.keras: is a folder; a model is a "
                                                     ".keras file"),
             (tmp_path / "pipe.keras", UsageError, "pipe.keras: not a regular file"),
             (tmp_path / "gone.keras", MissingFileError, "gone.keras: model file does not exist"),
             (tmp_path / "model.h5", UsageError, "model.h5: not a .keras model file")]
    for path, error, message in cases:
        with pytest.raises(error, match=message):
            load_model(str(path))


def test_a_lambda_layer_is_named_without_keras_s_unsafe_advice(tmp_path):
    # Keras says "pass safe_mode=False", which no kd-keras command takes.
    import keras
    import pytest

    from kd_keras.errors import DataError
    from kd_keras.files.models import load_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.Lambda(lambda z: keras.ops.softmax(z))])
    path = str(tmp_path / "teacher.keras")
    model.save(path)
    with pytest.raises(DataError) as e:
        load_model(path)
    assert "holds a Lambda layer (Python code), which kd_keras never loads" in str(e.value)
    assert "safe_mode" not in str(e.value) and "\n" not in str(e.value)
