"""The frontier's points: which distilled student to ship, as a table and a plot.

A `Point` is one student's mean accuracy, size and int8 latency.
`smallest_meeting` names the smallest student that keeps `TARGET` of the
teacher's accuracy, `pareto` the students no other beats, and
`markdown_table` and `write_png` show them (`frontier.py` measures them).
"""

import dataclasses
from typing import Optional

import numpy as np

from kd_keras.files.atomic import atomic_path

TARGET = 0.97  # the fraction of the teacher's accuracy a student must reach
LINES = (0.97, 0.98)  # drawn on the plot


@dataclasses.dataclass(frozen=True)
class Point:
    """One student on the frontier (accuracies are fractions; None: not measured)."""

    name: str
    params: int
    kd: float  # mean distilled test accuracy
    alone: Optional[float] = None  # mean test accuracy trained on labels alone
    latency_ms: Optional[float] = None  # int8 TFLite, one example, one thread
    speedup: Optional[float] = None  # teacher SavedModel ms / latency_ms
    int8_bytes: Optional[int] = None
    int8_accuracy: Optional[float] = None
    int8_passed: Optional[bool] = None


def smallest_meeting(points, teacher, fraction=TARGET):
    """The name of the student with the fewest parameters whose distilled
    accuracy is at least `fraction` of the teacher's, or None.

    Example:

    >>> pts = [Point("a", 100, 0.70), Point("b", 50, 0.78), Point("c", 10, 0.60)]
    >>> smallest_meeting(pts, teacher=0.80)
    'b'
    >>> smallest_meeting(pts, teacher=0.80, fraction=0.99) is None
    True
    """
    meeting = [p for p in points if p.kd >= fraction * teacher]
    return min(meeting, key=lambda p: p.params).name if meeting else None


def pareto(points):
    """Names of the students no other beats: none has at most their
    parameters and int8 latency (unmeasured counts as infinite) and at
    least their accuracy, better in one. Sorted by parameters.

    Example:

    >>> pts = [Point("big", 100, 0.80, latency_ms=2.0), Point("mid", 50, 0.78, latency_ms=1.0),
    ...        Point("worse", 60, 0.70, latency_ms=1.5), Point("tiny", 10, 0.60)]
    >>> pareto(pts)
    ['tiny', 'mid', 'big']
    """
    def key(p):
        return (p.params, np.inf if p.latency_ms is None else p.latency_ms, -p.kd)

    def dominates(a, b):
        return all(x <= y for x, y in zip(a, b)) and a != b

    keys = {p.name: key(p) for p in points}
    front = [p for p in points if not any(dominates(keys[q.name], keys[p.name]) for q in points)]
    return [p.name for p in sorted(front, key=lambda p: p.params)]


def _cell(value, form):
    return "-" if value is None else form.format(value)


def markdown_table(points, teacher, teacher_params, teacher_ms=None):
    """The frontier as a markdown table, teacher first, students by parameters.

    Example:

    >>> print(markdown_table([Point("cnn", 500_000, 0.76, 0.74, 0.05, 200.0, 520_000,
    ...                             0.755, True)], 0.80, 22_000_000, 10.0))
    | model | params | alone | distilled | kd/teacher | int8 KiB | int8 acc | verified | int8 ms | speed-up |
    |---|---:|---:|---:|---:|---:|---:|---|---:|---:|
    | teacher (SavedModel) | 22,000,000 | - | 80.00% | 100.0% | - | - | - | 10.00 | 1x |
    | cnn | 500,000 | 74.00% | 76.00% | 95.0% | 508 | 75.50% | yes | 0.050 | 200x |
    """
    rows = ["| model | params | alone | distilled | kd/teacher | int8 KiB | int8 acc | verified "
            "| int8 ms | speed-up |", "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
            f"| teacher (SavedModel) | {teacher_params:,} | - | {100 * teacher:.2f}% | 100.0% "
            f"| - | - | - | {_cell(teacher_ms, '{:.2f}')} | 1x |"]
    for p in sorted(points, key=lambda p: p.params):
        verified = {None: "-", True: "yes", False: "NO"}[p.int8_passed]
        rows.append(
            f"| {p.name} | {p.params:,} | {_cell(p.alone and 100 * p.alone, '{:.2f}%')} "
            f"| {100 * p.kd:.2f}% | {p.kd / teacher:.1%} "
            f"| {_cell(p.int8_bytes and p.int8_bytes / 1024, '{:.0f}')} "
            f"| {_cell(p.int8_accuracy and 100 * p.int8_accuracy, '{:.2f}%')} | {verified} "
            f"| {_cell(p.latency_ms, '{:.3f}')} | {_cell(p.speedup, '{:.0f}x')} |")
    return "\n".join(rows)


def write_png(points, teacher, path):
    """The frontier plot (atomically): x int8 latency (log), y distilled
    accuracy, marker area ~ parameters; the teacher and its 97%/98% as lines.
    Students without a latency are left out.
    """
    import matplotlib  # a dependency of kd_keras (its reports' plots)

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    shown = [p for p in points if p.latency_ms is not None]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    biggest = max([p.params for p in shown] or [1])
    for p in shown:
        ax.scatter(p.latency_ms, 100 * p.kd, s=40 + 800 * p.params / biggest, alpha=0.6)
        ax.annotate(f"{p.name}\n{p.params / 1e6:.2f}M", (p.latency_ms, 100 * p.kd),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.axhline(100 * teacher, color="k", label=f"teacher {100 * teacher:.1f}%")
    for fraction, style in zip(LINES, (":", "--")):
        ax.axhline(100 * fraction * teacher, color="gray", linestyle=style,
                   label=f"{fraction:.0%} of teacher")
    ax.set_xscale("log")
    ax.margins(x=0.25, y=0.15)
    ax.set(xlabel="int8 TFLite latency (ms, 1 example, 1 thread)",
           ylabel="distilled test accuracy (%)", title="students: accuracy vs latency vs size")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
