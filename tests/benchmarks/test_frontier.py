"""Tests for benchmarks/frontier.py: one tiny end-to-end run (slow), merging
an earlier run's students, and the recipe with augmented copies."""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from conftest import BENCHMARKS
from conftest import load_benchmark

frontier = load_benchmark("frontier")
Point = frontier.Point


@pytest.mark.slow
def test_main_tiny_run(tmp_path):
    out, png = tmp_path / "f.json", tmp_path / "f.png"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "frontier.py"), "--max-examples", "60",
         "--epochs", "1", "--seeds", "0", "--students", "text_cnn_small", "--out", str(out),
         "--png", str(png)], check=True, env=env, capture_output=True, text=True,
        timeout=900)
    result = json.loads(out.read_text())
    assert not os.path.exists(tmp_path / "f.partial.json")  # removed once complete
    row = result["students"]["text_cnn_small"]
    # embedding 30522 x 16, conv widths 3, 4, 5 with 50 filters, dense 150 -> 2.
    expected = 30522 * 16 + sum(k * 16 * 50 + 50 for k in (3, 4, 5)) + 150 * 2 + 2
    assert row["params"] == expected
    assert row["kd"] == pytest.approx(np.mean([r["kd"] for r in row["runs"]]))
    assert row["kd_over_teacher"] == pytest.approx(row["kd"] / result["teacher"]["accuracy"])
    assert isinstance(row["int8"]["tflite"]["passed"], bool)
    assert row["int8_bytes"] == row["int8"]["tflite"]["size_bytes"] > 0
    assert row["latency_ms"] > 0 and result["teacher"]["saved_model_ms"] > 0
    assert result["pareto"] == ["text_cnn_small"] and result["students_left"] == []
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _results_file(path, teacher=0.8, seeds=(0, 1, 2), left=()):
    point = {"params": 10, "kd": 0.7, "alone": 0.6, "latency_ms": 0.1, "speedup": 200.0,
             "int8_bytes": 12, "int8_accuracy": 0.69, "int8_passed": True}
    rows = {name: dict(point, name=name, student=frontier.STUDENTS[name],
                       latency={"teacher_saved_model_ms": ms})
            for name, ms in (("text_cnn", 20.0), ("mlp", 30.0))}
    path.write_text(json.dumps({"teacher": {"accuracy": teacher}, "seeds": list(seeds),
                                "students": rows, "students_left": list(left)}))
    return str(path)


def test_a_run_of_some_students_keeps_the_others_of_the_same_settings(tmp_path):
    path = _results_file(tmp_path / "f.json")
    points, rows, teacher_ms = frontier.kept_students(path, 0.8, {"seeds": [0, 1, 2]}, ["mlp"])
    assert list(rows) == ["text_cnn"] and teacher_ms == [20.0]
    assert points == [Point("text_cnn", 10, 0.7, 0.6, 0.1, 200.0, 12, 0.69, True)]
    for changed in ({"teacher": 0.81}, {"seeds": (0,)}, {"left": ["bigru"]}):
        path = _results_file(tmp_path / "g.json", **changed)
        assert frontier.kept_students(path, 0.8, {"seeds": [0, 1, 2]}, ["mlp"]) == ([], {}, [])
    # A student whose definition changed since is measured again, not kept.
    results = json.loads((tmp_path / "f.json").read_text())
    results["students"]["text_cnn"]["student"] = {"options": {"filters": 7}}
    (tmp_path / "h.json").write_text(json.dumps(results))
    kept = frontier.kept_students(str(tmp_path / "h.json"), 0.8, {"seeds": [0, 1, 2]}, ["mlp"])
    assert kept == ([], {}, [])


def test_an_unreadable_results_file_is_not_merged(tmp_path, capsys):
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"teacher": {"accuracy": 0.8}}))  # no "students"
    assert frontier.kept_students(str(path), 0.8, {}, ["mlp"]) == ([], {}, [])
    assert "not merged" in capsys.readouterr().out


def test_results_from_before_a_config_key_compare_with_its_default():
    """`_current_form`: a results file written before `distill.feature_dtype`
    existed reads as the same settings as today's default config."""
    import types

    from kd_keras.config import header_resolved
    from kd_keras.config import to_dict

    ablation = load_benchmark("kd_ablation")
    raw = ablation.base_raw(types.SimpleNamespace(data=None, epochs=None, max_examples=None))
    cfg = ablation.variant_config(raw, {})
    old = dict(to_dict(cfg.distill))
    del old["feature_dtype"]
    now = frontier._current_form(raw, {"data": to_dict(cfg.data), "distill": old})
    assert now["distill"] == to_dict(cfg.distill)
    # The header as read (`false`), which is what files from before `null` say.
    assert now["data"] == to_dict(header_resolved(cfg.data)) == dict(
        to_dict(cfg.data), header=False)
    older = frontier._current_form(raw, {"data": dict(to_dict(cfg.data), header=False),
                                         "distill": old})
    assert older["data"] == now["data"]


def test_without_copies_changes_only_the_copies():
    from kd_keras.config import parse_config
    from kd_keras.config import to_dict

    cfg = parse_config({"data": {"builtin": "rt_polarity"}, "teacher": {"backbone": "minilm"},
                        "distill": {"augment": {"copies": 10, "replace_prob": 0.3}}})
    plain = frontier.without_copies(cfg)
    assert plain.distill.augment.copies == 0
    expected = to_dict(cfg)
    expected["distill"]["augment"]["copies"] = 0
    assert to_dict(plain) == expected


@pytest.mark.slow
def test_a_recipe_with_copies_distils_on_them(tmp_path):
    """`--run` with a recipe that has `distill.augment.copies`: the finished
    run's teacher outputs cover the split, and the copies are labelled by
    its teacher. The distilled students train on the split plus its copies:
    the pruned student's embedding has a row for each id that the sentences
    or their copies use (word replacement brings ids the sentences lack),
    plus the row the other ids share."""
    from kd_keras import teachers
    from kd_keras.pipeline import data_stage
    from kd_keras.pipeline.teacher_store import store_outputs

    sets = {"distill.augment.copies": 2, "distill.augment.replace_prob": 0.5}
    quality = load_benchmark("quality")
    kd_ablation = load_benchmark("kd_ablation")
    args = types.SimpleNamespace(data=None, builtin=None, epochs=1, max_examples=60,
                                 overrides=sets)
    cfg = kd_ablation.variant_config(quality.base_raw(args), {})
    # A finished run of the split without copies: its teacher's weights
    # (the adapted head left at its initial values) and its logits.
    split = data_stage.prepare_data(frontier.without_copies(cfg))
    run = tmp_path / "run"
    run.mkdir()
    t = cfg.teacher
    teacher = teachers.build_text_teacher(teachers.resolve_backbone(t.backbone),
                                          split.num_classes, sequence_length=t.sequence_length,
                                          pooling=t.pooling)
    teacher.save_weights(str(run / "teacher.weights.h5"))
    store_outputs(str(run / "teacher_outputs"), split.ids, {
        s: np.random.default_rng(0).normal(size=(len(y), 2)).astype(np.float32)
        for s, y in split.labels.items()}, "random teacher", 2)

    out = tmp_path / "f.json"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    subprocess.run(
        [sys.executable, os.path.join(BENCHMARKS, "frontier.py"), "--run", str(run),
         "--max-examples", "60", "--epochs", "1", "--seeds", "0", "--students",
         "text_cnn_pruned", "--no-latency", "--no-plot", "--out", str(out)]
        + [a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
        check=True, env=env, capture_output=True, text=True, timeout=900)
    row = json.loads(out.read_text())["students"]["text_cnn_pruned"]

    ids = data_stage.prepare_data(cfg).ids["train"]
    sentences = len(split.ids["train"])
    assert len(ids) == 3 * sentences  # the sentences, then 2 blocks of copies
    used, used_by_sentences = len(np.unique(ids)), len(np.unique(ids[:sentences]))
    assert used > used_by_sentences  # the copies bring ids of their own
    # The text CNN's layers with `used + 1` embedding rows, and the id table
    # (one int32 per vocabulary id), which `count_params` counts too.
    layers = (used + 1) * 64 + sum(k * 64 * 100 + 100 for k in (3, 4, 5)) + 300 * 2 + 2
    assert row["params"] == layers + 30522
