"""PNG plots of a latency run (matplotlib, Agg backend: no display needed).

Both plots read the JSON-ready payload of :func:`streamtsm.bench.latency.measure_latency` (or the
``latency.json`` it wrote), so they can be redrawn without re-measuring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .results import save_figure
from .timing import timing_value


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (files only: works without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency_per_frame(payload: Mapping[str, Any], path: Path) -> Path:
    """Median compute per input frame vs window stride, log scale; online models are flat lines."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for r in payload["results"]:
        strides = [p["stride"] for p in r["per_frame"]]
        ms = [p["median_ms"] for p in r["per_frame"]]
        online = r["mode"] == "online"
        ax.plot(strides, ms, linestyle="--" if online else "-", marker="" if online else "o", linewidth=2 if online else 1.5,
                label=f"{r['model']} ({r['mode']}, {r['backend']})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    strides = payload["options"]["strides"]
    ax.set_xticks(strides, [str(s) for s in strides])
    ax.set_xlabel("window stride (frames between predictions)")
    ax.set_ylabel("compute per input frame, median (ms)")
    env = payload["environment"]
    ax.set_title(f"Per-frame compute: online TSM vs 3D-CNN windows\n{env['processor']}, {env['cpu_count']} cores, fp32, batch 1",
                 fontsize=9)
    ax.axhline(1000.0 / 30.0, color="grey", linewidth=0.8, linestyle=":")
    ax.text(strides[0], 1000.0 / 30.0 * 1.08, "30 fps budget (33 ms)", fontsize=7, color="grey")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_end_to_end(payload: Mapping[str, Any], path: Path) -> Path:
    """Bars of end-to-end (capture to label) p50 and p99 per model/backend/stride, log scale."""
    plt = pyplot()
    rows = [r for r in payload["end_to_end"] if r["end_to_end"] is not None]
    labels = [f"{r['model']}\n{r['backend']}" + (f" s{r['stride']}" if r["stride"] is not None else "") for r in rows]
    p50 = [timing_value(r["end_to_end"], "median_ms") for r in rows]
    p99 = [timing_value(r["end_to_end"], "p99_ms") for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(rows) + 2), 4.8), dpi=110)
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax.bar([x + 0.2 for x in xs], p99, width=0.4, label="p99")
    ax.set_xticks(list(xs), labels, rotation=60, ha="right", fontsize=6)
    ax.set_yscale("log")
    ax.set_ylabel("capture → label latency (ms)")
    ax.set_title("End to end on a real-time 30 fps source (Recognizer + capture thread)", fontsize=9)
    ax.grid(True, axis="y", which="both", linewidth=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path
