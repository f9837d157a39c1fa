"""How benchmarks record the machine's state: the whole machine's CPU split from /proc/stat."""

from __future__ import annotations

import sys

import pytest

from streamtsm.bench.machine import MachineCpu, cpu_flags
from streamtsm.bench.results import report_header

pytestmark = pytest.mark.runtime

FULL = "cpu  100 5 20 800 10 1 2 30 0 0\ncpu0 50 2 10 400 5 0 1 15 0 0\nintr 1 2 3\n"


@pytest.mark.parametrize("text, expected", [
    (FULL, MachineCpu(busy=128, idle=810, steal=30)),  # user+nice+system+irq+softirq, idle+iowait, steal
    ("cpu  100 5 20 800 10 1 2\n", MachineCpu(busy=128, idle=810, steal=0)),  # a kernel without the steal column
    ("cpu0 1 2 3 4 5 6 7 8\n", None),  # per-CPU lines only: no total
    ("cpu  a b c d e f g h\n", None),
    ("", None),
])
def test_the_cpu_line_is_read_by_kind(text, expected):
    assert MachineCpu.parse(text) == expected


def test_shares_since_an_earlier_reading_add_up_to_the_whole():
    before, after = MachineCpu(100, 800, 10), MachineCpu(160, 830, 20)  # +60 busy, +30 idle, +10 steal
    assert after.share_since(before) == {"busy_pct": 60.0, "idle_pct": 30.0, "steal_pct": 10.0}
    assert after.share_since(None) is None and after.share_since(after) is None  # no time passed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/stat is Linux's")
def test_this_machine_reports_its_counters_and_they_only_grow():
    first = MachineCpu.now()
    sum(range(200_000))
    second = MachineCpu.now()
    assert first is not None and second is not None
    assert second.busy >= first.busy and second.idle >= first.idle and second.steal >= first.steal


@pytest.mark.parametrize("cpuinfo, expected", [
    ("model name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f avx512bw avx512_vnni avx_vnni\n", "avx2 avx512f avx512_vnni avx_vnni"),
    ("flags\t\t: fpu sse avx2 fma\n", "avx2"),  # the AVX2-only EPYC
    ("flags\t\t: fp asimd\n", "none of avx2/avx512/vnni"),  # an ARM board
    ("model name\t: something\n", "unknown"),
])
def test_the_vector_extensions_are_read_from_cpuinfo(cpuinfo, expected):
    assert cpu_flags(cpuinfo) == expected


def test_every_report_names_the_cpus_extensions():
    """Two VMs both called "AMD EPYC" gave int8 1.82x and 2.87x: the header must tell them apart."""
    env = {"processor": "AMD EPYC", "cpu_flags": "avx2 avx512_vnni", "cpu_count": 2, "numpy": "2", "date_utc": "now"}
    header = report_header("T", {"command": "x", "environment": env}, "details")
    assert "AMD EPYC (avx2 avx512_vnni), 2 cores" in header[3]
