"""Tests for benchmarks/frontier_points.py: the selection logic against
brute-force references, the table and the plot."""

import os

import numpy as np
import pytest

from conftest import load_benchmark

points_module = load_benchmark("frontier_points")
Point = points_module.Point


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
        assert points_module.smallest_meeting(points, teacher) == expected


def test_smallest_meeting_threshold_and_none():
    points = [Point("big", 200, 0.97), Point("small", 100, 0.96)]
    assert points_module.smallest_meeting(points, 1.0) == "big"  # exactly 97% counts
    assert points_module.smallest_meeting(points, 1.0, fraction=0.96) == "small"
    assert points_module.smallest_meeting(points, 1.0, fraction=0.98) is None
    assert points_module.smallest_meeting([], 1.0) is None


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
        assert points_module.pareto(points) == [points[i].name for i in expected]


def test_pareto_keeps_a_slower_but_more_accurate_student():
    points = [Point("fast", 100, 0.70, latency_ms=0.1), Point("accurate", 100, 0.80,
                                                              latency_ms=1.0),
              Point("dominated", 150, 0.70, latency_ms=0.2)]
    assert points_module.pareto(points) == ["fast", "accurate"]


def test_markdown_table_rows():
    points = [Point("b", 300, 0.78, alone=0.75, latency_ms=0.2, speedup=50.0, int8_bytes=2048,
                    int8_accuracy=0.77, int8_passed=False),
              Point("a", 100, 0.70)]
    table = points_module.markdown_table(points, 0.80, 1_000_000, 10.0).splitlines()
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
    points_module.write_png(points, 0.80, path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["frontier.png"]  # no temporary file left
