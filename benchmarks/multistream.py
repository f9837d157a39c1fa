"""Many live streams in one process: a batched MultiRecognizer vs one Recognizer per stream.

N = 1, 2, 4, … live streams at 30 fps each replay pre-rendered synthetic frames (so rendering
or decoding frames is not what is measured) into, in the same run and for the same model:

* ``batched``: one MultiRecognizer (one engine, one capture thread per stream, the due frames of
  all streams stepped as one batch);
* ``batched-2t``: the same with a 2-thread engine (a server's one engine may use every core;
  ``--batched-threads``);
* ``batched-2l``: the 1-thread engine with ``lanes=2`` (each round's batch stepped as two
  calls at once, one core each; ``--batched-lanes``);
* ``separate``: N Recognizers, each with its own ``run()`` thread and capture thread, sharing
  one engine (so the comparison is about the pipeline, not about N copies of the weights).

For each: sustained predictions/s per stream (the card's rate = kept up), frames dropped by
the capture threads, end-to-end latency p50/p99 (capture -> Prediction), CPU use (process
CPU seconds per second, and per prediction), and how the whole machine's CPU time went
meanwhile (idle, and "steal": taken by the hypervisor for other guests). The default model
runs at its card's 10 fps; TSM-MobileNetV2 224² (random weights) is sampled at 10 fps too (its card says 30), in
fp32 and as the int8 graph ``streamtsm export --int8`` writes (quantized at the start of the
run, calibrated on synthetic frames; with random weights only its speed means anything).

    python benchmarks/multistream.py                       # full run, results to runs/bench/ (printed)
    python benchmarks/multistream.py --quick               # a smoke run (seconds)
    python benchmarks/multistream.py --repeat 3 --out benchmarks/results   # a deliberate full run: the committed results
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamtsm import MultiRecognizer, Recognizer  # noqa: E402
from streamtsm.bench.machine import MachineCpu, environment, load_average  # noqa: E402
from streamtsm.bench.results import announce, output_dir, report_header, save_figure, write_results  # noqa: E402
from streamtsm.commands.helptext import DefaultsFormatter  # noqa: E402
from streamtsm.resolve import open_engine  # noqa: E402
from streamtsm.sources import ReplaySource, SyntheticSource  # noqa: E402

# name -> (model spec, sampling rate, int8): the int8 rows run the quantized export of the spec
MODELS = {"default": (None, 10.0, False), "tsm_mobilenetv2_224": ("tsm_mobilenetv2", 10.0, False),
          "tsm_mobilenetv2_224_int8": ("tsm_mobilenetv2", 10.0, True)}
RATE_OF = {name: rate for name, (_, rate, _) in MODELS.items()}


@dataclass
class Row:
    model: str
    mode: str
    streams: int
    seconds: float
    predictions_per_stream_s: float
    min_stream_rate: float
    kept_up: bool
    dropped: int
    e2e_p50_ms: float | None
    e2e_p99_ms: float | None
    cpu_per_s: float
    cpu_ms_per_prediction: float | None
    batches: int | None = None
    repeats: int = 1
    cpu_ms_range: tuple[float, float] | None = None  # min, max over the repeats
    lane_batches: int | None = None  # rounds stepped as several engine calls at once (lanes > 1)
    steal_pct: float | None = None  # of the whole machine's CPU time while measured: taken by the hypervisor
    idle_pct: float | None = None  # of the whole machine's CPU time while measured: left idle


def int8_export(spec: str, folder: Path) -> Path:
    """The int8 QDQ graph of a registry model's cached export (random weights: no agreement floor)."""
    from streamtsm.export.int8 import CalibrationSource, Int8Config, quantize_online
    from streamtsm.resolve import cached_export_of

    out = folder / f"{spec}.int8.onnx"
    path, check = quantize_online(cached_export_of(spec), out, CalibrationSource.parse("synthetic"),
                                  Int8Config(min_agreement=0.0))
    print(f"{spec} int8: {check.summary()}", flush=True)
    return path


def median_row(runs: list[Row]) -> Row:
    """One row from repeated runs of a configuration: the median of each figure (a 10 s run on a shared
    2-core VM varies by +-20 %), the CPU range kept; kept up if the median run kept up."""
    if len(runs) == 1:
        return runs[0]

    def med(values: list[Any]) -> Any:
        values = [v for v in values if v is not None]
        return round(float(np.median(values)), 2) if values else None

    first = runs[0]
    cpu = [r.cpu_ms_per_prediction for r in runs if r.cpu_ms_per_prediction is not None]
    min_rate = med([r.min_stream_rate for r in runs])
    return Row(first.model, first.mode, first.streams, med([r.seconds for r in runs]),
               med([r.predictions_per_stream_s for r in runs]), min_rate, min_rate >= 0.95 * RATE_OF[first.model],
               int(np.median([r.dropped for r in runs])), med([r.e2e_p50_ms for r in runs]), med([r.e2e_p99_ms for r in runs]),
               med([r.cpu_per_s for r in runs]), med(cpu), None if first.batches is None else int(np.median([r.batches for r in runs])),
               len(runs), (min(cpu), max(cpu)) if cpu else None,
               None if first.lane_batches is None else int(np.median([r.lane_batches for r in runs])),
               med([r.steal_pct for r in runs]), med([r.idle_pct for r in runs]))


def frames_for(n_streams: int, size: tuple[int, int], per_stream: int = 30) -> list[list[np.ndarray]]:
    """A few distinct frames per stream (different synthetic seeds), rendered once."""
    out = []
    for seed in range(min(n_streams, 8)):  # 8 distinct streams' worth of frames, reused beyond
        with SyntheticSource(seed=100 + seed, duration_s=per_stream / 30.0 + 1, size=size, realtime=False) as src:
            out.append([f.image for _, f in zip(range(per_stream), src)])
    return [out[i % len(out)] for i in range(n_streams)]


WARMUP_S = 1.0  # not measured: engine warm-up and the capture threads' start


class _LateReplay(ReplaySource):
    """A replay whose first frame comes ``delay_s`` after its capture thread starts: a camera out of phase."""

    def __init__(self, *args: Any, delay_s: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s, self._waited = delay_s, False

    def _read(self):
        if not self._waited:
            self._waited = True
            self._interrupted.wait(self.delay_s)
        return super()._read()


def _sources(frames: list[list[np.ndarray]], seconds: float, spread_s: float = 0.0) -> dict[str, ReplaySource]:
    """One replaying camera per stream, running through the warm-up and then ``seconds`` measured.

    ``spread_s``: each camera's first frame comes a seeded uniform [0, spread_s) later (the same
    offsets for every mode); 0: the cameras start together, 0.55 ms apart as their threads start."""
    delays = np.random.default_rng(0).uniform(0.0, spread_s, len(frames)) if spread_s else np.zeros(len(frames))
    return {f"s{i}": _LateReplay(f, fps=30.0, duration_s=WARMUP_S + seconds, name=f"s{i}", delay_s=float(d))
            for i, (f, d) in enumerate(zip(frames, delays))}


def _summarise(model: str, mode: str, n: int, seconds: float, preds: dict[str, list[float]], dropped: int,
               cpu_s: float, rate: float, batches: int | None, machine: dict[str, float] | None = None,
               lane_batches: int | None = None) -> Row:
    per_stream = [len(v) / seconds for v in preds.values()]
    lat = [x for v in preds.values() for x in v]
    total = sum(len(v) for v in preds.values())
    return Row(model, mode, n, round(seconds, 2), round(float(np.mean(per_stream)), 2), round(min(per_stream), 2),
               min(per_stream) >= 0.95 * rate, dropped,
               round(float(np.percentile(lat, 50)), 2) if lat else None, round(float(np.percentile(lat, 99)), 2) if lat else None,
               round(cpu_s / seconds, 3), round(1000 * cpu_s / total, 3) if total else None, batches,
               lane_batches=lane_batches, steal_pct=machine["steal_pct"] if machine else None,
               idle_pct=machine["idle_pct"] if machine else None)


def _machine_share(since: MachineCpu | None) -> dict[str, float] | None:
    """How the whole machine's CPU time went since ``since`` (None off Linux or before the first prediction)."""
    now = MachineCpu.now()
    return now.share_since(since) if now is not None else None


def run_batched(engine: Any, frames: list[list[np.ndarray]], seconds: float, rate: float, model: str,
                mode: str = "batched", lanes: int = 1, gather_s: float | None = None, spread_s: float = 0.0) -> Row:
    multi = MultiRecognizer(engine, max_streams=len(frames), fps=rate, lanes=lanes)
    sources = _sources(frames, seconds, spread_s)
    preds: dict[str, list[float]] = {sid: [] for sid in sources}
    warm_until = time.monotonic() + WARMUP_S
    t0 = cpu0 = machine0 = None
    gather = {} if gather_s is None else {"gather_s": gather_s}
    for sid, p in multi.run(sources, **gather):  # what a server runs: skipped frames stay on the capture threads
        if time.monotonic() < warm_until:
            continue
        if t0 is None:
            t0, cpu0, machine0 = time.monotonic(), time.process_time(), MachineCpu.now()
        preds[sid].append(p.timings.end_to_end_ms)
    elapsed = time.monotonic() - t0 if t0 is not None else seconds
    cpu = time.process_time() - cpu0 if cpu0 is not None else 0.0
    machine = _machine_share(machine0)
    dropped = sum(multi.capture_stats(sid).dropped for sid in sources)  # replaced by a newer frame unread
    multi.close()
    return _summarise(model, mode, len(frames), elapsed, preds, dropped, cpu, rate, multi.batches, machine,
                      multi.lane_batches if lanes > 1 else None)


def run_separate(engine: Any, frames: list[list[np.ndarray]], seconds: float, rate: float, model: str,
                 spread_s: float = 0.0) -> Row:
    sources = _sources(frames, seconds, spread_s)
    preds: dict[str, list[float]] = {sid: [] for sid in sources}
    dropped: dict[str, int] = {}
    start = threading.Barrier(len(sources) + 1)
    warm_until: list[float] = []

    def consume(sid: str, source: ReplaySource) -> None:
        rec = Recognizer(engine, fps=rate)
        start.wait()
        for p in rec.run(source):
            if time.monotonic() >= warm_until[0]:
                preds[sid].append(p.timings.end_to_end_ms)
        stats = rec.capture_stats
        dropped[sid] = stats.dropped if stats is not None else 0

    threads = [threading.Thread(target=consume, args=(sid, src), daemon=True) for sid, src in sources.items()]
    for t in threads:
        t.start()
    warm_until.append(time.monotonic() + WARMUP_S)
    start.wait()
    time.sleep(max(0.0, warm_until[0] - time.monotonic()))
    t0, cpu0, machine0 = time.monotonic(), time.process_time(), MachineCpu.now()
    for t in threads:
        t.join(seconds + 60)
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    machine = _machine_share(machine0)
    return _summarise(model, "separate", len(frames), elapsed, preds, sum(dropped.values()), cpu, rate, None, machine)


def markdown(rows: list[Row], payload: dict[str, Any], quick: bool) -> str:
    lines = report_header(
        "Many streams: batched MultiRecognizer vs separate Recognizers", payload,
        "each stream a live 30 fps replay of pre-rendered 480x640 synthetic frames, sampled to 10 fps; ONNX Runtime, "
        "one engine shared by all streams (1 intra-op thread, or as many as the mode says: batched-2t = 2; "
        "batched-2l = 1 thread, lanes=2; batched-g<N>ms, where run: 1 thread, gather_s N ms); 1 s warm-up, then the stated seconds; each row the median of its repeats "
        "(run interleaved: batched, batched-2t, batched-2l, separate, batched, ...), CPU range over them in brackets; "
        "machine idle / steal: per cent of all CPUs' time while measured left idle / taken by the hypervisor for other "
        "guests (Linux /proc/stat)",
        quick=quick,
    )
    lines += [
        "| model | mode | streams | repeats | pred/s per stream (min) | kept up | dropped | e2e p50 / p99 ms | CPU s/s | "
        "CPU ms per prediction [range] | batches | machine idle / steal % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        spread = f" [{r.cpu_ms_range[0]:.2f}–{r.cpu_ms_range[1]:.2f}]" if r.cpu_ms_range else ""
        lines.append(
            f"| {r.model} | {r.mode} | {r.streams} | {r.repeats} | {r.predictions_per_stream_s} ({r.min_stream_rate}) | "
            f"{'yes' if r.kept_up else 'no'} | {r.dropped} | {r.e2e_p50_ms} / {r.e2e_p99_ms} | {r.cpu_per_s} | "
            f"{r.cpu_ms_per_prediction}{spread} | {r.batches if r.batches is not None else '-'} | "
            f"{'-' if r.idle_pct is None else f'{r.idle_pct:g} / {r.steal_pct:g}'} |"
        )
    lines += ["", "Largest N that kept the card's rate (every stream >= 95 % of 10 pred/s):", ""]
    modes = list(dict.fromkeys(r.mode for r in rows))
    for model in sorted({r.model for r in rows}):
        for mode in modes:
            ok = [r.streams for r in rows if r.model == model and r.mode == mode and r.kept_up]
            lines.append(f"- {model}, {mode}: {max(ok) if ok else 'none'}")
    return "\n".join(lines) + "\n"


MODE_STYLES = {"batched": ("C0", "-o"), "batched-2t": ("C1", "-^"), "batched-2l": ("C2", "-v"), "separate": ("C3", "--s")}


def plot(rows: list[Row], path: Path) -> None:
    """One column per model; p99 on top, CPU per prediction below; one colour per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in rows))
    fig, axes = plt.subplots(2, len(models), figsize=(4.3 * len(models), 7), sharex=True, squeeze=False)
    for col, model in enumerate(models):
        for mode in dict.fromkeys(r.mode for r in rows):
            rs = sorted((r for r in rows if r.model == model and r.mode == mode), key=lambda r: r.streams)
            if not rs:
                continue
            colour, style = MODE_STYLES.get(mode, ("C7", "-x"))
            for row, value in ((0, "e2e_p99_ms"), (1, "cpu_ms_per_prediction")):
                xs, ys = [r.streams for r in rs], [getattr(r, value) for r in rs]
                axes[row, col].plot(xs, ys, style, color=colour, label=mode)
                lost = [(x, y) for x, y, r in zip(xs, ys, rs) if not r.kept_up]  # hollow: the card's rate was lost
                if lost:
                    axes[row, col].plot(*zip(*lost), style[-1], color=colour, markerfacecolor="white", linestyle="none")
        axes[0, col].set_title(f"{model}: end-to-end p99 (ms)", fontsize=10)
        axes[1, col].set_title(f"{model}: CPU ms per prediction", fontsize=10)
        axes[0, col].set_yscale("log")
        axes[1, col].set_ylim(bottom=0)
        axes[1, col].set_xlabel("live streams at 30 fps")
        for ax in axes[:, col]:
            ax.set_xscale("log", base=2)
            ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=8, title="hollow: rate not kept", title_fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=DefaultsFormatter)
    parser.add_argument("--streams", default="1,2,4,8,16,32,64", help="comma-separated stream counts")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per configuration")
    parser.add_argument("--size", default="480x640", help="frame size HxW of every stream")
    parser.add_argument("--batched-threads", default="1,2",
                        help="ONNX Runtime threads of the batched engine, one set of rows each (separate Recognizers: 1)")
    parser.add_argument("--batched-lanes", default="2",
                        help="lanes of the 1-thread batched engine, one set of rows each (1 or empty: none)")
    parser.add_argument("--batched-gather-ms", default="",
                        help="gather windows (ms) of extra 1-thread batched modes, batched-g<ms> (empty: none; the "
                             "other modes use MultiRecognizer.run's default)")
    parser.add_argument("--phase-spread-ms", type=float, default=0.0,
                        help="cameras out of phase: each one's first frame a seeded uniform 0..this many ms later "
                             "(0: they start together)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of every configuration, interleaved across modes; rows report their medians")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 and 2 streams, 2 s, the default model")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/bench/multistream-<time>)")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.models, args.seconds, args.batched_threads, args.batched_lanes = "1,2", "default", 2.0, "1", ""
    try:
        counts = [int(x) for x in args.streams.split(",")]
        batched_threads = [int(x) for x in args.batched_threads.split(",")]
        batched_lanes = [int(x) for x in args.batched_lanes.split(",") if x.strip() and int(x) > 1]
        h, w = (int(x) for x in args.size.lower().split("x"))
        gathers = [float(x) for x in args.batched_gather_ms.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--streams and --batched-threads/--batched-lanes take integers like 1,2,4, --batched-gather-ms "
                     f"numbers like 20,40 and --size HxW like 480x640 (got {args.streams!r}, {args.batched_threads!r}, "
                     f"{args.batched_lanes!r}, {args.batched_gather_ms!r}, {args.size!r})")
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if (unknown or any(not 1 <= n <= 256 for n in counts) or not 0.5 <= args.seconds <= 600
            or any(not 1 <= t <= 64 for t in batched_threads) or any(k > 16 for k in batched_lanes)
            or not 1 <= args.repeat <= 20 or any(not 0 <= g <= 1000 for g in gathers)
            or not 0 <= args.phase_spread_ms <= 1000):
        parser.error(f"models must be among {sorted(MODELS)}, streams 1..256, seconds 0.5..600, batched threads 1..64, "
                     "batched lanes 1..16, repeat 1..20, gather and phase spread 0..1000 ms")
    out = output_dir(args.out, quick=args.quick)
    payload: dict[str, Any] = {"command": " ".join(["python", "benchmarks/multistream.py", *(argv or sys.argv[1:])]),
                               "environment": environment()}
    rows: list[Row] = []
    every_run: list[list[list[Row]]] = []
    frames = frames_for(max(counts), (h, w))
    scratch = tempfile.TemporaryDirectory(prefix="streamtsm-multistream-")
    for model in models:
        spec, rate, int8 = MODELS[model]
        graph = int8_export(spec, Path(scratch.name)) if int8 else spec
        # ONNX Runtime, dynamic batch (the export cache makes one for a name); one engine per thread count
        engines = {t: open_engine(graph, threads=t) for t in sorted({1, *batched_threads})}
        for n in counts:
            runs = [(partial(run_batched, mode="batched" if t == 1 else f"batched-{t}t"), engines[t]) for t in batched_threads]
            runs += [(partial(run_batched, mode=f"batched-{k}l", lanes=k), engines[1]) for k in batched_lanes]
            runs += [(partial(run_batched, mode=f"batched-g{g:g}ms", gather_s=g / 1000), engines[1]) for g in gathers]
            modes = [*runs, (run_separate, engines[1])]
            spread = args.phase_spread_ms / 1000
            modes = [(partial(runner, spread_s=spread), engine) for runner, engine in modes]
            repeats: list[list[Row]] = [[] for _ in modes]
            every_run.append(repeats)
            for _ in range(args.repeat):
                for i, (runner, engine) in enumerate(modes):
                    row = runner(engine, frames[:n], args.seconds, rate, model)
                    repeats[i].append(row)
                    print(json.dumps(asdict(row)), flush=True)
            rows += [median_row(r) for r in repeats]
        for engine in engines.values():
            engine.close()
    scratch.cleanup()
    payload["load_average_end"] = load_average()
    payload["rows"] = [asdict(r) for r in rows]
    payload["runs"] = [asdict(r) for config in every_run for mode in config for r in mode]
    paths = list(write_results("multistream", payload, markdown(rows, payload, args.quick), out))
    paths.append(out / "multistream.png")
    plot(rows, paths[-1])
    announce(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
