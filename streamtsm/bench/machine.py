"""What a figure was measured on, and how much memory a call took (Linux ``/proc``).

Every result records the machine next to its numbers: CPU, core count, the 1-minute load
average (the machines these run on are shared, and load moves every figure), library versions;
and, per run, how the whole machine's CPU time went (:class:`MachineCpu`): on a virtual machine
"steal" is time the hypervisor gave to other guests, which no load average shows.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

MEMORY_METHOD = (
    "Linux /proc/self/status: engine_rss_mb = VmRSS growth while the engine was built (weights, session); "
    "call_peak_rss_mb = VmHWM above the pre-call VmRSS during one warm call, after resetting VmHWM via "
    "/proc/self/clear_refs. One process runs all variants, so memory freed by earlier ones may be reused: "
    "the figures are lower bounds."
)


def load_average() -> float | None:
    """The 1-minute load average (None where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


@dataclass(frozen=True)
class MachineCpu:
    """All CPUs' time since boot by kind, in clock ticks (the ``cpu`` line of Linux ``/proc/stat``)."""

    busy: int  # user, nice, system, irq, softirq
    idle: int  # idle and iowait
    steal: int

    @classmethod
    def parse(cls, stat_text: str) -> "MachineCpu | None":
        for line in stat_text.splitlines():
            fields = line.split()
            if fields and fields[0] == "cpu":
                try:
                    ticks = [int(x) for x in fields[1:9]]
                except ValueError:
                    return None
                ticks += [0] * (8 - len(ticks))  # old kernels have no steal column
                user, nice, system, idle, iowait, irq, softirq, steal = ticks
                return cls(user + nice + system + irq + softirq, idle + iowait, steal)
        return None

    @classmethod
    def now(cls) -> "MachineCpu | None":
        """The counters now; None off Linux."""
        try:
            return cls.parse(Path("/proc/stat").read_text())
        except OSError:
            return None

    def share_since(self, earlier: "MachineCpu | None") -> dict[str, float] | None:
        """Per cent of the machine's CPU time since ``earlier``: ``busy_pct``, ``idle_pct``, ``steal_pct``."""
        if earlier is None:
            return None
        busy, idle, steal = self.busy - earlier.busy, self.idle - earlier.idle, self.steal - earlier.steal
        total = busy + idle + steal
        if total <= 0:
            return None
        return {"busy_pct": round(100 * busy / total, 1), "idle_pct": round(100 * idle / total, 1),
                "steal_pct": round(100 * steal / total, 1)}


def environment(**extra: object) -> dict[str, object]:
    """What the figures were measured on (recorded next to every result)."""
    env: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": cpu_name(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": load_average(),
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


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags(cpuinfo: str | None = None) -> str:
    """The CPU's vector extensions that change our figures (VNNI decides how fast int8 is): the VMs
    a benchmark lands on differ in them under the same model name ("AMD EPYC"). ``cpuinfo``: the
    text of /proc/cpuinfo (default: read it)."""
    try:
        text = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
        flags = next(line for line in text.splitlines() if line.startswith("flags")).split(":", 1)[1].split()
    except (OSError, StopIteration, IndexError):
        return "unknown"
    wanted = [f for f in flags if f in ("avx2", "avx512f", "avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8")]
    return " ".join(wanted) or "none of avx2/avx512/vnni"


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
