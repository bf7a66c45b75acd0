"""A run's summary: its table, its stage times, the training-curves PNG."""

from kd_keras.files.atomic import atomic_path
from kd_keras.pipeline.results import RunResults


def plot_curves(distill_history, baseline_history, path):
    """Writes a PNG of loss and validation accuracy per epoch (atomically).

    Args:
        distill_history: `History.history` of the distillation.
        baseline_history: `History.history` of the baseline, or `None`.
        path: the `.png` to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    runs = [("distilled", distill_history), ("student alone", baseline_history)]
    for label, h in runs:
        if not h:
            continue
        for key, style in (("loss", "-"), ("val_loss", "--")):
            if key in h:
                ax_loss.plot(range(1, len(h[key]) + 1), h[key], style, label=f"{label} {key}")
        for key, style in (("sparse_categorical_accuracy", "-"),
                           ("val_sparse_categorical_accuracy", "--")):
            if key in h:
                name = "val" if key.startswith("val") else "train"
                ax_acc.plot(range(1, len(h[key]) + 1), h[key], style, label=f"{label} {name}")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_acc.set(title="accuracy", xlabel="epoch")
    for ax in (ax_loss, ax_acc):
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=80)
    finally:
        plt.close(fig)


def keras_latency_ms(model, example, runs=20):
    """Median latency in ms of `model.predict_on_batch` on one example
    (after a warm-up call): at most `runs` timed calls, stopped after the
    export's budget per batch size (`LATENCY_MAX_SECONDS`)."""
    import numpy as np

    from kd_keras.export.verify import LATENCY_MAX_SECONDS
    from kd_keras.timing import time_calls

    if len(example) == 0:
        return None
    times = time_calls(lambda: model.predict_on_batch(example), runs,
                       max_seconds=LATENCY_MAX_SECONDS)
    return float(np.median(times))


def artifact_summary(export_report):
    """Compact per-artifact numbers from an export report (`input` is
    `"text"` for the raw-sentence artifacts, tokenizer inside, else `"ids"`)."""
    rows = []
    for a in export_report.get("artifacts", []):
        row = {k: a.get(k) for k in (
            "format", "quantization", "path", "size_bytes", "accuracy", "top1_agreement",
            "max_abs_diff", "latency_ms_p50", "passed")}
        row["input"] = "text" if a.get("validation") == "text" else "ids"
        rows.append(row)
    return rows


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def results_table(rows):
    """Formats rows of `(name, accuracy, params, size_bytes, latency_ms)` as a
    plain-text table.

    Example:

    >>> print(results_table([("teacher", 0.8, 22713216, None, 35.0)]))
    model     accuracy      params    size  latency (ms)
    teacher     80.00%  22,713,216       -        35.000
    """
    width = max([len(r[0]) for r in rows] + [5]) + 2
    header = f"{'model':<{width}}{'accuracy':>9}{'params':>12}{'size':>8}{'latency (ms)':>14}"
    lines = [header]
    for name, acc, params, size, latency in rows:
        acc_s = "-" if acc is None else f"{100 * acc:.2f}%"
        size_s = "-" if size is None else _human(size)
        lines.append(f"{name:<{width}}{acc_s:>9}{_fmt(params, ',d'):>12}{size_s:>8}"
                     f"{_fmt(latency, '.3f'):>14}")
    return "\n".join(lines)


def _duration(seconds):
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def stage_times_line(seconds):
    """One line of where a run's time went, from `results.json["seconds"]`.

    Example:

    >>> print(stage_times_line({"data": 2.4, "teacher_outputs": 95.0, "total": 97.4}))
    time: data 2s, teacher outputs 1m35s; total 1m37s
    """
    parts = [f"{name.replace('_', ' ')} {_duration(value)}"
             for name, value in seconds.items() if name != "total"]
    total = seconds.get("total")
    return f"time: {', '.join(parts)}" + ("" if total is None else f"; total {_duration(total)}")


def recipe_lines(recipe):
    """What the default recipe chose, one line per key, from
    `results.json["details"]["recipe"]` (no lines when the config set
    every key).

    Example:

    >>> print(recipe_lines([{"key": "distill.augment.copies", "value": 10, "shown": "10",
    ...                      "reason": "8530 training texts"}]))
    default recipe: distill.augment.copies = 10 (8530 training texts)
    """
    return "\n".join(f"default recipe: {c['key']} = {c['shown']} ({c['reason']})"
                      for c in recipe)


def _human(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024


def summary_rows(results):
    """Table rows (name, accuracy, params, size_bytes, latency_ms) of a
    `results.json` (its dict, read through `RunResults.from_json`):
    teacher, student alone, distilled student and each exported artifact of
    the distilled student (`(text)`: takes raw sentences, its latency
    includes tokenization)."""
    r = RunResults.from_json(results)
    rows = [("teacher", r.teacher.accuracy, r.teacher.params, None, r.teacher.latency_ms_p50)]
    if r.student_without_distillation is not None:
        s = r.student_without_distillation
        rows.append(("student alone", s.accuracy, s.params, None, None))
    rows.append(("distilled student", r.student.accuracy, r.student.params, None, None))
    for a in r.details.get("artifacts", []):
        text = " (text)" if a.get("input") == "text" else ""
        rows.append((f"  {a['format']} {a['quantization']}{text}", a.get("accuracy"),
                     r.student.params, a.get("size_bytes"), a.get("latency_ms_p50")))
    return rows


def run_summary(results):
    """What a finished run prints: the recipe's choices (when it chose),
    the results table and the stage times, as lines of text.

    Args:
        results: the run's `results.json` dict.

    Returns:
        The text, without a final newline.
    """
    lines = []
    if results.get("details", {}).get("recipe"):
        lines.append(recipe_lines(results["details"]["recipe"]))
    lines.append(results_table(summary_rows(results)))
    if results.get("seconds"):
        lines.append(stage_times_line(results["seconds"]))
    return "\n".join(lines)
