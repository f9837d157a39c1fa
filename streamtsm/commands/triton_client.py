"""``streamtsm triton-client SOURCE --url HOST:PORT [--model NAME]``: a camera/file as one Triton sequence.

The client is a :class:`~streamtsm.Recognizer` whose engine is the server
(:class:`~streamtsm.backends.triton_client.TritonSequenceEngine`): frames are read on the
capture thread, sampled to the card's rate, preprocessed here as the card says, sent as one
sequence (START on the first frame and after every reset, END at exit), and the logits are
smoothed into predictions and action events exactly as the demo does. Output: the demo's
headless JSON lines, each with the sequence id.

The server is allowed to go away (:class:`~streamtsm.triton.stream.TritonStream`): a lost
sequence starts again at once, and a server that stops answering is waited for up to
``--reconnect-s`` seconds, frames dropped meanwhile; either way the next Prediction carries a
``reconnect`` reset. Giving up prints the summary, then one error line (exit code 1).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from ..triton.stream import BACKOFF_S, DEFAULT_RECONNECT_S
from .ranges import check_range
from .streaming import emit, open_source_arg, percentile, rounded, stop_on_signals


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "triton-client",
        help="stream a camera, file or synthetic source to a Triton server as one sequence; print JSON lines",
        description=(
            "Stream SOURCE to a model served by Triton (a repository made by `streamtsm triton`) as one sequence of "
            "its sequence batcher, and print predictions and action events as JSON lines, like `streamtsm demo "
            "--headless`. Preprocessing, classes and frame rate come from the model card in the model's config. "
            "A server that lost the sequence (restart, idle timeout) gets a new one at once; a server that stops "
            "answering is waited for (--reconnect-s), frames dropped meanwhile. Either way the next prediction "
            "carries a 'reconnect' reset: smoothing starts again with the model's state."
        ),
    )
    p.add_argument("source", help="camera index, video file, rtsp:// or http:// URL, or 'synthetic[:SEED]'")
    p.add_argument("--url", default="127.0.0.1:8001",
                   help="the server's gRPC endpoint HOST:PORT or grpc://HOST:PORT, not its HTTP port 8000 (default: %(default)s)")
    p.add_argument("--model", help="model name in the server's repository (default: the server's only ready model)")
    p.add_argument("--sequence-id", type=int, default=None, help="correlation id of this camera (default: random); unique per camera")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds per request; a server silent this long counts as not answering (see --reconnect-s) "
                        "(default: %(default)s)")
    p.add_argument("--reconnect-s", type=float, default=DEFAULT_RECONNECT_S, metavar="S",
                   help="when the server stops answering, wait this long for it (tries after "
                        f"{', '.join(f'{b:g}' for b in BACKOFF_S[:-1])} s, then every {BACKOFF_S[-1]:g} s; frames are dropped "
                        "meanwhile), then start a new sequence; 0: give up at once (default: %(default)s)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="pace files/synthetic at their frame rate (default: files as fast as possible, synthetic in real time)")
    p.set_defaults(func=run)


class ClientError(ValueError):
    """Bad arguments for the Triton client."""


def run(args: argparse.Namespace) -> int:
    from ..backends.triton_client import TritonSequenceEngine
    from ..recognizer import Recognizer, event_to_dict
    from ..sampling import Reset, ResetReason
    from ..session import FramePrefetcher
    from ..sources import CaptureThread, OpenStopped
    from ..triton.stream import ServerGone, TritonStream

    if args.max_frames is not None:
        check_range("--max-frames", args.max_frames, 1, None, error=ClientError)
    check_range("--timeout", args.timeout, 0, 3600, low_open=True, note="seconds", error=ClientError)
    check_range("--reconnect-s", args.reconnect_s, 0, 86400, note="seconds", error=ClientError)
    if args.sequence_id is not None:
        check_range("--sequence-id", args.sequence_id, 1, 2**64 - 1, error=ClientError)
    engine = TritonSequenceEngine(args.url, args.model, sequence_id=args.sequence_id, timeout_s=args.timeout)
    try:
        source = open_source_arg(args.source, "source", args.realtime)
    except BaseException:
        engine.close()
        raise
    recognizer = Recognizer(engine)
    stream = TritonStream(recognizer, engine, reconnect_s=args.reconnect_s)
    stop = threading.Event()
    frames = predictions = 0
    latencies: list[float] = []
    failure: str | None = None
    # the Recognizer's iter_frames loop, with pushes that survive the server (TritonStream)
    capture = CaptureThread(source, prepare=FramePrefetcher(engine.card, recognizer.session.target_fps))
    try:
        with stop_on_signals(stop) as received:
            started = False
            try:
                capture.start(cancel=stop)
                started = True
            except OpenStopped:  # a signal while a network source was still opening: the summary says so
                if not stop.is_set():
                    raise
            segment = None
            while started and (args.max_frames is None or frames < args.max_frames):
                if stop.is_set():
                    break
                t_wait = time.monotonic()
                try:
                    frame = capture.get(timeout=0.1)
                except TimeoutError:
                    stream.poll()  # a stalled source must not keep the client waiting past --reconnect-s
                    continue
                if frame is None:
                    break
                if segment is not None and frame.segment != segment:
                    recognizer.restart(Reset(ResetReason.RECONNECT, f"{source.name} reconnected"))
                segment = frame.segment
                frames += 1
                prediction = stream.push(frame.image, frame.media_time_s, frame_index=frame.index, source=frame.source,
                                         captured_at=frame.timestamp, capture_wait_ms=(time.monotonic() - t_wait) * 1000.0,
                                         prepared=frame.prepared)
                if prediction is None:
                    continue
                predictions += 1
                latencies.append(prediction.timings.end_to_end_ms)
                emit({"type": "prediction", "sequence_id": engine.sequence_id, **prediction.to_dict()})
                for event in prediction.events:
                    emit({"type": "event", "sequence_id": engine.sequence_id, **event_to_dict(event)})
    except ServerGone as exc:
        failure = str(exc)
    finally:
        capture.stop()
        recognizer.close()
        engine.close()
    emit({
        "type": "summary", "source": source.name, "url": engine.url, "model": engine.model,
        "sequence_id": engine.sequence_id, "frames": frames, "predictions": predictions,
        "server_restarts": stream.restarts, "frames_dropped_server_down": stream.dropped,
        "server_down_s": round(stream.down_s, 3), "effective_fps": rounded(recognizer.session.effective_fps),
        "end_to_end_ms_p50": percentile(latencies, 50), "end_to_end_ms_p99": percentile(latencies, 99),
        "stopped_by_signal": received.get("signal"), "error": failure,
    })
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 128 + received["signal"] if received.get("signal") else 0
