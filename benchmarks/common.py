"""Shared helpers for the benchmark scripts: interleaved timing, percentiles, environment record.

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
from typing import Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


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
    variants: dict[str, Callable[[], object]], *, rounds: int, warmup: int = 5, progress: bool = True
) -> dict[str, Timing]:
    """Call each variant once per round, in rotating order, and time every call."""
    names = list(variants)
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
            t0 = time.perf_counter()
            variants[name]()
            samples[name].append(time.perf_counter() - t0)
    return {n: Timing.from_samples(n, s) for n, s in samples.items()}


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
    except ImportError:
        pass
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
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


def write_results(stem: str, payload: dict[str, object], markdown: str, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    js.write_text(json.dumps(payload, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)) + "\n")
    md.write_text(markdown + "\n")
    return js, md
