"""How close the demo's two big stages run to this machine's float32 floor.

The demo's time goes to the teacher's transformer blocks (its adaptation and
the labelling of the copies) and to the dilated CNN's training step. This
script measures, in one run, each of them against the same arithmetic done
by bare matrix products, which is what any float32 route (XLA, another
runtime, fused kernels) could at best reduce them to:

- `teacher block`: one MiniLM-L6 transformer block (the installed
  checkpoint's own layer, inference) on a batch of 64 texts padded to
  `width` ids, against `matmuls only`: its eight matrix products (query, key,
  value, the attention scores and context, the output, the two feed-forward
  products) at the same shapes, with nothing else, in float32 and in
  bfloat16;
- `student step`: a training step of the demo's student (`dilated_cnn`,
  64 ids, batch 64, Adam, cross-entropy) through `model.fit`, and
  `gradients only`, its loss gradients without the optimizer, against
  `convolutions only`: the forward and both backward convolutions of its
  five Conv1D layers and its dense layer at the same shapes.

Each figure is the median of `--rounds` interleaved rounds of `--calls`
calls each; the ratios are medians of per-round ratios. Float32 can gain at
most `block / matmuls only` on the teacher and `step / convolutions only` on
the student, and only if everything besides the products cost nothing.

    python benchmarks/compute_floor.py                  # about a minute
    python benchmarks/compute_floor.py --rounds 1 --calls 3   # quick

Writes benchmarks/results/compute_floor.json (or --out).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from arguments import add_output_arguments  # noqa: E402
from arguments import machine  # noqa: E402
from arguments import results_path  # noqa: E402
from arguments import write_json  # noqa: E402
from timing import median_ratio  # noqa: E402
from timing import time_methods  # noqa: E402

from kd_keras import teachers  # noqa: E402
from kd_keras.students.dilated_cnn import dilated_cnn  # noqa: E402

BATCH = 64
STUDENT_LENGTH = 64


def block_products(batch, width, hidden, heads, intermediate):
    """The shapes `(a, b)` of a BERT block's matrix products, `a @ b`."""
    tokens, head = batch * width, hidden // heads
    return [
        ((tokens, hidden), (hidden, hidden)),                    # query
        ((tokens, hidden), (hidden, hidden)),                    # key
        ((tokens, hidden), (hidden, hidden)),                    # value
        ((batch * heads, width, head), (batch * heads, head, width)),   # scores
        ((batch * heads, width, width), (batch * heads, width, head)),  # context
        ((tokens, hidden), (hidden, hidden)),                    # attention output
        ((tokens, hidden), (hidden, intermediate)),              # feed-forward in
        ((tokens, intermediate), (intermediate, hidden)),        # feed-forward out
    ]


def products_flops(shapes):
    """Floating-point operations of `a @ b` summed over `(a, b)` shape pairs.

    Example:

    >>> int(products_flops([((2, 3), (3, 4)), ((5, 2, 3), (5, 3, 1))]))
    108
    """
    return sum(2 * int(np.prod(a)) * b[-1] for a, b in shapes)


def products_call(shapes, dtype):
    """A zero-argument call running the products `shapes` on random inputs."""
    pairs = [(tf.cast(tf.random.normal(a), dtype), tf.cast(tf.random.normal(b), dtype))
             for a, b in shapes]
    run = tf.function(lambda: [tf.matmul(a, b) for a, b in pairs])
    return lambda: [v.numpy() for v in run()]


def block_call(block, width, hidden):
    """A zero-argument call of `block` (inference) on a random batch."""
    x = tf.random.normal((BATCH, width, hidden))
    mask = tf.ones((BATCH, width), tf.int32)
    run = tf.function(lambda: block(x, padding_mask=mask, training=False))
    return lambda: run().numpy()


def convolution(layer, x):
    """The product of the `Conv1D` `layer` ("same" padding, stride 1) on
    `x`: its output before the bias and the activation."""
    return tf.nn.conv1d(x, layer.kernel, 1, "SAME", dilations=layer.dilation_rate[0])


def student_step(rng):
    """`(step, gradients, floor)`: one `fit` step of the demo student, its
    loss gradients alone (no optimizer), and its convolutions and dense
    product (forward and both backward) alone."""
    model = dilated_cnn(2, sequence_length=STUDENT_LENGTH)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ids = rng.integers(1, 30522, (BATCH, STUDENT_LENGTH)).astype("int32")
    labels = rng.integers(0, 2, (BATCH,)).astype("int32")
    data = tf.data.Dataset.from_tensors((ids, labels)).repeat()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)  # traces the step
    iterator = iter(data)

    def step():
        model.train_on_batch(*next(iterator))

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def gradients():
        with tf.GradientTape() as tape:
            value = loss(labels, model(ids, training=True))
        return tape.gradient(value, model.trainable_variables)

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    pairs = []
    for layer in layers:
        x = tf.random.normal((BATCH,) + tuple(layer.input.shape[1:]))
        pairs.append((layer, x, tf.random.normal((BATCH,) + tuple(layer.output.shape[1:]))))
    dense = model.get_layer("logits")
    dense_in = tf.random.normal((BATCH, dense.input.shape[-1]))

    @tf.function
    def convolutions():
        grads = []
        for layer, x, upstream in pairs:
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = convolution(layer, x)
            grads += tape.gradient(y, [x, layer.kernel], output_gradients=upstream)
        with tf.GradientTape() as tape:
            tape.watch(dense_in)
            y = tf.matmul(dense_in, dense.kernel)
        grads += tape.gradient(y, [dense_in, dense.kernel])
        return grads

    return (step,
            lambda: [np.asarray(t) for t in tf.nest.flatten(gradients(),
                                                            expand_composites=True)],
            lambda: [g.numpy() for g in convolutions()])


def repeated(call, calls):
    """A method for `time_methods`: `calls` calls of `call`, in seconds each."""
    def run():
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - start) / calls
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 27, 48],
                        help="ids per text in the teacher's batches (27: the movie "
                             "reviews' mean)")
    parser.add_argument("--rounds", type=int, default=9, help="timed interleaved rounds")
    parser.add_argument("--calls", type=int, default=10, help="calls timed per round")
    add_output_arguments(parser, "compute_floor")
    args = parser.parse_args(argv)
    tf.get_logger().setLevel("ERROR")  # Each product set is its own tf.function.

    classifier = teachers.build_text_teacher(
        teachers.resolve_backbone("all-MiniLM-L6-v2"), 2, sequence_length=64).classifier
    backbone = classifier.get_layer("backbone")
    block = backbone.get_layer(f"transformer_layer_{backbone.num_layers - 1}")
    sizes = (backbone.hidden_dim, backbone.num_heads, backbone.intermediate_dim)
    methods, flops = {}, {}
    for width in args.widths:
        shapes = block_products(BATCH, width, *sizes)
        flops[width] = float(products_flops(shapes))
        methods[f"block {width}"] = repeated(block_call(block, width, sizes[0]), args.calls)
        methods[f"float32 {width}"] = repeated(products_call(shapes, tf.float32), args.calls)
        methods[f"bfloat16 {width}"] = repeated(products_call(shapes, tf.bfloat16),
                                                args.calls)
    step, gradients, convolutions = student_step(np.random.default_rng(0))
    methods["student step"] = repeated(step, args.calls)
    methods["gradients only"] = repeated(gradients, args.calls)
    methods["convolutions only"] = repeated(convolutions, args.calls)

    load_before = os.getloadavg()
    _, times = time_methods(methods, args.rounds)
    median = {name: float(np.median(t)) for name, t in times.items()}
    teacher = {}
    for width in args.widths:
        block_s, f32_s, bf16_s = (median[f"{k} {width}"] for k in
                                  ("block", "float32", "bfloat16"))
        teacher[str(width)] = {
            "block_ms": 1e3 * block_s,
            "matmuls_only_float32_ms": 1e3 * f32_s,
            "matmuls_only_bfloat16_ms": 1e3 * bf16_s,
            "gflop": flops[width] / 1e9,
            "block_gflops_per_second": flops[width] / block_s / 1e9,
            "float32_matmul_gflops_per_second": flops[width] / f32_s / 1e9,
            "bfloat16_matmul_gflops_per_second": flops[width] / bf16_s / 1e9,
            "block_over_float32_floor": median_ratio(times[f"block {width}"],
                                                     times[f"float32 {width}"]),
            "block_over_bfloat16_floor": median_ratio(times[f"block {width}"],
                                                      times[f"bfloat16 {width}"]),
        }
    student = {
        "step_ms": 1e3 * median["student step"],
        "gradients_only_ms": 1e3 * median["gradients only"],
        "convolutions_only_ms": 1e3 * median["convolutions only"],
        "step_over_floor": median_ratio(times["student step"], times["convolutions only"]),
    }
    payload = {
        "benchmark": "compute_floor",
        "setup": {
            "teacher": "all-MiniLM-L6-v2, its last transformer block, batch 64",
            "student": "dilated_cnn, 64 ids, batch 64, Adam",
            "rounds": args.rounds, "calls_per_round": args.calls,
            "statistic": "median over interleaved rounds; ratios are medians of "
                         "per-round ratios",
            **machine(load_before),
            "command": "python benchmarks/compute_floor.py " + " ".join(
                argv if argv is not None else sys.argv[1:]),
        },
        "teacher_block": teacher,
        "student_step": student,
    }
    path = results_path(args)
    write_json(path, payload)
    print(f"{'ids':>4}{'block ms':>10}{'f32 products':>14}{'bf16 products':>15}"
          f"{'block GFLOP/s':>15}{'block/f32 floor':>17}")
    for width, r in teacher.items():
        print(f"{width:>4}{r['block_ms']:>10.2f}{r['matmuls_only_float32_ms']:>14.2f}"
              f"{r['matmuls_only_bfloat16_ms']:>15.2f}{r['block_gflops_per_second']:>15.0f}"
              f"{r['block_over_float32_floor']:>16.2f}x")
    print(f"student step {student['step_ms']:.2f} ms, its gradients alone "
          f"{student['gradients_only_ms']:.2f} ms, its convolutions alone "
          f"{student['convolutions_only_ms']:.2f} ms: {student['step_over_floor']:.2f}x")
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
