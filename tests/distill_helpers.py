"""Shared set-up of the distill pipeline / CLI tests: a tiny teacher on
WordPiece ids of a small AG News sample, and configs pointing at it.

The AG News files are the built-in ones, written uncompressed as header-less
TSV into the session's temporary folder by `shared_teacher`, so the configs
exercise the file readers (string labels, no header)."""

import os

import keras
import numpy as np
import yaml

from conftest import write_agnews_tsv

SEQ = 16
_SHARED = {}  # filled once per session by shared_teacher


def agnews_data(max_examples=120):
    """The `data` config section reading the TSVs `shared_teacher` wrote."""
    if "agnews" not in _SHARED:
        raise RuntimeError("call shared_teacher(tmp_path_factory) first")
    train, test = _SHARED["agnews"]
    return {
        "train": train,
        "test": test,
        "format": "tsv",
        "header": False,
        "text_column": 0,
        "label_column": 1,
        "max_examples": max_examples,
    }


def make_teacher(path, max_examples=120):
    """Trains a bag-of-embeddings teacher on the AG News ids; saves `.keras`."""
    from kd_keras.data import WordPieceEncoder
    from kd_keras.data import load_text_dataset
    from kd_keras.teachers import minilm_dir

    d = agnews_data(max_examples)
    ds = load_text_dataset(d["train"], d["test"], max_examples=max_examples)
    enc = WordPieceEncoder(os.path.join(minilm_dir(), "vocab.txt"), SEQ)
    x = enc(ds.texts["train"])
    keras.utils.set_random_seed(1)
    teacher = keras.Sequential([
        keras.Input((SEQ,), dtype="int32"),
        keras.layers.Embedding(enc.vocab_size, 8),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(ds.num_classes),
    ])
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, ds.labels["train"], epochs=3, batch_size=32, verbose=0)
    teacher.save(path)
    return ds, enc



def shared_teacher(tmp_path_factory):
    """One teacher per test session (built on first use)."""
    if "path" not in _SHARED:
        _SHARED["agnews"] = write_agnews_tsv(tmp_path_factory.mktemp("agnews"))
        path = str(tmp_path_factory.mktemp("teacher") / "teacher.keras")
        _SHARED["data"], _SHARED["encoder"] = make_teacher(path)
        _SHARED["path"] = path
    return _SHARED["path"]


def write_config(path, teacher_path, output, **sections):
    cfg = {
        "data": agnews_data(),
        "teacher": {"model": teacher_path, "sequence_length": SEQ},
        "student": {"architecture": "text_cnn",
                    "options": {"embedding_dim": 8, "filters": 8}},
        "distill": {"epochs": 2, "batch_size": 32, "baseline": True,
                    "augment": {"copies": 0}},
        "export": {"formats": ["saved_model", "tflite", "onnx"], "quantization": ["none"]},
        "output": output,
        "verbose": 0,
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return str(path)


def teacher_accuracy(teacher_path, x, y):
    teacher = keras.saving.load_model(teacher_path, safe_mode=True)
    logits = np.asarray(teacher.predict(x, verbose=0))
    return float(np.mean(logits.argmax(-1) == y))
