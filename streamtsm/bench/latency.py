"""Latency of online TSM vs 3D-CNN sliding windows: per prediction, per frame, end to end.

What is measured, for every model on every backend present (torch, ONNX Runtime; TensorRT
with a GPU), all in one process and one run:

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

Models are registry names with random weights (latency does not depend on them), built and
opened by :mod:`streamtsm.resolve` like any model a user names; ONNX Runtime runs the export
cache's graph (:mod:`streamtsm.exports`), checked against torch when it was made.

Results go to ``runs/bench/`` (``--out``); ``--quick`` shrinks inputs (64 px frames, 4 x 32 px
clips) and runs one round: it proves the pipeline works (the smoke test), its numbers mean
nothing, and it never writes into ``benchmarks/results/``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..backends.onnxruntime_backend import available_providers
from ..backends.tensorrt_backend import tensorrt_unavailable_reason
from ..recognizer import Recognizer
from ..resolve import load_torch_model, open_engine
from .live import SOURCE_FPS, live_run
from .machine import MEMORY_METHOD, call_peak_rss_mb, environment, rss_mb
from .results import output_dir
from .timing import Timing, time_interleaved

log = logging.getLogger(__name__)

ONLINE_MODELS = ("tsm_mobilenetv2", "tsm_resnet50")
WINDOW_MODELS = ("r2plus1d_18", "r3d_18", "slowfast_r50")
DEFAULT_MODELS = ONLINE_MODELS + WINDOW_MODELS
DEFAULT_STRIDES = (1, 4, 8, 16)
ALL_BACKENDS = ("torch", "onnxruntime", "tensorrt")
NUM_CLASSES = 27  # Jester-sized head: the head is a negligible part of the cost either way
#: Models whose clip call takes more than ~1 s here: fewer timed rounds (``heavy_rounds``).
HEAVY_MODELS = ("slowfast_r50",)
HEADLINE = ("tsm_mobilenetv2", "r2plus1d_18", 8)  # online model, window baseline, stride for the amortised ratio


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
    threads: int | None = 1
    quick: bool = False
    out: Path | None = None
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
        if self.threads is not None and self.threads < 1:
            raise BenchError(f"--threads must be >= 1, got {self.threads}")
        object.__setattr__(self, "out", output_dir(self.out, quick=self.quick))  # refused before anything is measured


# -- models and engines -------------------------------------------------------------------------


def build_model(name: str, *, quick: bool) -> Any:
    """A registry model with random weights (via the resolver); ``quick`` shrinks its input so everything is tiny."""
    if not quick:
        return load_torch_model(name, num_classes=NUM_CLASSES).eval()
    online = name in ONLINE_MODELS
    model = load_torch_model(name, num_classes=NUM_CLASSES, input_size=64 if online else 32).eval()
    if not online:
        clip_len = 8 if name.startswith("slowfast") else 4  # SlowFast samples its slow pathway from the clip: 8 frames
        model.card = model.card.replace(temporal=dataclasses.replace(model.card.temporal, clip_len=clip_len))
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
    """(backends to run, {backend: why skipped}): what the resolver can open on this machine."""
    run, skipped = [], {}
    for name in wanted:
        if name == "onnxruntime" and not available_providers():
            skipped[name] = "onnxruntime is not installed (pip install onnxruntime)"
        elif name == "tensorrt" and tensorrt_unavailable_reason() is not None:
            skipped[name] = str(tensorrt_unavailable_reason())
        else:
            run.append(name)
    return run, skipped


def engine_options(backend: str, threads: int | None) -> dict[str, Any]:
    """Backend options of a benchmark engine: the thread count where the backend takes one."""
    return {"threads": threads} if threads and backend in ("torch", "onnxruntime") else {}


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


def prepare_variants(options: LatencyOptions, backends: Sequence[str]) -> tuple[list[Variant], dict[str, str]]:
    """Build every model once and open it on every backend; failures are recorded, not fatal."""
    variants, failures = [], {}
    for name in progress(options.models, options.progress, "building"):
        model = build_model(name, quick=options.quick)
        example = example_input(model.card)
        params = sum(p.numel() for p in model.parameters())
        macs = count_macs(model, example)
        for backend in backends:
            before = rss_mb()
            try:
                engine = open_engine(model, backend, **engine_options(backend, options.threads))
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
    """The Recognizer on a real-time 30 fps synthetic source for ``seconds``: capture-to-label figures."""
    card = variant.engine.card
    kwargs: dict[str, Any] = {"fps": SOURCE_FPS}  # give every captured frame to the model: can it keep up with 30 fps?
    if not variant.online:
        kwargs.update(window=card.temporal.clip_len, stride=stride)
    with Recognizer(variant.engine, **kwargs) as recognizer:  # the engine stays open: it is the variant's
        run = live_run(recognizer, seconds)
    return {"model": variant.model, "backend": variant.engine.name, "backend_kind": variant.backend, "stride": stride,
            "wall_s": round(run.seconds, 3), **run.to_dict()}


def per_frame_rows(variants: list[Variant], timings: dict[str, Timing], peaks: dict[str, float | None],
                   options: LatencyOptions) -> list[dict[str, Any]]:
    """One result per variant: per-prediction timing, its amortisation per stride, size and memory."""
    rows = []
    for v in variants:
        t = timings[v.key]
        div = {s: 1 if v.online else s for s in options.strides}
        per_frame = [{"stride": s, "median_ms": t.median_ms / div[s], "p90_ms": t.p90_ms / div[s], "p99_ms": t.p99_ms / div[s]}
                     for s in options.strides]
        rows.append({
            "model": v.model,
            "backend": v.engine.name,
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


def measure_latency(options: LatencyOptions, command: str | None = None) -> dict[str, Any]:
    """Run the whole benchmark; returns the JSON-ready payload (see :mod:`streamtsm.bench.latency_report`)."""
    import torch

    if options.threads:
        torch.set_num_threads(options.threads)  # process-global: the torch engines' own option sets it too
    backends, skipped = available_backends(options.backends)
    env = environment(precision="fp32", batch=1, quick=options.quick)
    variants, failures = prepare_variants(options, backends)
    skipped.update(failures)
    if not variants:
        raise BenchError(f"nothing to time: every model/backend failed to open ({skipped})")
    try:
        timings, peaks = measure_compute(variants, options)
        rows = per_frame_rows(variants, timings, peaks, options)
        e2e_rows = []
        if options.e2e_seconds > 0:
            plan = [(v, None) for v in variants if v.online] + [(v, s) for v in variants if not v.online for s in options.strides]
            for v, s in progress(plan, options.progress, "end-to-end"):
                e2e_rows.append(measure_end_to_end(v, s, options.e2e_seconds))
    finally:
        for v in variants:
            v.engine.close()
    return {
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


def headline_ratios(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per backend: r2plus1d_18 window / online TSM-MobileNetV2 step, and the same amortised at stride 8."""
    online_name, window_name, stride = HEADLINE
    out: dict[str, dict[str, float]] = {}
    for kind in sorted({r["backend_kind"] for r in rows}):
        by_model = {r["model"]: r for r in rows if r["backend_kind"] == kind}
        if online_name in by_model and window_name in by_model:
            step = by_model[online_name]["per_prediction"].median_ms
            clip = by_model[window_name]["per_prediction"].median_ms
            out[kind] = {
                "online_step_ms": step,
                "window_clip_ms": clip,
                "window_over_online": clip / step,
                f"window_stride{stride}_per_frame_over_online": clip / stride / step,
            }
    return out


def progress(items: Sequence[Any], enabled: bool, desc: str) -> Any:
    """``items`` with a tqdm progress bar when enabled and tqdm is installed."""
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, unit="config")
