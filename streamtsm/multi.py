"""``streamtsm.MultiRecognizer``: many streams, one engine, batched steps.

A robot carries several cameras and a server watches dozens. Each stream keeps what a
Recognizer keeps -- its own sampling, gap/source/time-reversal resets, smoothing and events
(:class:`~streamtsm.session.StreamSlot` + :class:`~streamtsm.predictions.StreamOutputs`) --
but the frames of all streams that are due together go through the engine as one batch:
preprocessed straight into rows of one input buffer, their state rows gathered into one
batched state, stepped once, and the new rows scattered back. A stream's predictions are the
ones a Recognizer of its own would give (to float error): that is tested frame by frame.

Two ways to hold the per-stream state are implemented, to measure
(``benchmarks/multistream.py``): ``state="pool"`` keeps every stream's rows in one
preallocated array per state tensor (gather with ``np.take(..., out=)``, scatter by index:
no allocation per step), ``state="arrays"`` keeps separate arrays per stream (stacked and
split each step).

``lanes=2`` (or more) splits a round's batch into that many parts stepped at once from as
many threads on the one engine. With ``threads=1`` each lane is one core with no thread-pool
barrier inside the engine: on a loaded machine one slow core then delays only its own part,
where a 2-thread engine call waits at every operator for both (measured in
``benchmarks/multistream.py``). Only the engine call runs in parallel; per-stream sampling,
preprocessing and postprocessing stay on the caller's thread, in stream order.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait as wait_all
from functools import partial
from typing import Any, Sequence

import numpy as np

from .backends.base import Engine, OnlineEngine
from .card import ModelCard
from .postprocess import ActionEvent
from .preprocess import FrameError
from .predictions import Prediction, PostprocessOptions, StreamOutputs
from .recognizer import check_callback, check_stop_event
from .resolve import check_option_names, keyword_only, open_engine
from .sampling import FrameSampler, Reset, ResetReason
from .session import FramePrefetcher, PendingFrame, SessionError, StreamSlot
from .sources import CaptureStats, CaptureThread, OpenStopped, Source, SourceError, check_loop_option_names, open_source

logger = logging.getLogger(__name__)

StreamEventCallback = Callable[[Hashable, ActionEvent], None]
_POSTPROCESS = ("smoothing", "smoothing_mode", "start_threshold", "end_threshold", "start_steps", "min_duration_s",
                "background", "top_k")
STATE_LAYOUTS = ("pool", "arrays")
MAX_LANES = 16
# a lane gets at least this many rows. A judgment, not a measured optimum: smaller parts cost
# more per frame (the default model's step is ~1.3x dearer per frame at batch 1 than at 8), and
# on a loaded machine that CPU is what the capture threads need
MIN_LANE_ROWS = 4


class MultiRecognizerError(RuntimeError):
    """The MultiRecognizer was used in a way it does not support (the message says how to fix it)."""


class _PooledState:
    """Every stream's state rows in one preallocated array per state tensor; rows are slots."""

    def __init__(self, card: ModelCard, capacity: int) -> None:
        self.pools = [np.zeros((capacity, *s.shape[1:]), dtype=s.dtype) for s in card.state]
        self._gathered = [np.zeros_like(p) for p in self.pools]

    def zero(self, slot: int) -> None:
        for pool in self.pools:
            pool[slot] = 0

    def gather(self, slots: np.ndarray) -> list[np.ndarray]:
        n = len(slots)
        return [np.take(pool, slots, axis=0, out=buf[:n]) for pool, buf in zip(self.pools, self._gathered)]

    def scatter(self, slots: np.ndarray, rows: Sequence[np.ndarray]) -> None:
        for pool, new in zip(self.pools, rows):
            pool[slots] = new

    def row(self, slot: int) -> list[np.ndarray]:
        return [pool[slot].copy() for pool in self.pools]


class _PerStreamState:
    """One set of state arrays per stream; a step stacks the due ones and splits the result."""

    def __init__(self, card: ModelCard, capacity: int) -> None:
        self._shapes = [(s.shape[1:], s.dtype) for s in card.state]
        self.rows: dict[int, list[np.ndarray]] = {}

    def zero(self, slot: int) -> None:
        self.rows[slot] = [np.zeros(shape, dtype) for shape, dtype in self._shapes]

    def gather(self, slots: np.ndarray) -> list[np.ndarray]:
        return [np.stack([self.rows[int(s)][i] for s in slots]) for i in range(len(self._shapes))]

    def scatter(self, slots: np.ndarray, rows: Sequence[np.ndarray]) -> None:
        for j, slot in enumerate(slots):
            self.rows[int(slot)] = [np.array(r[j]) for r in rows]

    def row(self, slot: int) -> list[np.ndarray]:
        return [r.copy() for r in self.rows[slot]]


class _Stream:
    """One stream: its slot (state row), its sampler front and its postprocessing."""

    __slots__ = ("stream_id", "slot", "front", "outputs", "frames_pushed", "segment", "skipping_prefetcher",
                 "last_capture", "capture_interval")

    def __init__(self, stream_id: Hashable, slot: int, front: StreamSlot, outputs: StreamOutputs) -> None:
        self.stream_id, self.slot, self.front, self.outputs = stream_id, slot, front, outputs
        self.frames_pushed = 0
        self.segment: int | None = None  # the source's reconnect count at the last frame (run() only)
        # run(): capture time of the last frame taken and the interval before it (when the next is due)
        self.last_capture: float | None = None
        self.capture_interval: float | None = None
        # run(): the capture thread's prefetcher when it drops skipped frames; it alone saw every captured
        # frame, so it knows the capture rate, also after the run ended
        self.skipping_prefetcher: FramePrefetcher | None = None


def _frame_and_time(stream_id: Hashable, entry: Any) -> tuple[Any, float | None]:
    """One value of push_many's mapping, which must be a (frame, timestamp) pair (a tuple or a list;
    never an array, whose first axis would unpack as two frames)."""
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        return entry[0], entry[1]
    raise TypeError(f"stream {stream_id!r}: push_many takes (frame, timestamp) pairs, got a {type(entry).__name__}; "
                    "give (frame, None) to stamp it on arrival")


def _shared_source_message(source: Source, stream_ids: tuple[Hashable, Hashable]) -> str:
    return (f"streams {stream_ids[0]!r} and {stream_ids[1]!r} were given the same {type(source).__name__} object "
            f"({source.name}): each stream needs a source of its own (one capture thread reads one source); "
            "give the spec (path, URL, camera index) to each, and each opens its own")


_FRAME_INFO = ("frame_index", "source", "captured_at", "capture_wait_ms", "prepared")


def _check_frame_info(stream_id: Hashable, info: Mapping[str, Any]) -> None:
    unknown = [k for k in info if k not in _FRAME_INFO]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), _FRAME_INFO, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise TypeError(f"stream {stream_id!r}: unknown frame info {unknown[0]!r}{hint}: a frame takes "
                        f"{', '.join(_FRAME_INFO)}")


class MultiRecognizer:
    """Frames of many streams in, per-stream :class:`Prediction` objects out; due frames run as one batch.

    ``model``/``backend``: as for :class:`~streamtsm.Recognizer` (an online model; a
    dynamic-batch export for batches above 1 -- the embedded default and every cached export
    are). ``max_streams``: how many streams may exist at once (the batch and state capacity).
    ``on_event(stream_id, event)``: called once per event. The other keywords are the
    Recognizer's: postprocessing (``smoothing``, thresholds, ``background``, ``top_k``),
    sampling (``fps``) and the engine's options (``threads``, ``providers``, …).
    ``state``: ``"pool"`` or ``"arrays"`` (see the module docstring). ``lanes``: engine calls
    per round run at once, each on a part of the batch of at least ``MIN_LANE_ROWS`` rows (see
    the module docstring; needs an engine whose ``concurrent_step_host`` is true: ONNX Runtime).

    ``on_source_end(stream_id, error)``: :meth:`run` reports a source that ended (error None)
    or failed; the stream is removed and the others go on.

    Thread safety: one lock serialises pushes, resets and stream changes.
    """

    def __init__(self, model: Any = None, *, max_streams: int, backend: str = "auto",
                 on_event: StreamEventCallback | None = None, fps: float | None = None, state: str = "pool",
                 on_source_end: Callable[[Hashable, Exception | None], None] | None = None, lanes: int = 1,
                 **recognizer_options: Any) -> None:
        if isinstance(max_streams, bool) or not isinstance(max_streams, int) or not 1 <= max_streams <= 4096:
            raise MultiRecognizerError(f"max_streams must be an integer from 1 to 4096, got {max_streams!r}")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
            raise MultiRecognizerError(f"lanes must be an integer from 1 to {MAX_LANES}, got {lanes!r} (1: one engine call per round)")
        if state not in STATE_LAYOUTS:
            raise MultiRecognizerError(f"state must be one of {STATE_LAYOUTS}, got {state!r}")
        for name in ("window", "stride"):
            if name in recognizer_options:
                raise MultiRecognizerError(f"{name}= applies to window (clip) models; MultiRecognizer batches online models")
        check_option_names(recognizer_options, (*_OWN_OPTIONS, *_POSTPROCESS), MultiRecognizerError)
        check_callback("on_event", on_event, MultiRecognizerError)
        check_callback("on_source_end", on_source_end, MultiRecognizerError)
        post = {k: recognizer_options.pop(k) for k in list(recognizer_options) if k in _POSTPROCESS}
        self._closed = False
        self._lane_pool: ThreadPoolExecutor | None = None
        self._owns_engine = not isinstance(model, Engine)
        self.engine = open_engine(model, backend, **recognizer_options)
        if not isinstance(self.engine, OnlineEngine):
            self.close()
            raise MultiRecognizerError(
                f"{self.engine.card.arch} is a window (clip) model; MultiRecognizer batches online models "
                "(use one Recognizer per stream for window models)"
            )
        if lanes > 1 and not self.engine.concurrent_step_host:
            self.close()
            raise MultiRecognizerError(
                f"lanes={lanes} needs an engine that can step from several threads at once; {self.engine.name} cannot. "
                "Use lanes=1, or open the model on ONNX Runtime (backend='onnxruntime'; in the demo: --lanes 1 or "
                "--backend onnxruntime)"
            )
        self.lanes = lanes
        if lanes > 1:
            self._lane_pool = ThreadPoolExecutor(max_workers=lanes - 1, thread_name_prefix="streamtsm-lane")
        self.max_streams = max_streams
        self.on_event, self.on_source_end = on_event, on_source_end
        self._captures: dict[Hashable, CaptureThread] | None = None  # while run() runs
        self._ended_captures: dict[Hashable, CaptureStats] = {}  # the last counters of captures that ended
        self._source_options: dict[str, Any] = {}
        self._model_frames_only = False  # of the running iter_frames()
        self._run_stop: threading.Event | None = None  # its stop_event: cuts short a network source still opening
        self._arrived = threading.Condition()
        self._arrived_ids: set[Hashable] = set()  # streams with news (a frame, or their end) since the last round
        self._awaiting: frozenset[Hashable] = frozenset()  # the streams a gathering round waits for
        self._fps = fps
        FrameSampler(self.card.temporal.fps if fps is None else fps, self.card.temporal.max_gap_s)  # a bad fps: now
        self._options = PostprocessOptions(**post)
        card = self.card
        crop = card.preprocessing.crop_size
        self._input = np.zeros((max_streams, 3, crop, crop), dtype=np.float32)
        self._state = (_PooledState if state == "pool" else _PerStreamState)(card, max_streams)
        self._streams: dict[Hashable, _Stream] = {}
        self._free = list(range(max_streams - 1, -1, -1))
        self._lock = threading.Lock()
        self.batches = 0  # batched steps (rounds) so far; with lanes a round may be several engine calls
        self.batched_frames = 0  # stream-frames stepped so far
        self.lane_batches = 0  # rounds stepped as several engine calls at once (lanes > 1)
        # run(): rounds that waited the whole gather_s for a due stream that did not come (many: a
        # camera is late, or gather_s is shorter than the spread of frames that are due together)
        self.gather_timeouts = 0

    # -- streams -----------------------------------------------------------------------------
    @property
    def card(self) -> ModelCard:
        return self.engine.card

    @property
    def stream_ids(self) -> list[Hashable]:
        with self._lock:
            self._check_open()
            return list(self._streams)

    def add_stream(self, stream_id: Hashable, source: Any = None) -> None:
        """Add a stream (a push to an unknown id adds it too); its state starts at zero.

        With ``source`` (a spec or a Source) while :meth:`run` is running, its capture thread
        starts and its frames join the batches.
        """
        with self._lock:
            self._check_open()
            if source is not None and self._captures is None:
                raise MultiRecognizerError("add_stream(id, source) needs a running run(); without run(), push() its frames")
            self._add(stream_id)
        if source is None:
            return
        try:
            self._attach(stream_id, source)
        except BaseException:
            self.remove_stream(stream_id)
            raise

    def _attach(self, stream_id: Hashable, source: Any) -> None:
        """Start a capture thread that reads ``source`` into the existing stream ``stream_id``."""
        if isinstance(source, Source):
            with self._lock:
                other = next((sid for sid, c in (self._captures or {}).items() if c.source is source), None)
            if other is not None:  # two threads reading one decoder crash inside FFmpeg
                raise MultiRecognizerError(_shared_source_message(source, (other, stream_id)))
        src = source if isinstance(source, Source) else open_source(source, **self._source_options)
        prefetcher = FramePrefetcher(self.card, self._fps)
        capture = CaptureThread(src, prepare=prefetcher, on_frame=partial(self._on_frame, stream_id),
                                skip_unprepared=self._model_frames_only)
        capture.start(cancel=self._run_stop)
        with self._lock:
            stream = self._streams.get(stream_id)
            if self._captures is None or stream is None:  # the run ended, or the stream was removed, meanwhile
                capture.stop()
                return
            self._captures[stream_id] = capture
            stream.segment = None  # a new source: its segments count, and its frames' rhythm, from its own start
            stream.last_capture = stream.capture_interval = None
            stream.skipping_prefetcher = prefetcher if self._model_frames_only else None

    def _add(self, stream_id: Hashable) -> _Stream:
        if stream_id in self._streams:
            raise MultiRecognizerError(f"stream {stream_id!r} exists already")
        if not self._free:
            raise MultiRecognizerError(
                f"cannot add stream {stream_id!r}: all max_streams={self.max_streams} slots are in use "
                f"({', '.join(map(repr, list(self._streams)[:8]))}…); remove_stream() one or create the "
                "MultiRecognizer with a larger max_streams"
            )
        slot = self._free.pop()
        self._state.zero(slot)
        front = StreamSlot(self.engine, fps=self._fps)
        step_rate = front.target_fps or self.card.temporal.fps
        stream = _Stream(stream_id, slot, front, StreamOutputs(self._options.postprocessor(self.card, step_rate), stream_id))
        self._streams[stream_id] = stream
        return stream

    def remove_stream(self, stream_id: Hashable) -> list[ActionEvent]:
        """Forget a stream; returns (and dispatches) the ``end`` of its active action."""
        with self._lock:
            self._check_open()
            stream = self._get(stream_id)
            del self._streams[stream_id]
            self._free.append(stream.slot)
            events = stream.outputs.postprocessor.reset()
            capture = self._captures.pop(stream_id, None) if self._captures is not None else None
        if capture is not None:
            capture.stop()
            self._keep_stats(stream_id, capture)
        self._dispatch(stream_id, events)
        return events

    def reset(self, stream_id: Hashable) -> list[ActionEvent]:
        """Forget one stream's past (state, sampling, smoothing); the others are untouched."""
        with self._lock:
            self._check_open()
            stream = self._get(stream_id)
            stream.front.reset()
            events = stream.outputs.postprocessor.reset()
        self._dispatch(stream_id, events)
        return events

    def reset_counts(self, stream_id: Hashable) -> Any:
        with self._lock:
            return self._get(stream_id).outputs.reset_counts

    def current(self, stream_id: Hashable) -> str | None:
        return self._get(stream_id).outputs.postprocessor.current

    def rates(self, stream_id: Hashable) -> tuple[float | None, float | None]:
        """(frames/s given to the model, frames/s pushed in) of one stream, over its last ~30 frames.

        Under :meth:`run` the second is the rate its source delivers (every captured frame),
        and once a run ended, the rate it delivered then.
        """
        stream = self._get(stream_id)
        if stream.skipping_prefetcher is not None:  # the stream itself saw only the kept frames
            return stream.front.effective_fps, stream.skipping_prefetcher.input_fps
        return stream.front.effective_fps, stream.front.input_fps

    def capture_stats(self, stream_id: Hashable) -> CaptureStats | None:
        """The capture thread counters of a stream while run() reads its source, or the last ones
        once its source ended or it was removed; None for a stream that never ran a source."""
        self._check_open()
        capture = (self._captures or {}).get(stream_id)
        return capture.stats if capture is not None else self._ended_captures.get(stream_id)

    def state_rows(self, stream_id: Hashable) -> list[np.ndarray]:
        """A copy of a stream's state (tests and debugging)."""
        with self._lock:
            return self._state.row(self._get(stream_id).slot)

    def _get(self, stream_id: Hashable) -> _Stream:
        self._check_open()
        try:
            return self._streams[stream_id]
        except KeyError:
            raise MultiRecognizerError(f"unknown stream {stream_id!r}; known: {list(self._streams)[:16]}") from None

    # -- pushing -----------------------------------------------------------------------------
    def push(self, stream_id: Hashable, frame: Any, timestamp: float | None = None, **frame_info: Any) -> Prediction | None:
        """One stream's frame; returns what ``Recognizer.push`` returns (the one-entry case of :meth:`push_many`)."""
        return self.push_many({stream_id: (frame, timestamp)}, frame_info={stream_id: frame_info} if frame_info else None)[stream_id]

    def push_many(self, frames: Mapping[Hashable, tuple[Any, float | None]], *,
                  frame_info: Mapping[Hashable, Mapping[str, Any]] | None = None) -> dict[Hashable, Prediction | None]:
        """``{stream_id: (frame, timestamp)}`` -> ``{stream_id: Prediction or None}``, kept frames in one batch.

        ``frame_info`` may give per stream ``frame_index``, ``source``, ``captured_at`` and
        ``capture_wait_ms`` (as for ``Recognizer.push``). A frame that fails validation raises
        :class:`~streamtsm.FrameError` naming its stream before anything is stepped (frames of
        other streams that sampling skipped count as seen); an engine failure raises with no
        stream's state or sampling changed.
        """
        if not isinstance(frames, Mapping):
            raise TypeError(f"push_many takes a mapping {{stream_id: (frame, timestamp)}}, got a {type(frames).__name__}; "
                            "for one stream, push(stream_id, frame, timestamp)")
        with self._lock:
            self._check_open()
            results, predictions = self._push_locked(frames, frame_info)
        self._dispatch_predictions(predictions)
        return results

    def _push_locked(self, frames: Mapping[Hashable, Any], frame_info: Mapping[Hashable, Mapping[str, Any]] | None
                     ) -> tuple[dict[Hashable, Prediction | None], dict[Hashable, Prediction]]:
        """push_many's work, the lock held: (results, the predictions among them)."""
        due: list[tuple[_Stream, PendingFrame]] = []
        results: dict[Hashable, Prediction | None] = {}
        new: list[Hashable] = []
        try:
            for stream_id, entry in frames.items():
                image, timestamp = _frame_and_time(stream_id, entry)
                info = dict((frame_info or {}).get(stream_id, {}))
                _check_frame_info(stream_id, info)
                stream = self._streams.get(stream_id)
                if stream is None:
                    stream = self._add(stream_id)
                    new.append(stream_id)
                info.setdefault("frame_index", stream.frames_pushed)
                try:
                    pending = stream.front.prepare(image, timestamp, self._input[len(due)], **info)
                except FrameError as exc:
                    raise FrameError(f"stream {stream_id!r}: {exc}") from None
                except SessionError as exc:
                    raise SessionError(f"stream {stream_id!r}: {exc}") from None
                results[stream_id] = None
                if pending is not None:
                    due.append((stream, pending))
            predictions = self._step(due)
        except BaseException:
            for stream_id in new:  # a failed first push leaves no stream behind
                self._free.append(self._streams.pop(stream_id).slot)
            raise
        for stream_id in frames:
            self._streams[stream_id].frames_pushed += 1
        results.update(predictions)
        return results, predictions

    def _dispatch_predictions(self, predictions: Mapping[Hashable, Prediction]) -> None:
        for stream_id, prediction in predictions.items():
            self._dispatch(stream_id, prediction.events)

    def _step(self, due: list[tuple[_Stream, PendingFrame]]) -> dict[Hashable, Prediction]:
        if not due:
            return {}
        n = len(due)
        slots = np.fromiter((s.slot for s, _ in due), dtype=np.int64, count=n)
        for stream, pending in due:
            if pending.decision.reset is not None:
                self._state.zero(stream.slot)
        states = self._state.gather(slots)
        t0 = time.monotonic()
        parts = self._step_lanes(n, states)
        inference_ms = (time.monotonic() - t0) * 1000.0
        for (start, stop), (_, new_states) in parts:  # only once every part succeeded: a failure changes no stream
            self._state.scatter(slots[start:stop], new_states)
        logits = parts[0][1][0] if len(parts) == 1 else np.concatenate([out[0] for _, out in parts])
        self.batches += 1
        self.batched_frames += n
        self.lane_batches += len(parts) > 1
        return {
            stream.stream_id: stream.outputs.predict(stream.front.complete(pending, logits[j], inference_ms))
            for j, (stream, pending) in enumerate(due)
        }

    def _step_lanes(self, n: int, states: list[np.ndarray]) -> list[tuple[tuple[int, int], tuple[np.ndarray, list[np.ndarray]]]]:
        """Step rows 0..n of the input: one engine call, or one per lane at once (contiguous parts)."""
        count = min(self.lanes, n // MIN_LANE_ROWS)
        if count <= 1 or self._lane_pool is None:
            return [((0, n), self.engine.step_host(self._input[:n], states))]
        edges = [n * i // count for i in range(count + 1)]  # part sizes differ by at most one row
        bounds = list(zip(edges[:-1], edges[1:]))
        futures = [self._lane_pool.submit(self.engine.step_host, self._input[a:b], [s[a:b] for s in states])
                   for a, b in bounds[1:]]
        try:
            a, b = bounds[0]
            first = self.engine.step_host(self._input[a:b], [s[a:b] for s in states])
        finally:
            wait_all(futures)  # the input rows and gathered states are reused by the next step: every lane must be done
        return [(bounds[0], first), *((ab, f.result()) for ab, f in zip(bounds[1:], futures))]

    def _dispatch(self, stream_id: Hashable, events: Sequence[ActionEvent]) -> None:
        if self.on_event is None:
            return
        for event in events:
            try:
                self.on_event(stream_id, event)
            except Exception:  # a user callback must not kill the streams
                logger.exception("on_event callback raised for stream %r, %s", stream_id, event)

    # -- running sources --------------------------------------------------------------------
    def run(self, sources: Mapping[Hashable, Any], *, stop_event: threading.Event | None = None,
            gather_s: float = 0.01, poll_s: float = 0.1, **source_options: Any) -> Iterator[tuple[Hashable, Prediction]]:
        """Like :meth:`iter_frames`, yielding only ``(stream_id, Prediction)``; frames sampling skips
        never leave their capture threads (``model_frames_only``)."""
        for stream_id, _, prediction in self.iter_frames(sources, stop_event=stop_event, gather_s=gather_s, poll_s=poll_s,
                                                          model_frames_only=True, **source_options):
            if prediction is not None:
                yield stream_id, prediction

    def iter_frames(self, sources: Mapping[Hashable, Any], *, stop_event: threading.Event | None = None,
                    gather_s: float = 0.01, poll_s: float = 0.1, model_frames_only: bool = False,
                    **source_options: Any) -> Iterator[tuple[Hashable, Any, Prediction | None]]:
        """Read every source on its own capture thread; yield ``(stream_id, frame, Prediction or None)`` per frame.

        ``sources``: ``{stream_id: spec or Source}`` (specs as for ``open_source``). Each round
        takes the oldest waiting frame of every stream that has one; after the first frame of a
        round arrives it waits at most ``gather_s`` for the streams whose next frame is due by
        then (from each stream's last capture time and interval; a stream out of phase holds
        nothing, a late one never longer), then steps the round's kept frames as one batch
        (``gather_timeouts`` counts the rounds that waited in vain). A queued (file) stream
        whose frame sampling skips hands over its next frames up to a kept one, within another
        ``gather_s`` at most, so files out of phase still share batches.
        An id that names a stream already (pushed to, or left by a run its ``stop_event``
        ended) goes on with the new source (state and sampling reset with reason
        ``SOURCE_CHANGE``, smoothing kept, as after a reconnect); the sources must fit in
        ``max_streams`` before any is opened, and a run that cannot open one of them leaves
        none of its new streams behind.
        ``add_stream(id, source)`` and ``remove_stream(id)`` work while running. A stream whose
        source ends or fails is reported (a log line; ``on_source_end(stream_id, error or
        None)``) and removed; the other streams go on. The loop ends when no stream is left or
        ``stop_event`` is set. ``model_frames_only``: yield only the frames sampling keeps; the
        capture threads drop the others before they reach the batching loop (``capture_stats``
        counts them as ``skipped``).
        """
        if not isinstance(sources, Mapping):
            raise TypeError(f"run takes a mapping {{stream_id: source}}, got a {type(sources).__name__}; "
                            "e.g. run({'door': 0, 'hall': 'hall.mp4'})")
        if not 0 <= gather_s <= 1:
            raise MultiRecognizerError(f"gather_s must be between 0 and 1 second, got {gather_s!r}")
        check_stop_event(stop_event, MultiRecognizerError)
        if "max_frames" in source_options:
            raise MultiRecognizerError("MultiRecognizer.run has no max_frames (its streams end on their own): stop the "
                                       "loop with stop_event, or remove_stream(id) after a stream's N-th frame")
        check_loop_option_names(source_options, ("stop_event", "gather_s", "poll_s", "model_frames_only"),
                                MultiRecognizerError)
        owners: dict[int, Hashable] = {}
        for stream_id, source in sources.items():
            if isinstance(source, Source):
                if id(source) in owners:
                    raise MultiRecognizerError(_shared_source_message(source, (owners[id(source)], stream_id)))
                owners[id(source)] = stream_id
        with self._lock:
            self._check_open()
            if self._captures is not None:
                raise MultiRecognizerError("this MultiRecognizer is already running its sources; add_stream(id, source) adds more")
            added = {sid for sid in sources if sid not in self._streams}
            if len(self._streams) + len(added) > self.max_streams:  # before any source is opened
                raise MultiRecognizerError(
                    f"{len(sources)} sources do not fit: {len(self._streams)} of max_streams={self.max_streams} slots are "
                    f"in use and {len(added)} of the sources are new streams; remove_stream() some or create the "
                    "MultiRecognizer with a larger max_streams"
                )
            self._captures, self._source_options = {}, source_options
            self._model_frames_only = model_frames_only
            self._run_stop = stop_event
        try:
            try:  # a stream that exists (pushed to, or left by an earlier run) goes on with the new source
                for stream_id, source in sources.items():
                    with self._lock:
                        if stream_id in added:
                            self._add(stream_id)
                        else:  # its state and sampling start again, as after a reconnect; smoothing goes on
                            self._streams[stream_id].front.reset(Reset(ResetReason.SOURCE_CHANGE, "a new source from run()"))
                    self._attach(stream_id, source)
            except BaseException as exc:
                for stream_id in added:  # a run that could not start leaves no stream of its own behind
                    if stream_id in self._streams:
                        self.remove_stream(stream_id)
                if isinstance(exc, OpenStopped) and stop_event is not None and stop_event.is_set():
                    return  # stopped while a network source was still opening
                raise
            while self._captures and not (stop_event is not None and stop_event.is_set()):
                self._wait_for_frames(poll_s, gather_s)  # no news within poll_s: look anyway (cheap), never wait forever
                for taken in self._take_round(gather_s):
                    if not taken:
                        continue
                    with self._lock:  # a stream removed (or given a new source) since its frame was taken is left out
                        self._check_open()
                        live = self._captures or {}
                        round_frames = {sid: f for sid, (capture, f) in taken.items() if live.get(sid) is capture}
                        info = {sid: dict(frame_index=f.index, source=f.source, captured_at=f.timestamp,
                                          prepared=f.prepared) for sid, f in round_frames.items()}
                        results, predictions = self._push_locked(
                            {sid: (f.image, f.media_time_s) for sid, f in round_frames.items()}, info)
                    self._dispatch_predictions(predictions)
                    for stream_id, prediction in results.items():
                        yield stream_id, round_frames[stream_id], prediction
        finally:
            with self._lock:
                captures, self._captures = self._captures or {}, None
                self._run_stop = None
            for stream_id, capture in captures.items():
                capture.stop()
                self._keep_stats(stream_id, capture)

    def _keep_stats(self, stream_id: Hashable, capture: CaptureThread) -> None:
        """Remember a finished capture's counters (the newest 1024 streams: ids may never repeat)."""
        self._ended_captures.pop(stream_id, None)
        self._ended_captures[stream_id] = capture.stats
        while len(self._ended_captures) > 1024:
            del self._ended_captures[next(iter(self._ended_captures))]

    def _wait_for_frames(self, poll_s: float, gather_s: float) -> None:
        """Wait until a frame arrived (at most ``poll_s``), then up to ``gather_s`` for the streams due by then.

        A stream is due when its next frame should be captured before the deadline (its last
        frame's capture time plus the interval before it; unknown at first: then it is due). A
        stream out of phase holds no round: with 2 cameras half a period apart each round waits
        for nothing, and 16 cameras started 0.55 ms apart (a 9 ms burst) still make one round.
        """
        with self._arrived:
            if not self._arrived_ids:
                self._arrived.wait(poll_s)
            if not self._arrived_ids:
                return
            deadline = time.monotonic() + gather_s
            self._awaiting = frozenset(sid for sid in (self._captures or ()) if sid not in self._arrived_ids
                                       and self._due_by(sid, deadline))  # fmt: skip
            while not self._awaiting <= self._arrived_ids:
                if (left := deadline - time.monotonic()) <= 0:
                    self.gather_timeouts += 1
                    break
                self._arrived.wait(left)
            self._awaiting = frozenset()
            self._arrived_ids.clear()

    def _due_by(self, stream_id: Hashable, deadline: float) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None or stream.last_capture is None or stream.capture_interval is None:
            return stream is not None
        return stream.last_capture + stream.capture_interval <= deadline

    def _on_frame(self, stream_id: Hashable) -> None:
        # wake the consumer only when it has something to act on: the first news of a round (it
        # waits for one) or the last stream it gathers for; not 30 x N times a second
        with self._arrived:
            first = not self._arrived_ids
            self._arrived_ids.add(stream_id)
            if first or (stream_id in self._awaiting and self._awaiting <= self._arrived_ids):
                self._arrived.notify_all()

    def _take_round(self, gather_s: float = 0.0) -> list[dict[Hashable, tuple[CaptureThread, Any]]]:
        """The oldest waiting frame of every stream, with the capture it came from, as rounds to push in
        order; streams whose source ended or failed are removed.

        A queued (file) stream whose oldest frame sampling will skip hands over its next frames too, up
        to one that is kept, waiting for them at most ``gather_s`` in all: the skipped ones go in rounds
        of their own before it (they cost no engine call). Taking one frame per stream per round kept
        a stream that started a frame ahead out of phase with the others for good, its kept frames
        never in the same batch as theirs (3 files at 30 fps into a 10 fps model: 15-29 engine calls
        for 30 kept frames instead of 10).
        """
        frames: dict[Hashable, tuple[CaptureThread, Any]] = {}
        skipped: dict[Hashable, list[Any]] = {}
        deadline = time.monotonic() + gather_s
        for stream_id, capture in list((self._captures or {}).items()):
            frame = self._next_frame(stream_id, capture)
            while frame is not None and not capture.latest_only and not self._would_keep(stream_id, frame):
                skipped.setdefault(stream_id, []).append(frame)
                frame = self._next_frame(stream_id, capture, max(0.0, deadline - time.monotonic()), drain=True)
            if frame is not None:
                frames[stream_id] = (capture, frame)
            elif stream_id in skipped:  # no kept frame came in time (or the source ended): they still go
                frames[stream_id] = (capture, skipped[stream_id].pop())
        waiting = [sid for sid, (capture, _) in frames.items() if capture.ready]
        if waiting:  # files queue several frames, and an end may follow: look again at once, not at the next arrival
            with self._arrived:
                self._arrived_ids.update(waiting)
        captures = self._captures or {}
        depth = max((len(v) for v in skipped.values()), default=0)
        rounds = [{sid: (captures[sid], v[k]) for sid, v in skipped.items() if k < len(v) and sid in captures}
                  for k in range(depth)]
        return [r for r in rounds if r] + [frames]

    def _next_frame(self, stream_id: Hashable, capture: CaptureThread, wait_s: float = 0.0,
                    drain: bool = False) -> Any | None:
        """The stream's next frame within ``wait_s`` (None: none yet, or its source ended and it was removed).

        ``drain``: the round already holds frames of this stream, so an end is left for the next round
        (the capture keeps saying it) and the stream stays until they are pushed."""
        try:
            frame = capture.get(timeout=wait_s)
        except TimeoutError:
            return None
        except SourceError as exc:
            if not drain:
                self._source_ended(stream_id, exc)
            return None
        if frame is None:
            if not drain:
                self._source_ended(stream_id, None)
            return None
        stream = self._streams.get(stream_id)
        if stream is None:
            return None
        last = stream.last_capture
        stream.capture_interval = frame.timestamp - last if last is not None and frame.timestamp > last else None
        stream.last_capture = frame.timestamp
        if stream.segment is not None and frame.segment != stream.segment:
            stream.front.reset(Reset(ResetReason.RECONNECT, f"{capture.source.name} reconnected"))
        stream.segment = frame.segment
        return frame

    def _would_keep(self, stream_id: Hashable, frame: Any) -> bool:
        """Whether the stream's sampler keeps ``frame`` now (it decides without changing anything)."""
        stream = self._streams.get(stream_id)
        return stream is None or stream.front.sampler.decide(frame.media_time_s, frame.source).keep

    def _source_ended(self, stream_id: Hashable, error: Exception | None) -> None:
        if error is None:
            logger.info("stream %r: its source ended; removing the stream", stream_id)
        else:
            logger.warning("stream %r: its source failed (%s); removing the stream, the others go on", stream_id, error)
        self.remove_stream(stream_id)
        if self.on_source_end is not None:
            try:
                self.on_source_end(stream_id, error)
            except Exception:
                logger.exception("on_source_end callback raised for stream %r", stream_id)

    # -- lifecycle ---------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise MultiRecognizerError("this MultiRecognizer is closed; create a new one")

    def close(self) -> None:
        """Release the engine (if this MultiRecognizer opened it). Closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        if self._lane_pool is not None:
            self._lane_pool.shutdown(wait=True)
        if self._owns_engine and hasattr(self, "engine"):
            self.engine.close()

    def __enter__(self) -> "MultiRecognizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        lanes = f", {self.lanes} lanes" if self.lanes > 1 else ""
        return f"MultiRecognizer({self.engine.describe()}, {len(self._streams)}/{self.max_streams} streams{lanes})"


__all__ = ["MAX_LANES", "MIN_LANE_ROWS", "MultiRecognizer", "MultiRecognizerError", "Reset", "ResetReason", "STATE_LAYOUTS"]


_OWN_OPTIONS = keyword_only(MultiRecognizer.__init__)
