"""Sessions: frames in, model outputs out, for one stream at a time.

numpy + OpenCV only (on the Jetson path): a session talks to a :class:`~streamtsm.backends.base.Backend`
and never to torch.

Two kinds, chosen by the card's ``temporal.mode``:

* :class:`StreamingSession` (online TSM): one backend ``step`` per sampled frame. The shift
  state is owned here, starts at zero, and is replaced only after a step succeeded, so a
  failing frame cannot leave half-updated state behind.
* :class:`WindowSession` (3D CNNs, TSN/TSM run on clips): a preallocated ring buffer of
  preprocessed frames; once it holds ``window`` frames, the clip model runs every ``stride``
  sampled frames and the output names the frame index range it covered.

Both share the same front (:class:`FrameSampler`): frames are *sampled by timestamp* to the
card's frame rate, because an online TSM's shift means "what the previous step saw", and a
step twice as long as in training changes what the model sees. Sampling by timestamp (not
"every n-th frame") stays right when the camera's rate differs from its nominal value, when
frames are dropped, and when timestamps jitter. Both reset on a time gap longer than
``card.temporal.max_gap_s``, on a change of source, and when time goes backwards (frames from
two streams interleaved into one session): the cached past no longer describes the present.

Every output carries :class:`StageTimings` for the frame it was computed on.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from .backends.base import Backend
from .card import ModelCard
from .preprocess import FramePreprocessor, as_bgr_uint8

logger = logging.getLogger(__name__)


class SessionError(RuntimeError):
    """A session was used with a model or arguments it cannot serve."""


@dataclass(frozen=True)
class StageTimings:
    """Wall time of each stage for one output, in milliseconds.

    ``capture_wait_ms``: time the consumer waited for this frame (0 for frames pushed directly).
    ``preprocess_ms``: validation + resize/crop/normalise (+ ring-buffer copy for windows).
    ``inference_ms``: the backend call. ``postprocess_ms``: softmax, smoothing, events, top-k
    (0 at the session level; the Recognizer fills it in). ``end_to_end_ms``: from the frame's
    capture time (``captured_at``, a ``time.monotonic()`` value) to the output being ready.
    """

    capture_wait_ms: float = 0.0
    preprocess_ms: float = 0.0
    inference_ms: float = 0.0
    postprocess_ms: float = 0.0
    end_to_end_ms: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {
            "capture_wait_ms": round(self.capture_wait_ms, 3),
            "preprocess_ms": round(self.preprocess_ms, 3),
            "inference_ms": round(self.inference_ms, 3),
            "postprocess_ms": round(self.postprocess_ms, 3),
            "end_to_end_ms": round(self.end_to_end_ms, 3),
        }


@dataclass(frozen=True, eq=False)  # holds an array: compare fields explicitly
class SessionOutput:
    """One model output: raw logits ``(num_classes,)`` for the frame ``frame_index``.

    ``frame_range`` is ``(first, last)`` source frame index of the clip for window models,
    None for online models (the output is for ``frame_index``, with all the past in the state).
    ``reset_reason`` is set when the state was reset just before this frame.
    """

    logits: np.ndarray
    frame_index: int
    timestamp: float
    frame_range: tuple[int, int] | None
    timings: StageTimings
    reset_reason: str | None = None


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
        times = np.fromiter(self._times, dtype=np.float64, count=len(self._times))
        return float(np.median(np.diff(times, append=next_timestamp)))

    @property
    def fps(self) -> float | None:
        if len(self._times) < 2:
            return None
        elapsed = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / elapsed if elapsed > 0 else None


@dataclass(frozen=True)
class SampleDecision:
    """What the sampler decided for one frame (not yet committed)."""

    keep: bool
    slot: int
    reset_reason: str | None


class FrameSampler:
    """Keeps frames on a time grid of period ``P = 1/fps`` anchored at the first frame (or a reset).

    A frame is kept when its nearest grid point ``t0 + k*P`` has no frame yet and the frame is
    at most ``tol`` early for it, ``tol`` being half the source's median frame interval (at
    most ``P/2``): a frame earlier than that is skipped because the next one will be nearer to
    the grid point. For a 30 fps camera into a 10 fps model this keeps frames 0, 3, 6, ...
    with exact 100 ms spacing, and each frame may arrive up to ~16 ms early or late without
    changing which frames are kept; after dropped frames the grid continues where it was. Anchoring on a fixed grid (rather than "P after the last kept
    frame") means timing errors never accumulate. A source slower than ``fps`` has every frame
    kept (and :attr:`effective_fps` shows it).

    ``decide`` does not change the sampler; ``commit`` does, so that a frame whose
    preprocessing or inference fails leaves the sampler as if the frame had never arrived.
    """

    def __init__(self, fps: float | None, max_gap_s: float) -> None:
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise SessionError(f"sampling fps must be a positive number (or None to keep every frame), got {fps!r}")
        if not (math.isfinite(max_gap_s) and max_gap_s > 0):
            raise SessionError(f"max_gap_s must be a positive number of seconds, got {max_gap_s!r}")
        self.fps = fps
        self.max_gap_s = float(max_gap_s)
        self.input_rate = RateMeter()
        self.kept_rate = RateMeter()
        self.clear()

    def clear(self) -> None:
        self._origin: float | None = None
        self._last_slot = -1
        self._last_time: float | None = None
        self._source: str | None = None
        self.input_rate.clear()
        self.kept_rate.clear()

    def decide(self, timestamp: float, source: str | None) -> SampleDecision:
        reason = None
        if self._last_time is None:
            reason = "stream start"
        elif source is not None and self._source is not None and source != self._source:
            reason = f"source changed from {self._source} to {source}"
        elif timestamp < self._last_time:
            reason = f"time went backwards by {self._last_time - timestamp:.3f} s (frames from two streams?)"
        elif timestamp - self._last_time > self.max_gap_s:
            reason = f"gap of {timestamp - self._last_time:.3f} s > max_gap_s {self.max_gap_s:g}"
        if reason is not None:
            return SampleDecision(True, 0, reason)
        if self.fps is None:
            return SampleDecision(True, self._last_slot + 1, None)
        assert self._origin is not None
        period = 1.0 / self.fps
        tol = min(0.5 * self.input_rate.median_interval(timestamp), 0.5 * period)
        elapsed = timestamp - self._origin
        slot = math.floor(elapsed * self.fps + 0.5)  # nearest grid point
        on_time = elapsed >= slot * period - tol  # else the next frame will be nearer to it
        return SampleDecision(slot > self._last_slot and on_time, slot, None)

    def commit(self, decision: SampleDecision, timestamp: float, source: str | None) -> None:
        if decision.reset_reason is not None:
            self.clear()
            self._origin = timestamp
        self._last_time = timestamp
        if source is not None:
            self._source = source
        self.input_rate.add(timestamp)
        if decision.keep:
            self._last_slot = decision.slot
            self.kept_rate.add(timestamp)


def _ms(seconds: float) -> float:
    return seconds * 1000.0


class _SessionBase:
    """Validation, sampling, reset bookkeeping and timing shared by both sessions."""

    def __init__(self, backend: Backend, *, fps: float | None, max_gap_s: float | None, sample: bool) -> None:
        if not isinstance(backend, Backend):
            raise SessionError(f"a session needs a streamtsm Backend (see open_backend), got {type(backend).__name__}")
        self.backend = backend
        card = backend.card
        rate = card.temporal.fps if fps is None else fps
        self.sampler = FrameSampler(rate if sample else None, card.temporal.max_gap_s if max_gap_s is None else max_gap_s)
        self.preprocessor = FramePreprocessor(card.preprocessing, validate=False)
        self.reset_count = 0
        self.last_reset_reason: str | None = None
        self.frames_seen = 0
        self.frames_kept = 0
        self._reset_pending: str | None = "stream start"

    @property
    def card(self) -> ModelCard:
        return self.backend.card

    @property
    def target_fps(self) -> float | None:
        """The rate frames are sampled to (the card's, unless overridden; None: every frame)."""
        return self.sampler.fps

    @property
    def effective_fps(self) -> float | None:
        """Rate of the frames actually given to the model, over the last ~30 of them."""
        return self.sampler.kept_rate.fps

    @property
    def input_fps(self) -> float | None:
        """Rate of the frames pushed into the session, over the last ~30 of them."""
        return self.sampler.input_rate.fps

    def reset(self, reason: str = "reset by caller") -> None:
        """Forget the stream's past: state, sampling grid, buffered frames."""
        self.sampler.clear()
        self._clear_model_state()
        self._note_reset(reason)
        self._reset_pending = reason

    def _note_reset(self, reason: str) -> None:
        self.reset_count += 1
        self.last_reset_reason = reason
        logger.debug("session reset: %s", reason)

    def _clear_model_state(self) -> None:
        raise NotImplementedError

    def _admit(
        self, image: object, timestamp: float | None, source: str | None
    ) -> tuple[np.ndarray, float, SampleDecision | None, float]:
        """Validate and sample. Returns (image, timestamp, decision or None if skipped, t_start)."""
        t_start = time.monotonic()
        frame = as_bgr_uint8(image)  # FrameError before anything changes
        ts = t_start if timestamp is None else float(timestamp)
        if not math.isfinite(ts):
            raise SessionError(f"timestamp must be a finite number of seconds, got {timestamp!r}")
        decision = self.sampler.decide(ts, source)
        self.frames_seen += 1
        if not decision.keep:
            self.sampler.commit(decision, ts, source)
            return frame, ts, None, t_start
        return frame, ts, decision, t_start

    def _commit(self, decision: SampleDecision, timestamp: float, source: str | None) -> str | None:
        """After a successful step: advance the sampler; report a reset (not for the first frame)."""
        self.sampler.commit(decision, timestamp, source)
        self.frames_kept += 1
        if self._reset_pending is not None:  # stream start or reset(): already counted
            reason, self._reset_pending = self._reset_pending, None
            return reason
        if decision.reset_reason is not None:
            self._note_reset(decision.reset_reason)
        return decision.reset_reason


class StreamingSession(_SessionBase):
    """Online TSM for one stream: one ``backend.step`` per sampled frame, state carried here.

    ``fps`` overrides the card's sampling rate; ``sample=False`` gives every pushed frame to the
    model (when the caller already delivers frames at the model's rate). ``max_gap_s`` overrides
    the card's reset gap. Not thread-safe by itself: the :class:`~streamtsm.Recognizer` serialises
    access; use one session per stream.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        fps: float | None = None,
        max_gap_s: float | None = None,
        sample: bool = True,
    ) -> None:
        if not backend.card.is_online:
            raise SessionError(
                f"{backend.card.arch} is a window (clip) model (card temporal.mode={backend.card.temporal.mode!r}); "
                "use WindowSession, or streamtsm.Recognizer which picks the right session"
            )
        super().__init__(backend, fps=fps, max_gap_s=max_gap_s, sample=sample)
        crop = self.card.preprocessing.crop_size
        self._input = np.zeros((1, 3, crop, crop), dtype=np.float32)  # reused every step
        self._state = backend.init_state(1)

    def _clear_model_state(self) -> None:
        self._state = self.backend.init_state(1)

    @property
    def state(self) -> object:
        """The backend's opaque state after the last step (read with ``backend.state_arrays``)."""
        return self._state

    def push(
        self,
        image: object,
        timestamp: float | None = None,
        *,
        frame_index: int = -1,
        source: str | None = None,
        captured_at: float | None = None,
        capture_wait_ms: float = 0.0,
    ) -> SessionOutput | None:
        """One frame (H x W x 3 uint8 BGR, or anything :func:`as_bgr_uint8` converts) -> output or None.

        ``timestamp`` (seconds, any clock, increasing) drives sampling and gap detection; None
        means "now" (``time.monotonic()``). ``captured_at`` (``time.monotonic()`` seconds) is
        where end-to-end latency is measured from; None means the moment of this call.
        Returns None when the frame was skipped by sampling. Raises FrameError for an unusable
        frame, leaving the state and sampler untouched.
        """
        frame, ts, decision, t_start = self._admit(image, timestamp, source)
        if decision is None:
            return None
        state = self.backend.init_state(1) if decision.reset_reason is not None else self._state
        self.preprocessor(frame, out=self._input[0])  # no per-frame allocation
        t_pre = time.monotonic()
        logits, new_state = self.backend.step(self._input, state)
        t_inf = time.monotonic()
        self._state = new_state
        reason = self._commit(decision, ts, source)
        origin = t_start if captured_at is None else captured_at
        timings = StageTimings(
            capture_wait_ms=capture_wait_ms,
            preprocess_ms=_ms(t_pre - t_start),
            inference_ms=_ms(t_inf - t_pre),
            end_to_end_ms=_ms(time.monotonic() - origin),
        )
        return SessionOutput(np.asarray(logits, dtype=np.float32).reshape(-1), frame_index, ts, None, timings, reason)


class WindowSession(_SessionBase):
    """A clip model over a sliding window of the last ``window`` sampled frames.

    Preprocessed frames go into a preallocated ring buffer ``(window, 3, crop, crop)``; the clip
    tensor handed to the backend is also preallocated and refilled in time order (one copy per
    prediction, no allocation). The model runs when the window is full and then every
    ``stride`` sampled frames. ``window`` defaults to the card's ``clip_len``; ``stride`` to a
    quarter of the window (a new prediction every quarter clip).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        window: int | None = None,
        stride: int | None = None,
        fps: float | None = None,
        max_gap_s: float | None = None,
        sample: bool = True,
    ) -> None:
        super().__init__(backend, fps=fps, max_gap_s=max_gap_s, sample=sample)
        temporal = self.card.temporal
        self.window = int(temporal.clip_len if window is None else window)
        if self.window < 1:
            raise SessionError(f"window must be at least 1 frame, got {window!r}")
        self.stride = int(max(1, self.window // 4) if stride is None else stride)
        if self.stride < 1:
            raise SessionError(f"stride must be at least 1 frame, got {stride!r}")
        crop = self.card.preprocessing.crop_size
        self.layout = temporal.clip_layout
        self._ring = np.zeros((self.window, 3, crop, crop), dtype=np.float32)
        self._ring_index = np.zeros(self.window, dtype=np.int64)
        shape = (1, 3, self.window, crop, crop) if self.layout == "NCTHW" else (1, self.window, 3, crop, crop)
        self._clip = np.zeros(shape, dtype=np.float32)
        self._count = 0  # frames written since the last reset
        self._since_run = 0

    def _clear_model_state(self) -> None:
        self._count = 0
        self._since_run = 0

    @property
    def frames_buffered(self) -> int:
        return min(self._count, self.window)

    def _fill_clip(self) -> tuple[int, int]:
        """Copy the ring into the clip buffer, oldest first; return (first, last) frame index."""
        w = self.window
        start = self._count % w  # oldest slot once the ring is full
        order_tail, order_head = self._ring[start:], self._ring[:start]
        if self.layout == "NCTHW":
            dst = self._clip[0]  # (3, T, H, W)
            dst[:, : w - start] = order_tail.transpose(1, 0, 2, 3)
            dst[:, w - start :] = order_head.transpose(1, 0, 2, 3)
        else:
            dst = self._clip[0]  # (T, 3, H, W)
            dst[: w - start] = order_tail
            dst[w - start :] = order_head
        return int(self._ring_index[start]), int(self._ring_index[(start - 1) % w])

    def push(
        self,
        image: object,
        timestamp: float | None = None,
        *,
        frame_index: int = -1,
        source: str | None = None,
        captured_at: float | None = None,
        capture_wait_ms: float = 0.0,
    ) -> SessionOutput | None:
        """Like :meth:`StreamingSession.push`; returns an output only when the clip model ran.

        None when the frame was skipped by sampling, the window is not yet full, or it is not
        a stride boundary.
        """
        frame, ts, decision, t_start = self._admit(image, timestamp, source)
        if decision is None:
            return None
        processed = self.preprocessor(frame)  # may raise: nothing is changed yet
        if decision.reset_reason is not None:
            self._clear_model_state()
        slot = self._count % self.window
        self._ring[slot] = processed
        self._ring_index[slot] = frame_index
        self._count += 1
        self._since_run += 1
        reason = self._commit(decision, ts, source)
        t_pre = time.monotonic()
        if self._count < self.window or (self._count > self.window and self._since_run < self.stride):
            return None
        self._since_run = 0
        frame_range = self._fill_clip()
        t_fill = time.monotonic()
        logits = self.backend.run_clip(self._clip)
        t_inf = time.monotonic()
        origin = t_start if captured_at is None else captured_at
        timings = StageTimings(
            capture_wait_ms=capture_wait_ms,
            preprocess_ms=_ms(t_pre - t_start) + _ms(t_fill - t_pre),
            inference_ms=_ms(t_inf - t_fill),
            end_to_end_ms=_ms(time.monotonic() - origin),
        )
        return SessionOutput(np.asarray(logits, dtype=np.float32).reshape(-1), frame_index, ts, frame_range, timings, reason)


def open_session(
    backend: Backend,
    *,
    window: int | None = None,
    stride: int | None = None,
    fps: float | None = None,
    max_gap_s: float | None = None,
    sample: bool = True,
) -> StreamingSession | WindowSession:
    """The session the card asks for: online -> StreamingSession; window -> WindowSession.

    Passing ``window`` for an online model runs it as a window model is not possible (its
    graph takes one frame), so that combination is refused.
    """
    if backend.card.is_online:
        if window is not None or stride is not None:
            raise SessionError(
                f"{backend.card.arch} is an online model (one frame per step, state carried); window/stride apply "
                "to clip models only. Drop window=/stride=, or use a window-mode card"
            )
        return StreamingSession(backend, fps=fps, max_gap_s=max_gap_s, sample=sample)
    return WindowSession(backend, window=window, stride=stride, fps=fps, max_gap_s=max_gap_s, sample=sample)
