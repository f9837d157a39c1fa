"""The latency benchmark's report: Markdown tables, and the JSON, Markdown and PNG files it writes.

Reads only the JSON-ready payload of :func:`streamtsm.bench.latency.measure_latency` (or a
``latency.json`` loaded back), so a report can be redrawn without measuring again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .latency import HEADLINE, HEAVY_MODELS
from .machine import MEMORY_METHOD
from .plots import plot_end_to_end, plot_latency_per_frame
from .results import markdown_table, report_header, write_results
from .timing import timing_value


def compute_table(results: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        t = r["per_prediction"]
        rows.append({
            "model": r["model"], "mode": r["mode"], "backend": r["backend"],
            "input": "×".join(str(d) for d in r["input_shape"]),
            "median ms": timing_value(t, "median_ms"), "p90 ms": timing_value(t, "p90_ms"), "p99 ms": timing_value(t, "p99_ms"), "n": timing_value(t, "n"),
            "params M": r["params_m"], "GFLOPs": r["gflops"],
            "call peak RSS MiB": r["call_peak_rss_mb"] if r["call_peak_rss_mb"] is not None else "—",
        })
    return rows


def per_frame_table(results: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        row = {"model": r["model"], "backend": r["backend"]}
        row.update({f"stride {p['stride']}": p["median_ms"] for p in r["per_frame"]})
        rows.append(row)
    return rows


def end_to_end_table(e2e: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in e2e:
        t = r["end_to_end"]
        rows.append({
            "model": r["model"], "backend": r["backend"], "stride": r["stride"] if r["stride"] is not None else "—",
            "e2e p50 ms": timing_value(t, "median_ms") if t else "—", "e2e p99 ms": timing_value(t, "p99_ms") if t else "—",
            "predictions": r["predictions"], "sustained fps": r["sustained_fps"],
            "dropped": f"{r['frames_dropped']}/{r['frames_captured']}",
        })
    return rows


def render_markdown(payload: Mapping[str, Any]) -> str:
    opts = payload["options"]
    lines = [
        *report_header("Latency: online TSM vs 3D-CNN sliding windows", payload,
                       f"fp32, batch 1, {opts['threads'] or 'default'} thread(s) per engine", quick=opts["quick"]),
        "## Compute per prediction (interleaved in one run)",
        "",
        markdown_table(compute_table(payload["results"])),
        "",
        "## Amortised compute per input frame (ms, median) vs stride",
        "",
        markdown_table(per_frame_table(payload["results"]), ["model", "backend"] + [f"stride {s}" for s in opts["strides"]]),
        "",
        "Online models run every frame (the flat line); a window model's clip cost is divided by its stride.",
        "",
    ]
    online_name, window_name, stride = HEADLINE
    if payload["ratios"]:
        lines += ["## Headline ratios", ""]
        for kind, r in payload["ratios"].items():
            lines.append(
                f"- **{kind}**: {window_name} clip {r['window_clip_ms']:.1f} ms vs online {online_name} step "
                f"{r['online_step_ms']:.2f} ms → **{r['window_over_online']:.1f}×** per prediction; at stride {stride} the window "
                f"still costs **{r[f'window_stride{stride}_per_frame_over_online']:.1f}×** per input frame."
            )
        lines.append("")
    if payload["end_to_end"]:
        lines += [
            "## End to end on a real-time 30 fps synthetic source (Recognizer + capture thread)",
            "",
            "Capture-to-label latency of each prediction; *sustained fps* = frames the model took per second "
            "(30 = kept up), *dropped* = frames the live source replaced because the model was busy.",
            "",
            markdown_table(end_to_end_table(payload["end_to_end"])),
            "",
        ]
    if payload["skipped"]:
        lines += ["## Skipped", ""] + [f"- {k}: {v}" for k, v in payload["skipped"].items()] + [""]
    lines += [
        "## Method",
        "",
        f"- Per-prediction timing: {opts['rounds']} interleaved rounds ({opts['heavy_rounds']} for {', '.join(HEAVY_MODELS)}, "
        f"each > 1 s per clip here), online steps repeated {opts['online_repeats']}× per round, after {opts['warmup']} warm-up rounds.",
        "- GFLOPs = 2 × MACs of convolutions and linear layers per prediction (torch FlopCounterMode).",
        f"- Memory: {payload.get('memory_method', MEMORY_METHOD)}",
        "- Random weights (latency does not depend on them), built by `streamtsm.resolve`; ONNX Runtime runs the export "
        "cache's graph (`streamtsm.exports`), checked against torch when it was exported.",
    ]
    return "\n".join(lines)


def write_report(payload: Mapping[str, Any], out: Path) -> list[Path]:
    """``latency.json``, ``latency.md`` and the plots in ``out``; returns the paths written."""
    out = Path(out)
    paths = list(write_results("latency", payload, render_markdown(payload), out))
    paths.append(plot_latency_per_frame(payload, out / "latency_per_frame.png"))
    if payload["end_to_end"]:
        paths.append(plot_end_to_end(payload, out / "end_to_end.png"))
    return paths
