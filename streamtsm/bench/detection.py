"""Score a recognizer's start events against a scripted ground-truth timeline (torch-free).

Used by the scripted-gesture test and ``benchmarks/delay.py``. The question asked of a live
recognizer is not "is this clip classified right" but "did it say *swipe left* soon after the
hand swiped left, and did it say things that did not happen". So, per ground-truth gesture:

* it is **detected** by the first unused ``start`` event with its label whose timestamp lies in
  ``[gesture start, gesture end + window_after_end_s]``;
* its **delay** is that event's timestamp minus the gesture's end (negative: reported before the
  gesture finished) -- plus, when known, the compute time of the step that emitted the event,
  because on a live stream the label exists only once that step has run;
* every start event that detects no gesture is a **false start**.

Timestamps are on the stream's clock (the synthetic source's own, when it runs faster than
real time), so the figures do not depend on how loaded the machine was -- except for the
added compute time, which is measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["GestureMatch", "DetectionScore", "score_events"]


@dataclass(frozen=True)
class GestureMatch:
    """One ground-truth gesture and what the recognizer made of it."""

    label: str
    start_s: float
    end_s: float
    delay_s: float | None  # None: not detected within the window

    @property
    def detected(self) -> bool:
        return self.delay_s is not None


@dataclass(frozen=True)
class DetectionScore:
    """All gestures of a script (or of several, concatenated) with their delays."""

    matches: tuple[GestureMatch, ...]
    false_starts: int
    window_after_end_s: float

    @property
    def detected_fraction(self) -> float:
        return sum(m.detected for m in self.matches) / len(self.matches) if self.matches else float("nan")

    @property
    def delays(self) -> np.ndarray:
        return np.array([m.delay_s for m in self.matches if m.delay_s is not None], np.float64)

    def delay_percentile(self, q: float) -> float:
        d = self.delays
        return float(np.percentile(d, q)) if d.size else float("nan")

    def per_label(self) -> dict[str, tuple[int, int]]:
        """label -> (detected, total)."""
        out: dict[str, tuple[int, int]] = {}
        for m in self.matches:
            hit, total = out.get(m.label, (0, 0))
            out[m.label] = (hit + m.detected, total + 1)
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "gestures": len(self.matches),
            "detected": int(sum(m.detected for m in self.matches)),
            "detected_fraction": self.detected_fraction,
            "false_starts": self.false_starts,
            "delay_median_s": self.delay_percentile(50),
            "delay_p90_s": self.delay_percentile(90),
            "delay_max_s": float(self.delays.max()) if self.delays.size else float("nan"),
            "window_after_end_s": self.window_after_end_s,
            "per_label": {k: {"detected": v[0], "total": v[1]} for k, v in sorted(self.per_label().items())},
        }

    def __add__(self, other: "DetectionScore") -> "DetectionScore":
        if other.window_after_end_s != self.window_after_end_s:
            raise ValueError("cannot add scores made with different windows")
        return DetectionScore(self.matches + other.matches, self.false_starts + other.false_starts, self.window_after_end_s)


def score_events(timeline: Sequence[Any], events: Sequence[Any], *, window_after_end_s: float = 0.5,
                 compute_s: Mapping[int, float] | None = None) -> DetectionScore:
    """Match ``start`` events (``kind, label, timestamp, frame_index``) to gestures (``label, start_s, end_s``).

    ``compute_s`` maps a frame index to the compute time (s) of the step that ran on that frame;
    it is added to the delay of events emitted at that step.
    """
    if window_after_end_s < 0:
        raise ValueError(f"window_after_end_s must be >= 0, got {window_after_end_s}")
    starts = [e for e in events if e.kind == "start"]
    used: set[int] = set()
    matches = []
    for g in timeline:
        hit = next((i for i, e in enumerate(starts) if i not in used and e.label == g.label
                    and g.start_s <= e.timestamp <= g.end_s + window_after_end_s), None)
        delay = None
        if hit is not None:
            used.add(hit)
            extra = compute_s.get(starts[hit].frame_index, 0.0) if compute_s else 0.0
            delay = starts[hit].timestamp - g.end_s + extra
        matches.append(GestureMatch(g.label, g.start_s, g.end_s, delay))
    return DetectionScore(tuple(matches), len(starts) - len(used), window_after_end_s)
