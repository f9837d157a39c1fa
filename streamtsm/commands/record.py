"""``streamtsm record OUT_DIR --classes wave,circle_cw``: record your own gestures as a training folder.

A guided session on any source (a camera, a file, a stream, or the synthetic performer that
gestures on cue): for each take a prompt, a countdown, the take with a progress bar, then a
short rest clip saved as the background class. The window shows all that over the live
picture (keys: space = redo, q = quit); ``--headless`` prints it as JSON lines and reads the
same commands on stdin (``redo``/``space``/a line of spaces, ``q``/``quit``), for robots and
tests. Runtime code: numpy and OpenCV, never torch -- the robot records, training happens
elsewhere. Everything is checked before the session starts; see :mod:`streamtsm.recording`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import sys
import threading
from pathlib import Path
from typing import Any

from .ranges import check_range
from .streaming import emit, exit_now, open_window, stop_on_signals

logger = logging.getLogger(__name__)

WINDOW_TITLE = "streamtsm record (space: redo, q: quit)"
_REDO_WORDS = {"redo", "r", "space"}
_QUIT_WORDS = {"q", "quit"}
LIMITS = {"takes": (1, 1000), "seconds": (0.5, 60.0), "countdown": (0.0, 60.0), "between": (0.0, 60.0),
          "fps": (1.0, 240.0), "display_width": (160, 4096)}


class RecordError(RuntimeError):
    """The recording cannot run as asked; the message says what to do instead."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="record your own gestures: a guided session that writes a training folder",
        description=(
            "Record labelled clips of your own gestures for `streamtsm train OUT_DIR`. For each take: a prompt "
            "('do: wave'), a countdown, the take, then a rest clip saved as the background class. Writes "
            "OUT_DIR/<class>/NNNN.mp4 (at the source's measured frame rate), annotations.txt (mmaction2's "
            "'path label' lines), classes.txt and manifest.json. Recording into the same folder again appends. "
            "Keys in the window: space = redo the last take, q = stop and keep what was recorded; with --headless "
            "the same commands come as lines on stdin (redo, q) and the session is printed as JSON lines. Without a "
            "camera: --source synthetic:performer (a synthetic person who does each prompted gesture)."
        ),
    )
    p.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="recording folder (created, or appended to)")
    p.add_argument("--classes", required=True, metavar="A,B,...",
                   help="gestures to record, comma-separated (e.g. wave,circle_cw); in an existing folder, its "
                        "classes in classes.txt order, new ones after them")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, metavar="INDEX", help="camera index (default: camera 0)")
    src.add_argument("--source", metavar="SPEC",
                     help="camera index, video file, rtsp:// or http:// URL, 'synthetic[:SEED]' or "
                          "'synthetic:performer[:train|test][:SEED]' (performs each prompted gesture)")
    p.add_argument("--takes", type=int, metavar="N", default=20, help="takes per class (default: %(default)s)")
    p.add_argument("--seconds", type=float, metavar="S", default=2.0, help="length of each take, in seconds of video (default: %(default)s)")
    p.add_argument("--countdown", type=float, metavar="S", default=3.0,
                   help="seconds of countdown before each take (default: %(default)s; 0: none, and the synthetic source "
                        "then runs unpaced)")
    p.add_argument("--background", default="no_action", metavar="NAME",
                   help="class name of the rest clips recorded between takes (default: %(default)s)")
    p.add_argument("--between", type=float, metavar="S", default=1.0,
                   help="seconds of rest recorded after each take as the background class (default: %(default)s; "
                        "0: none)")
    p.add_argument("--headless", action="store_true",
                   help="no window: JSON lines on stdout, commands on stdin (redo, q)")
    p.add_argument("--frame-size", metavar="WxH", help="camera resolution to request / synthetic frame size "
                   "(default: the camera's own; synthetic 320x240)")
    p.add_argument("--fps", type=float, metavar="FPS", help="camera frame rate to request / synthetic frame rate (default: 30 for synthetic)")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="pace files/synthetic at their frame rate (default: files unpaced; synthetic paced unless "
                        "--countdown 0)")
    p.add_argument("--display-width", type=int, default=640, metavar="PX", help="width of the window's picture (default: %(default)s)")
    p.set_defaults(func=run)


# ------------------------------------------------------------------------------- validation


def _check_range(name: str, value: float, flag: str) -> None:
    lo, hi = LIMITS[name]
    check_range(flag, value, lo, hi, error=RecordError)


def _frame_size(text: str | None) -> tuple[int, int] | None:
    """``"320x240"`` -> (height, width)."""
    if text is None:
        return None
    w, sep, h = text.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or not (32 <= int(w) <= 4096 and 32 <= int(h) <= 4096):
        raise RecordError(f"--frame-size {text!r}: give WIDTHxHEIGHT in pixels, 32 to 4096 each (e.g. 640x480)")
    return int(h), int(w)


def _source_spec(args: argparse.Namespace) -> str | int:
    if args.source is not None:
        return args.source
    return args.camera if args.camera is not None else 0


def _source_options(args: argparse.Namespace, spec: str | int) -> dict[str, Any]:
    """Constructor options of the source ``spec`` names, from --frame-size/--fps/--realtime."""
    from ..sources import is_performer_spec, source_kind

    kind = source_kind(spec)
    size = _frame_size(args.frame_size)
    options: dict[str, Any] = {}
    if kind == "camera":
        if size is not None:
            options.update(height=size[0], width=size[1])
        if args.fps is not None:
            options["fps"] = args.fps
    elif kind == "synthetic":
        if not is_performer_spec(str(spec)):
            logger.warning("%s plays its own script and ignores the prompts, so its takes are not labelled by what "
                           "they show: use --source synthetic:performer for clips that match their class", spec)
        options["size"] = size or (240, 320)
        options["fps"] = args.fps or 30.0
        options["realtime"] = args.countdown > 0 if args.realtime is None else args.realtime
    else:
        ignored = [flag for flag, value in (("--frame-size", size), ("--fps", args.fps)) if value is not None]
        if ignored:
            logger.warning("%s apply to cameras and the synthetic source; ignored for %s", " and ".join(ignored), spec)
        if kind == "file":
            options["realtime"] = bool(args.realtime)
        elif args.realtime is not None:
            logger.warning("--realtime applies to files and the synthetic source; ignored for %s", spec)
    return options


def _check_performer(spec: str | int, classes: tuple[str, ...], seconds: float) -> None:
    from ..sources import PerformerSource, is_performer_spec, parse_performer_spec

    if not (isinstance(spec, str) and is_performer_spec(spec)):
        return
    parse_performer_spec(spec)
    unknown = [c for c in classes if c not in PerformerSource.performable]
    if unknown:
        raise RecordError(f"the synthetic performer cannot perform {', '.join(unknown)}: it knows "
                          f"{', '.join(PerformerSource.performable)}")
    need = max(PerformerSource.min_take_seconds(c) for c in classes)
    if seconds < need:
        slowest = max(classes, key=PerformerSource.min_take_seconds)
        raise RecordError(f"--seconds {seconds:g} is too short for the synthetic performer's {slowest}: "
                          f"use --seconds {need:g} or more")


def next_performer_take(state: Any) -> int:
    """The synthetic performer's first take number for a session on a folder in ``state``: after
    every take an earlier session cued (``performer_last_take``; for sessions that did not record
    it, the number of takes in the folder), so no two sessions render the same scene."""
    last = [s.get("performer_last_take") for s in state.sessions if isinstance(s, dict)]
    cued = max([int(n) for n in last if isinstance(n, int) and not isinstance(n, bool) and n >= 0], default=0)
    takes = sum(1 for c in state.clips if isinstance(c, dict) and c.get("kind") == "take")
    return max(cued, takes) + 1


def validate(args: argparse.Namespace) -> tuple[Any, Any]:
    """Every check that needs no source: returns (plan, inspected folder). Nothing is written."""
    from ..recording import ClassNameError, FolderError, Plan, RecordingFolder, check_class_name, parse_class_list

    for name, flag in (("takes", "--takes"), ("seconds", "--seconds"), ("countdown", "--countdown"),
                       ("between", "--between"), ("display_width", "--display-width")):
        _check_range(name, getattr(args, name), flag)
    if args.fps is not None:
        _check_range("fps", args.fps, "--fps")
    _frame_size(args.frame_size)
    try:
        classes = parse_class_list(args.classes)
        background = check_class_name(args.background, "--background") if args.between > 0 else None
        folder = RecordingFolder.inspect(args.out_dir, classes, background)
        _check_performer(_source_spec(args), classes, args.seconds)
    except (ClassNameError, FolderError) as exc:
        raise RecordError(str(exc)) from None
    plan = Plan(classes=classes, takes=args.takes, seconds=args.seconds, countdown=args.countdown,
                between=args.between, background=background)
    return plan, folder


# ------------------------------------------------------------------------------- the screens


class _JsonLines:
    """Headless: every event as a JSON line; a text progress bar on stderr when it is a terminal.

    When the reader goes away (``| head``), the session stops as if told to quit, quietly.
    """

    def __init__(self, commands: "queue.Queue[Any]") -> None:
        self.commands = commands
        self._bar = sys.stderr.isatty()
        self._shown: tuple[str, str, int] | None = None
        self._closed = False

    def event(self, event: dict[str, Any]) -> None:
        from ..recording import Command

        if self._closed:
            return
        if self._bar:
            sys.stderr.write("\r\033[K")
        try:
            emit(event)
        except BrokenPipeError:
            self._closed = True
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            self.commands.put(Command.QUIT)

    def frame(self, frame: Any, status: Any) -> None:
        if self._bar and status.phase in ("recording", "between"):
            done = int(30 * status.progress)
            shown = (status.phase, status.class_name, done)
            if shown != self._shown:  # redraw when the bar changes, not on every frame
                self._shown = shown
                sys.stderr.write(f"\r{status.phase:<9} {status.class_name} [{'#' * done}{'.' * (30 - done)}]")
                sys.stderr.flush()


class _Window:
    """The window: the live picture with prompt, countdown, REC mark and progress; keys space and q."""

    def __init__(self, commands: "queue.Queue[Any]", background: str | None, display_width: int) -> None:
        self.commands, self.background, self.display_width = commands, background, display_width
        self._sized = False

    def event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("saved", "redo", "warning", "ready"):
            logger.info("%s: %s", kind, json.dumps({k: v for k, v in event.items() if k != "type"}))

    def frame(self, frame: Any, status: Any) -> None:
        import cv2

        from ..recording import Command
        from ..render import render_record_overlay

        canvas = render_record_overlay(frame.image, status, background=self.background,
                                       display_width=self.display_width)
        if not self._sized:
            cv2.resizeWindow(WINDOW_TITLE, canvas.shape[1], canvas.shape[0])
            self._sized = True
        cv2.imshow(WINDOW_TITLE, canvas)
        key = cv2.waitKey(1) & 0xFF
        if key == ord(" "):
            self.commands.put(Command.REDO)
        elif key in (ord("q"), 27):
            self.commands.put(Command.QUIT)

    def close(self) -> None:
        import cv2

        cv2.destroyAllWindows()


def parse_command(line: str) -> Any:
    """A line of stdin -> Command, None for a blank line; ValueError for anything else."""
    from ..recording import Command

    text = line.rstrip("\r\n")
    if text and not text.strip():  # a line of spaces: the space key
        return Command.REDO
    word = text.strip().lower()
    if not word:
        return None
    if word in _REDO_WORDS:
        return Command.REDO
    if word in _QUIT_WORDS:
        return Command.QUIT
    raise ValueError(f"unknown command {text.strip()!r}: send 'redo' (or a space) or 'q'")


def _read_commands(stream: Any, commands: "queue.Queue[Any]") -> None:
    """Stdin -> commands, on a daemon thread (until end of input)."""
    while True:
        try:
            line = stream.readline()
        except (OSError, ValueError):  # stdin closed, or not readable here (e.g. captured by a test runner)
            return
        if not line:
            return
        try:
            command = parse_command(line)
        except ValueError as exc:
            emit({"type": "warning", "message": str(exc)})
            continue
        if command is not None:
            commands.put(command)


# ------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    from ..recording import RecordingSession, Stopped
    from ..sources import CaptureThread, is_performer_spec, open_source

    plan, folder = validate(args)
    if not args.headless:
        open_window(WINDOW_TITLE, instead="--headless (JSON lines on stdout, commands on stdin)")
    spec = _source_spec(args)
    options = _source_options(args, spec)
    first_take = None
    if isinstance(spec, str) and is_performer_spec(spec):
        # an appended session goes on from the folder's last performer take: new scenes, not session 1's again
        first_take = options["first_take"] = next_performer_take(folder.state)
    source = open_source(spec, **options)  # a missing camera fails here, before any write
    commands: queue.Queue[Any] = queue.Queue()
    screen: Any = _JsonLines(commands) if args.headless else _Window(commands, plan.background, args.display_width)
    stop = threading.Event()
    capture = None
    try:
        folder.open_for_writing()
        if args.headless:
            threading.Thread(target=_read_commands, args=(sys.stdin, commands), name="stdin-commands", daemon=True).start()
        state = folder.state
        screen.event({"type": "session", "out": str(folder.root), "source": source.name, "appending": folder.appending,
                      "labels": {name: i for i, name in enumerate(state.classes)}, "background": state.background,
                      "new_classes": list(state.new_classes), "takes": plan.takes, "seconds": plan.seconds})
        capture = CaptureThread(source, latest_only=False, queue_size=32).start()
        session = RecordingSession(
            folder, plan, capture.get, listener=screen, commands=commands, stop=stop,
            performer=source if callable(getattr(source, "perform", None)) else None,
            source_name=source.name, live=source.is_live, nominal_fps=getattr(source, "fps", None),
            settings={"source_spec": source.name, **({"performer_first_take": first_take} if first_take else {})})
        with stop_on_signals(stop) as received:
            result = session.run()
        if first_take is not None:  # the last take cued (redone takes included), where the next session goes on
            try:
                folder.update_session(len(folder.state.sessions) - 1, performer_last_take=source.takes)
            except OSError as exc:
                logger.warning("could not record the performer's last take in %s: %s", folder.root, exc)
    finally:
        if capture is not None:
            capture.stop()
        else:
            source.close()
        folder.close()
        if isinstance(screen, _Window):
            screen.close()
    summary = {"type": "summary", "stopped": result.stopped.value, "out": str(folder.root), "saved": result.saved,
               "takes_saved": result.takes_saved, "fps": result.fps,
               "size": list(result.size) if result.size else None, "message": result.message}
    screen.event(summary) if args.headless else logger.info("summary: %s", json.dumps(summary))
    if result.stopped is Stopped.SIGNAL:
        exit_now(128 + received.get("signal", 2))
    if result.stopped in (Stopped.SOURCE_ENDED, Stopped.SOURCE_FAILED, Stopped.WRITE_FAILED):
        during = " during the session" if result.stopped is not Stopped.WRITE_FAILED else ""
        print(f"error: {result.message}{during}; kept the {result.takes_saved} takes recorded before it "
              f"in {folder.root}", file=sys.stderr)
        return 1
    return 0
