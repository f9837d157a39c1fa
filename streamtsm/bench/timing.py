"""Timing for benchmarks: percentiles of samples, and interleaved timing of several variants.

Why interleaved: the machines these run on are shared and noisy. Timing variant A for a
minute and then variant B lets a burst of load land on one of them only; alternating A and
B call by call makes the noise hit both, so their *ratio* is trustworthy even when the
absolute numbers drift.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

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
    max_ms: float

    @classmethod
    def from_samples(cls, name: str, seconds: Sequence[float]) -> "Timing":
        """Statistics of samples given in seconds."""
        return cls.from_ms(name, np.asarray(seconds, np.float64) * 1e3)

    @classmethod
    def from_ms(cls, name: str, ms: Sequence[float] | np.ndarray) -> "Timing":
        """Statistics of samples given in milliseconds (e.g. a Prediction's stage timings)."""
        ms = np.asarray(ms, np.float64)
        if not ms.size:
            raise ValueError(f"no timing samples for {name!r}")
        return cls(
            name,
            int(ms.size),
            float(np.median(ms)),
            float(np.percentile(ms, 90)),
            float(np.percentile(ms, 99)),
            float(ms.mean()),
            float(ms.min()),
            float(ms.max()),
        )


def timing_value(timing: "Timing | Mapping[str, object]", key: str) -> object:
    """A Timing's field, given as the dataclass (a fresh run) or a dict (a results file loaded back)."""
    return timing[key] if isinstance(timing, Mapping) else getattr(timing, key)


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
