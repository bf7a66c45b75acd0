"""The export report: `report.json`, `report.md` and `report.png`.

`report.json` follows the public contract:

    {"reference": {"accuracy": ..., "params": ...},
     "artifacts": [{"format", "quantization", "path", "size_bytes",
                    "max_abs_diff", "top1_agreement", "accuracy",
                    "latency_ms_p50", "latency_ms_p95", ...}]}

Each artifact also records `file` (relative to the export directory),
`sha256`, batch-32 latencies, its `tolerance` and whether it `passed`.
"""

import json
import os

COLUMNS = (
    ("format", "format", "{}"),
    ("quantization", "quantization", "{}"),
    ("size", "size_bytes", None),
    ("max |diff|", "max_abs_diff", "{:.2e}"),
    ("top-1 agree", "top1_agreement", "{:.4f}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("p50 ms (b1)", "latency_ms_p50", "{:.3f}"),
    ("p95 ms (b1)", "latency_ms_p95", "{:.3f}"),
    ("p50 ms (b32)", "latency_ms_p50_batch32", "{:.3f}"),
    ("p95 ms (b32)", "latency_ms_p95_batch32", "{:.3f}"),
    ("passed", "passed", "{}"),
)


def human_size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _cell(entry, key, fmt):
    value = entry.get(key)
    if value is None:
        return "–"
    if key == "size_bytes":
        return human_size(value)
    return fmt.format(value)


def markdown_table(artifacts):
    """Returns the artifacts as a Markdown table.

    Example:

    >>> print(markdown_table([{"format": "onnx", "quantization": "none"}])
    ...       .splitlines()[0])  # doctest: +ELLIPSIS
    | format | quantization | size | ...
    """
    lines = [
        "| " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for entry in artifacts:
        lines.append(
            "| " + " | ".join(_cell(entry, k, f) for _, k, f in COLUMNS) + " |"
        )
    return "\n".join(lines)


def write_markdown(report, path, chart_name="report.png"):
    ref = report["reference"]
    acc = ref.get("accuracy")
    lines = [
        "# Export report",
        "",
        f"Keras reference: {ref['params']:,} parameters, accuracy "
        + (f"{acc:.4f}" if acc is not None else "– (no labels)")
        + f" on {report['validation']['examples']} validation examples.",
        "",
        "Each artifact ran in its own runtime (TensorFlow, LiteRT, ONNX Runtime), "
        "single-threaded and warm; differences are on logits against Keras.",
        "",
        markdown_table(report["artifacts"]),
        "",
    ]
    if report.get("skipped"):
        lines += ["Skipped (format has no such quantization):", ""]
        lines += [f"- {s['format']}/{s['quantization']}" for s in report["skipped"]]
        lines.append("")
    lines += [f"![size, latency and accuracy per artifact]({chart_name})", ""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def write_chart(report, path):
    """Bar charts of size, p50 latency (batch 1) and accuracy per artifact."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    arts = report["artifacts"]
    names = [f"{a['format']}\n{a['quantization']}" for a in arts]
    panels = (
        ("size (KiB)", [a["size_bytes"] / 1024 for a in arts]),
        ("p50 latency, batch 1 (ms)", [a["latency_ms_p50"] or 0 for a in arts]),
        ("accuracy", [a["accuracy"] or 0 for a in arts]),
    )
    fig, axes = plt.subplots(1, 3, figsize=(4 + 1.6 * len(arts), 3.6))
    for ax, (title, values) in zip(axes, panels):
        ax.bar(range(len(values)), values, color="#4c72b0")
        ax.set_xticks(range(len(values)), names, fontsize=7)
        ax.set_title(title, fontsize=9)
    ref_acc = report["reference"].get("accuracy")
    if ref_acc is not None:
        axes[2].axhline(ref_acc, color="#c44e52", ls="--", lw=1, label="Keras")
        axes[2].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(report, out_dir):
    """Writes `report.json`, `report.md` and `report.png` into `out_dir`."""
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    write_chart(report, os.path.join(out_dir, "report.png"))
    write_markdown(report, os.path.join(out_dir, "report.md"))
