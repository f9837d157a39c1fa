"""``streamtsm demo`` / ``python demo.py``: live recognition with an overlay, or JSON lines.

The loop is the public API on purpose: a :class:`~streamtsm.Recognizer` reads the source on
a capture thread (``iter_frames``), and this module only draws and writes. So the demo shows
exactly what an embedding application gets.

Shutdown: Ctrl-C (SIGINT) and SIGTERM set a stop flag that the loop polls at least every
0.1 s; the capture thread is stopped, the source released, the ``--output`` video finalised
and the summary printed, then the process exits with 128 + signal number without the slow
interpreter teardown (a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..outputs import PendingFile, check_output_path
from .ranges import check_range
from .streaming import WindowError, emit, exit_now, open_source_arg, open_window, percentile, rounded, stop_on_signals

logger = logging.getLogger(__name__)

WINDOW_TITLE = "streamtsm demo (q: quit, r: reset)"


class DemoError(RuntimeError):
    """The demo cannot run as asked; the message says what to do instead."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="live demo: camera/video/synthetic source -> recognised actions (window, JSON lines or video)",
        description=(
            "Run the recognizer on a camera, a video file or the synthetic gesture source. By default a window "
            "shows the video with the top-3 labels, the current action, FPS and end-to-end latency (keys: q or Esc "
            "quit, r reset). --headless prints JSON lines instead; --output saves the annotated video. With no "
            "source option the demo opens camera 0; without a camera try --source synthetic. Several sources "
            "(repeat --camera/--video/--source) run as one batched MultiRecognizer and are shown as a mosaic; "
            "their JSON lines carry a stream_id. Errors are one line; `streamtsm -v demo ...` (or `python demo.py -v "
            "...`) logs debug messages, shows OpenCV's own warnings and the traceback."
        ),
    )
    p.add_argument("--camera", type=int, metavar="INDEX", action="append", help="camera index (default: 0); repeatable")
    p.add_argument("--video", metavar="FILE", action="append", help="a video file; repeatable")
    p.add_argument(
        "--source", metavar="SPEC", action="append",
        help="any source spec: camera index, file, rtsp:// or http:// URL, 'synthetic[:SEED]'; repeatable",
    )
    p.add_argument("--model", help="checkpoint, .onnx, .plan or registry name (default: the embedded model)")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime", "tensorrt"), help="engine (default: auto)")
    p.add_argument("--headless", action="store_true", help="no window: print predictions and events as JSON lines on stdout")
    p.add_argument("--output", metavar="FILE.mp4", help="save the annotated video here")
    p.add_argument("--screenshot", metavar="FILE.png", help="save one annotated frame (the last one showing an action)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames (of each source)")
    p.add_argument(
        "--realtime",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="pace files/synthetic at their frame rate (default: files as fast as possible, synthetic in real time)",
    )
    p.add_argument("--display-width", type=int, default=640, metavar="PX", help="width of the rendered overlay (default 640)")
    p.add_argument(
        "--threads", type=int, metavar="N",
        help="inference threads of the engine (default: 1 for ONNX Runtime, measured steadiest on a busy CPU; "
        "torch: its own default, process-wide)",
    )
    p.add_argument("--lanes", type=int, metavar="N", default=1,
                   help="several sources only: step each round's batch as N engine calls at once, one core each "
                        "(ONNX Runtime; pays on a loaded multi-core machine, see the README) (default: 1)")
    p.add_argument("--start-steps", type=int, metavar="N", default=1,
                   help="an action starts after N consecutive confident steps: fewer false starts, N-1 steps later "
                        "(3 took a fine-tuned model's false starts from 27 to 0, see the README) (default: 1)")
    p.add_argument("--start-threshold", type=float, metavar="P", default=0.6,
                   help="smoothed probability that starts an action, from 0.4 (the end threshold) to 1 (default: 0.6)")
    p.set_defaults(func=run)


def recognizer_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Recognizer/MultiRecognizer keywords the demo's options set (engine threads, event rules)."""
    options: dict[str, Any] = {"start_steps": args.start_steps, "start_threshold": args.start_threshold}
    if args.threads is not None:
        options["threads"] = args.threads
    return options


# --------------------------------------------------------------------------------- helpers


def _source_specs(args: argparse.Namespace) -> list[tuple[Any, str]]:
    """(spec for open_source, what the user asked for: 'camera', 'video', 'source') per source:
    cameras first, then videos, then other specs; [(0, 'default-camera')] when none was given."""
    specs = [(c, "camera") for c in args.camera or ()] + [(v, "video") for v in args.video or ()]
    specs += [(x, "source") for x in args.source or ()]
    return specs or [(0, "default-camera")]


def _check_window_support() -> None:
    """Fail early, with what to do, when no window can be shown."""
    try:
        open_window(WINDOW_TITLE)
    except WindowError as exc:
        raise DemoError(str(exc)) from None


class _VideoOutput:
    """Lazily opened cv2.VideoWriter (the frame size is known at the first frame)."""

    def __init__(self, path: str, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self.frames = 0
        self._writer: Any = None
        self._pending = PendingFile(self.path)  # frames go to a temporary file, renamed onto path at close()

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            self._writer = cv2.VideoWriter(str(self._pending.temp), fourcc, self.fps, (image.shape[1], image.shape[0]))
            if not self._writer.isOpened():
                raise DemoError(f"--output {self.path}: OpenCV could not open a video writer for this file")
        self._writer.write(image)
        self.frames += 1

    def close(self, commit: bool = True) -> None:
        """Finish the video; ``commit=False`` (a crash) discards it and keeps an existing file as it was."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if commit:
            self._pending.commit()
        else:
            self._pending.discard()


class _Stats:
    """What the summary reports: counts, latencies and per-stage means of the predictions seen."""

    def __init__(self) -> None:
        self.frames = 0
        self.predictions = 0
        self.latencies: list[float] = []
        self.stages: dict[str, list[float]] = {}

    def add(self, prediction: Any) -> None:
        self.predictions += 1
        self.latencies.append(prediction.timings.end_to_end_ms)
        for key, value in prediction.timings.to_dict().items():
            self.stages.setdefault(key, []).append(value)

    def summary(self, recognizer: Any, source: Any, output: "_VideoOutput | None", signal_number: int | None) -> dict[str, Any]:
        stats = recognizer.capture_stats
        return {
            "type": "summary",
            "source": source.name,
            "model": recognizer.card.arch,
            "backend": recognizer.engine.name,
            "frames": self.frames,
            "predictions": self.predictions,
            "effective_fps": rounded(recognizer.effective_fps),
            "dropped": stats.dropped if stats is not None else 0,
            "resets": {reason.value: n for reason, n in recognizer.reset_counts.items()},
            "end_to_end_ms_p50": percentile(self.latencies, 50),
            "end_to_end_ms_p99": percentile(self.latencies, 99),
            "mean_ms": {k: round(float(np.mean(v)), 3) for k, v in self.stages.items()},
            "output": str(output.path) if output is not None else None,
            "output_frames": output.frames if output is not None else 0,
            "stopped_by_signal": signal_number,
            "frames_announced": getattr(source, "frames_announced", None),  # a file's header count
            "ended_early": getattr(source, "ended_early", False),  # the file held fewer: damaged or truncated
        }


class _Tile:
    """One stream's overlay: its last prediction and event, drawn on each new frame."""

    def __init__(self, display_width: int) -> None:
        self.display_width = display_width
        self.last_prediction: Any = None
        self.last_event_text: str | None = None

    def note(self, prediction: Any) -> None:
        self.last_prediction = prediction
        for event in prediction.events:
            self.last_event_text = f"{event.kind} {event.label} ({event.confidence:.2f}) @ {event.timestamp:.1f}s"

    @property
    def active(self) -> bool:
        return self.last_prediction is not None and self.last_prediction.current is not None

    def render(self, frame: Any, *, model_fps: float | None, input_fps: float | None, dropped: int) -> np.ndarray:
        from ..render import OverlayInfo, render_overlay

        last = self.last_prediction
        info = OverlayInfo(
            model_fps=model_fps,
            input_fps=input_fps,
            latency_ms=last.timings.end_to_end_ms if last is not None else None,
            dropped=dropped,
            truth=frame.label,
            last_event=self.last_event_text,
        )
        return render_overlay(frame.image, last, info, display_width=self.display_width)


class _Screen:
    """Where drawn frames go: the window, the ``--output`` video and the ``--screenshot``.

    ``show_window`` is False without a display when only files are asked for, so ``--output``
    works on a headless machine. ``handle_keys`` returns "quit", "reset" or None.
    """

    def __init__(self, args: argparse.Namespace, show_window: bool, fps: float) -> None:
        self.show_window = show_window
        self.output = _VideoOutput(args.output, fps) if args.output else None
        self.screenshot_path = args.screenshot
        self.enabled = show_window or self.output is not None or bool(self.screenshot_path)
        self.screenshot: np.ndarray | None = None
        self._screenshot_has_action = False
        self._window_sized = False

    def show(self, canvas: np.ndarray, active: bool) -> None:
        """One drawn frame; ``active``: an action is on (the screenshot prefers such a frame)."""
        if self.output is not None:
            self.output.write(canvas)
        if self.screenshot_path and (active or not self._screenshot_has_action):
            self.screenshot, self._screenshot_has_action = canvas, active
        if self.show_window:
            import cv2

            if not self._window_sized:  # Qt opens WINDOW_NORMAL at 400x300 and shrinks the overlay to fit
                cv2.resizeWindow(WINDOW_TITLE, canvas.shape[1], canvas.shape[0])
                self._window_sized = True
            cv2.imshow(WINDOW_TITLE, canvas)

    def handle_keys(self) -> str | None:
        if not self.show_window:
            return None
        import cv2

        key = cv2.waitKey(1) & 0xFF
        return "quit" if key in (ord("q"), 27) else "reset" if key == ord("r") else None

    def close(self, commit: bool = True) -> None:
        if self.output is not None:
            self.output.close(commit)
        if self.show_window:
            import cv2

            cv2.destroyAllWindows()

    def save_screenshot(self) -> None:
        if self.screenshot is None:
            return
        import cv2

        with PendingFile(self.screenshot_path) as shot:
            if not cv2.imwrite(str(shot.temp), self.screenshot):
                raise DemoError(f"could not write the screenshot {self.screenshot_path}")


def _validate(args: argparse.Namespace) -> None:
    from ..multi import MAX_LANES  # here, not at import: --help stays light

    if args.max_frames is not None:
        check_range("--max-frames", args.max_frames, 1, None, error=DemoError)
    if args.threads is not None:
        check_range("--threads", args.threads, 1, 256, error=DemoError)
    check_range("--lanes", args.lanes, 1, MAX_LANES, error=DemoError)
    if args.lanes > 1 and args.backend in ("torch", "tensorrt"):  # said before the model loads (torch: seconds)
        raise DemoError(f"--lanes {args.lanes} needs an engine that can step from several threads at once; --backend "
                        f"{args.backend} cannot. Use --lanes 1, or --backend onnxruntime (or auto)")
    check_range("--start-steps", args.start_steps, 1, 100, error=DemoError)
    check_range("--start-threshold", args.start_threshold, 0.4, 1.0, note="0.4 is the end threshold", error=DemoError)
    from ..resolve import check_model_spec

    check_model_spec(args.model)  # a typo in a path or a name, a folder, a JPEG: here, before a camera opens or torch loads
    inputs = [*(args.video or ()), *(args.source or ()), args.model]  # none may be overwritten by an output
    if args.output:
        check_output_path(args.output, suffixes=(".mp4", ".avi", ".mkv", ".mov"), inputs=inputs, what="--output")
    if args.screenshot:
        check_output_path(args.screenshot, suffixes=(".png", ".jpg", ".jpeg"), inputs=inputs, what="--screenshot")


def _wants_window(args: argparse.Namespace) -> bool:
    """A window unless --headless; without a display, files alone (--output/--screenshot) are fine."""
    if args.headless:
        return False
    try:
        _check_window_support()
    except DemoError as exc:
        if args.output or args.screenshot:
            logger.info("no window (%s); writing %s only", str(exc).split(":")[0], args.output or args.screenshot)
            return False
        raise
    return True


def _open_recognizer(args: argparse.Namespace, source: Any) -> Any:
    from ..recognizer import Recognizer

    try:
        return Recognizer(args.model, args.backend, **recognizer_options(args))
    except BaseException:
        source.close()
        raise


def run(args: argparse.Namespace) -> int:
    from ..recognizer import event_to_dict

    _validate(args)
    show_window = _wants_window(args)
    specs = _source_specs(args)
    if args.lanes > 1 and len(specs) == 1:
        raise DemoError(f"--lanes {args.lanes} splits the batch of several sources; with one source drop it "
                        "(or add sources with --camera/--video/--source)")
    if len(specs) > 1:
        from .demo_many import run_many

        return run_many(args, specs, show_window)
    spec, kind = specs[0]
    source = open_source_arg(spec, kind, args.realtime)  # first: a missing camera fails before the model loads
    recognizer = _open_recognizer(args, source)
    screen = _Screen(args, show_window, float(getattr(source, "fps", None) or 30.0))
    tile = _Tile(args.display_width)
    stats = _Stats()
    stop = threading.Event()
    logger.info("demo: %s on %s", recognizer, source.name)
    try:
        with stop_on_signals(stop) as received:
            for frame, prediction in recognizer.iter_frames(source, max_frames=args.max_frames, stop_event=stop):
                stats.frames += 1
                if prediction is not None:
                    stats.add(prediction)
                    tile.note(prediction)
                    if args.headless:
                        emit({"type": "prediction", **prediction.to_dict()})
                        for event in prediction.events:
                            emit({"type": "event", **event_to_dict(event)})
                if not screen.enabled:
                    continue
                capture = recognizer.capture_stats
                screen.show(tile.render(frame, model_fps=recognizer.effective_fps, input_fps=recognizer.input_fps,
                                        dropped=capture.dropped if capture is not None else 0), tile.active)
                action = screen.handle_keys()
                if action == "quit":
                    break
                if action == "reset":
                    ended = recognizer.reset()
                    tile.last_event_text = "reset" + (f" (end {ended[-1].label})" if ended else "")
                    logger.info("reset by the user (r)%s", f": {ended[-1].label} ended" if ended else "")
            for event in recognizer.reset():  # the end of an action still active when the stream stopped
                if args.headless:
                    emit({"type": "event", **event_to_dict(event)})
    except BaseException:
        screen.close(commit=False)  # a crash keeps the previous --output file
        raise
    finally:
        screen.close()
        recognizer.close()
    screen.save_screenshot()
    summary = stats.summary(recognizer, source, screen.output, received.get("signal"))
    if "at" in received:
        logger.info("stopped %.3f s after signal %d", time.monotonic() - received["at"], received["signal"])
    if args.headless:
        emit(summary)
    else:
        logger.info("summary: %s", json.dumps(summary))
    sig = received.get("signal")
    if sig:
        exit_now(128 + sig)
    return 0
