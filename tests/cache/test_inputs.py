import numpy as np
import pytest
import tensorflow as tf

from kd_keras.cache.inputs import Inputs


def test_arrays_dicts_and_datasets_chunk_alike():
    x = {"ids": np.arange(14).reshape(7, 2), "mask": np.ones((7, 2), bool)}
    from_arrays = list(Inputs(x).chunks(3))
    from_ds = list(Inputs(tf.data.Dataset.from_tensor_slices(x)).chunks(3))
    assert [len(c["ids"]) for c in from_arrays] == [3, 3, 1]
    for a, b in zip(from_arrays, from_ds):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    single = Inputs(np.arange(5))
    assert not single.is_dict and single.count == 5
    assert single.structure({"x": 1}) == 1


def test_unknown_cardinality_is_none():
    ds = tf.data.Dataset.range(5).filter(lambda i: i > 1)
    assert Inputs(ds).count is None


@pytest.mark.parametrize(
    "x, message",
    [
        ([1, 2, 3], "got a list"),
        ({}, "empty dict"),
        (np.float32(1), "scalar"),
        (tf.data.Dataset.from_tensor_slices((np.zeros(3), np.zeros(3))), "inputs only"),
        (tf.data.Dataset.range(3).repeat(), "infinite"),
    ],
)
def test_bad_inputs_are_named(x, message):
    with pytest.raises(ValueError, match=message):
        Inputs(x)
