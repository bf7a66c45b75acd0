"""A tiny `kd-keras distill` world for the bad-input tests: a 30-token
vocabulary, sentences made of its words, a ready `.keras` teacher reading
length-8 ids, and a config mapping that trains one epoch without export."""

import json
import os

import keras
import yaml

from pipeline import resume_helpers as rh

SEQUENCE_LENGTH = 8
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
         *rh.POSITIVE, *rh.NEGATIVE, *rh.NEUTRAL]


def ids_teacher(num_classes=2, length=SEQUENCE_LENGTH):
    """An untrained teacher that reads `[batch, length]` int32 ids (its
    sentence vector is the layer `pooled`)."""
    return keras.Sequential([
        keras.Input((length,), dtype="int32"), keras.layers.Embedding(len(VOCAB), 4),
        keras.layers.GlobalAveragePooling1D(name="pooled"), keras.layers.Dense(num_classes)])


def make_world(root):
    """Writes the data, the vocabulary and the teacher under `root`.

    Returns:
        The config mapping (output under `root/out`).
    """
    root = str(root)
    rh.write_tsv(os.path.join(root, "train.tsv"), rh.sentences(48, seed=0))
    rh.write_tsv(os.path.join(root, "test.tsv"), rh.sentences(16, seed=1))
    with open(os.path.join(root, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    keras.utils.set_random_seed(0)
    ids_teacher().save(os.path.join(root, "teacher.keras"))
    return {
        "data": {"train": os.path.join(root, "train.tsv"),
                 "test": os.path.join(root, "test.tsv")},
        "teacher": {"model": os.path.join(root, "teacher.keras")},
        "student": {"architecture": "text_cnn", "sequence_length": SEQUENCE_LENGTH,
                    "vocabulary": os.path.join(root, "vocab.txt"),
                    "options": {"embedding_dim": 4, "filters": 4}},
        "distill": {"epochs": 1, "batch_size": 16, "baseline": False, "augment": {"copies": 0},
                    "early_stopping": None},
        "export": None,
        "output": os.path.join(root, "out"),
        "verbose": 0,
    }


def write_config(path, base, **changes):
    """Writes `base` with dotted-key `changes` (`"teacher.model": ...`) as YAML."""
    cfg = json.loads(json.dumps(base))
    for dotted, value in changes.items():
        node = cfg
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return str(path)


def run_cli(capsys, *argv):
    """Runs `kd-keras ARGV` in this process: `(status, stderr lines)`."""
    from kd_keras.cli import main

    capsys.readouterr()
    status = main(list(argv))
    return status, capsys.readouterr().err.splitlines()
