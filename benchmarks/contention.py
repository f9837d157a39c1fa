"""Steady when the CPU is busy? The demo's path, idle and with busy processes hogging every core.

    python benchmarks/contention.py --out benchmarks/results   # deliberate full run: ~14 min (24 rows of 30 s + warm-ups)
    python benchmarks/contention.py --models default --engines torch,ort --seconds 20   # into runs/bench/
    python benchmarks/contention.py --quick                    # smoke run (~10 s): numbers meaningless

A robot's CPU runs other work beside the recognizer. What matters then is whether the stream
keeps its card's rate without state resets and whether labels stay prompt. Each row runs the
real :class:`~streamtsm.Recognizer` on a real-time 30 fps synthetic camera (``iter_frames``, the
demo's path: capture thread, latest frame wins, sampling by timestamp) for ``--seconds``
after ``--warmup`` seconds, once on the machine as it is ("idle": no busy processes of ours;
other users' load is recorded as the 1-minute load average) and once while ``--busy`` plain
Python busy-loop processes (default: one per core) hog the CPU. Reported per row:
predictions/s against the card's rate, gap resets (from ``Prediction.reset``: a step came more
than the card's ``max_gap_s`` after the previous one, so the state was thrown away), other
resets, capture-to-label latency p50/p90/p99, inference p50, frames the live source dropped.

Models (``--models``): ``default`` - the embedded default model (TSM-MobileNetV2 x0.5, 80², 10
fps); ``tsm224`` - TSM-MobileNetV2 at 224² (random weights: latency only; card rate 30 fps).
Engines (``--engines``), each opened by ``streamtsm.resolve``: ``torch`` (torch's default thread
count, process-global), ``torch-1`` (one thread), ``ort`` (ONNX Runtime with the runtime's
defaults ``resolve.ORT_DEFAULTS``: 1 intra-op thread, no spinning), ``ort-spin`` (1 thread,
idle workers spin), ``ort-2`` (2 threads, no spinning), ``ort-2-spin`` (2 threads, spinning).

Writes ``contention.json``, ``contention.md`` and ``contention.png`` to ``--out`` (default
``runs/bench/``; ``--quick`` never writes into ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.busy import busy_processes  # noqa: E402
from streamtsm.bench.live import live_run  # noqa: E402
from streamtsm.bench.machine import environment, load_average  # noqa: E402
from streamtsm.bench.plots import pyplot  # noqa: E402
from streamtsm.bench.arguments import comma_choices  # noqa: E402
from streamtsm.bench.results import DEFAULT_OUT, announce, markdown_table, output_dir, report_header, save_figure, write_results  # noqa: E402
from streamtsm.bench.timing import timing_value  # noqa: E402


@dataclass(frozen=True)
class ModelChoice:
    label: str
    spec: Callable[[], Any]  # the model spec given to the Recognizer (built when the row runs)


@dataclass(frozen=True)
class EngineChoice:
    label: str
    backend: str
    options: Callable[[], dict[str, Any]]


def _tsm224() -> Any:
    from streamtsm.resolve import load_torch_model

    return load_torch_model("tsm_mobilenetv2", input_size=224)


@functools.cache
def torch_default_threads() -> int:
    """torch's thread count before any row changed it (``set_num_threads`` is process-global): called first in main."""
    import torch

    return torch.get_num_threads()


MODELS = {
    "default": ModelChoice("default model (TSM-MobileNetV2 x0.5, 80²)", lambda: "default"),
    "tsm224": ModelChoice("TSM-MobileNetV2 224² (random weights)", _tsm224),
}
ENGINES = {
    "torch": EngineChoice("torch, {threads} threads (its default)", "torch", lambda: {"threads": torch_default_threads()}),
    "torch-1": EngineChoice("torch, 1 thread", "torch", lambda: {"threads": 1}),
    "ort": EngineChoice("ONNX Runtime, 1 thread, no spin (default)", "onnxruntime", lambda: {}),
    "ort-spin": EngineChoice("ONNX Runtime, 1 thread, spinning", "onnxruntime", lambda: {"threads": 1, "spinning": True}),
    "ort-2": EngineChoice("ONNX Runtime, 2 threads, no spin", "onnxruntime", lambda: {"threads": 2, "spinning": False}),
    "ort-2-spin": EngineChoice("ONNX Runtime, 2 threads, spinning", "onnxruntime", lambda: {"threads": 2, "spinning": True}),
}
QUICK = {"models": ("default",), "engines": ("ort", "torch"), "seconds": 1.5, "warmup": 0.3, "busy": 1}


def run_rows(models: Sequence[str], engines: Sequence[str], *, seconds: float, warmup: float, busy: int,
             progress: bool = True) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every (model, engine) once idle and once with ``busy`` busy processes; failures to open are recorded."""
    rows, skipped = [], {}
    for model_key in models:
        spec = MODELS[model_key].spec()
        for engine_key in engines:
            choice = ENGINES[engine_key]
            try:
                options = choice.options()
                recognizer = _open(spec, choice.backend, options)
            except Exception as exc:  # noqa: BLE001 - one engine that cannot open (no torch here) must not lose the others
                skipped[f"{model_key}/{engine_key}"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                continue
            with recognizer:
                for hogs in (0, busy):
                    with busy_processes(hogs, max_lifetime_s=warmup + seconds + 60):
                        run = live_run(recognizer, seconds, warmup_s=warmup)
                    row = {
                        "model": model_key, "model_label": MODELS[model_key].label, "engine": engine_key,
                        "engine_label": choice.label.format(**options), "backend": recognizer.engine.name, "options": options,
                        "busy_processes": hogs, "card_fps": recognizer.card.temporal.fps, **run.to_dict(),
                    }
                    rows.append(row)
                    if progress:
                        print(_progress_line(row), file=sys.stderr, flush=True)
    return rows, skipped


def _open(spec: Any, backend: str, options: dict[str, Any]) -> Any:
    from streamtsm.recognizer import Recognizer

    return Recognizer(spec, backend, **options)


def _progress_line(r: dict[str, Any]) -> str:
    e2e = r["end_to_end"]
    return (f"{r['model']:8} {r['engine']:11} busy={r['busy_processes']}  {r['predictions_per_s']:5.1f} pred/s (card {r['card_fps']:g})  "
            f"gap resets {r['gap_resets']}  e2e p99 {e2e.p99_ms if e2e else float('nan'):8.1f} ms  load {r['load_end'] or 0:.1f}")


def _load_label(busy: int) -> str:
    return "idle" if not busy else f"{busy} busy process" + ("es" if busy > 1 else "")


def _ms(timing: Any, key: str) -> str:
    if timing is None:
        return "—"
    value = timing_value(timing, key)
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def table_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        e2e, inf = r["end_to_end"], r["inference"]
        other = sum(n for reason, n in r["resets"].items() if reason != "gap")
        load = _load_label(r["busy_processes"])
        out.append({
            "model": r["model_label"], "engine": r["engine_label"],
            "load (1-min avg)": f"{load} ({r['load_start'] or 0:.1f}→{r['load_end'] or 0:.1f})",
            "predictions/s (card)": f"{r['predictions_per_s']:.1f} ({r['card_fps']:g})",
            "gap resets": r["gap_resets"], "other resets": other,
            "e2e p50 / p90 / p99 ms": f"{_ms(e2e, 'median_ms')} / {_ms(e2e, 'p90_ms')} / {_ms(e2e, 'p99_ms')}",
            "inference p50 ms": _ms(inf, "median_ms"),
            "dropped": f"{r['frames_dropped']}/{r['frames_captured']}",
        })
    return out


def verdict(rows: Sequence[dict[str, Any]]) -> str | None:
    """The issue's bar for the default path: >= 90 % of the card's rate, 0 gap resets, e2e p99 < 50 ms under load."""
    row = next((r for r in rows if r["model"] == "default" and r["engine"] == "ort" and r["busy_processes"]), None)
    if row is None or row["end_to_end"] is None:
        return None
    p99 = timing_value(row["end_to_end"], "p99_ms")
    ok = row["predictions_per_s"] >= 0.9 * row["card_fps"] and row["gap_resets"] == 0 and p99 < 50.0
    return (f"Default path under load (default model, ONNX Runtime defaults, {_load_label(row['busy_processes'])}): "
            f"{row['predictions_per_s']:.1f} of {row['card_fps']:g} predictions/s, {row['gap_resets']} gap resets, e2e p99 "
            f"{p99:.1f} ms → {'meets' if ok else 'MISSES'} the bar (>= 90 % of the card rate, 0 gap resets, p99 < 50 ms).")


def render_markdown(payload: dict[str, Any]) -> str:
    o = payload["options"]
    lines = [
        *report_header("Contention: the demo's path idle and with busy processes on every core", payload,
                       f"{o['seconds']:g} s per row after {o['warmup']:g} s warm-up, loaded rows with {_load_label(o['busy'])}",
                       quick=o["quick"]),
        markdown_table(table_rows(payload["rows"])),
        "",
    ]
    v = verdict(payload["rows"])
    if v:
        lines += [v, ""]
    if payload["skipped"]:
        lines += ["Skipped:", ""] + [f"- {k}: {reason}" for k, reason in payload["skipped"].items()] + [""]
    lines += [
        "Each row: `Recognizer(model, backend, **options).iter_frames(SyntheticSource(realtime=True))` at 30 fps. "
        "*Gap resets*: steps more than the card's `max_gap_s` apart, so the shift state was reset (from `Prediction.reset`). "
        "*e2e*: frame captured → Prediction ready. *Load* in brackets: the 1-minute load average before → after the row "
        "(other users' work included). Busy processes: `python -c \"while ...: pass\"`, started and killed by the benchmark. "
        "torch's thread count is process-global; ONNX Runtime's threads are per session.",
    ]
    return "\n".join(lines) + "\n"


def plot(payload: dict[str, Any], path: Path) -> Path:
    """Per model: e2e p99 (log) and predictions/s, idle vs busy, per engine."""
    plt = pyplot()
    rows = payload["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(2, max(1, len(models)), figsize=(6.5 * max(1, len(models)), 6.5), squeeze=False)
    for col, model in enumerate(models):
        mine = [r for r in rows if r["model"] == model]
        engines = list(dict.fromkeys(r["engine"] for r in mine))
        for k, busy in enumerate(sorted({r["busy_processes"] for r in mine})):
            label = _load_label(busy)
            sel = {r["engine"]: r for r in mine if r["busy_processes"] == busy}
            xs = [i + (k - 0.5) * 0.4 for i in range(len(engines))]
            p99 = [_p99(sel.get(e)) for e in engines]
            rate = [sel[e]["predictions_per_s"] if e in sel else 0.0 for e in engines]
            axes[0][col].bar(xs, p99, width=0.4, label=label)
            axes[1][col].bar(xs, rate, width=0.4, label=label)
        card = mine[0]["card_fps"]
        axes[0][col].set_yscale("log")
        axes[0][col].set_ylabel("e2e p99 (ms)")
        axes[0][col].set_title(mine[0]["model_label"], fontsize=9)
        axes[1][col].axhline(card, color="grey", ls=":", lw=1)
        axes[1][col].set_ylabel(f"predictions/s (card {card:g})")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xticks(range(len(engines)), engines, fontsize=8)
            ax.grid(True, axis="y", which="both", lw=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Real-time 30 fps synthetic camera through the Recognizer, idle vs busy cores", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def _p99(row: dict[str, Any] | None) -> float:
    return float("nan") if row is None or row["end_to_end"] is None else timing_value(row["end_to_end"], "p99_ms")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/contention.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=comma_choices(MODELS, "model"), default=None,
                   help=f"comma-separated (default {','.join(MODELS)}; --quick: {','.join(QUICK['models'])})")
    p.add_argument("--engines", type=comma_choices(ENGINES, "engine"), default=None,
                   help=f"comma-separated (default {','.join(ENGINES)}; --quick: {','.join(QUICK['engines'])})")
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds per row (default %(default)s)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds run before each row is measured (default %(default)s)")
    p.add_argument("--busy", type=int, default=os.cpu_count() or 2, help="busy processes in the loaded rows (default: one per core, %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test (~10 s): 1.5 s rows, 0.3 s warm-up, 1 busy process; numbers meaningless")
    p.add_argument("--out", type=Path, default=None,
                   help=f"results folder (default {DEFAULT_OUT}/; only a deliberate full run passes benchmarks/results)")
    p.add_argument("--no-progress", action="store_true", help="no per-row progress lines on stderr")
    argv = list(sys.argv[1:] if argv is None else argv)
    a = p.parse_args(argv)
    if a.seconds <= 0 or a.warmup < 0 or a.busy < 1:
        p.error(f"--seconds must be > 0, --warmup >= 0 and --busy >= 1 (got {a.seconds}, {a.warmup}, {a.busy})")
    try:
        out = output_dir(a.out, quick=a.quick)
    except ValueError as exc:
        p.error(str(exc))
    if a.quick:
        a.seconds, a.warmup, a.busy = QUICK["seconds"], QUICK["warmup"], QUICK["busy"]
    a.models = a.models or (QUICK["models"] if a.quick else tuple(MODELS))
    a.engines = a.engines or (QUICK["engines"] if a.quick else tuple(ENGINES))
    torch_threads = None
    if any(ENGINES[e].backend == "torch" for e in a.engines):
        try:
            torch_threads = torch_default_threads()
        except ImportError:
            pass  # the torch rows are skipped with the reason
    env = environment()
    t0 = time.monotonic()
    rows, skipped = run_rows(a.models, a.engines, seconds=a.seconds, warmup=a.warmup, busy=a.busy, progress=not a.no_progress)
    payload = {
        "command": " ".join(["python", "benchmarks/contention.py", *map(shlex.quote, argv)]),
        "environment": env,
        "load_average_end": load_average(),
        "options": {"models": list(a.models), "engines": list(a.engines), "seconds": a.seconds, "warmup": a.warmup,
                    "busy": a.busy, "quick": a.quick, "torch_default_threads": torch_threads},
        "wall_seconds": round(time.monotonic() - t0, 1),
        "rows": rows,
        "skipped": skipped,
    }
    if not rows:
        p.exit(1, f"benchmarks/contention.py: error: no engine could be opened: {skipped}\n")
    md = render_markdown(payload)
    paths = [*write_results("contention", payload, md, out), plot(payload, out / "contention.png")]
    print(md)
    announce(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
