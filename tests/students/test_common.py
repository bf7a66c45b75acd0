"""What every built-in student builder shares: NumPy numbers are taken as
Python numbers, and the text CNNs refuse a repeated kernel width."""

import numpy as np
import pytest

from kd_keras.errors import ConfigError
from kd_keras.students import bigru
from kd_keras.students import dilated_cnn
from kd_keras.students import mlp
from kd_keras.students import small_cnn
from kd_keras.students import text_cnn
from kd_keras.students import tiny_bert

BUILDS = [
    (text_cnn, dict(embedding_dim=4, filters=3, kernel_sizes=(2, 3))),
    (dilated_cnn, dict(embedding_dim=4, filters=3, kernel_sizes=(2,), deep_filters=5,
                       deep_kernel=3)),
    (bigru, dict(embedding_dim=4, units=3)),
    (tiny_bert, dict(num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)),
    (mlp, dict(hidden_units=(5,))),
    (small_cnn, dict(filters=(4,), dense_units=6)),
]


@pytest.mark.parametrize("builder, options", BUILDS, ids=[b.__name__ for b, _ in BUILDS])
def test_numpy_numbers_build_the_same_student_as_python_ones(builder, options):
    def numpy(value):
        return (type(value)(np.int64(v) for v in value) if isinstance(value, tuple)
                else np.int64(value))

    text = builder is not small_cnn
    shared = dict(vocab_size=50, sequence_length=8) if text else {}
    plain = builder(3, **shared, **options)
    wrapped = builder(np.int64(3), **{k: numpy(v) for k, v in {**shared, **options}.items()})
    assert wrapped.count_params() == plain.count_params()
    assert wrapped.output_shape == plain.output_shape == (None, 3)


@pytest.mark.parametrize("builder", [text_cnn, dilated_cnn])
def test_a_repeated_kernel_width_is_refused(builder):
    with pytest.raises(ConfigError, match=r"^student.options.kernel_sizes: must not repeat a "
                                          r"width, got \[3, 3\]$"):
        builder(2, vocab_size=50, sequence_length=8, kernel_sizes=[3, 3])
