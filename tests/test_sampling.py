"""Per-frame decisions as tables: (timestamps, sources) -> (kept?, reset reason)."""

from __future__ import annotations

import pytest

from streamtsm.sampling import FrameSampler, Reset, ResetReason, SamplingError

pytestmark = pytest.mark.runtime

START, GAP, SOURCE, BACK, CALLER = (ResetReason.STREAM_START, ResetReason.GAP, ResetReason.SOURCE_CHANGE,
                                    ResetReason.TIME_REVERSAL, ResetReason.CALLER)


def run(frames, fps=10.0, max_gap_s=1.0):
    """Feed (timestamp, source) pairs; return (kept, reset reason or None) per frame."""
    sampler = FrameSampler(fps, max_gap_s)
    out = []
    for ts, source in frames:
        decision = sampler.decide(ts, source)
        sampler.commit(decision, ts, source)
        out.append((decision.keep, decision.reset.reason if decision.reset else None))
    return out


CASES = {
    "30 fps into 10 fps keeps every third": (
        [(i / 30, None) for i in range(7)],
        [(True, START), (False, None), (False, None), (True, None), (False, None), (False, None), (True, None)],
    ),
    "a slower source keeps every frame": ([(i / 5, None) for i in range(4)], [(True, START)] + [(True, None)] * 3),
    "a gap above max_gap_s resets": ([(0.0, None), (0.1, None), (1.5, None), (1.6, None)],
                                     [(True, START), (True, None), (True, GAP), (True, None)]),
    "a gap of exactly max_gap_s does not": ([(0.0, None), (1.0, None)], [(True, START), (True, None)]),
    "time going backwards resets": ([(5.0, None), (5.1, None), (2.0, None)], [(True, START), (True, None), (True, BACK)]),
    "a source change resets": ([(0.0, "a"), (0.1, "a"), (0.2, "b"), (0.3, "b")],
                               [(True, START), (True, None), (True, SOURCE), (True, None)]),
    "an unnamed source never counts as a change": ([(0.0, "a"), (0.1, None), (0.2, "a")],
                                                   [(True, START), (True, None), (True, None)]),
    "a repeated timestamp is skipped, not a reset": ([(0.0, None), (0.0, None), (0.1, None)],
                                                     [(True, START), (False, None), (True, None)]),
}


@pytest.mark.parametrize("frames, expected", CASES.values(), ids=CASES.keys())
def test_sampling_table(frames, expected):
    assert run(frames) == expected


def test_every_frame_mode_keeps_all_and_still_resets():
    assert run([(0.0, None), (0.01, None), (0.02, None), (9.0, None)], fps=None) == [
        (True, START), (True, None), (True, None), (True, GAP)]


def test_clear_reports_its_cause_on_the_next_frame_only():
    sampler = FrameSampler(10.0, 1.0)
    for ts in (0.0, 0.1):
        sampler.commit(sampler.decide(ts, None), ts, None)
    sampler.clear(Reset(CALLER, "reset by caller"))
    first = sampler.decide(0.2, None)
    assert first.keep and first.reset == Reset(CALLER, "reset by caller")
    sampler.commit(first, 0.2, None)
    assert sampler.decide(0.3, None).reset is None


def test_reset_messages_carry_the_numbers():
    sampler = FrameSampler(10.0, 1.0)
    sampler.commit(sampler.decide(0.0, "cam"), 0.0, "cam")
    assert sampler.decide(2.5, "cam").reset.message == "gap of 2.500 s > max_gap_s 1"
    sampler2 = FrameSampler(10.0, 1.0)
    sampler2.commit(sampler2.decide(1.0, None), 1.0, None)
    assert "backwards by 500.0 ms" in sampler2.decide(0.5, None).reset.message
    assert sampler.decide(0.1, "other").reset.message == "source changed from cam to other"
    sampler.commit(sampler.decide(1e300, "cam"), 1e300, "cam")  # a huge gap prints no 300 digits
    assert sampler.decide(2e300, "cam").reset.message == "gap of 1e+300 s > max_gap_s 1"


@pytest.mark.parametrize("earlier_by, reversal", [
    (0.0001, False),  # 0.1 ms: clock jitter (the audit's 0.1 -> 0.0999 wiped the state)
    (0.005, False),   # JITTER_S itself
    (0.0051, True),
    (0.5, True),
])
def test_a_timestamp_a_little_early_is_jitter_not_a_reversal(earlier_by, reversal):
    sampler = FrameSampler(10.0, 1.0)
    for ts in (0.0, 0.1):
        sampler.commit(sampler.decide(ts, None), ts, None)
    decision = sampler.decide(0.1 - earlier_by, None)
    if reversal:
        assert decision.reset.reason is ResetReason.TIME_REVERSAL
        return
    assert decision.reset is None and not decision.keep  # the slot of t=0.1 is taken already
    sampler.commit(decision, 0.1 - earlier_by, None)
    after = sampler.decide(0.2, None)
    assert after.keep and after.reset is None and after.slot == 2  # the grid goes on


@pytest.mark.parametrize("fps, gap", [(0.0, 1.0), (-5.0, 1.0), (float("nan"), 1.0), (10.0, 0.0), (10.0, float("inf"))])
def test_bad_parameters_are_refused(fps, gap):
    with pytest.raises(SamplingError):
        FrameSampler(fps, gap)
