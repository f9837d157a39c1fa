"""Latency of online TSM vs 3D-CNN sliding windows: per prediction, per frame, end to end.

What is measured, for every model on every backend present (torch, ONNX Runtime; TensorRT
only with a GPU), all in one process and one run:

1. **Compute per prediction**, interleaved: one online TSM step (one frame in, state carried)
   and one 3D clip call alternate round by round, so the shared machine's load hits both and
   their ratio holds even when absolute numbers drift. Cheap variants repeat within a round
   to collect enough samples for p99.
2. **Amortised compute per input frame**: a window model predicting every ``stride`` frames
   costs ``per_prediction / stride`` per frame (computed from 1., not measured again); an
   online model costs one step per frame whatever the stride (a flat line).
3. **End to end** through :class:`~streamtsm.Recognizer` on a real-time 30 fps synthetic
   source on a capture thread: capture-to-label latency of every prediction, the frames the
   model actually took per second (sustained fps), and the frames the live source dropped
   because the model was busy.
4. Peak memory (RSS, see ``MEMORY_METHOD``), parameters, GMACs/GFLOPs per prediction
   (GFLOPs = 2 x MACs, counted by torch's FlopCounterMode on the real input shape).

``--quick`` shrinks inputs (64 px frames, 4 x 32 px clips) and runs one round: it proves the
pipeline works (the smoke test) and its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .timing import MEMORY_METHOD, Timing, call_peak_rss_mb, environment, markdown_table, rss_mb, time_interleaved, write_results

log = logging.getLogger(__name__)

ONLINE_MODELS = ("tsm_mobilenetv2", "tsm_resnet50")
WINDOW_MODELS = ("r2plus1d_18", "r3d_18", "slowfast_r50")
DEFAULT_MODELS = ONLINE_MODELS + WINDOW_MODELS
DEFAULT_STRIDES = (1, 4, 8, 16)
ALL_BACKENDS = ("torch", "onnxruntime", "tensorrt")
SOURCE_FPS = 30.0
NUM_CLASSES = 27  # Jester-sized head: the head is a negligible part of the cost either way
HEADLINE = ("tsm_mobilenetv2", "r2plus1d_18", 8)  # online model, window baseline, stride for the amortised ratio
#: Models whose clip call takes more than ~1 s here: fewer timed rounds (``heavy_rounds``).
HEAVY_MODELS = ("slowfast_r50",)


class BenchError(ValueError):
    """A benchmark option is invalid (the message says which and what is accepted)."""


@dataclass(frozen=True)
class LatencyOptions:
    """Everything one latency run depends on (recorded in the results)."""

    models: tuple[str, ...] = DEFAULT_MODELS
    backends: tuple[str, ...] = ("torch", "onnxruntime")
    strides: tuple[int, ...] = DEFAULT_STRIDES
    rounds: int = 10
    heavy_rounds: int = 5
    online_repeats: int = 10
    warmup: int = 2
    e2e_seconds: float = 6.0
    threads: int | None = None
    quick: bool = False
    out: Path = Path("benchmarks/results")
    progress: bool = True

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in DEFAULT_MODELS]
        if unknown:
            raise BenchError(f"unknown model(s) {unknown}; choose from {', '.join(DEFAULT_MODELS)}")
        bad = [b for b in self.backends if b not in ALL_BACKENDS]
        if bad:
            raise BenchError(f"unknown backend(s) {bad}; choose from {', '.join(ALL_BACKENDS)}")
        if not self.models or not self.backends:
            raise BenchError("give at least one model and one backend")
        if any(s < 1 for s in self.strides) or not self.strides:
            raise BenchError(f"strides must be integers >= 1, got {self.strides}")
        if self.rounds < 1 or self.heavy_rounds < 1 or self.online_repeats < 1 or self.warmup < 0:
            raise BenchError("--rounds, --heavy-rounds and --online-repeats must be >= 1, --warmup >= 0")
        if self.e2e_seconds < 0:
            raise BenchError(f"--e2e-seconds must be >= 0 (0 skips the end-to-end runs), got {self.e2e_seconds}")


# -- models and engines -------------------------------------------------------------------------


def build_model(name: str, *, quick: bool) -> Any:
    """A registry model with random weights; ``quick`` shrinks its card's input so everything downstream is tiny."""
    from ..models import create_model

    model = create_model(name, num_classes=NUM_CLASSES).eval()
    if quick:
        card = model.card
        crop = 64 if card.is_online else 32
        pre = dataclasses.replace(card.preprocessing, crop_size=crop, resize_short=crop + crop // 8, resize_hw=None)
        temporal = card.temporal if card.is_online else dataclasses.replace(card.temporal, clip_len=8 if name.startswith("slowfast") else 4)
        model.card = dataclasses.replace(card, preprocessing=pre, temporal=temporal)
    return model


def example_input(card: Any) -> np.ndarray:
    """A random input of the card's shape: one frame (online) or one clip (window), batch 1."""
    rng = np.random.default_rng(0)
    crop = card.preprocessing.crop_size
    if card.is_online:
        shape: tuple[int, ...] = (1, 3, crop, crop)
    elif card.temporal.clip_layout == "NCTHW":
        shape = (1, 3, card.temporal.clip_len, crop, crop)
    else:
        shape = (1, card.temporal.clip_len, 3, crop, crop)
    return rng.standard_normal(shape, dtype=np.float32)


def available_backends(wanted: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """(backends to run, {backend: why skipped}) — ONNX Runtime rows appear as soon as export + runtime exist."""
    run, skipped = [], {}
    for name in wanted:
        if name == "torch":
            run.append(name)
        elif name == "onnxruntime":
            try:
                import onnxruntime  # noqa: F401

                from ..backends.onnxruntime_backend import open_onnxruntime  # noqa: F401
                from ..export.onnx import export_onnx  # noqa: F401
            except ImportError as exc:
                skipped[name] = f"not available ({exc})"
            else:
                run.append(name)
        elif name == "tensorrt":
            import torch

            if not torch.cuda.is_available():
                skipped[name] = "no NVIDIA GPU on this machine"
            else:
                skipped[name] = "TensorRT timing not wired into this benchmark yet"
    return run, skipped


def open_engine(model: Any, backend: str, workdir: Path, threads: int | None) -> Any:
    """The Backend for ``model`` on ``backend`` (ONNX Runtime: exported to ``workdir`` first)."""
    if backend == "torch":
        from ..backends.torch_backend import open_torch

        return open_torch(model, threads=threads)
    if backend == "onnxruntime":
        from ..backends.onnxruntime_backend import open_onnxruntime
        from ..export.onnx import export_onnx

        # Random weights give large activations: fp32 reassociation in ONNX Runtime's kernels differs
        # from torch by ~1e-4 on deep nets; latency does not depend on it, so the check is looser here.
        path = export_onnx(model, workdir / f"{model.card.arch}.onnx")
        return open_onnxruntime(path, providers=["CPUExecutionProvider"], threads=threads)
    raise BenchError(f"backend {backend!r} cannot be opened here")


def count_macs(model: Any, example: np.ndarray) -> float:
    """Multiply-accumulates of one prediction (convs + linears), counted by torch's FlopCounterMode.

    FlopCounterMode counts 2 FLOPs per MAC; this returns MACs, the convention of published
    model tables (``benchmarks/model_stats.py`` uses the same counter; a test checks they agree).
    """
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ..models import to_online

    meta = copy.deepcopy(model).to("meta")  # shapes only: nothing is computed, seconds saved per model
    x = torch.empty(example.shape, device="meta")
    if model.card.is_online:
        online = to_online(meta)
        crop = model.card.preprocessing.crop_size
        state = online.init_state(1, crop, crop)  # outside the counter: deriving the state spec runs the net once
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            online(x, *state)
    else:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            meta(x)
    return counter.get_total_flops() / 2.0


@dataclass
class Variant:
    """One (model, backend) pair ready to time: ``call`` runs one prediction."""

    model: str
    backend: str
    online: bool
    engine: Any
    example: np.ndarray
    params: int
    macs: float
    engine_rss_mb: float | None
    call: Callable[[], object] = dataclasses.field(repr=False, default=lambda: None)

    @property
    def key(self) -> str:
        return f"{self.model}/{self.backend}"


def make_call(engine: Any, example: np.ndarray, online: bool) -> Callable[[], object]:
    """One prediction: an online step carrying its own state forward, or one clip."""
    if not online:
        return lambda: engine.run_clip(example)
    holder = [engine.init_state(1)]

    def step() -> object:
        logits, holder[0] = engine.step(example, holder[0])
        return logits

    return step


def prepare_variants(options: LatencyOptions, backends: Sequence[str], workdir: Path) -> tuple[list[Variant], dict[str, str]]:
    """Build every model once and open it on every backend; failures are recorded, not fatal."""
    variants, failures = [], {}
    for name in _progress(options.models, options.progress, "building"):
        model = build_model(name, quick=options.quick)
        example = example_input(model.card)
        params = sum(p.numel() for p in model.parameters())
        macs = count_macs(model, example)
        for backend in backends:
            before = rss_mb()
            try:
                engine = open_engine(model, backend, workdir, options.threads)
            except Exception as exc:  # noqa: BLE001 - one failing export must not lose the other rows
                failures[f"{name}/{backend}"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                log.warning("skipping %s on %s: %s", name, backend, exc)
                continue
            after = rss_mb()
            online = bool(engine.card.is_online)
            v = Variant(name, backend, online, engine, example, params, macs, None if before is None or after is None else max(0.0, after - before))
            v.call = make_call(engine, example, online)
            variants.append(v)
    return variants, failures


# -- measurements -------------------------------------------------------------------------------


def measure_compute(variants: list[Variant], options: LatencyOptions) -> tuple[dict[str, Timing], dict[str, float | None]]:
    """Interleaved per-prediction timing of all variants, and each one's call peak memory."""
    peaks = {}
    for v in variants:
        v.call()  # first call: allocations, lazy init
        peaks[v.key] = call_peak_rss_mb(v.call)
    light = [v for v in variants if v.model not in HEAVY_MODELS]
    heavy = [v for v in variants if v.model in HEAVY_MODELS]
    rounds = 1 if options.quick else options.rounds
    heavy_rounds = 1 if options.quick else options.heavy_rounds
    repeats = {v.key: (1 if options.quick else options.online_repeats) for v in variants if v.online}
    timings = time_interleaved(
        {v.key: v.call for v in light}, rounds=rounds, warmup=0 if options.quick else options.warmup,
        progress=options.progress, repeats=repeats,
    )
    if heavy:  # heavy clips get their own, shorter interleaved pass (still alternating with the light ones)
        both = {v.key + "#heavy-pass": v.call for v in light if v.online} | {v.key: v.call for v in heavy}
        extra = time_interleaved(both, rounds=heavy_rounds, warmup=0 if options.quick else 1, progress=options.progress, repeats={})
        timings.update({k: t for k, t in extra.items() if not k.endswith("#heavy-pass")})
    return timings, peaks


def measure_end_to_end(variant: Variant, stride: int | None, seconds: float) -> dict[str, Any]:
    """Run the Recognizer on a real-time 30 fps synthetic source for ``seconds``; capture-to-label figures."""
    from ..sources import CaptureThread, SyntheticSource
    from ..recognizer import Recognizer

    card = variant.engine.card
    kwargs: dict[str, Any] = {"fps": SOURCE_FPS}  # give every captured frame to the model: can it keep up with 30 fps?
    if not variant.online:
        kwargs.update(window=card.temporal.clip_len, stride=stride)
    recognizer = Recognizer(variant.engine, **kwargs)
    source = SyntheticSource(seed=0, duration_s=seconds + 1.0, fps=SOURCE_FPS, realtime=True)
    capture = CaptureThread(source)
    e2e, inference, frames = [], [], 0
    t0 = time.monotonic()
    try:
        for _frame, prediction in recognizer.iter_frames(capture):
            frames += 1
            if prediction is not None:
                e2e.append(prediction.timings.end_to_end_ms / 1e3)
                inference.append(prediction.timings.inference_ms / 1e3)
            if time.monotonic() - t0 >= seconds:
                break
    finally:
        capture.stop()
        recognizer.close()
    wall = time.monotonic() - t0
    stats = capture.stats
    row: dict[str, Any] = {
        "model": variant.model,
        "backend": getattr(variant.engine, "name", variant.backend),
        "backend_kind": variant.backend,
        "stride": stride,
        "wall_s": round(wall, 3),
        "source_fps": SOURCE_FPS,
        "frames_captured": stats.frames_read,
        "frames_to_model": frames,
        "frames_dropped": stats.dropped,
        "sustained_fps": frames / wall if wall > 0 else 0.0,
        "predictions": len(e2e),
        "predictions_per_s": len(e2e) / wall if wall > 0 else 0.0,
        "end_to_end": Timing.from_samples("end_to_end", e2e) if e2e else None,
        "inference": Timing.from_samples("inference", inference) if inference else None,
    }
    return row


# -- results ------------------------------------------------------------------------------------


def compute_rows(variants: list[Variant], timings: dict[str, Timing], peaks: dict[str, float | None], options: LatencyOptions) -> list[dict[str, Any]]:
    rows = []
    for v in variants:
        t = timings[v.key]
        per_frame = [
            {"stride": s, "median_ms": t.median_ms / (1 if v.online else s), "p90_ms": t.p90_ms / (1 if v.online else s),
             "p99_ms": t.p99_ms / (1 if v.online else s)}
            for s in options.strides
        ]
        rows.append({
            "model": v.model,
            "backend": getattr(v.engine, "name", v.backend),
            "backend_kind": v.backend,
            "mode": "online" if v.online else "window",
            "input_shape": list(v.example.shape),
            "params_m": v.params / 1e6,
            "gmacs": v.macs / 1e9,
            "gflops": 2 * v.macs / 1e9,
            "per_prediction": t,
            "per_frame": per_frame,
            "achieved_gflops_per_s": 2 * v.macs / 1e9 / (t.median_ms / 1e3),
            "engine_rss_mb": v.engine_rss_mb,
            "call_peak_rss_mb": peaks.get(v.key),
        })
    return rows


def headline_ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per backend: r2plus1d_18 window / online TSM-MobileNetV2 step, and the same amortised at stride 8."""
    online_name, window_name, stride = HEADLINE
    out: dict[str, dict[str, float]] = {}
    for kind in {r["backend_kind"] for r in rows}:
        by_model = {r["model"]: r for r in rows if r["backend_kind"] == kind}
        if online_name in by_model and window_name in by_model:
            step = by_model[online_name]["per_prediction"].median_ms
            clip = by_model[window_name]["per_prediction"].median_ms
            out[kind] = {
                "online_step_ms": step,
                "window_clip_ms": clip,
                f"window_over_online": clip / step,
                f"window_stride{stride}_per_frame_over_online": clip / stride / step,
            }
    return out


def render_markdown(payload: dict[str, Any]) -> str:
    env, opts = payload["environment"], payload["options"]
    lines = [
        "# Latency: online TSM vs 3D-CNN sliding windows" + (" (QUICK MODE: tiny inputs, numbers meaningless)" if opts["quick"] else ""),
        "",
        f"Command: `{payload['command']}`  ",
        f"{env['processor']}, {env['cpu_count']} cores, load average {env['load_average_1min']:.2f} at start / "
        f"{payload['load_average_end']:.2f} at end; torch {env.get('torch')} ({env.get('torch_threads')} threads), "
        f"onnxruntime {env.get('onnxruntime', '—')}; fp32, batch 1; {env['date_utc']}.",
        "",
        "## Compute per prediction (interleaved in one run)",
        "",
    ]
    table = []
    for r in payload["results"]:
        t: Timing = r["per_prediction"]
        table.append({
            "model": r["model"], "mode": r["mode"], "backend": r["backend"],
            "input": "×".join(str(d) for d in r["input_shape"]),
            "median ms": t.median_ms, "p90 ms": t.p90_ms, "p99 ms": t.p99_ms, "n": t.n,
            "params M": r["params_m"], "GFLOPs": r["gflops"],
            "call peak RSS MiB": r["call_peak_rss_mb"] if r["call_peak_rss_mb"] is not None else "—",
        })
    lines.append(markdown_table(table, list(table[0]) if table else ["model"]))
    lines += ["", "## Amortised compute per input frame (ms, median) vs stride", ""]
    strides = opts["strides"]
    pf = []
    for r in payload["results"]:
        row = {"model": r["model"], "backend": r["backend"]}
        row.update({f"stride {p['stride']}": p["median_ms"] for p in r["per_frame"]})
        pf.append(row)
    lines.append(markdown_table(pf, ["model", "backend"] + [f"stride {s}" for s in strides]))
    lines += ["", "Online models run every frame (the flat line); a window model's clip cost is divided by its stride.", ""]
    if payload["ratios"]:
        lines += ["## Headline ratios", ""]
        for kind, r in payload["ratios"].items():
            lines.append(
                f"- **{kind}**: r2plus1d_18 clip {r['window_clip_ms']:.1f} ms vs online TSM-MobileNetV2 step "
                f"{r['online_step_ms']:.2f} ms → **{r['window_over_online']:.1f}×** per prediction; at stride 8 the window "
                f"still costs **{r['window_stride8_per_frame_over_online']:.1f}×** per input frame."
            )
        lines.append("")
    if payload["end_to_end"]:
        lines += [
            "## End to end on a real-time 30 fps synthetic source (Recognizer + capture thread)",
            "",
            "Capture-to-label latency of each prediction; *sustained fps* = frames the model took per second "
            "(30 = kept up), *dropped* = frames the live source replaced because the model was busy.",
            "",
        ]
        e2e = []
        for r in payload["end_to_end"]:
            t = r["end_to_end"]
            e2e.append({
                "model": r["model"], "backend": r["backend"], "stride": r["stride"] if r["stride"] is not None else "—",
                "e2e p50 ms": t.median_ms if t else "—", "e2e p99 ms": t.p99_ms if t else "—",
                "predictions": r["predictions"], "sustained fps": r["sustained_fps"],
                "dropped": f"{r['frames_dropped']}/{r['frames_captured']}",
            })
        lines.append(markdown_table(e2e, list(e2e[0])))
        lines.append("")
    if payload["skipped"]:
        lines += ["## Skipped", ""] + [f"- {k}: {v}" for k, v in payload["skipped"].items()] + [""]
    lines += [
        "## Method",
        "",
        f"- Per-prediction timing: {opts['rounds']} interleaved rounds ({opts['heavy_rounds']} for {', '.join(HEAVY_MODELS)}, "
        f"each > 1 s per clip here), online steps repeated {opts['online_repeats']}× per round, after {opts['warmup']} warm-up rounds.",
        "- GFLOPs = 2 × MACs of convolutions and linear layers per prediction (torch FlopCounterMode).",
        f"- Memory: {MEMORY_METHOD}",
        "- Random weights (latency does not depend on them); ONNX graphs exported by `streamtsm.export.onnx` and checked "
        "against torch before timing (max abs difference ≤ 1e-4 × max(1, output magnitude)).",
    ]
    return "\n".join(lines)


def run_latency(options: LatencyOptions, command: str | None = None) -> dict[str, Any]:
    """Run the whole benchmark and write latency.{json,md} and the plots to ``options.out``."""
    import torch

    if options.threads:
        torch.set_num_threads(options.threads)
    torch.manual_seed(0)
    backends, skipped = available_backends(options.backends)
    env = environment(precision="fp32", batch=1, quick=options.quick)
    with tempfile.TemporaryDirectory(prefix="streamtsm-bench-") as tmp:
        variants, failures = prepare_variants(options, backends, Path(tmp))
        skipped.update(failures)
        if not variants:
            raise BenchError(f"nothing to time: every model/backend failed to open ({skipped})")
        timings, peaks = measure_compute(variants, options)
        rows = compute_rows(variants, timings, peaks, options)
        e2e_rows = []
        if options.e2e_seconds > 0:
            plan = [(v, None) for v in variants if v.online] + [(v, s) for v in variants if not v.online for s in options.strides]
            for v, s in _progress(plan, options.progress, "end-to-end"):
                e2e_rows.append(measure_end_to_end(v, s, options.e2e_seconds))
        for v in variants:
            v.engine.close()
    payload: dict[str, Any] = {
        "command": command or "python benchmarks/latency.py",
        "environment": env,
        "load_average_end": environment()["load_average_1min"],
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(options).items()},
        "memory_method": MEMORY_METHOD,
        "results": rows,
        "ratios": headline_ratios(rows),
        "end_to_end": e2e_rows,
        "skipped": skipped,
    }
    markdown = render_markdown(payload)
    write_results("latency", payload, markdown, options.out)
    from .plots import plot_end_to_end, plot_latency_per_frame

    plot_latency_per_frame(payload, options.out / "latency_per_frame.png")
    if e2e_rows:
        plot_end_to_end(payload, options.out / "end_to_end.png")
    return payload


# -- command line -------------------------------------------------------------------------------


def _csv(kind: type) -> Callable[[str], tuple]:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {kind.__name__}, got {text!r}") from None

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = LatencyOptions()
    parser.add_argument("--models", type=_csv(str), default=d.models, help=f"comma-separated (default {','.join(d.models)})")
    parser.add_argument("--backends", type=_csv(str), default=d.backends,
                        help="comma-separated among torch,onnxruntime,tensorrt (default torch,onnxruntime; missing ones are skipped)")
    parser.add_argument("--strides", type=_csv(int), default=d.strides, help="window strides in frames (default 1,4,8,16)")
    parser.add_argument("--rounds", type=int, default=d.rounds, help=f"interleaved timing rounds (default {d.rounds})")
    parser.add_argument("--heavy-rounds", type=int, default=d.heavy_rounds,
                        help=f"rounds for {','.join(HEAVY_MODELS)} (default {d.heavy_rounds})")
    parser.add_argument("--online-repeats", type=int, default=d.online_repeats, help="online steps per round (default 10)")
    parser.add_argument("--warmup", type=int, default=d.warmup, help="warm-up rounds (default 2)")
    parser.add_argument("--e2e-seconds", type=float, default=d.e2e_seconds,
                        help="seconds of live source per end-to-end configuration (default 6; 0 skips)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads for torch and ONNX Runtime (default: all cores)")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one round, 1 s end-to-end (smoke test)")
    parser.add_argument("--out", type=Path, default=d.out, help="results folder (default benchmarks/results)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def options_from_args(args: argparse.Namespace) -> LatencyOptions:
    quick = bool(args.quick)
    return LatencyOptions(
        models=tuple(args.models),
        backends=tuple(args.backends),
        strides=tuple(args.strides),
        rounds=args.rounds,
        heavy_rounds=args.heavy_rounds,
        online_repeats=args.online_repeats,
        warmup=args.warmup,
        e2e_seconds=min(args.e2e_seconds, 1.5) if quick else args.e2e_seconds,
        threads=args.threads,
        quick=quick,
        out=args.out,
        progress=not args.no_progress,
    )


def main(argv: Sequence[str] | None = None, prog: str = "benchmarks/latency.py") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        options = options_from_args(args)
    except BenchError as exc:
        parser.error(str(exc))
    payload = run_latency(options, command=" ".join(["python", prog, *map(shlex.quote, argv)]))
    print(render_markdown(payload))
    return 0


def _progress(items: Sequence[Any], enabled: bool, desc: str) -> Any:
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="config")
