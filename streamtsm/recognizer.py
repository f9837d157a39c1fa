"""``streamtsm.Recognizer``: the one object most users touch.

numpy + OpenCV only at import time (on the Jetson path); the engine is chosen by
:func:`~streamtsm.resolve.open_engine`, which imports torch only for checkpoints.

A Recognizer wires together an engine, the session the card asks for (online or window), and
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
from pathlib import Path
from typing import Any

from .arguments import is_whole_number
from .backends.base import Engine
from .sources import CaptureStats, CaptureThread, Frame, OpenStopped, Source, check_loop_option_names, open_source
from .card import ModelCard
from .postprocess import ActionEvent
from .predictions import Prediction, PostprocessOptions, StreamOutputs, event_to_dict
from .resolve import check_option_names, keyword_only, open_engine
from .sampling import STREAM_START, Reset, ResetReason
from .session import FramePrefetcher, StreamingSession, WindowSession, check_frame_index, open_session

logger = logging.getLogger(__name__)

__all__ = ["EventCallback", "Prediction", "Recognizer", "RecognizerError", "event_to_dict"]

EventCallback = Callable[[ActionEvent], None]


class RecognizerError(RuntimeError):
    """The Recognizer was used in a way it does not support (the message says how to fix it)."""


def check_stop_event(stop_event: object, error: type[Exception]) -> None:
    """``stop_event`` must be None or have ``is_set()`` (a ``threading.Event``): the loop polls it
    between frames, where a wrong value would fail only after the sources were opened."""
    if stop_event is not None and not callable(getattr(stop_event, "is_set", None)):
        raise error(f"stop_event must be a threading.Event (or None), got {type(stop_event).__name__}; "
                    "set the event from another thread to stop the loop")


def check_callback(name: str, callback: object, error: type[Exception]) -> None:
    """A callback must be callable (or None): a string or a number failed at every event, in a log."""
    if callback is not None and not callable(callback):
        raise error(f"{name} must be a function (or None), got {callback!r} ({type(callback).__name__})")


class Recognizer:
    """Frames in, :class:`Prediction` objects and action events out.

    ``model``: None (the embedded default), a checkpoint/ONNX/engine path, a registry name
    (random weights: latency work only), a torch module with a card, or an open engine (not
    closed by the Recognizer); see :mod:`streamtsm.resolve`. ``backend``:
    ``auto``/``torch``/``onnxruntime``/``tensorrt``; ``engine_options`` go to the engine
    (``threads``, ``providers``, ``precision``, …).

    Postprocessing: ``smoothing`` is the smoothing window in model steps (default: about
    0.3 s at the card's rate), ``smoothing_mode`` ``prob`` or ``logit``; ``start_threshold``
    / ``end_threshold`` are the hysteresis thresholds, ``start_steps`` the consecutive steps
    above threshold before an action starts, ``min_duration_s`` the minimum hold time.
    ``background``: class names that never start an event (default: the card's).
    ``window``/``stride``: clip length and hop for window models. ``fps``: override the card's
    sampling rate (rarely right: the model was trained at the card's rate).
    ``on_event``: called once with every :class:`ActionEvent`.
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
        **engine_options: Any,
    ) -> None:
        self._closed = False
        self._lock = threading.Lock()
        check_option_names(engine_options, _OWN_OPTIONS, RecognizerError)
        check_callback("on_event", on_event, RecognizerError)
        self._owns_engine = not isinstance(model, Engine)
        if not self._owns_engine and engine_options:
            raise RecognizerError(f"backend options {sorted(engine_options)} given with an already open engine; "
                                  "pass them when opening it")
        self.engine = open_engine(str(model) if isinstance(model, Path) else model, backend, **engine_options)
        card = self.engine.card
        try:
            self.session: StreamingSession | WindowSession = open_session(self.engine, window=window, stride=stride, fps=fps)
            step_rate = self.session.target_fps or card.temporal.fps
            if isinstance(self.session, WindowSession):
                step_rate /= self.session.stride  # a window model predicts once per stride
            options = PostprocessOptions(smoothing, smoothing_mode, start_threshold, end_threshold, start_steps,
                                         min_duration_s, background, top_k)
            self._outputs = StreamOutputs(options.postprocessor(card, step_rate))
        except Exception:
            self.close()
            raise
        self.on_event = on_event
        self._running = False
        self._frames_pushed = 0
        self._rates: tuple[float | None, float | None] = (None, None)  # (effective, input) fps after the last push
        self._capture: CaptureThread | None = None
        self._last_capture_stats: CaptureStats | None = None

    # -- properties (read without waiting for an inference in progress) ------------------------
    @property
    def card(self) -> ModelCard:
        return self.engine.card

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.card.class_names

    @property
    def postprocessor(self) -> Any:
        """The stream's PostProcessor (smoothing, events)."""
        return self._outputs.postprocessor

    @property
    def reset_counts(self) -> Any:
        """How many times the state was reset, by :class:`~streamtsm.sampling.ResetReason`."""
        return self._outputs.reset_counts

    @property
    def current(self) -> str | None:
        """The active action (None when idle)."""
        return self._outputs.postprocessor.current

    @property
    def effective_fps(self) -> float | None:
        """Rate of frames given to the model (after sampling), over the last ~30 of them."""
        return self._rates[0]

    @property
    def input_fps(self) -> float | None:
        """Rate of frames pushed in, over the last ~30 of them."""
        return self._rates[1]

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
        prepared: Any = None,
    ) -> Prediction | None:
        """Give one frame; get a :class:`Prediction`, or None if no model step ran on it.

        ``frame``: H x W x 3 uint8 BGR (grey, BGRA, uint16 and float images in [0, 1] or
        [0, 255] are converted; anything else raises :class:`~streamtsm.FrameError` and leaves
        the state untouched). ``timestamp``: seconds on the stream's clock (default: now, from
        ``time.monotonic()``); it drives sampling to the model's rate and gap resets, so pass
        the capture time when you have it. ``frame_index``: default counts pushed frames.
        ``source``: a stream name; a change resets the state. ``captured_at``:
        ``time.monotonic()`` at capture, for end-to-end latency (default: now).
        ``prepared``: the frame already preprocessed (``FramePreprocessor(card.preprocessing)(frame)``,
        or only resized and cropped by its ``geometry``; ``run()`` has its capture thread do it).
        None is returned when sampling skipped the frame, or (window models) when no clip was run
        at this frame.
        """
        with self._lock:
            self._check_open()
            index = self._frames_pushed if frame_index is None else check_frame_index(frame_index)
            output = self.session.push(frame, timestamp, frame_index=index, source=source, captured_at=captured_at,
                                       capture_wait_ms=capture_wait_ms, prepared=prepared)
            self._frames_pushed += 1
            self._rates = (self.session.effective_fps, self.session.input_fps)
            prediction = None if output is None else self._outputs.predict(output)
        if prediction is not None:
            self._dispatch(prediction.events)
        return prediction

    def reset(self) -> list[ActionEvent]:
        """Forget the stream: model state, sampling, smoothing. Returns (and dispatches) the
        ``end`` event of an action that was active; the next Prediction carries ``reset`` = CALLER."""
        with self._lock:
            self._check_open()
            self.session.reset()
            events = self._outputs.postprocessor.reset()
        self._dispatch(events)
        return events

    def restart(self, cause: Reset) -> None:
        """Start the stream's state again from the next frame, as after a camera reconnect: the next
        Prediction carries ``cause`` as its ``reset`` and ends an active action there (unlike
        :meth:`reset`, which ends it now and returns the event)."""
        with self._lock:
            self._check_open()
            self.session.reset(cause)

    def _dispatch(self, events: Sequence[ActionEvent]) -> None:
        if self.on_event is None:
            return
        for event in events:
            try:
                self.on_event(event)
            except Exception:  # a user callback must not kill the stream
                logger.exception("on_event callback raised for %s", event)

    def _check_open(self) -> None:
        if self._closed:
            raise RecognizerError("this Recognizer is closed; create a new one")

    # -- run API -----------------------------------------------------------------------------
    def iter_frames(
        self,
        source: str | int | Path | Source | CaptureThread,
        *,
        max_frames: int | None = None,
        stop_event: threading.Event | None = None,
        poll_s: float = 0.1,
        model_frames_only: bool = False,
        **source_options: Any,
    ) -> Iterator[tuple[Frame, Prediction | None]]:
        """Read ``source`` on a capture thread and yield ``(frame, prediction or None)`` for every frame.

        ``source``: a spec for :func:`~streamtsm.sources.open_source` (``0``, a path, a URL,
        ``"synthetic"``), an unopened or open :class:`~streamtsm.sources.Source`, or a
        :class:`~streamtsm.sources.CaptureThread` (started if needed). What this call opens it
        also stops and closes, when the iteration ends, fails, or is closed early.
        Timestamps are the source's clock (``media_time_s``: file position, script time, or
        capture clock), end-to-end latency is measured from each frame's capture time.
        ``stop_event`` is polled every ``poll_s`` seconds: setting it ends the loop promptly.
        ``model_frames_only``: yield only the frames sampling keeps for the model; the capture
        thread drops the others before they reach this loop (what :meth:`run` does). Counted
        in ``capture_stats.skipped``; ``input_fps`` still measures every captured frame.
        An action still active when the loop ends (the source ended, ``max_frames``, ``stop_event``)
        stays active (:attr:`current`): :meth:`reset` ends it and returns its ``end`` event;
        otherwise the next run's first Prediction carries it (each event is in exactly one
        Prediction or ``reset()`` result).
        """
        if max_frames is not None and (not is_whole_number(max_frames) or max_frames < 0):
            raise RecognizerError(f"max_frames must be a whole number >= 0 or None, got {max_frames!r}")
        check_stop_event(stop_event, RecognizerError)
        check_loop_option_names(source_options, _LOOP_OPTIONS, RecognizerError)
        with self._lock:
            self._check_open()
            if self._running:
                raise RecognizerError(
                    "this Recognizer is already running a source; a Recognizer serves one stream at a time "
                    "(create one Recognizer per camera)"
                )
            self._running = True
        owned = not isinstance(source, CaptureThread)
        capture: CaptureThread | None = None
        prefetcher: FramePrefetcher | None = None
        try:
            if isinstance(source, CaptureThread):
                capture = source
            else:
                src = source if isinstance(source, Source) else open_source(source, **source_options)
                prefetcher = FramePrefetcher(self.card, self.session.target_fps)
                capture = CaptureThread(src, prepare=prefetcher, skip_unprepared=model_frames_only)
            try:
                capture.start(cancel=stop_event)
            except OpenStopped:
                if stop_event is not None and stop_event.is_set():
                    return  # stopped while a network source was still opening: nothing was read
                raise
            self._capture = capture
            self.restart(STREAM_START)
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
                    self.restart(Reset(ResetReason.RECONNECT, f"{capture.source.name} reconnected"))
                segment = frame.segment
                count += 1
                prediction = self.push(
                    frame.image,
                    frame.media_time_s,
                    frame_index=frame.index,
                    source=frame.source,
                    captured_at=frame.timestamp,
                    capture_wait_ms=waited_ms,
                    prepared=frame.prepared,
                )
                if model_frames_only and prefetcher is not None:
                    self._rates = (self._rates[0], prefetcher.input_fps)  # the session saw only kept frames
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
        """Like :meth:`iter_frames`, yielding only the predictions.

        Frames sampling skips never leave the capture thread (``model_frames_only``), so
        ``max_frames`` counts the frames the model takes.
        """
        for _, prediction in self.iter_frames(source, max_frames=max_frames, stop_event=stop_event,
                                              model_frames_only=True, **source_options):
            if prediction is not None:
                yield prediction

    # -- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the engine (if this Recognizer opened it). Later calls raise; closing twice is harmless.

        A push running on another thread finishes first (the lock), so it never meets a closed engine."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_engine and hasattr(self, "engine"):
            self.engine.close()

    def __enter__(self) -> "Recognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Recognizer({self.engine.describe()}, {len(self.class_names)} classes)"


_OWN_OPTIONS = keyword_only(Recognizer.__init__)
_LOOP_OPTIONS = ("max_frames", "stop_event", "poll_s", "model_frames_only")
