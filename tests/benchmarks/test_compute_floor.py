"""Tests for benchmarks/compute_floor.py: the floors it times are the
arithmetic of the block and the step they are compared with (not timings)."""

import keras
import numpy as np
import tensorflow as tf

from conftest import load_benchmark

compute_floor = load_benchmark("compute_floor")


def test_the_block_products_count_a_bert_blocks_multiply_adds():
    # Per token: 4 hidden x hidden projections, 2 hidden x intermediate
    # feed-forward products, and 2 attention products over `width` tokens.
    batch, width, hidden, heads, intermediate = 3, 7, 12, 4, 48
    shapes = compute_floor.block_products(batch, width, hidden, heads, intermediate)
    per_token = 4 * hidden * hidden + 2 * hidden * intermediate + 2 * width * hidden
    assert compute_floor.products_flops(shapes) == 2 * batch * width * per_token
    for a, b in shapes:  # each pair multiplies
        assert tf.matmul(tf.zeros(a), tf.zeros(b)).shape[:-1] == a[:-1]


def test_the_convolution_floor_is_each_conv_layers_own_product():
    from kd_keras.students.dilated_cnn import dilated_cnn

    model = dilated_cnn(2, vocab_size=50, sequence_length=12, dilations=(2, 4))
    rng = np.random.default_rng(0)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert [layer.dilation_rate[0] for layer in convs] == [1, 1, 1, 2, 4]
    for layer in convs:
        x = rng.normal(size=(2,) + tuple(layer.input.shape[1:])).astype("float32")
        product = compute_floor.convolution(layer, x).numpy() + layer.bias.numpy()
        np.testing.assert_allclose(np.maximum(product, 0), layer(x).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_the_student_methods_run_and_cover_every_variable():
    step, gradients, convolutions = compute_floor.student_step(np.random.default_rng(0))
    step()
    model_grads = gradients()
    # Kernel and bias of 5 convolutions and the dense layer; the embedding's
    # as rows, their indices and the table's shape.
    assert len(model_grads) == 2 * (5 + 1) + 3
    assert all(np.isfinite(g).all() for g in model_grads if g.dtype == np.float32)
    conv_grads = convolutions()
    # Input and kernel gradients of the 5 convolutions and the dense layer.
    assert len(conv_grads) == 2 * (5 + 1)
