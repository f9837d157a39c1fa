"""Per-frame decisions of a stream: keep this frame for the model? reset the state first, and why?

An online TSM's shift means "what the previous step saw", so frames are *sampled by
timestamp* to the card's rate: a step twice as long as in training changes what the model
sees. Sampling by timestamp (not "every n-th frame") stays right when the camera's rate
differs from its nominal value, when frames are dropped and when timestamps jitter.

The state is reset, with a typed :class:`Reset`, at stream start, when the source changes,
when time goes backwards (two streams interleaved into one session), after a gap longer than
the card allows, on the caller's request and after a camera reconnect: each time the cached
past no longer describes the present. Standard library only.
"""

from __future__ import annotations

import collections
import enum
import math
import statistics
from dataclasses import dataclass

from .arguments import is_real_number


class SamplingError(ValueError):
    """A sampling parameter is out of range."""


class ResetReason(enum.Enum):
    """Why a stream's state was reset (the ``reason`` of a :class:`Reset`)."""

    STREAM_START = "stream_start"
    GAP = "gap"
    SOURCE_CHANGE = "source_change"
    TIME_REVERSAL = "time_reversal"
    CALLER = "caller"
    RECONNECT = "reconnect"

    @property
    def is_warning(self) -> bool:
        """Resets that usually mean the application feeds one Recognizer from two streams."""
        return self in (ResetReason.SOURCE_CHANGE, ResetReason.TIME_REVERSAL)


@dataclass(frozen=True)
class Reset:
    """A state reset: the typed ``reason`` and a message for people (with the numbers)."""

    reason: ResetReason
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason.value, "message": self.message}


STREAM_START = Reset(ResetReason.STREAM_START, "stream start")


class RateMeter:
    """Frames per second over the last ``span`` timestamps (robust to a single late frame)."""

    def __init__(self, span: int = 30) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=max(2, span))

    def add(self, timestamp: float) -> None:
        self._times.append(timestamp)

    def clear(self) -> None:
        self._times.clear()

    def median_interval(self, next_timestamp: float) -> float:
        """Median time between consecutive timestamps, ``next_timestamp`` included (robust to
        one late or dropped frame). Needs at least one earlier timestamp."""
        # runs for every captured frame: plain Python on <= 30 numbers is ~10x cheaper than numpy here
        times = [*self._times, next_timestamp]
        return statistics.median(b - a for a, b in zip(times, times[1:]))

    @property
    def count(self) -> int:
        """Timestamps held (at most ``span``)."""
        return len(self._times)

    @property
    def span_s(self) -> float:
        """Seconds between the oldest and the newest timestamp held (0 before two)."""
        return self._times[-1] - self._times[0] if len(self._times) > 1 else 0.0

    @property
    def fps(self) -> float | None:
        times = tuple(self._times)  # a snapshot: another thread may be adding (capture-side meters)
        if len(times) < 2:
            return None
        elapsed = times[-1] - times[0]
        return (len(times) - 1) / elapsed if elapsed > 0 else None


@dataclass(frozen=True)
class SampleDecision:
    """What the sampler decided for one frame (not yet committed)."""

    keep: bool
    slot: int
    reset: Reset | None


#: A timestamp at most this much earlier than the last one is clock jitter, not a time reversal: it is
#: taken as the last frame's time. Smaller than any frame interval (5 ms = 200 fps).
JITTER_S = 0.005


def _duration(seconds: float) -> str:
    """``0.0001`` -> '0.1 ms', ``2.5`` -> '2.500 s', ``1e300`` -> '1e+300 s' (never 300 digits)."""
    if seconds < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s" if seconds < 1e6 else f"{seconds:.3g} s"


class FrameSampler:
    """Keeps frames on a time grid of period ``P = 1/fps`` anchored at the first frame (or a reset).

    A frame is kept when its nearest grid point ``t0 + k*P`` has no frame yet and the frame is
    at most ``tol`` early for it, ``tol`` being half the source's median frame interval (at
    most ``P/2``): a frame earlier than that is skipped because the next one will be nearer to
    the grid point. For a 30 fps camera into a 10 fps model this keeps frames 0, 3, 6, ...
    with exact 100 ms spacing, and each frame may arrive up to ~16 ms early or late without
    changing which frames are kept; after dropped frames the grid continues where it was.
    Anchoring on a fixed grid (rather than "P after the last kept frame") means timing errors
    never accumulate. A source slower than ``fps`` has every frame kept. ``fps=None`` keeps
    every frame. A frame stamped up to ``JITTER_S`` (5 ms) before the previous one is jitter of
    the camera's clock, taken as the previous frame's time; earlier than that is a time reversal.

    ``decide`` does not change the sampler; ``commit`` does, so that a frame whose
    preprocessing or inference fails leaves the sampler as if the frame had never arrived.
    """

    def __init__(self, fps: float | None, max_gap_s: float) -> None:
        if fps is not None and not (is_real_number(fps) and fps > 0):
            raise SamplingError(f"sampling fps must be a positive number (or None to keep every frame), got {fps!r}")
        if not (is_real_number(max_gap_s) and max_gap_s > 0):
            raise SamplingError(f"max_gap_s must be a positive number of seconds, got {max_gap_s!r}")
        self.fps = fps
        self.max_gap_s = float(max_gap_s)
        self.input_rate = RateMeter()
        self.kept_rate = RateMeter()
        self.clear()

    def clear(self, cause: Reset = STREAM_START) -> None:
        """Forget the stream; the next frame starts a new one and reports ``cause`` as its reset."""
        self._cause = cause
        self._origin: float | None = None
        self._last_slot = -1
        self._last_time: float | None = None
        self._source: str | None = None
        self.input_rate.clear()
        self.kept_rate.clear()

    def _jitter_free(self, timestamp: float) -> float:
        """A timestamp up to ``JITTER_S`` before the last one counts as the last one's time."""
        last = self._last_time
        return last if last is not None and last - JITTER_S <= timestamp < last else timestamp

    def decide(self, timestamp: float, source: str | None) -> SampleDecision:
        timestamp = self._jitter_free(timestamp)
        reset = self._reset_for(timestamp, source)
        if reset is not None:
            return SampleDecision(True, 0, reset)
        if self.fps is None:
            return SampleDecision(True, self._last_slot + 1, None)
        assert self._origin is not None
        period = 1.0 / self.fps
        tol = min(0.5 * self.input_rate.median_interval(timestamp), 0.5 * period)
        elapsed = timestamp - self._origin
        slot = math.floor(elapsed * self.fps + 0.5)  # nearest grid point
        on_time = elapsed >= slot * period - tol  # else the next frame will be nearer to it
        return SampleDecision(slot > self._last_slot and on_time, slot, None)

    def _reset_for(self, timestamp: float, source: str | None) -> Reset | None:
        last = self._last_time
        if last is None:
            return self._cause
        if source is not None and self._source is not None and source != self._source:
            return Reset(ResetReason.SOURCE_CHANGE, f"source changed from {self._source} to {source}")
        if timestamp < last - JITTER_S:
            return Reset(ResetReason.TIME_REVERSAL, f"time went backwards by {_duration(last - timestamp)} "
                                                    "(frames from two streams?)")
        if timestamp - last > self.max_gap_s:
            return Reset(ResetReason.GAP, f"gap of {_duration(timestamp - last)} > max_gap_s {self.max_gap_s:g}")
        return None

    def commit(self, decision: SampleDecision, timestamp: float, source: str | None) -> None:
        timestamp = self._jitter_free(timestamp) if decision.reset is None else timestamp
        if decision.reset is not None:
            self.clear()
            self._origin = timestamp
        self._last_time = timestamp
        if source is not None:
            self._source = source
        self.input_rate.add(timestamp)
        if decision.keep:
            self._last_slot = decision.slot
            self.kept_rate.add(timestamp)
