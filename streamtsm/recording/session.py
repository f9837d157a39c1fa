"""A guided recording session: for each take a prompt, a countdown, the take, then a rest clip.

The session is UI-free: it reads frames from a function (a capture thread's ``get``), takes
commands (redo, quit) from a queue, and tells a listener what happens (JSON-able events) and
what to show on every frame (a :class:`Status`). ``streamtsm record`` puts a window or JSON
lines around it; a robot can call it directly.

Durations are measured on the source's own clock (``Frame.media_time_s``), so a take lasts
``seconds`` of video whether the source is a live camera or a file read faster than real time.
Takes go round the classes (wave, circle, wave, circle, ...) so that a session stopped early is
still balanced. After each take, ``between`` seconds of rest are saved as the background class.

Redo discards the take being recorded, or if none is (during the countdown), the last completed
take of this session with its rest clip, and records it again. Quit keeps every completed clip
and drops the one in progress. A source that ends or fails keeps every completed clip too.
"""

from __future__ import annotations

import collections
import enum
import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from .. import __version__
from ..sources import Frame, SourceError
from ..sampling import RateMeter
from .clip import ClipError, ClipWriter, measured_fps
from .folder import RecordingFolder

logger = logging.getLogger(__name__)

_EPS = 1e-6


class Command(enum.Enum):
    REDO = "redo"
    QUIT = "quit"


class Stopped(enum.Enum):
    """Why a session ended (``SessionResult.stopped``)."""

    DONE = "done"
    QUIT = "quit"
    SIGNAL = "signal"
    SOURCE_ENDED = "source_ended"
    SOURCE_FAILED = "source_failed"
    WRITE_FAILED = "write_failed"


@dataclass(frozen=True)
class Plan:
    """What to record: ``takes`` takes of ``seconds`` per class, with a countdown and rest clips."""

    classes: tuple[str, ...]
    takes: int = 20
    seconds: float = 2.0
    countdown: float = 3.0
    between: float = 1.0
    background: str | None = "no_action"


@dataclass(frozen=True)
class Status:
    """What the UI shows over one frame.

    ``phase``: "warmup", "countdown", "recording" or "between"; ``take`` is 1-based within
    ``class_name``; ``done``/``total`` count takes of the whole session; ``seconds_left``: of
    the countdown; ``progress``: 0..1 through the take or rest clip.
    """

    phase: str
    class_name: str | None = None
    take: int = 0
    takes: int = 0
    done: int = 0
    total: int = 0
    seconds_left: float | None = None
    progress: float = 0.0


class Listener(Protocol):
    def event(self, event: dict[str, Any]) -> None: ...

    def frame(self, frame: Frame, status: Status) -> None: ...


class Performer(Protocol):
    """A source that acts on cue (the synthetic performer): the take starts at the returned frame index."""

    def perform(self, gesture: str, within_s: float | None = None) -> int: ...


@dataclass
class SessionResult:
    stopped: Stopped
    saved: dict[str, int]
    takes_saved: int
    message: str | None = None
    fps: float | None = None
    size: tuple[int, int] | None = None


class _Redo(Exception):
    pass


class _Quit(Exception):
    def __init__(self, why: Stopped) -> None:
        self.why = why


class _SourceGone(Exception):
    def __init__(self, why: Stopped, message: str) -> None:
        super().__init__(message)
        self.why = why


class _Discontinuous(Exception):
    """The source reconnected or changed its frame size inside a clip: the clip is not one piece."""


@dataclass
class _Done:
    key: tuple[str, int]
    paths: list[str] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


class RecordingSession:
    """Runs one :class:`Plan` into an opened :class:`RecordingFolder` (see the module docstring).

    ``next_frame(timeout)`` returns the next frame, None at the end of the stream, raises
    TimeoutError when none came within ``timeout`` and SourceError when the source failed (a
    :class:`~streamtsm.sources.CaptureThread`'s ``get``). ``performer``: the source, if it acts
    on cue. ``live``: the source runs on a real clock (the rate is measured over a warm-up).
    """

    def __init__(self, folder: RecordingFolder, plan: Plan, next_frame: Callable[[float], Frame | None], *,
                 listener: Listener, commands: "queue.Queue[Command] | None" = None,
                 stop: threading.Event | None = None, performer: Performer | None = None,
                 source_name: str = "", live: bool = True, nominal_fps: float | None = None,
                 settings: dict[str, Any] | None = None) -> None:
        self.folder, self.plan, self._next_frame = folder, plan, next_frame
        self.listener, self.performer = listener, performer
        self.commands = commands if commands is not None else queue.Queue()
        self.stop = stop if stop is not None else threading.Event()
        self.source_name, self.live = source_name, live
        self.nominal_fps = nominal_fps if nominal_fps and 0.1 <= nominal_fps <= 1000 else 30.0
        self.settings = settings or {}
        self.meter = RateMeter(span=90)
        self._carry: Frame | None = None
        self._segment: int | None = None
        self._queue: collections.deque[tuple[str, int]] = collections.deque(
            (name, n) for n in range(1, plan.takes + 1) for name in plan.classes)
        self._done: list[_Done] = []
        self._session = -1
        self._size: tuple[int, int] | None = None

    # -- frames and commands ---------------------------------------------------------------
    def _next(self) -> Frame:
        """The next frame (the carried-over one first); raises on quit, redo, end and failure."""
        while True:
            self._poll()
            if self._carry is not None:
                frame, self._carry = self._carry, None
                return frame
            try:
                frame = self._next_frame(0.1)
            except TimeoutError:
                continue
            except SourceError as exc:
                raise _SourceGone(Stopped.SOURCE_FAILED, str(exc)) from None
            if frame is None:
                raise _SourceGone(Stopped.SOURCE_ENDED, f"the source {self.source_name} ended")
            if frame.segment != self._segment:
                self.meter.clear()  # a reconnect: the clock restarts
                self._segment = frame.segment
            self.meter.add(frame.media_time_s)
            if self._size is None:
                self._size = frame.image.shape[:2]
            return frame

    def _poll(self) -> None:
        if self.stop.is_set():
            raise _Quit(Stopped.SIGNAL)
        try:
            command = self.commands.get_nowait()
        except queue.Empty:
            return
        if command is Command.QUIT:
            raise _Quit(Stopped.QUIT)
        raise _Redo()

    def _emit(self, event_type: str, /, **fields: Any) -> None:
        self.listener.event({"type": event_type, **fields})

    def _status(self, phase: str, key: tuple[str, int] | None = None, **fields: Any) -> Status:
        name, take = key if key is not None else (None, 0)
        return Status(phase, name, take, self.plan.takes, len(self._done), self.plan.takes * len(self.plan.classes),
                      **fields)

    def _run_for(self, seconds: float, writer: ClipWriter | None, status: Callable[[float], Status],
                 start_index: int | None = None, on_second: Callable[[int], None] | None = None) -> None:
        """Show (and write) frames for ``seconds`` of source time; the frame past the end is carried over."""
        t0: float | None = None
        shown_second: int | None = None
        while True:
            frame = self._next()
            if start_index is not None and frame.index < start_index:  # read before the performer's cue
                self.listener.frame(frame, status(0.0))
                continue
            if t0 is None:
                t0 = frame.media_time_s
            elapsed = frame.media_time_s - t0
            if elapsed >= seconds - _EPS:
                self._carry = frame
                return
            if on_second is not None and (second := int(seconds - elapsed + 1 - _EPS)) != shown_second:
                shown_second = second
                on_second(second)
            if writer is not None:
                if not writer.fits(frame):
                    raise _Discontinuous()
                writer.write(frame)
            self.listener.frame(frame, status(elapsed / seconds))

    # -- the session -----------------------------------------------------------------------
    def run(self) -> SessionResult:
        self._session = self.folder.start_session({
            "started_at": now_iso(), "ended_at": None, "source": self.source_name, "streamtsm_version": __version__,
            "settings": {"classes": list(self.plan.classes), "takes": self.plan.takes, "seconds": self.plan.seconds,
                         "countdown": self.plan.countdown, "between": self.plan.between,
                         "background": self.plan.background, **self.settings},
            "fps": None, "size": None, "stopped": None, "takes_saved": 0})
        stopped, message = Stopped.DONE, None
        try:
            self._warm_up()
            while self._queue:
                self._take(self._queue[0])
        except _Quit as q:
            stopped = q.why
        except _SourceGone as gone:
            stopped, message = gone.why, str(gone)
        except ClipError as exc:
            stopped, message = Stopped.WRITE_FAILED, str(exc)
        result = self._result(stopped, message)
        try:
            self.folder.update_session(self._session, ended_at=now_iso(), stopped=stopped.value, fps=result.fps,
                                       size=list(result.size) if result.size else None, takes_saved=result.takes_saved)
        except OSError as exc:  # the clips and annotations are safe; only the session's end time is lost
            logger.warning("could not record the end of the session in %s: %s", self.folder.root, exc)
        return result

    def _result(self, stopped: Stopped, message: str | None) -> SessionResult:
        saved: dict[str, int] = {name: 0 for name in self.folder.state.classes}
        takes = 0
        for clip in self.folder.state.clips:
            if clip.get("session") == self._session:
                saved[clip["class"]] += 1
                takes += clip.get("kind") == "take"
        return SessionResult(stopped, saved, takes, message, measured_fps(self.meter, self.nominal_fps), self._size)

    def _warm_up(self) -> None:
        """Measure the source's rate before the first take (a live camera: half a second)."""
        while self.meter.count < 2 or (self.live and (self.meter.span_s < 0.5 or self.meter.count < 5)):
            try:
                self.listener.frame(self._next(), self._status("warmup"))
            except _Redo:
                continue
        self._emit("ready", source=self.source_name, fps=measured_fps(self.meter, self.nominal_fps),
                   size=list(self._size) if self._size else None)

    def _writer(self) -> ClipWriter:
        return ClipWriter(self.folder.temp_path(), measured_fps(self.meter, self.nominal_fps))

    def _commit(self, writer: ClipWriter, name: str, kind: str, take: int) -> str:
        try:
            writer.finish()
            entry = {"class": name, "label": self.folder.label_of(name), "kind": kind, "session": self._session,
                     "take": take, "recorded_at": now_iso(), **writer.entry()}
            rel = self.folder.commit(writer.path, entry)
        except (ClipError, OSError) as exc:
            writer.discard()
            raise ClipError(f"could not save take {take} of {name} in {self.folder.root}: {exc}") from None
        self._emit("saved", kind=kind, **{k: entry[k] for k in ("class", "take", "label", "frames", "fps")}, path=rel)
        return rel

    def _take(self, key: tuple[str, int]) -> None:
        """Record one take and its rest clip; on redo, rearrange the queue and return."""
        name, take = key
        plan = self.plan
        self._emit("prompt", **{"class": name}, take=take, takes=plan.takes, text=f"do: {name}")
        if plan.countdown > 0:
            try:
                self._run_for(plan.countdown, None, lambda p: self._status("countdown", key,
                                                                           seconds_left=plan.countdown * (1 - p)),
                              on_second=lambda s: self._emit("countdown", **{"class": name}, seconds_left=s))
            except _Redo:
                self._redo_previous(key)
                return
        start = self.performer.perform(name, within_s=plan.seconds) if self.performer is not None else None
        self._emit("recording", **{"class": name}, take=take)
        done = _Done(key)
        writer = self._writer()
        try:
            self._run_for(plan.seconds, writer, lambda p: self._status("recording", key, progress=p), start)
        except _Redo:
            writer.discard()
            self._emit("redo", **{"class": name}, take=take, discarded=[])
            return
        except _Discontinuous:
            writer.discard()
            self._emit("warning", message=f"the source reconnected or changed its frame size during take {take} of "
                                          f"{name}: recording it again")
            return
        except BaseException:
            writer.discard()
            raise
        done.paths.append(self._commit(writer, name, "take", take))
        if plan.between > 0 and plan.background is not None:
            rest = self._writer()
            try:
                self._run_for(plan.between, rest, lambda p: self._status("between", key, progress=p))
            except _Redo:
                rest.discard()
                self.folder.withdraw(done.paths)
                self._emit("redo", **{"class": name}, take=take, discarded=done.paths)
                return
            except _Discontinuous:
                rest.discard()
                self._emit("warning", message=f"the source reconnected or changed its frame size after take {take} "
                                              f"of {name}: no rest clip for it")
            except BaseException:
                rest.discard()
                raise
            else:
                done.paths.append(self._commit(rest, plan.background, "between", take))
        self._done.append(done)
        self._queue.popleft()

    def _redo_previous(self, key: tuple[str, int]) -> None:
        """Redo during a countdown: the last completed take of this session goes back to the front."""
        if not self._done:
            self._emit("redo", **{"class": key[0]}, take=key[1], discarded=[],
                       message="nothing recorded yet in this session: starting this take again")
            return
        previous = self._done.pop()
        self.folder.withdraw(previous.paths)
        self._queue.appendleft(previous.key)
        self._emit("redo", **{"class": previous.key[0]}, take=previous.key[1], discarded=previous.paths)
