"""``streamtsm demo`` with several sources: one MultiRecognizer, batched steps, a mosaic.

Each source is a stream (its id: the source's name, e.g. ``camera:0`` or ``synthetic:3``);
their due frames run through the engine as one batch. The window / ``--output`` show one
overlay tile per stream in a grid, redrawn once per round; ``--headless`` prints the demo's
JSON lines with a ``stream_id``. ``r`` resets every stream, ``q`` quits.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import threading
from typing import Any, Hashable

from .demo import DemoError, _Screen, _Stats, _Tile, recognizer_options
from .streaming import emit, exit_now, open_source_arg, percentile, stop_on_signals

logger = logging.getLogger(__name__)


def _stream_ids(sources: list[Any]) -> list[str]:
    """The sources' names, made unique (a second ``synthetic:0`` becomes ``synthetic:0#2``)."""
    ids: list[str] = []
    for source in sources:
        name, k = source.name, 1
        while name in ids:
            k += 1
            name = f"{source.name}#{k}"
        ids.append(name)
    return ids


def run_many(args: argparse.Namespace, specs: list[tuple[Any, str]], show_window: bool) -> int:
    from ..multi import MultiRecognizer
    from ..predictions import event_to_dict
    from ..render import mosaic

    sources: list[Any] = []
    ended: list[tuple[Hashable, Any]] = []  # every event; those of removed streams are in no Prediction
    try:
        for spec, kind in specs:  # every source opens before the model loads: a missing camera fails fast
            sources.append(open_source_arg(spec, kind, args.realtime))
        multi = MultiRecognizer(args.model, max_streams=len(sources), backend=args.backend, lanes=args.lanes,
                                on_event=lambda sid, event: ended.append((sid, event)), **recognizer_options(args))
    except BaseException:
        for source in sources:
            source.close()
        raise
    ids = _stream_ids(sources)
    by_id: dict[Hashable, Any] = dict(zip(ids, sources))
    # the mosaic is redrawn once per round, and rounds come at the fastest source's rate
    screen = _Screen(args, show_window, max(float(getattr(src, "fps", None) or 30.0) for src in sources))
    tiles = {sid: _Tile(args.display_width) for sid in ids}
    canvases: dict[Hashable, Any] = {}
    stats = {sid: _Stats() for sid in ids}
    resets: dict[Hashable, collections.Counter[str]] = {sid: collections.Counter() for sid in ids}
    dropped: dict[Hashable, int] = {}
    stop = threading.Event()

    def emit_removed_ends() -> None:
        """The end of an action whose stream was removed (its source ended, or --max-frames): no
        Prediction carries it, so without this an action active at the end never ended."""
        if not ended:  # most frames: no event at all (no lock, no list of the streams)
            return
        live = set(multi.stream_ids)
        for sid, event in ended:
            if sid not in live:
                if args.headless:
                    emit({"type": "event", "stream_id": sid, **event_to_dict(event)})
        ended.clear()

    frames = 0
    this_round: set[Hashable] = set()
    logger.info("demo: %s on %s", multi, ", ".join(ids))
    try:
        with stop_on_signals(stop) as received:
            for sid, frame, prediction in multi.iter_frames(by_id, stop_event=stop):
                frames += 1
                stats[sid].frames += 1
                if prediction is not None:
                    stats[sid].add(prediction)
                    tiles[sid].note(prediction)
                    if prediction.reset is not None:
                        resets[sid][prediction.reset.reason.value] += 1
                    if args.headless:
                        emit({"type": "prediction", **prediction.to_dict()})
                        for event in prediction.events:
                            emit({"type": "event", "stream_id": sid, **event_to_dict(event)})
                if screen.enabled:
                    if sid in this_round:  # a new round began: draw the last one, once
                        this_round.clear()
                        screen.show(mosaic([canvases.get(i) for i in ids], ids),
                                    any(t.active for t in tiles.values()))
                        action = screen.handle_keys()
                        if action == "quit":
                            break
                        if action == "reset":
                            for i in list(multi.stream_ids):
                                multi.reset(i)
                    this_round.add(sid)
                    capture = multi.capture_stats(sid)
                    model_fps, input_fps = multi.rates(sid)
                    canvases[sid] = tiles[sid].render(frame, model_fps=model_fps, input_fps=input_fps,
                                                      dropped=capture.dropped if capture is not None else 0)
                if args.max_frames is not None and stats[sid].frames >= args.max_frames and sid in multi.stream_ids:
                    multi.remove_stream(sid)  # this source has given its N frames; the others go on
                emit_removed_ends()
            for sid in multi.stream_ids:  # stopped (a signal, q): the actions still active end here
                multi.remove_stream(sid)
            emit_removed_ends()
            for sid in ids:
                capture = multi.capture_stats(sid)
                dropped[sid] = capture.dropped if capture is not None else 0
    except BaseException:
        screen.close(commit=False)  # a crash keeps the previous --output file
        raise
    finally:
        screen.close()
        multi.close()
    screen.save_screenshot()
    summary = {
        "type": "summary",
        "model": multi.card.arch,
        "backend": multi.engine.name,
        "frames": frames,
        "predictions": sum(s.predictions for s in stats.values()),
        "batches": multi.batches,
        "batched_frames": multi.batched_frames,
        "lanes": multi.lanes,
        "lane_batches": multi.lane_batches,
        "streams": {sid: {"source": sid, "frames": s.frames, "predictions": s.predictions,
                          "dropped": dropped.get(sid, 0), "resets": dict(resets[sid]),
                          "end_to_end_ms_p50": percentile(s.latencies, 50), "end_to_end_ms_p99": percentile(s.latencies, 99),
                          "frames_announced": getattr(by_id[sid], "frames_announced", None),  # a file's header count
                          "ended_early": getattr(by_id[sid], "ended_early", False)}  # damaged or truncated
                    for sid, s in stats.items()},
        "output": str(screen.output.path) if screen.output is not None else None,
        "output_frames": screen.output.frames if screen.output is not None else 0,
        "stopped_by_signal": received.get("signal"),
    }
    if args.headless:
        emit(summary)
    else:
        logger.info("summary: %s", json.dumps(summary))
    if received.get("signal"):
        exit_now(128 + received["signal"])
    return 0


__all__ = ["DemoError", "run_many"]
