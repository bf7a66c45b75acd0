"""Tests for benchmarks/frontier.py: the selection logic against brute-force
references, the table, the plot, and one tiny end-to-end run (slow)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BENCHMARKS
from conftest import load_benchmark



frontier = load_benchmark("frontier")
Point = frontier.Point


def _random_points(rng, n=25):
    params = rng.choice(np.arange(1_000, 100_000), size=n, replace=False)
    kd = rng.uniform(0.5, 0.9, size=n).round(2)  # ties on purpose
    lat = rng.uniform(0.01, 1.0, size=n).round(1)
    return [Point(f"s{i}", int(params[i]), float(kd[i]),
                  latency_ms=None if i % 7 == 0 else float(lat[i])) for i in range(n)]


def test_smallest_meeting_matches_brute_force(rng):
    for _ in range(20):
        points = _random_points(rng)
        teacher = float(rng.uniform(0.8, 0.95))
        kd = np.array([p.kd for p in points], dtype=np.float64)
        params = np.array([p.params for p in points])
        ok = np.flatnonzero(kd >= 0.97 * teacher)
        expected = points[ok[np.argmin(params[ok])]].name if len(ok) else None
        assert frontier.smallest_meeting(points, teacher) == expected


def test_smallest_meeting_threshold_and_none():
    points = [Point("big", 200, 0.97), Point("small", 100, 0.96)]
    assert frontier.smallest_meeting(points, 1.0) == "big"  # exactly 97% counts
    assert frontier.smallest_meeting(points, 1.0, fraction=0.96) == "small"
    assert frontier.smallest_meeting(points, 1.0, fraction=0.98) is None
    assert frontier.smallest_meeting([], 1.0) is None


def test_pareto_matches_brute_force(rng):
    for _ in range(20):
        points = _random_points(rng)
        cost = np.array([[p.params, np.inf if p.latency_ms is None else p.latency_ms, -p.kd]
                         for p in points], dtype=np.float64)
        expected = []
        for i in range(len(points)):
            no_worse = np.all(cost <= cost[i], axis=1)
            better = np.any(cost < cost[i], axis=1)
            if not np.any(no_worse & better):
                expected.append(i)
        expected.sort(key=lambda i: points[i].params)
        assert frontier.pareto(points) == [points[i].name for i in expected]


def test_pareto_keeps_a_slower_but_more_accurate_student():
    points = [Point("fast", 100, 0.70, latency_ms=0.1), Point("accurate", 100, 0.80,
                                                              latency_ms=1.0),
              Point("dominated", 150, 0.70, latency_ms=0.2)]
    assert frontier.pareto(points) == ["fast", "accurate"]


def test_markdown_table_rows():
    points = [Point("b", 300, 0.78, alone=0.75, latency_ms=0.2, speedup=50.0, int8_bytes=2048,
                    int8_accuracy=0.77, int8_passed=False),
              Point("a", 100, 0.70)]
    table = frontier.markdown_table(points, 0.80, 1_000_000, 10.0).splitlines()
    assert len(table) == 5
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in table]
    assert all(len(row) == len(cells[0]) for row in cells)
    assert [row[0] for row in cells[3:]] == ["a", "b"]  # by parameters
    a, b = cells[3], cells[4]
    assert a[2] == "-" and a[5] == "-" and a[7] == "-" and a[8] == "-"
    assert b[7] == "NO"  # a failed int8 artifact is visible
    assert float(b[4].rstrip("%")) == pytest.approx(100 * 0.78 / 0.80, abs=0.05)
    assert float(b[5]) == 2.0  # KiB
    assert cells[2][1] == "1,000,000"


def test_write_png(tmp_path):
    pytest.importorskip("matplotlib")
    points = [Point("a", 100_000, 0.70, latency_ms=0.01), Point("b", 500_000, 0.76,
                                                                 latency_ms=0.1),
              Point("c", 2_000_000, 0.78, latency_ms=1.0)]
    path = str(tmp_path / "frontier.png")
    frontier.write_png(points, 0.80, path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["frontier.png"]  # no temporary file left


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

    from kd_keras.config import to_dict

    ablation = load_benchmark("kd_ablation")
    raw = ablation.base_raw(types.SimpleNamespace(data=None, epochs=None, max_examples=None))
    cfg = ablation.variant_config(raw, {})
    old = dict(to_dict(cfg.distill))
    del old["feature_dtype"]
    now = frontier._current_form(raw, {"data": to_dict(cfg.data), "distill": old})
    assert now["distill"] == to_dict(cfg.distill)
    assert now["data"] == to_dict(cfg.data)
