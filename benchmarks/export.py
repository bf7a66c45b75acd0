"""Benchmark: one trained student exported to every format × quantization.

Trains a text CNN on the rt-polarity movie-review sentences (a typical
distilled student), exports it with `kd_keras.export.export_model` to
SavedModel, TFLite and ONNX with every quantization each format has, and
prints size, single-thread warm latency (p50/p95 at batch 1 and 32),
accuracy and max |logit diff| against Keras. Writes
`benchmarks/results/export.json`.

    python benchmarks/export.py [--runs 100]

Data: the rt-polarity copy shipped in `kd_keras/data/builtin/`
(`kd_keras.data.builtin.rt_polarity_sentences`), shuffled with seed 0; the
first 80% train the student and the next 1,000 validate the export.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from kd_keras.data.builtin import rt_polarity_sentences  # noqa: E402
from kd_keras.export import QUANTIZATIONS  # noqa: E402
from kd_keras.export import export_model  # noqa: E402
from kd_keras.export.report import markdown_table  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ_LEN = 48


def shuffled_sentences():
    """The built-in movie reviews and labels, in one seeded order."""
    texts, labels = rt_polarity_sentences()
    order = np.random.default_rng(0).permutation(len(texts))
    return np.array(texts, dtype=object)[order], labels[order]


def train_student(texts, labels, epochs):
    n_train = int(0.8 * len(texts))
    vectorize = keras.layers.TextVectorization(
        max_tokens=10000, output_sequence_length=SEQ_LEN
    )
    vectorize.adapt(texts[:n_train])
    ids = np.asarray(vectorize(texts), dtype="int32")
    keras.utils.set_random_seed(0)
    x = keras.Input((SEQ_LEN,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(10000, 64)(x)
    h = keras.layers.Conv1D(64, 5, activation="relu")(h)
    h = keras.layers.GlobalMaxPooling1D()(h)
    h = keras.layers.Dropout(0.3)(h)
    model = keras.Model(x, keras.layers.Dense(2)(h), name="text_cnn_student")
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(ids[:n_train], labels[:n_train], epochs=epochs, batch_size=64, verbose=2)
    return model, ids, n_train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--runs", type=int, default=100, help="timed calls per batch size")
    parser.add_argument(
        "--output", default=os.path.join(REPO, "benchmarks", "results", "export.json")
    )
    args = parser.parse_args()

    texts, labels = shuffled_sentences()
    model, ids, n_train = train_student(texts, labels, args.epochs)
    val = slice(n_train, n_train + 1000)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        report = export_model(
            model,
            os.path.join(tmp, "export"),
            quantization=QUANTIZATIONS,
            representative_data=ids[:300],
            validation_data=(ids[val], labels[val]),
            labels=["neg", "pos"],
            latency_runs=args.runs,
            allow_mismatch=True,
        )
        seconds = time.perf_counter() - start
    print(markdown_table(report["artifacts"]))
    print(
        f"Keras: accuracy {report['reference']['accuracy']:.4f}, "
        f"{report['reference']['params']:,} params; export + verification "
        f"{seconds:.0f} s"
    )
    from arguments import machine
    from arguments import write_json

    result = {
        "benchmark": "export",
        "model": model.name,
        "validation_examples": report["validation"]["examples"],
        "latency_runs": args.runs,
        "threads": 1,
        "export_seconds": round(seconds, 1),
        "machine": machine(),
        "reference": report["reference"],
        "artifacts": [
            {k: v for k, v in a.items() if k not in ("path", "sha256")}
            for a in report["artifacts"]
        ],
        "skipped": report["skipped"],
    }
    write_json(args.output, result)
    print(f"wrote {os.path.relpath(args.output)}")


if __name__ == "__main__":
    main()
