"""``streamtsm triton-client SOURCE --url HOST:PORT [--model NAME]``: a camera/file as one Triton sequence.

The client is a :class:`~streamtsm.Recognizer` whose engine is the server
(:class:`~streamtsm.backends.triton_client.TritonSequenceEngine`): frames are read on the
capture thread, sampled to the card's rate, preprocessed here as the card says, sent as one
sequence (START on the first frame and after every reset, END at exit), and the logits are
smoothed into predictions and action events exactly as the demo does. Output: the demo's
headless JSON lines, each with the sequence id.
"""

from __future__ import annotations

import argparse
import threading

from .ranges import check_range
from .streaming import emit, open_source_arg, percentile, rounded, stop_on_signals


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "triton-client",
        help="stream a camera, file or synthetic source to a Triton server as one sequence; print JSON lines",
        description=(
            "Stream SOURCE to a model served by Triton (a repository made by `streamtsm triton`) as one sequence of "
            "its sequence batcher, and print predictions and action events as JSON lines, like `streamtsm demo "
            "--headless`. Preprocessing, classes and frame rate come from the model card in the model's config."
        ),
    )
    p.add_argument("source", help="camera index, video file, rtsp:// or http:// URL, or 'synthetic[:SEED]'")
    p.add_argument("--url", default="127.0.0.1:8001", help="the server's gRPC endpoint HOST:PORT (default: %(default)s)")
    p.add_argument("--model", help="model name in the server's repository (default: the server's only ready model)")
    p.add_argument("--sequence-id", type=int, default=None, help="correlation id of this camera (default: random); unique per camera")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request before giving up (default: %(default)s)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="pace files/synthetic at their frame rate (default: files as fast as possible, synthetic in real time)")
    p.set_defaults(func=run)


class ClientError(ValueError):
    """Bad arguments for the Triton client."""


def run(args: argparse.Namespace) -> int:
    from ..backends.triton_client import TritonSequenceEngine
    from ..recognizer import Recognizer, event_to_dict

    if args.max_frames is not None:
        check_range("--max-frames", args.max_frames, 1, None, error=ClientError)
    check_range("--timeout", args.timeout, 0, 3600, low_open=True, note="seconds", error=ClientError)
    if args.sequence_id is not None:
        check_range("--sequence-id", args.sequence_id, 1, 2**64 - 1, error=ClientError)
    engine = TritonSequenceEngine(args.url, args.model, sequence_id=args.sequence_id, timeout_s=args.timeout)
    try:
        source = open_source_arg(args.source, "source", args.realtime)
    except BaseException:
        engine.close()
        raise
    recognizer = Recognizer(engine)
    stop = threading.Event()
    frames = predictions = 0
    latencies: list[float] = []
    try:
        with stop_on_signals(stop) as received:
            for _frame, prediction in recognizer.iter_frames(source, max_frames=args.max_frames, stop_event=stop):
                frames += 1
                if prediction is None:
                    continue
                predictions += 1
                latencies.append(prediction.timings.end_to_end_ms)
                emit({"type": "prediction", "sequence_id": engine.sequence_id, **prediction.to_dict()})
                for event in prediction.events:
                    emit({"type": "event", "sequence_id": engine.sequence_id, **event_to_dict(event)})
    finally:
        recognizer.close()
        engine.close()
    emit({
        "type": "summary", "source": source.name, "url": args.url, "model": engine.model,
        "sequence_id": engine.sequence_id, "frames": frames, "predictions": predictions,
        "server_restarts": engine.restarts, "effective_fps": rounded(recognizer.session.effective_fps),
        "end_to_end_ms_p50": percentile(latencies, 50), "end_to_end_ms_p99": percentile(latencies, 99),
        "stopped_by_signal": received.get("signal"),
    })
    return 128 + received["signal"] if received.get("signal") else 0
