"""`precision: mixed_bfloat16`: the run builds its students (and a backbone
teacher) in bfloat16, and saves float32 students with the same weights."""

import json
import os

import keras
import numpy as np
import pytest

from kd_keras.pipeline.precision import building
from kd_keras.pipeline.precision import float32_copy
from pipeline import tiny_run


def test_building_sets_the_policy_for_the_block_only():
    with pytest.raises(RuntimeError):
        with building("mixed_bfloat16"):
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            raise RuntimeError
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(ValueError, match="precision"):
        with building("float16"):
            pass


def test_the_float32_copy_computes_what_numpy_does():
    rng = np.random.default_rng(0)
    with building("mixed_bfloat16"):
        mixed = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="d")])
    w, b = (rng.normal(size=v.shape) for v in mixed.get_weights())
    mixed.set_weights([w.astype("float32"), b.astype("float32")])
    x = rng.normal(size=(7, 5)).astype("float32")
    reference = x.astype(np.float64) @ w.astype(np.float32) + b.astype(np.float32)
    plain = float32_copy(mixed)
    assert plain.get_layer("d").compute_dtype == "float32"
    np.testing.assert_allclose(plain.predict(x, verbose=0), reference, atol=1e-5)
    # The bfloat16 model itself is only near it (8 bits of mantissa).
    bf16 = np.asarray(mixed.predict(x, verbose=0), np.float64)
    assert 1e-5 < np.abs(bf16 - reference).max() < 0.1


def test_a_mixed_run_trains_in_bfloat16_and_saves_float32_students(tmp_path, capsys,
                                                                    monkeypatch):
    from kd_keras.cli import main
    from kd_keras.pipeline import training_stage

    trained = []
    fit = training_stage._fit

    def recording(*args, **kwargs):
        model = fit(*args, **kwargs)
        trained.append({layer.compute_dtype for layer in model.layers})
        return model

    monkeypatch.setattr(training_stage, "_fit", recording)
    base = tiny_run.make_world(tmp_path)
    config = tiny_run.write_config(tmp_path / "config.yaml", base, precision="mixed_bfloat16",
                                   **{"distill.baseline": True})
    assert main(["distill", config]) == 0
    assert trained and all("bfloat16" in dtypes for dtypes in trained)
    out = base["output"]
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(out, "history.json")) as f:
        assert np.isfinite(json.load(f)["distill"]["loss"]).all()
    for name in ("student.keras", "student_without_distillation.keras"):
        saved = keras.saving.load_model(os.path.join(out, name), safe_mode=True)
        assert {layer.compute_dtype for layer in saved.layers} == {"float32"}, name
    assert 0.0 <= results["student"]["accuracy"] <= 1.0


def test_a_backbone_teacher_is_built_in_bfloat16(tmp_path):
    from kd_keras.config import parse_config
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline import teacher_stage
    from kd_keras.pipeline.workdir import RunDir
    from pipeline import resume_helpers as rh
    from teachers.conftest import save_tiny_bert

    bert = str(tmp_path / "bert")
    save_tiny_bert(bert, initializer_range=0.02)
    rh.write_tsv(tmp_path / "train.tsv", rh.sentences(40, seed=0))
    logits = {}
    for precision in ("float32", "mixed_bfloat16"):
        cfg = parse_config({
            "data": {"train": "train.tsv"}, "precision": precision,
            "teacher": {"backbone": bert, "sequence_length": 16, "fine_tune": {
                "train_backbone": True, "top_layers": 1, "epochs": 1, "batch_size": 16}},
            "student": {"sequence_length": 12}, "distill": {"augment": {"copies": 0},
                                                             "features": []},
            "verbose": 0}, base_dir=str(tmp_path))
        data = data_stage.prepare_data(cfg)
        run = RunDir(str(tmp_path / precision), cfg)
        state = teacher_stage.adapt_teacher(cfg, data, run, None)
        outputs = teacher_stage.compute_outputs(cfg, data, state, run)
        backbone = state.model.classifier.get_layer("backbone")
        assert backbone.compute_dtype == ("float32" if precision == "float32" else "bfloat16")
        logits[precision] = outputs.logits("train")
        assert logits[precision].dtype == np.float32
    # The same teacher to bfloat16's precision: the same decisions, near logits.
    # The tiny random teacher's decisions hang on differences below
    # bfloat16's precision, so only this holds: its outputs are bfloat16's.
    assert np.isfinite(logits["mixed_bfloat16"]).all()
    assert not np.array_equal(logits["float32"], logits["mixed_bfloat16"])
    assert keras.config.dtype_policy().name == "float32"


@pytest.mark.slow
def test_a_multi_worker_cluster_found_at_run_time_refuses_mixed_precision(tmp_path):
    """`strategy: auto` passes the config check, then resolves to
    MultiWorkerMirroredStrategy from `TF_CONFIG`: the run stops as soon as
    it has the strategy, before the data stage (whose training file here
    has no label column), with one line naming `precision`, exit code 2,
    and no output folder."""
    from tests.distribute.cluster import run_workers

    base = tiny_run.make_world(tmp_path)
    path = tiny_run.write_config(tmp_path / "mixed.yaml", base, precision="mixed_bfloat16",
                                 **{"distribute.strategy": "auto"})
    with open(base["data"]["train"], "w", encoding="utf-8") as f:
        f.write("a sentence without its label\n")
    [(status, output)] = run_workers("kd_keras", lambda _: ["distill", path], workers=1)
    assert status == 2, output
    assert output.strip().splitlines()[-1] == (
        "kd-keras distill: error: precision: must be float32 under MultiWorkerMirroredStrategy "
        "(mixed precision is not tested there), got mixed_bfloat16"), output
    assert not os.path.exists(base["output"])
    assert not os.path.exists(base["output"] + ".partial")
