"""Shared helpers for benchmarks: interleaved timing, percentiles, memory, environment record.

Moved here from ``benchmarks/common.py`` (which now re-exports them) so that the installed
``streamtsm bench`` command can use them too.

Why interleaved: the machines these run on are shared and noisy. Timing variant A for a
minute and then variant B lets a burst of load land on one of them only; alternating A and
B call by call makes the noise hit both, so their *ratio* is trustworthy even when the
absolute numbers drift.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Latency statistics of one variant, in milliseconds."""

    name: str
    n: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float

    @classmethod
    def from_samples(cls, name: str, seconds: list[float]) -> "Timing":
        if not len(seconds):
            raise ValueError(f"no timing samples for {name!r}")
        ms = np.asarray(seconds) * 1e3
        return cls(
            name,
            len(ms),
            float(np.median(ms)),
            float(np.percentile(ms, 90)),
            float(np.percentile(ms, 99)),
            float(ms.mean()),
            float(ms.min()),
        )


def time_interleaved(
    variants: dict[str, Callable[[], object]],
    *,
    rounds: int,
    warmup: int = 5,
    progress: bool = True,
    repeats: Mapping[str, int] | None = None,
) -> dict[str, Timing]:
    """Call each variant once per round (``repeats[name]`` times if given), in rotating order, timing every call.

    ``repeats`` lets a cheap variant (one online step, ~20 ms) collect enough samples for a
    p99 while an expensive one (a 3D clip, ~1 s) is called once per round: both still share
    every round, so load bursts hit them alike.
    """
    names = list(variants)
    reps = {n: max(1, int((repeats or {}).get(n, 1))) for n in names}
    for _ in range(warmup):
        for name in names:
            variants[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    iterator = range(rounds)
    if progress:
        try:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc="timing", unit="round")
        except ImportError:
            pass
    for r in iterator:
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            fn = variants[name]
            for _ in range(reps[name]):
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    return {n: Timing.from_samples(n, s) for n, s in samples.items()}


# -- memory ---------------------------------------------------------------------------------

MEMORY_METHOD = (
    "Linux /proc/self/status: engine_rss_mb = VmRSS growth while the engine was built (weights, session); "
    "call_peak_rss_mb = VmHWM above the pre-call VmRSS during one warm call, after resetting VmHWM via "
    "/proc/self/clear_refs. One process runs all variants, so memory freed by earlier ones may be reused: "
    "the figures are lower bounds."
)


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def rss_mb() -> float | None:
    """Resident set size of this process in MiB (None off Linux)."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def call_peak_rss_mb(fn: Callable[[], object]) -> float | None:
    """Peak RSS growth (MiB) during one call of ``fn``; None where /proc cannot report it."""
    before = _status_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        fn()
        return None
    fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return max(0.0, (peak - before) / 1024.0)


# -- environment and output -----------------------------------------------------------------


def environment(**extra: object) -> dict[str, object]:
    """What the figures were measured on (recorded next to every result)."""
    env: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    env["numpy"] = np.__version__
    env.update(extra)
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown_table(rows: list[dict[str, object]], columns: list[str]) -> str:
    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def _json_default(o: object) -> object:
    return asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)


def write_results(stem: str, payload: dict[str, object], markdown: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir`` (created if needed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")
    md.write_text(markdown + "\n")
    return js, md
