"""``streamtsm.Recognizer``: the one object most users touch.

numpy + OpenCV only at import time (on the Jetson path); the engine is chosen by
:func:`~streamtsm.backends.factory.open_backend`, which imports torch only for checkpoints.

A Recognizer wires together a backend, the session the card asks for (online or window), and
the postprocessor (smoothing, top-k, start/end events)::

    rec = streamtsm.Recognizer()                 # the embedded default model
    for frame in frames:                         # your camera loop
        pred = rec.push(frame)                   # None when sampling skipped the frame
        if pred is not None:
            print(pred.label, pred.score, pred.timings.end_to_end_ms)

    for pred in rec.run("0"):                    # or let it own the capture thread
        ...

Thread safety (enforced): ``push``, ``reset`` and the statistics are serialised by one lock,
so calling them from several threads cannot corrupt the state. But a Recognizer models *one*
stream: frames must arrive in time order from one source. Frames from two cameras interleaved
into one Recognizer are detected (time goes backwards, or the ``source`` changes) and reset
the state with a warning rather than silently mixing the streams -- use one Recognizer per
stream. Only one ``run()``/``iter_frames()`` may be active at a time (a second raises
:class:`RecognizerError`). Event callbacks (``on_event``) run on the thread that called
``push``/``run``, after the lock is released, so a callback may call ``reset()``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from .backends.base import Backend
from .capture import CaptureStats, CaptureThread, Frame, Source, open_source
from .card import ModelCard
from .postprocess import ActionEvent, PostprocessConfig, PostProcessor
from .session import SessionOutput, StageTimings, StreamingSession, WindowSession, open_session

logger = logging.getLogger(__name__)

#: Default smoothing span in seconds (converted to model steps with the card's frame rate).
DEFAULT_SMOOTHING_S = 0.3

EventCallback = Callable[[ActionEvent], None]
_MAX_CARRIED = 64


class RecognizerError(RuntimeError):
    """The Recognizer was used in a way it does not support (the message says how to fix it)."""


@dataclass(frozen=True, eq=False)  # holds an array: compare fields explicitly
class Prediction:
    """What the recognizer says about the stream at one model step.

    ``label``/``score``: top-1 of the *smoothed* probabilities. ``top_k``: ``(label, score)``
    pairs, best first. ``probabilities``: smoothed, ``(num_classes,)`` float32 in card order.
    ``frame_index``/``timestamp``: the frame this step was computed on (timestamp on the
    stream's clock). ``frame_range``: ``(first, last)`` frame index of the clip (window models;
    None for online ones). ``events``: start/end events emitted at this step (including the
    end of an action cut short by a reset since the previous prediction). ``current``: the
    active action, or None. ``timings``: per-stage milliseconds for this step.
    """

    label: str
    score: float
    top_k: tuple[tuple[str, float], ...]
    probabilities: np.ndarray
    frame_index: int
    timestamp: float
    frame_range: tuple[int, int] | None
    events: tuple[ActionEvent, ...]
    current: str | None
    timings: StageTimings

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no arrays): what ``streamtsm demo --headless`` prints."""
        return {
            "frame_index": self.frame_index,
            "timestamp": round(self.timestamp, 6),
            "label": self.label,
            "score": round(self.score, 6),
            "top_k": [[label, round(score, 6)] for label, score in self.top_k],
            "frame_range": list(self.frame_range) if self.frame_range is not None else None,
            "current": self.current,
            "events": [event_to_dict(e) for e in self.events],
            "timings": self.timings.to_dict(),
        }


def event_to_dict(event: ActionEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "label": event.label,
        "timestamp": round(event.timestamp, 6),
        "frame_index": event.frame_index,
        "confidence": round(event.confidence, 6),
        "duration_s": round(event.duration_s, 6),
    }


class Recognizer:
    """Frames in, :class:`Prediction` objects and action events out.

    ``model``: None (the embedded default), a checkpoint/ONNX/engine path, a registry name
    (random weights: latency work only), a torch module with a card, or an open
    :class:`~streamtsm.backends.base.Backend` (not closed by the Recognizer).
    ``backend``: ``auto``/``torch``/``onnxruntime``/``tensorrt``.

    Postprocessing: ``smoothing`` is the smoothing window in model steps (default: about
    0.3 s at the card's rate), ``smoothing_mode`` ``prob`` or ``logit``; ``start_threshold``
    / ``end_threshold`` are the hysteresis thresholds, ``start_steps`` the consecutive steps
    above threshold before an action starts, ``min_duration_s`` the minimum hold time.
    ``background``: class names that never start an event (default: the card's).
    ``window``/``stride``: clip length and hop for window models. ``fps``: override the card's
    sampling rate (rarely right: the model was trained at the card's rate).
    ``on_event``: called with every :class:`ActionEvent`.
    """

    def __init__(
        self,
        model: Any = None,
        backend: str = "auto",
        *,
        smoothing: int | None = None,
        smoothing_mode: str = "prob",
        start_threshold: float = 0.6,
        end_threshold: float = 0.4,
        start_steps: int = 1,
        min_duration_s: float = 0.0,
        background: Sequence[str] | None = None,
        top_k: int = 3,
        window: int | None = None,
        stride: int | None = None,
        fps: float | None = None,
        on_event: EventCallback | None = None,
        **backend_options: Any,
    ) -> None:
        if isinstance(model, Backend):
            if backend_options:
                raise RecognizerError(f"backend options {sorted(backend_options)} given with an already open Backend")
            self.backend, self._owns_backend = model, False
        else:
            from .backends.factory import open_backend  # imports torch only for checkpoints

            if isinstance(model, Path):
                model = str(model)
            self.backend, self._owns_backend = open_backend(model, backend, **backend_options), True
        card = self.backend.card
        try:
            self.session: StreamingSession | WindowSession = open_session(self.backend, window=window, stride=stride, fps=fps)
            step_rate = self.session.target_fps or card.temporal.fps
            if not card.is_online:
                step_rate /= self.session.stride  # a window model predicts once per stride
            steps = max(1, round(DEFAULT_SMOOTHING_S * step_rate)) if smoothing is None else smoothing
            config = PostprocessConfig(
                smoothing_window=steps,
                smoothing_mode=smoothing_mode,
                top_k=top_k,
                start_threshold=start_threshold,
                end_threshold=end_threshold,
                start_steps=start_steps,
                min_duration_s=min_duration_s,
            )
            bg = card.background_classes if background is None else tuple(background)
            self.postprocessor = PostProcessor(card.class_names, background=bg, config=config)
        except Exception:
            self.close()
            raise
        self.on_event = on_event
        self._lock = threading.Lock()
        self._running = False
        self._frames_pushed = 0
        self._session_resets_seen = self.session.reset_count
        self._carried: list[ActionEvent] = []
        self._capture: CaptureThread | None = None
        self._last_capture_stats: CaptureStats | None = None

    # -- properties --------------------------------------------------------------------------
    @property
    def card(self) -> ModelCard:
        return self.backend.card

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names

    @property
    def current(self) -> str | None:
        """The active action (None when idle)."""
        with self._lock:
            return self.postprocessor.current

    @property
    def effective_fps(self) -> float | None:
        """Rate of frames given to the model (after sampling), over the last ~30 of them."""
        with self._lock:
            return self.session.effective_fps

    @property
    def input_fps(self) -> float | None:
        """Rate of frames pushed in, over the last ~30 of them."""
        with self._lock:
            return self.session.input_fps

    @property
    def capture_stats(self) -> CaptureStats | None:
        """Counters of the capture thread of the current (or last) ``run()``: reads, drops, reconnects."""
        capture = self._capture
        return capture.stats if capture is not None else self._last_capture_stats

    # -- push API ----------------------------------------------------------------------------
    def push(
        self,
        frame: Any,
        timestamp: float | None = None,
        *,
        frame_index: int | None = None,
        source: str | None = None,
        captured_at: float | None = None,
        capture_wait_ms: float = 0.0,
    ) -> Prediction | None:
        """Give one frame; get a :class:`Prediction`, or None if the frame was skipped.

        ``frame``: H x W x 3 uint8 BGR (grey, BGRA, uint16 and float images in [0, 1] or
        [0, 255] are converted; anything else raises :class:`~streamtsm.FrameError` and leaves
        the state untouched). ``timestamp``: seconds on the stream's clock (default: now, from
        ``time.monotonic()``); it drives sampling to the model's rate and gap resets, so pass
        the capture time when you have it. ``frame_index``: default counts pushed frames.
        ``source``: a stream name; a change resets the state. ``captured_at``:
        ``time.monotonic()`` at capture, for end-to-end latency (default: now).
        None is returned when sampling skipped the frame, or (window models) when no clip
        was run at this frame.
        """
        with self._lock:
            index = self._frames_pushed if frame_index is None else int(frame_index)
            output = self.session.push(
                frame,
                timestamp,
                frame_index=index,
                source=source,
                captured_at=captured_at,
                capture_wait_ms=capture_wait_ms,
            )
            self._frames_pushed += 1
            dispatch = self._note_session_resets()
            if output is None:
                self._carry_events(dispatch)
                prediction = None
            else:
                earlier = self._carried + dispatch  # reset events since the last prediction
                self._carried = []
                prediction = self._postprocess(output, earlier)
                dispatch = dispatch + list(prediction.events[len(earlier) :])
        self._dispatch(dispatch)
        return prediction

    def reset(self) -> list[ActionEvent]:
        """Forget the stream: model state, sampling, smoothing. Returns (and dispatches) the
        ``end`` event of an action that was active; it is also attached to the next Prediction."""
        with self._lock:
            self.session.reset("reset by caller")
            self._session_resets_seen = self.session.reset_count
            events = self.postprocessor.reset()
            self._carry_events(events)
        self._dispatch(events)
        return events

    def _carry_events(self, events: list[ActionEvent]) -> None:
        # Events already dispatched but not yet seen in a Prediction (e.g. a window model that
        # has not produced one since). Bounded: only resets add here.
        self._carried = (self._carried + events)[-_MAX_CARRIED:]

    def _note_session_resets(self) -> list[ActionEvent]:
        # A gap, source change or time reversal reset the session: the smoothing window and the
        # active action belong to the old stream, so that action ends here.
        if self.session.reset_count == self._session_resets_seen:
            return []
        self._session_resets_seen = self.session.reset_count
        reason = self.session.last_reset_reason or "reset"
        level = logging.WARNING if "backwards" in reason or "source changed" in reason else logging.INFO
        logger.log(level, "state reset: %s", reason)
        return self.postprocessor.reset()

    def _postprocess(self, output: SessionOutput, earlier_events: list[ActionEvent]) -> Prediction:
        t0 = time.monotonic()
        step = self.postprocessor.step(output.logits, output.timestamp, output.frame_index)
        t1 = time.monotonic()
        timings = replace(
            output.timings,
            postprocess_ms=(t1 - t0) * 1000.0,
            end_to_end_ms=output.timings.end_to_end_ms + (t1 - t0) * 1000.0,
        )
        return Prediction(
            label=step.top_labels[0],
            score=step.top_scores[0],
            top_k=tuple(zip(step.top_labels, step.top_scores)),
            probabilities=step.probs,
            frame_index=output.frame_index,
            timestamp=output.timestamp,
            frame_range=output.frame_range,
            events=tuple(earlier_events) + step.events,
            current=step.current,
            timings=timings,
        )

    def _dispatch(self, events: Sequence[ActionEvent]) -> None:
        if self.on_event is None:
            return
        for event in events:
            try:
                self.on_event(event)
            except Exception:  # a user callback must not kill the stream
                logger.exception("on_event callback raised for %s", event)

    # -- run API -----------------------------------------------------------------------------
    def iter_frames(
        self,
        source: str | int | Path | Source | CaptureThread,
        *,
        max_frames: int | None = None,
        stop_event: threading.Event | None = None,
        poll_s: float = 0.1,
        **source_options: Any,
    ) -> Iterator[tuple[Frame, Prediction | None]]:
        """Read ``source`` on a capture thread and yield ``(frame, prediction or None)`` for every frame.

        ``source``: a spec for :func:`~streamtsm.capture.open_source` (``0``, a path, a URL,
        ``"synthetic"``), an unopened or open :class:`~streamtsm.capture.Source`, or a
        :class:`~streamtsm.capture.CaptureThread` (started if needed). What this call opens it
        also stops and closes, when the iteration ends, fails, or is closed early.
        Timestamps are the source's clock (``media_time_s``: file position, script time, or
        capture clock), end-to-end latency is measured from each frame's capture time.
        ``stop_event`` is polled every ``poll_s`` seconds: setting it ends the loop promptly.
        """
        if max_frames is not None and max_frames < 0:
            raise RecognizerError(f"max_frames must be >= 0 or None, got {max_frames}")
        with self._lock:
            if self._running:
                raise RecognizerError(
                    "this Recognizer is already running a source; a Recognizer serves one stream at a time "
                    "(create one Recognizer per camera)"
                )
            self._running = True
        owned = not isinstance(source, CaptureThread)
        capture: CaptureThread | None = None
        try:
            if isinstance(source, CaptureThread):
                capture = source
            else:
                src = source if isinstance(source, Source) else open_source(source, **source_options)
                capture = CaptureThread(src)
            capture.start()
            self._capture = capture
            self.reset()  # stream start
            segment = None
            count = 0
            while max_frames is None or count < max_frames:
                if stop_event is not None and stop_event.is_set():
                    break
                t_wait = time.monotonic()
                try:
                    frame = capture.get(timeout=poll_s)
                except TimeoutError:
                    continue
                if frame is None:
                    break
                waited_ms = (time.monotonic() - t_wait) * 1000.0
                if segment is not None and frame.segment != segment:
                    logger.warning("%s reconnected: resetting the state", capture.source.name)
                    self.reset()
                segment = frame.segment
                count += 1
                prediction = self.push(
                    frame.image,
                    frame.media_time_s,
                    frame_index=frame.index,
                    source=frame.source,
                    captured_at=frame.timestamp,
                    capture_wait_ms=waited_ms,
                )
                yield frame, prediction
        finally:
            if capture is not None:
                if owned:
                    capture.stop()
                self._last_capture_stats = capture.stats
            self._capture = None
            with self._lock:
                self._running = False

    def run(
        self,
        source: str | int | Path | Source | CaptureThread,
        *,
        max_frames: int | None = None,
        stop_event: threading.Event | None = None,
        **source_options: Any,
    ) -> Iterator[Prediction]:
        """Like :meth:`iter_frames`, yielding only the predictions (skipped frames are not yielded)."""
        for _, prediction in self.iter_frames(source, max_frames=max_frames, stop_event=stop_event, **source_options):
            if prediction is not None:
                yield prediction

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the engine (if this Recognizer opened it)."""
        if getattr(self, "_owns_backend", False):
            self.backend.close()

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Recognizer({self.backend.describe()}, {len(self.class_names)} classes)"
