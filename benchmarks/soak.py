"""Soak test: many frames of the synthetic source through the Recognizer; does anything leak or drift?

    python benchmarks/soak.py --frames 100000 --crop 112 --out benchmarks/results   # the full run (~4 min on 2 idle cores)
    python benchmarks/soak.py --frames 3000 --crop 112                              # a quick look, into runs/bench/

A recognizer on a robot runs for days. Leaks show up as resident memory that keeps growing,
threads or file handles that accumulate, or latency that creeps up (a list that grows, a
cache that never evicts). This script pushes ``--frames`` frames of the synthetic source
(non-realtime: every frame is delivered, as fast as the model goes) through
``Recognizer.iter_frames`` and records, while it runs:

* resident memory (``/proc/self/statm``, every ``--sample-every`` frames),
* OS thread count (``/proc/self/task``) and open file descriptors (``/proc/self/fd``),
* per-frame latency: the Recognizer's own preprocess + inference + postprocess time, and the
  wall time of each loop iteration (which includes waiting for the capture thread),
* the 1-minute load average (the 2 cores are shared; latency figures depend on it).

Verdicts (after a warm-up of ``--warmup`` frames, during which allocators and ONNX Runtime's
arenas settle): resident memory growth < ``--max-rss-growth-mb`` (20 MB), no thread or file
handle more at the end than after warm-up, and no thread or file handle left once the run is
over; p99 latency of the last 10,000 frames within ``--max-p99-ratio`` (1.2) of the first
10,000 after warm-up (windows shrink for short runs). Results go to ``runs/bench/soak.{json,md,png}``
(``--out``; the deliberate full run passes ``--out benchmarks/results``). Exit status 1 if a
verdict fails.

The model is a registry name with random weights, built by ``streamtsm.resolve`` at ``--crop``
px. Engine: ONNX Runtime when it is installed (``--engine auto``; the model goes through the
export cache, as a checkpoint given to the runtime does), else torch; the result records which.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.machine import environment  # noqa: E402
from streamtsm.bench.plots import pyplot  # noqa: E402
from streamtsm.bench.results import DEFAULT_OUT, announce, output_dir, save_figure, to_json, write_text  # noqa: E402
from streamtsm.commands.helptext import RawDescriptionDefaultsFormatter  # noqa: E402

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process (second field of /proc/self/statm, in pages)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE_SIZE


def start_opencv_pool() -> None:
    """Start OpenCV's worker pool before counting threads.

    OpenCV creates its process-wide pool (cv2.getNumThreads() - 1 workers) lazily on the first
    parallel call -- here the first frame resized by the capture thread -- and keeps it for the life
    of the process. Counted "before" without it, that one pool thread looks like a leak of the run.
    """
    import cv2

    cv2.resize(np.zeros((960, 1280, 3), np.uint8), (640, 480), interpolation=cv2.INTER_AREA)


def os_thread_count() -> int:
    return len(os.listdir("/proc/self/task"))


def open_fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass(frozen=True)
class SoakConfig:
    frames: int = 100_000
    warmup: int = 2_000
    window: int = 10_000
    sample_every: int = 100
    model: str = "tsm_mobilenetv2"
    num_classes: int = 27
    crop: int = 224
    frame_size: tuple[int, int] = (240, 320)
    engine: str = "auto"  # auto | onnxruntime | torch
    threads: int = 1  # intra-op threads: 1 keeps the run steady on a shared 2-core box (no oversubscription)
    max_rss_growth_mb: float = 20.0
    max_p99_ratio: float | None = 1.2  # None: the drift is reported, not judged (the test suite's short soak)
    seed: int = 0


@dataclass
class SoakResult:
    config: SoakConfig
    engine: str
    frames: int
    seconds: float
    warmup: int
    window: int
    rss_mb_after_warmup: float
    rss_mb_end: float
    rss_mb_max_after_warmup: float
    rss_growth_mb: float
    threads_before_run: int
    threads_after_warmup: int
    threads_max: int
    threads_end_of_run: int
    threads_after_run: int
    fds_before_run: int
    fds_after_warmup: int
    fds_max: int
    fds_end_of_run: int
    fds_after_run: int
    p50_first_ms: float
    p99_first_ms: float
    p50_last_ms: float
    p99_last_ms: float
    p99_ratio: float
    wall_p99_first_ms: float
    wall_p99_last_ms: float
    load_first: float
    load_last: float
    predictions: int
    session_resets: int
    verdicts: dict[str, bool] = field(default_factory=dict)
    samples: dict[str, list[float]] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(self.verdicts.values())


def build_recognizer(config: SoakConfig):
    """The model at ``config.crop`` px on the requested engine, through the resolver; returns (recognizer, engine kind)."""
    from streamtsm.backends.onnxruntime_backend import available_providers
    from streamtsm.recognizer import Recognizer
    from streamtsm.resolve import load_torch_model

    engine = config.engine
    if engine == "auto":
        engine = "onnxruntime" if available_providers() else "torch"
    model = load_torch_model(config.model, num_classes=config.num_classes, input_size=config.crop)
    return Recognizer(model, backend=engine, threads=config.threads), engine


def run_soak(config: SoakConfig, progress: bool = True) -> SoakResult:
    from streamtsm.sources import SyntheticSource
    from streamtsm.sampling import ResetReason

    if config.frames < config.warmup + 200:
        raise SystemExit(f"--frames {config.frames} is too few for a warm-up of {config.warmup} frames")
    rec, engine = build_recognizer(config)
    fps = rec.card.temporal.fps
    source = SyntheticSource(
        seed=config.seed, duration_s=config.frames / fps + 2.0, fps=fps, size=config.frame_size, realtime=False
    )
    start_opencv_pool()
    gc.collect()
    threads_before, fds_before = os_thread_count(), open_fd_count()
    n = config.frames
    proc_ms = np.full(n, np.nan)
    wall_ms = np.full(n, np.nan)
    samples: dict[str, list[float]] = {"frame": [], "rss_mb": [], "threads": [], "fds": [], "load": []}
    predictions = 0
    t_start = time.perf_counter()
    t_prev = t_start
    count = 0
    for count, (frame, prediction) in enumerate(rec.iter_frames(source, max_frames=n), start=1):
        now = time.perf_counter()
        wall_ms[count - 1] = (now - t_prev) * 1000.0
        t_prev = now
        if prediction is not None:
            predictions += 1
            t = prediction.timings
            proc_ms[count - 1] = t.preprocess_ms + t.inference_ms + t.postprocess_ms
        if count % config.sample_every == 0 or count == config.warmup:
            samples["frame"].append(count)
            samples["rss_mb"].append(rss_bytes() / 2**20)
            samples["threads"].append(os_thread_count())
            samples["fds"].append(open_fd_count())
            samples["load"].append(os.getloadavg()[0])
            if progress and count % (config.sample_every * 50) == 0:
                elapsed = now - t_start
                print(
                    f"{count:>7}/{n} frames  {count / elapsed:5.1f} fps  rss {samples['rss_mb'][-1]:7.1f} MB  "
                    f"threads {samples['threads'][-1]}  fds {samples['fds'][-1]}  load {samples['load'][-1]:.1f}",
                    flush=True,
                )
    seconds = time.perf_counter() - t_start
    threads_end_of_run = samples["threads"][-1] if samples["threads"] else os_thread_count()
    fds_end_of_run = samples["fds"][-1] if samples["fds"] else open_fd_count()
    resets = sum(n for reason, n in rec.reset_counts.items() if reason is not ResetReason.STREAM_START)
    rec.close()
    del rec
    gc.collect()
    time.sleep(0.2)  # let the capture thread's exit finish
    threads_after, fds_after = os_thread_count(), open_fd_count()
    if count != n:
        raise SystemExit(f"the source ended after {count} of {n} frames")
    return summarise(config, engine, seconds, proc_ms, wall_ms, samples, predictions, resets,
                     (threads_before, threads_end_of_run, threads_after), (fds_before, fds_end_of_run, fds_after))


def summarise(config, engine, seconds, proc_ms, wall_ms, samples, predictions, resets, threads, fds) -> SoakResult:
    n = len(proc_ms)
    window = min(config.window, (n - config.warmup) // 2)
    first = slice(config.warmup, config.warmup + window)
    last = slice(n - window, n)
    frames = np.asarray(samples["frame"])
    rss = np.asarray(samples["rss_mb"])
    after = frames >= config.warmup
    rss_warm = float(rss[after][0])
    p99_first = float(np.nanpercentile(proc_ms[first], 99))
    p99_last = float(np.nanpercentile(proc_ms[last], 99))
    load = np.asarray(samples["load"])

    def window_load(sl: slice) -> float:
        mask = (frames > sl.start) & (frames <= sl.stop)
        return float(load[mask].mean()) if mask.any() else float("nan")

    th = np.asarray(samples["threads"])[after]
    fd = np.asarray(samples["fds"])[after]
    result = SoakResult(
        config=config,
        engine=engine,
        frames=n,
        seconds=round(seconds, 1),
        warmup=config.warmup,
        window=window,
        rss_mb_after_warmup=round(rss_warm, 2),
        rss_mb_end=round(float(rss[-1]), 2),
        rss_mb_max_after_warmup=round(float(rss[after].max()), 2),
        rss_growth_mb=round(float(rss[after].max()) - rss_warm, 2),
        threads_before_run=threads[0],
        threads_after_warmup=int(th[0]),
        threads_max=int(th.max()),
        threads_end_of_run=threads[1],
        threads_after_run=threads[2],
        fds_before_run=fds[0],
        fds_after_warmup=int(fd[0]),
        fds_max=int(fd.max()),
        fds_end_of_run=fds[1],
        fds_after_run=fds[2],
        p50_first_ms=round(float(np.nanpercentile(proc_ms[first], 50)), 3),
        p99_first_ms=round(p99_first, 3),
        p50_last_ms=round(float(np.nanpercentile(proc_ms[last], 50)), 3),
        p99_last_ms=round(p99_last, 3),
        p99_ratio=round(p99_last / p99_first, 3),
        wall_p99_first_ms=round(float(np.nanpercentile(wall_ms[first], 99)), 3),
        wall_p99_last_ms=round(float(np.nanpercentile(wall_ms[last], 99)), 3),
        load_first=round(window_load(first), 2),
        load_last=round(window_load(last), 2),
        predictions=predictions,
        session_resets=resets,
        samples={k: [round(float(v), 3) for v in vals] for k, vals in samples.items()},
        latency_ms=[round(float(v), 3) for v in proc_ms],
    )
    result.verdicts = judge(result, n)
    return result


def judge(result: SoakResult, frames: int) -> dict[str, bool]:
    """The soak's checks by name. Drift is judged only when the config sets a p99 limit."""
    config = result.config
    verdicts = {
        f"rss growth < {config.max_rss_growth_mb:g} MB": result.rss_growth_mb < config.max_rss_growth_mb,
        "no thread growth during the run": result.threads_max <= result.threads_after_warmup,
        "no fd growth during the run": result.fds_max <= result.fds_after_warmup,
        "no thread left after the run": result.threads_after_run <= result.threads_before_run,
        "no fd left after the run": result.fds_after_run <= result.fds_before_run,
        "every frame predicted": result.predictions == frames,
    }
    if config.max_p99_ratio is not None:
        verdicts[f"p99 last/first <= {config.max_p99_ratio:g}"] = result.p99_ratio <= config.max_p99_ratio
    return verdicts


def to_markdown(r: SoakResult) -> str:
    c = r.config
    lines = [
        f"# Soak: {r.frames:,} synthetic frames through the Recognizer ({r.engine}, {c.model} @ {c.crop} px)",
        "",
        f"{r.seconds:.0f} s, {r.frames / r.seconds:.1f} frames/s; warm-up {r.warmup:,} frames; latency windows "
        f"{r.window:,} frames (first after warm-up vs last). Load average (2 shared cores): "
        f"{r.load_first:.1f} in the first window, {r.load_last:.1f} in the last.",
        "",
        "| measure | after warm-up / first window | end / last window | limit | ok |",
        "|---|---|---|---|---|",
        f"| resident memory (MB) | {r.rss_mb_after_warmup:.1f} | {r.rss_mb_end:.1f} (max {r.rss_mb_max_after_warmup:.1f}; "
        f"growth {r.rss_growth_mb:+.1f}) | < {c.max_rss_growth_mb:g} MB growth | {_ok(r, 'rss')} |",
        f"| OS threads | {r.threads_after_warmup} (before run {r.threads_before_run}) | max {r.threads_max}, "
        f"after run {r.threads_after_run} | no growth | {_ok(r, 'thread')} |",
        f"| open file descriptors | {r.fds_after_warmup} (before run {r.fds_before_run}) | max {r.fds_max}, "
        f"after run {r.fds_after_run} | no growth | {_ok(r, 'fd')} |",
        f"| processing latency p50 (ms) | {r.p50_first_ms:.2f} | {r.p50_last_ms:.2f} | | |",
        f"| processing latency p99 (ms) | {r.p99_first_ms:.2f} | {r.p99_last_ms:.2f} (ratio {r.p99_ratio:.2f}) | "
        f"{_p99_limit(c)} | {_ok(r, 'p99') if c.max_p99_ratio is not None else ''} |",
        f"| loop wall time p99 (ms) | {r.wall_p99_first_ms:.2f} | {r.wall_p99_last_ms:.2f} | | |",
        f"| predictions | | {r.predictions:,} of {r.frames:,} frames; {r.session_resets} session reset(s) | all | "
        f"{_ok(r, 'predicted')} |",
        "",
        "Processing latency = the Recognizer's preprocess + inference + postprocess time per frame "
        "(its StageTimings); wall time also includes waiting for the capture thread.",
        "",
        f"Verdict: {'PASS' if r.passed else 'FAIL'} ({', '.join(k for k, v in r.verdicts.items() if not v) or 'all checks met'}).",
        "",
    ]
    return "\n".join(lines)


def _p99_limit(c: SoakConfig) -> str:
    return "reported, not judged" if c.max_p99_ratio is None else f"ratio <= {c.max_p99_ratio:g}"


def _ok(r: SoakResult, key: str) -> str:
    vals = [v for k, v in r.verdicts.items() if key in k]
    return "yes" if vals and all(vals) else "NO"


def plot(r: SoakResult, path: Path) -> Path:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    ax1.plot(r.samples["frame"], r.samples["rss_mb"], lw=1)
    ax1.axvline(r.warmup, color="grey", ls=":", label="end of warm-up")
    ax1.set_ylabel("resident memory (MB)")
    ax1.legend(loc="lower right")
    lat = np.asarray(r.latency_ms)
    block = max(1, len(lat) // 400)
    usable = len(lat) // block * block
    blocks = lat[:usable].reshape(-1, block)
    x = np.arange(blocks.shape[0]) * block + block / 2
    ax2.plot(x, np.nanpercentile(blocks, 50, axis=1), lw=1, label="p50")
    ax2.plot(x, np.nanpercentile(blocks, 99, axis=1), lw=1, label="p99")
    ax2.set_ylabel(f"latency per frame (ms, blocks of {block})")
    ax2.set_xlabel("frame")
    ax2b = ax2.twinx()
    ax2b.plot(r.samples["frame"], r.samples["load"], color="grey", lw=0.7, alpha=0.6)
    ax2b.set_ylabel("load average (grey)")
    ax2.legend(loc="upper left")
    fig.suptitle(f"Soak: {r.frames:,} frames, {r.engine}, {r.config.model} @ {r.config.crop} px")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def write(r: SoakResult, out_dir: Path, stem: str = "soak") -> list[Path]:
    """``<stem>.json``, ``.md`` and ``.png`` in ``out_dir``, each replaced atomically."""
    payload = {k: v for k, v in asdict(r).items() if k not in ("samples", "latency_ms")}
    payload["passed"] = r.passed
    payload["environment"] = environment(engine=r.engine)
    payload["samples"] = r.samples
    return [write_text(out_dir / f"{stem}.json", to_json(payload)), write_text(out_dir / f"{stem}.md", to_markdown(r)),
            plot(r, out_dir / f"{stem}.png")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/soak.py", description=__doc__,
                                formatter_class=RawDescriptionDefaultsFormatter)
    p.add_argument("--frames", type=int, default=100_000, help="frames pushed through the Recognizer")
    p.add_argument("--warmup", type=int, default=2_000, help="frames before the baselines are taken (allocators and arenas settle)")
    p.add_argument("--window", type=int, default=10_000, help="frames in each latency window")
    p.add_argument("--sample-every", type=int, default=100, help="frames between memory, thread and file-handle samples")
    p.add_argument("--model", default="tsm_mobilenetv2", help="registry name, built with random weights")
    p.add_argument("--crop", type=int, default=224, help="model input size, px")
    p.add_argument("--engine", choices=("auto", "onnxruntime", "torch"), default="auto",
                   help="auto: ONNX Runtime when installed, else torch")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads of the engine")
    p.add_argument("--max-rss-growth-mb", type=float, default=20.0, help="verdict: most resident memory growth after warm-up, MB")
    p.add_argument("--max-p99-ratio", type=float, default=1.2, help="verdict: most p99 latency of the last window over the first")
    p.add_argument("--out", type=Path, default=None,
                   help=f"results folder (default {DEFAULT_OUT}/; the deliberate full run passes benchmarks/results)")
    p.add_argument("--stem", default="soak", help="file name of the results: STEM.json, STEM.md, STEM.png")
    a = p.parse_args(argv)
    try:
        out = output_dir(a.out, quick=False)
    except ValueError as exc:
        p.error(str(exc))
    config = SoakConfig(
        frames=a.frames, warmup=a.warmup, window=a.window, sample_every=a.sample_every, model=a.model, crop=a.crop,
        engine=a.engine, threads=a.threads, max_rss_growth_mb=a.max_rss_growth_mb, max_p99_ratio=a.max_p99_ratio,
    )  # fmt: skip
    result = run_soak(config)
    paths = write(result, out, a.stem)
    print(to_markdown(result))
    announce(paths)
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
