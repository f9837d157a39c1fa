"""How benchmarks record the machine's state: the whole machine's CPU split from /proc/stat."""

from __future__ import annotations

import sys

import pytest

from streamtsm.bench.machine import MachineCpu

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
