"""Sessions: frames of one stream in, model outputs out. numpy + OpenCV only.

Two kinds, chosen by the card's ``temporal.mode``:

* :class:`StreamingSession` (online TSM): one engine ``step`` per sampled frame. The shift
  state is owned here, starts at zero, and is replaced only after a step succeeded.
* :class:`WindowSession` (3D CNNs, TSN/TSM run on clips): a preallocated ring buffer of
  preprocessed frames; once it holds ``window`` frames the clip model runs every ``stride``
  sampled frames and the output names the frame index range it covered.

Both take frames through a :class:`~streamtsm.sampling.FrameSampler` (sampling by timestamp,
typed resets). A frame that fails validation, preprocessing or inference leaves the session
exactly as if it had never arrived. Every output carries :class:`StageTimings` and, when the
state was reset since the previous output, the :class:`~streamtsm.sampling.Reset`.
"""

from __future__ import annotations

import numbers
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .arguments import check_whole, is_real_number, is_whole_number
from .backends.base import ClipEngine, Engine, OnlineEngine, StateLost
from .card import ModelCard
from .preprocess import FramePreprocessor, as_bgr_uint8
from .sampling import FrameSampler, Reset, ResetReason, SampleDecision


class SessionError(RuntimeError):
    """A session was used with a model or arguments it cannot serve."""


@dataclass(frozen=True)
class StageTimings:
    """Wall time of each stage for one output, in milliseconds.

    ``capture_wait_ms``: time the consumer waited for this frame (0 for frames pushed directly).
    ``preprocess_ms``: validation + resize/crop/normalise (+ clip assembly for windows).
    ``inference_ms``: the engine call. ``postprocess_ms``: softmax, smoothing, events, top-k
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
    None for online models. ``reset`` is set when the state was reset since the previous output
    (the first output of a stream carries ``STREAM_START``).
    """

    logits: np.ndarray
    frame_index: int
    timestamp: float
    frame_range: tuple[int, int] | None
    timings: StageTimings
    reset: Reset | None = None


def _ms(seconds: float) -> float:
    return seconds * 1000.0


#: The longest window a session buffers (frames): a clip model's clip_len is 8-64; more is a typo.
MAX_WINDOW = 512


def check_seconds(name: str, value: object) -> float | None:
    """``value`` as float seconds (None stays None); anything but a finite real number is refused here,
    before the frame touches the model, with the argument's name."""
    if value is None:
        return None
    if is_real_number(value):
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):  # NaN or an infinity
        raise SessionError(f"{name} must be a finite number of seconds, got {value!r}")
    raise SessionError(f"{name} must be a finite number of seconds or None, got {value!r} ({type(value).__name__})")


def check_frame_index(value: object) -> int:
    """A frame index must be a whole number (2.7 used to become 2, "x" a bare ValueError)."""
    if not is_whole_number(value):
        raise SessionError(f"frame_index must be a whole number, got {value!r} ({type(value).__name__})")
    return int(value)  # type: ignore[call-overload]


class _SessionBase:
    """Validation, sampling, reset reporting and statistics shared by both sessions."""

    def __init__(self, engine: Engine, *, fps: float | None, max_gap_s: float | None, sample: bool) -> None:
        card = engine.card
        rate = card.temporal.fps if fps is None else fps
        self.engine = engine
        self.sampler = FrameSampler(rate if sample else None, card.temporal.max_gap_s if max_gap_s is None else max_gap_s)
        self.preprocessor = FramePreprocessor(card.preprocessing, validate=False)
        self.frames_seen = 0
        self.frames_kept = 0
        self._unreported: Reset | None = None  # a reset not yet carried by an output

    @property
    def card(self) -> ModelCard:
        return self.engine.card

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

    def reset(self, cause: Reset | None = None) -> None:
        """Forget the stream's past (state, sampling grid, buffered frames) from the next frame on.

        The next output carries ``cause`` (default: a caller reset) as its ``reset``.
        """
        self.sampler.clear(cause or Reset(ResetReason.CALLER, "reset by caller"))

    def _admit(self, image: object, timestamp: float | None, source: str | None, *, frame_index: int = -1,
               captured_at: float | None = None, capture_wait_ms: float = 0.0) -> tuple[np.ndarray, float, SampleDecision, float]:
        """Validate and sample: (image, timestamp, decision, t_start). Skipped frames are committed here.

        The frame and every number that comes with it are checked before anything changes."""
        t_start = time.monotonic()
        frame = as_bgr_uint8(image)  # FrameError before anything changes
        stamped = check_seconds("timestamp", timestamp)
        ts = t_start if stamped is None else stamped
        check_seconds("captured_at", captured_at)
        if not is_real_number(capture_wait_ms) or capture_wait_ms < 0:  # type: ignore[operator]
            raise SessionError(f"capture_wait_ms must be a number of milliseconds >= 0, got {capture_wait_ms!r}")
        check_frame_index(frame_index)
        decision = self.sampler.decide(ts, source)
        self.frames_seen += 1
        if not decision.keep:
            self.sampler.commit(decision, ts, source)
        return frame, ts, decision, t_start

    def _commit(self, decision: SampleDecision, timestamp: float, source: str | None) -> None:
        """After the kept frame succeeded: advance the sampler; remember a reset until an output carries it."""
        self.sampler.commit(decision, timestamp, source)
        self.frames_kept += 1
        if decision.reset is not None:
            self._unreported = decision.reset

    def _preprocess(self, frame: np.ndarray, prepared: np.ndarray | None, out: np.ndarray) -> None:
        if prepared is None:
            self.preprocessor(frame, out=out)
        else:
            self.preprocessor.load(prepared, out)

    def _take_reset(self) -> Reset | None:
        reset, self._unreported = self._unreported, None
        return reset


class StreamingSession(_SessionBase):
    """Online TSM for one stream: one ``engine.step`` per sampled frame, state carried here.

    ``fps`` overrides the card's sampling rate; ``sample=False`` gives every pushed frame to the
    model (when the caller already delivers frames at the model's rate). ``max_gap_s`` overrides
    the card's reset gap. Not thread-safe by itself (the Recognizer serialises access).
    """

    def __init__(self, engine: OnlineEngine, *, fps: float | None = None, max_gap_s: float | None = None,
                 sample: bool = True) -> None:
        if not isinstance(engine, OnlineEngine):
            raise SessionError(
                f"{engine.card.arch} is a window (clip) model (card temporal.mode={engine.card.temporal.mode!r}); "
                "use WindowSession, or streamtsm.Recognizer which picks the right session"
            )
        super().__init__(engine, fps=fps, max_gap_s=max_gap_s, sample=sample)
        crop = self.card.preprocessing.crop_size
        self._input = np.zeros((1, 3, crop, crop), dtype=np.float32)  # reused every step
        self._state = engine.init_state(1)

    @property
    def state(self) -> object:
        """The engine's opaque state after the last step (read with ``engine.state_arrays``)."""
        return self._state

    def push(self, image: object, timestamp: float | None = None, *, frame_index: int = -1, source: str | None = None,
             captured_at: float | None = None, capture_wait_ms: float = 0.0,
             prepared: np.ndarray | None = None) -> SessionOutput | None:
        """One frame (H x W x 3 uint8 BGR, or anything :func:`as_bgr_uint8` converts) -> output or None.

        ``timestamp`` (seconds, any clock, increasing) drives sampling and gap detection; None
        means "now" (``time.monotonic()``). ``captured_at`` (``time.monotonic()`` seconds) is
        where end-to-end latency is measured from; None means the moment of this call.
        ``prepared``: the frame already preprocessed by a ``FramePreprocessor`` of this card
        (the capture thread does that ahead of the model; a ``geometry`` patch is normalised
        here), so only a copy into the model's input runs here. Returns None when the frame
        was skipped by sampling. Raises FrameError for an unusable frame, leaving the state
        and sampler untouched.
        """
        frame, ts, decision, t_start = self._admit(image, timestamp, source, frame_index=frame_index,
                                                   captured_at=captured_at, capture_wait_ms=capture_wait_ms)
        if not decision.keep:
            return None
        state = self.engine.init_state(1) if decision.reset is not None else self._state
        self._preprocess(frame, prepared, self._input[0])  # no per-frame allocation
        t_pre = time.monotonic()
        try:
            logits, new_state = self.engine.step(self._input, state)
        except StateLost as exc:
            if decision.reset is not None:
                raise  # refused with a fresh state as well: nothing to start again from
            # the engine lost the stream (a Triton server restarted): start it again from this frame
            decision = replace(decision, slot=0, reset=Reset(
                ResetReason.RECONNECT, f"{exc}; the stream starts again from this frame"))
            logits, new_state = self.engine.step(self._input, self.engine.init_state(1))
        t_inf = time.monotonic()
        self._state = new_state
        self._commit(decision, ts, source)
        timings = StageTimings(
            capture_wait_ms=capture_wait_ms,
            preprocess_ms=_ms(t_pre - t_start),
            inference_ms=_ms(t_inf - t_pre),
            end_to_end_ms=_ms(time.monotonic() - (t_start if captured_at is None else captured_at)),
        )
        return SessionOutput(np.asarray(logits, dtype=np.float32).reshape(-1), frame_index, ts, None, timings,
                             self._take_reset())


class WindowSession(_SessionBase):
    """A clip model over a sliding window of the last ``window`` sampled frames.

    Preprocessed frames go into a preallocated ring buffer ``(window, 3, crop, crop)``; the clip
    handed to the engine is preallocated too and refilled in time order. The model runs when
    the window is full and then every ``stride`` sampled frames. ``window`` defaults to the
    card's ``clip_len``; ``stride`` to a quarter of the window. The new frame enters the ring
    only after the clip ran, so a failing frame changes nothing.
    """

    def __init__(self, engine: ClipEngine, *, window: int | None = None, stride: int | None = None,
                 fps: float | None = None, max_gap_s: float | None = None, sample: bool = True) -> None:
        if not isinstance(engine, ClipEngine):
            raise SessionError(f"{engine.card.arch} is an online model: use StreamingSession")
        super().__init__(engine, fps=fps, max_gap_s=max_gap_s, sample=sample)
        temporal = self.card.temporal
        self.window = temporal.clip_len if window is None else check_whole("window", window, 1, MAX_WINDOW, SessionError,
                                                                           unit="of frames")
        fixed = engine.fixed_clip_len
        if fixed is not None and self.window != fixed:
            raise SessionError(
                f"window={window!r} does not fit {engine.name}: its graph runs clips of exactly {fixed} frames (the "
                f"card's clip_len). Leave window out (or give {fixed}), or run the checkpoint on torch "
                "(backend='torch') for another window"
            )
        self.stride = max(1, self.window // 4) if stride is None else check_whole("stride", stride, 1, MAX_WINDOW,
                                                                                  SessionError, unit="of frames")
        crop = self.card.preprocessing.crop_size
        self.layout = temporal.clip_layout
        self._ring = np.zeros((self.window, 3, crop, crop), dtype=np.float32)
        self._ring_index = np.zeros(self.window, dtype=np.int64)
        self._incoming = np.zeros((3, crop, crop), dtype=np.float32)
        shape = (1, 3, self.window, crop, crop) if self.layout == "NCTHW" else (1, self.window, 3, crop, crop)
        self._clip = np.zeros(shape, dtype=np.float32)
        self._count = 0  # frames in the ring since the last reset
        self._since_run = 0

    @property
    def frames_buffered(self) -> int:
        return min(self._count, self.window)

    def _fill_clip(self, count: int, frame_index: int) -> tuple[int, int]:
        """Clip = the last ``window - 1`` ring frames (of ``count``), oldest first, then the incoming one."""
        w = self.window
        slots = [(count - (w - 1) + t) % w for t in range(w - 1)]
        frames = [self._ring[s] for s in slots] + [self._incoming]
        for t, f in enumerate(frames):
            if self.layout == "NCTHW":
                self._clip[0, :, t] = f
            else:
                self._clip[0, t] = f
        first = int(self._ring_index[slots[0]]) if slots else frame_index
        return first, frame_index

    def push(self, image: object, timestamp: float | None = None, *, frame_index: int = -1, source: str | None = None,
             captured_at: float | None = None, capture_wait_ms: float = 0.0,
             prepared: np.ndarray | None = None) -> SessionOutput | None:
        """Like :meth:`StreamingSession.push`; returns an output only when the clip model ran.

        None when the frame was skipped by sampling, the window is not yet full, or it is not
        a stride boundary.
        """
        frame, ts, decision, t_start = self._admit(image, timestamp, source, frame_index=frame_index,
                                                   captured_at=captured_at, capture_wait_ms=capture_wait_ms)
        if not decision.keep:
            return None
        self._preprocess(frame, prepared, self._incoming)  # may raise: nothing is changed yet
        count, since_run = (0, 0) if decision.reset is not None else (self._count, self._since_run)
        since_run += 1
        runs = count + 1 == self.window or (count + 1 > self.window and since_run >= self.stride)
        output = None
        if runs:
            frame_range = self._fill_clip(count, frame_index)
            t_fill = time.monotonic()
            logits = self.engine.run_clip(self._clip)  # may raise: nothing is changed yet
            t_inf = time.monotonic()
            since_run = 0
        slot = count % self.window
        self._ring[slot] = self._incoming
        self._ring_index[slot] = frame_index
        self._count, self._since_run = count + 1, since_run
        self._commit(decision, ts, source)
        if runs:
            timings = StageTimings(
                capture_wait_ms=capture_wait_ms,
                preprocess_ms=_ms(t_fill - t_start),
                inference_ms=_ms(t_inf - t_fill),
                end_to_end_ms=_ms(time.monotonic() - (t_start if captured_at is None else captured_at)),
            )
            output = SessionOutput(np.asarray(logits, dtype=np.float32).reshape(-1), frame_index, ts, frame_range,
                                   timings, self._take_reset())
        return output


@dataclass(frozen=True, eq=False)
class PendingFrame:
    """A kept frame of a :class:`StreamSlot`, preprocessed into the caller's batch row, not yet stepped."""

    decision: SampleDecision
    timestamp: float
    frame_index: int
    source: str | None
    t_start: float
    t_ready: float
    captured_at: float | None
    capture_wait_ms: float


class StreamSlot(_SessionBase):
    """One stream of a batch: validation, sampling, resets and preprocessing; the caller steps.

    :meth:`prepare` preprocesses a kept frame into the caller's row of a batched input and
    says whether the state must start from zero; after the batched step, :meth:`complete`
    commits the frame and returns the output. A frame whose batch failed is simply never
    completed, which leaves the stream as if the frame had not arrived.
    """

    def __init__(self, engine: OnlineEngine, *, fps: float | None = None, max_gap_s: float | None = None,
                 sample: bool = True) -> None:
        if not isinstance(engine, OnlineEngine):
            raise SessionError(f"{engine.card.arch} is a window (clip) model: streams are batched for online models only")
        super().__init__(engine, fps=fps, max_gap_s=max_gap_s, sample=sample)

    def prepare(self, image: object, timestamp: float | None, row: np.ndarray, *, frame_index: int = -1,
                source: str | None = None, captured_at: float | None = None, capture_wait_ms: float = 0.0,
                prepared: np.ndarray | None = None) -> PendingFrame | None:
        """Preprocess into ``row`` ((3, H, W) float32) if sampling keeps the frame; None when it is skipped."""
        frame, ts, decision, t_start = self._admit(image, timestamp, source, frame_index=frame_index,
                                                   captured_at=captured_at, capture_wait_ms=capture_wait_ms)
        if not decision.keep:
            return None
        self._preprocess(frame, prepared, row)
        return PendingFrame(decision, ts, frame_index, source, t_start, time.monotonic(), captured_at, capture_wait_ms)

    def complete(self, pending: PendingFrame, logits: np.ndarray, inference_ms: float) -> SessionOutput:
        """Commit a stepped frame; ``inference_ms`` is the batched step's time (shared by its streams)."""
        self._commit(pending.decision, pending.timestamp, pending.source)
        origin = pending.t_start if pending.captured_at is None else pending.captured_at
        timings = StageTimings(
            capture_wait_ms=pending.capture_wait_ms,
            preprocess_ms=_ms(pending.t_ready - pending.t_start),
            inference_ms=inference_ms,
            end_to_end_ms=_ms(time.monotonic() - origin),
        )
        return SessionOutput(np.asarray(logits, dtype=np.float32).reshape(-1), pending.frame_index, pending.timestamp,
                             None, timings, self._take_reset())


class FramePrefetcher:
    """Prepares, on a capture thread, the frames a session will keep: the whole preprocessing off the critical path.

    It runs a sampler of its own over every captured frame (the same rule as the session's), so
    frames the model will skip cost nothing here, and returns None for them (a capture thread
    with ``skip_unprepared=True`` then does not hand them over at all). Its guesses need not
    be perfect: a kept frame that arrives unprepared is prepared by the session itself, an
    extra prepared one is ignored, and frames it passes on are a subset on the same grid, which
    the session's sampler keeps.
    """

    def __init__(self, card: ModelCard, fps: float | None = None) -> None:
        rate = card.temporal.fps if fps is None else fps
        self.sampler = FrameSampler(rate, card.temporal.max_gap_s)
        self.preprocessor = FramePreprocessor(card.preprocessing)

    @property
    def input_fps(self) -> float | None:
        """Rate of the frames captured (all of them, kept or not), over the last ~30."""
        return self.sampler.input_rate.fps

    def __call__(self, frame: Any) -> np.ndarray | None:
        decision = self.sampler.decide(frame.media_time_s, frame.source)
        self.sampler.commit(decision, frame.media_time_s, frame.source)
        # normalised here too, where the patch is still in this core's cache: a batching loop that
        # normalised 16 patches written by 16 capture threads spent ~3x the CPU of a warm normalise
        return self.preprocessor(frame.image) if decision.keep else None


def open_session(engine: Engine, *, window: int | None = None, stride: int | None = None, fps: float | None = None,
                 max_gap_s: float | None = None, sample: bool = True) -> StreamingSession | WindowSession:
    """The session the engine asks for: online -> StreamingSession; clip -> WindowSession."""
    if isinstance(engine, OnlineEngine):
        if window is not None or stride is not None:
            raise SessionError(
                f"{engine.card.arch} is an online model (one frame per step, state carried); window/stride apply "
                "to clip models only. Drop window=/stride=, or use a window-mode card"
            )
        return StreamingSession(engine, fps=fps, max_gap_s=max_gap_s, sample=sample)
    if isinstance(engine, ClipEngine):
        return WindowSession(engine, window=window, stride=stride, fps=fps, max_gap_s=max_gap_s, sample=sample)
    raise SessionError(f"a session needs a streamtsm engine (see streamtsm.resolve.open_engine), got {type(engine).__name__}")
