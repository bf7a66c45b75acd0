"""Runs of `run_distill` interrupted at a stage boundary or mid-training,
on two teacher routes: a ready `.keras` teacher and a tiny BERT backbone."""

import json
import os

import keras
import numpy as np
import yaml

from kd_keras.pipeline.workdir import RunDir

POSITIVE = ("good", "great", "fun", "love", "brilliant", "funny")
NEGATIVE = ("bad", "awful", "boring", "hate", "dull", "slow")
NEUTRAL = ("the", "a", "film", "movie", "plot", "actor", "story", "scene", "music", "is",
           "was", "very")


class Stop(Exception):
    """The simulated interruption."""


def sentences(n, seed):
    """Texts whose label is the polarity of their opinion words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(NEUTRAL, 5)) + list(rng.choice(POSITIVE if label else NEGATIVE, 2))
        rng.shuffle(words)
        rows.append((" ".join(words), "pos" if label else "neg"))
    return rows


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for text, label in rows:
            f.write(f"{text}\t{label}\n")
    return str(path)


def stop_after(monkeypatch, stage):
    """Makes the run raise `Stop` right after `stage` records completion."""
    original = RunDir.finish

    def finish(self, name, record=None, files=()):
        original(self, name, record, files)
        if name == stage:
            raise Stop(stage)

    monkeypatch.setattr(RunDir, "finish", finish)


class StopAtEpoch(keras.callbacks.Callback):
    """Raises `Stop` at the end of an epoch of the training it is given to."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Stop(f"epoch {epoch}")


def write_config(path, data_dir, teacher, output, **sections):
    cfg = {
        "data": {"train": os.path.join(data_dir, "train.tsv"),
                 "test": os.path.join(data_dir, "test.tsv")},
        "teacher": dict(teacher, sequence_length=16),
        "student": {"architecture": "text_cnn", "sequence_length": 12,
                    "options": {"embedding_dim": 8, "filters": 8}},
        "distill": {"epochs": 3, "batch_size": 16, "baseline": True, "augment": {"copies": 0},
                    "early_stopping": {"patience": 1}},
        "export": {"formats": ["tflite"], "quantization": ["none"]},
        "output": output,
        "verbose": 0,
    }
    for key, value in sections.items():
        if isinstance(cfg.get(key), dict) and isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return str(path)


def published(output):
    """What a finished run holds: results (without timings and paths), the
    merged history, and the students' weights."""
    with open(os.path.join(output, "results.json")) as f:
        results = json.load(f)
    results["teacher"].pop("latency_ms_p50", None)
    results.pop("export", None)
    results.pop("seconds", None)  # Stage times differ between any two runs.
    for artifact in results["details"].get("artifacts") or []:
        artifact.pop("latency_ms_p50", None)
        # The text TFLite file records where its temporary SavedModel was, so
        # its size depends on the output path, not on what was trained.
        artifact.pop("size_bytes", None)
    with open(os.path.join(output, "history.json")) as f:
        history = json.load(f)
    weights = {}
    for name in ("student.keras", "student_without_distillation.keras"):
        model = keras.saving.load_model(os.path.join(output, name), safe_mode=True)
        weights[name] = model.get_weights()
    return results, history, weights
