"""One failed artifact no longer loses the export or the run:
it is set aside in `rejected/`, named in the reports, and the run is published
before it ends with one line naming the artifact and `export.allow_mismatch`."""

import json
import os

import keras
import numpy as np
import pytest
import yaml

from kd_keras.export import export_model
from kd_keras.export import tolerances
from kd_keras.export import verify_export

# No artifact can agree with Keras on more than 100% of the examples: every
# int8 artifact misses this tolerance, whatever the model.
UNREACHABLE_INT8 = {"min_top1_agreement": 1.01, "max_accuracy_drop": 0.01}


def _tiny_model():
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="features")
    return keras.Model(x, keras.layers.Dense(3)(x), name="tiny")


def test_export_sets_the_failed_artifacts_aside(tmp_path, monkeypatch):
    monkeypatch.setitem(tolerances.TOLERANCES, "int8", UNREACHABLE_INT8)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    out = str(tmp_path / "out")
    report = export_model(_tiny_model(), out, formats=("tflite", "onnx"),
                          quantization=("none", "int8"), representative_data=x,
                          latency_runs=0, reject_mismatch=True)
    assert sorted(a["path"] for a in report["artifacts"]) == [
        os.path.join(out, "onnx/model.onnx"), os.path.join(out, "tflite/model.tflite")]
    assert sorted(os.listdir(os.path.join(out, "tflite"))) == ["model.json", "model.tflite"]
    for fmt in ("tflite", "onnx"):
        assert os.path.isfile(os.path.join(out, "rejected", fmt, f"model_int8.{fmt}"))
    assert os.path.isfile(os.path.join(out, "rejected", "tflite", "model_int8.json"))
    with open(os.path.join(out, "report.json")) as f:
        stored = json.load(f)
    assert {(a["format"], a["path"]) for a in stored["rejected"]} == {
        ("tflite", "rejected/tflite/model_int8.tflite"), ("onnx", "rejected/onnx/model_int8.onnx")}
    for entry in stored["rejected"]:
        assert entry["passed"] is False
        assert entry["failures"][0].startswith(f"top1_agreement {entry['top1_agreement']:.4f} < 1.01")
    with open(os.path.join(out, "report.md")) as f:
        assert "`rejected/tflite/model_int8.tflite` (tflite/int8): top1_agreement" in f.read()
    # What was kept verifies; rejected/ is not part of the served layout.
    monkeypatch.setitem(tolerances.TOLERANCES, "int8", {"min_top1_agreement": 0.98,
                                                        "max_accuracy_drop": 0.01})
    checks = verify_export(out, latency_runs=0)
    assert [c.artifact.path for c in checks] == ["tflite/model.tflite", "onnx/model.onnx"]
    assert all(c.passed for c in checks)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small labelled data set and a ready teacher reading MiniLM ids."""
    from kd_keras.data import WordPieceEncoder
    from kd_keras.teachers import minilm_dir
    from pipeline import resume_helpers as rh

    root = tmp_path_factory.mktemp("rejected")
    rh.write_tsv(root / "train.tsv", rh.sentences(64, seed=0))
    rh.write_tsv(root / "test.tsv", rh.sentences(32, seed=1))
    enc = WordPieceEncoder(os.path.join(minilm_dir(), "vocab.txt"), 12)
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([
        keras.Input((12,), dtype="int32"), keras.layers.Embedding(enc.vocab_size, 4),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(2)])
    teacher.save(str(root / "teacher.keras"))
    return root


def _config(world, tmp_path, **export):
    cfg = {
        "data": {"train": str(world / "train.tsv"), "test": str(world / "test.tsv")},
        "teacher": {"model": str(world / "teacher.keras")},
        "student": {"architecture": "text_cnn", "sequence_length": 12,
                    "options": {"embedding_dim": 8, "filters": 8}},
        "distill": {"epochs": 1, "batch_size": 16, "baseline": False, "augment": {"copies": 0}},
        "export": {"formats": ["tflite"], "quantization": ["none", "int8"], "text": False,
                   **export},
        "output": str(tmp_path / "run"),
        "verbose": 0,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path), str(tmp_path / "run")


@pytest.mark.slow
def test_a_failed_int8_artifact_keeps_the_run(world, tmp_path, monkeypatch, capsys):
    from kd_keras.cli import main

    monkeypatch.setitem(tolerances.TOLERANCES, "int8", UNREACHABLE_INT8)
    config, out = _config(world, tmp_path)
    assert main(["distill", config]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("kd-keras")]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    rejected_file = os.path.join(out, "export", "rejected", "tflite", "model_int8.tflite")
    assert lines[0].startswith("kd-keras distill: error: export: tflite/int8 failed "
                               "verification (top1_agreement "), lines[0]
    assert "< 1.01" in lines[0] and rejected_file in lines[0]
    assert lines[0].endswith("set export.allow_mismatch: true")
    assert "distilled student" in captured.out  # The results table is still shown.

    # Published, not discarded: results, the passing artifact, the rejected one.
    assert not os.path.exists(out + ".partial")
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    assert 0 <= results["student"]["accuracy"] <= 1
    assert [a["path"] for a in results["details"]["artifacts"]] == ["export/tflite/model.tflite"]
    (rejected,) = results["details"]["rejected"]
    assert rejected["path"] == "export/rejected/tflite/model_int8.tflite"
    assert rejected["failures"][0].startswith("top1_agreement")
    assert os.path.isfile(os.path.join(out, "export", "tflite", "model.tflite"))
    assert os.path.isfile(rejected_file)
    assert not os.path.exists(os.path.join(out, "export", "tflite", "model_int8.tflite"))
    with open(os.path.join(out, "export", "report.json")) as f:
        assert [a["path"] for a in json.load(f)["rejected"]] == [
            "rejected/tflite/model_int8.tflite"]

    # The config key the message names keeps the artifact where it was.
    config, out = _config(world, tmp_path, allow_mismatch=True)
    assert main(["distill", config]) == 0
    with open(os.path.join(out, "export", "report.json")) as f:
        report = json.load(f)
    assert report["rejected"] == []
    int8 = [a for a in report["artifacts"] if a["quantization"] == "int8"]
    assert [a["passed"] for a in int8] == [False]
    assert os.path.isfile(os.path.join(out, "export", "tflite", "model_int8.tflite"))


def test_allow_mismatch_is_validated():
    from kd_keras.config import parse_config
    from kd_keras.errors import ConfigError

    with pytest.raises(ConfigError, match="^export.allow_mismatch: must be true or false, got 'yes'"):
        parse_config({"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
                         "export": {"allow_mismatch": "yes"}})
