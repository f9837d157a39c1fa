"""From one stream's model outputs to :class:`Prediction` objects: smoothing, events, resets.

Shared by :class:`~streamtsm.Recognizer` (one stream) and :class:`~streamtsm.MultiRecognizer`
(many streams, one :class:`StreamOutputs` each), so a stream is postprocessed the same way
whether it is stepped alone or in a batch. numpy only.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, replace
from typing import Any, Hashable, Sequence

import numpy as np

from .arguments import check_real, check_whole
from .card import ModelCard
from .postprocess import ActionEvent, PostprocessConfig, PostProcessor
from .sampling import Reset, ResetReason
from .session import SessionOutput, StageTimings

logger = logging.getLogger(__name__)

#: Default smoothing span in seconds (converted to model steps with the step rate).
DEFAULT_SMOOTHING_S = 0.3


@dataclass(frozen=True, eq=False)  # holds an array: compare fields explicitly
class Prediction:
    """What the recognizer says about a stream at one model step.

    ``label``/``score``: top-1 of the *smoothed* probabilities. ``top_k``: ``(label, score)``
    pairs, best first. ``probabilities``: smoothed, ``(num_classes,)`` float32 in card order.
    ``frame_index``/``timestamp``: the frame this step was computed on (timestamp on the
    stream's clock). ``frame_range``: ``(first, last)`` frame index of the clip (window models;
    None for online ones). ``events``: start/end events produced at this step (including the
    end of an action cut short by a reset since the previous prediction); each event is in
    exactly one Prediction, or in what ``reset()`` returned. ``current``: the active action, or
    None. ``timings``: per-stage milliseconds for this step. ``reset``: why the state was reset
    since the previous prediction (the first one carries STREAM_START). ``stream_id``: the
    stream (MultiRecognizer), None for a Recognizer.
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
    reset: Reset | None = None
    stream_id: Hashable | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (no arrays): what ``streamtsm demo --headless`` prints."""
        d = {
            "frame_index": self.frame_index,
            "timestamp": round(self.timestamp, 6),
            "label": self.label,
            "score": round(self.score, 6),
            "top_k": [[label, round(score, 6)] for label, score in self.top_k],
            "frame_range": list(self.frame_range) if self.frame_range is not None else None,
            "current": self.current,
            "events": [event_to_dict(e) for e in self.events],
            "timings": self.timings.to_dict(),
            "reset": self.reset.to_dict() if self.reset is not None else None,
        }
        if self.stream_id is not None:
            d = {"stream_id": self.stream_id, **d}
        return d


def event_to_dict(event: ActionEvent) -> dict[str, Any]:
    return {
        "kind": event.kind,
        "label": event.label,
        "timestamp": round(event.timestamp, 6),
        "frame_index": event.frame_index,
        "confidence": round(event.confidence, 6),
        "duration_s": round(event.duration_s, 6),
    }


#: The longest smoothing window (and start_steps) in model steps: 100 s at 10 steps/s.
MAX_SMOOTHING_STEPS = 1000


@dataclass(frozen=True)
class PostprocessOptions:
    """The postprocessing keywords of the Recognizer (see its docstring for their meaning)."""

    smoothing: int | None = None
    smoothing_mode: str = "prob"
    start_threshold: float = 0.6
    end_threshold: float = 0.4
    start_steps: int = 1
    min_duration_s: float = 0.0
    background: Sequence[str] | None = None
    top_k: int = 3

    def __post_init__(self) -> None:
        # checked here, when the Recognizer is built: top_k=2.5 failed at every push, smoothing=10**9
        # asked for 67 GiB at the first one, background="no_motion" was read as 9 one-letter classes
        check_whole("smoothing", self.smoothing, 1, MAX_SMOOTHING_STEPS, ValueError, none="the default")
        check_whole("start_steps", self.start_steps, 1, MAX_SMOOTHING_STEPS, ValueError)
        check_whole("top_k", self.top_k, 1, 1000, ValueError)
        for name in ("start_threshold", "end_threshold"):
            check_real(name, getattr(self, name), 0.0, 1.0, ValueError)
        check_real("min_duration_s", self.min_duration_s, 0.0, 3600.0, ValueError)
        if isinstance(self.background, str):
            object.__setattr__(self, "background", (self.background,))  # one class name
        elif self.background is not None and (not isinstance(self.background, Sequence)
                                              or not all(isinstance(b, str) for b in self.background)):
            raise ValueError(f"background must be a list of class names (or None for the card's), got {self.background!r}")

    def postprocessor(self, card: ModelCard, step_rate: float) -> PostProcessor:
        """A PostProcessor for ``card``; the default smoothing is ~0.3 s at ``step_rate`` steps/s."""
        steps = max(1, round(DEFAULT_SMOOTHING_S * step_rate)) if self.smoothing is None else self.smoothing
        config = PostprocessConfig(
            smoothing_window=steps,
            smoothing_mode=self.smoothing_mode,
            top_k=self.top_k,
            start_threshold=self.start_threshold,
            end_threshold=self.end_threshold,
            start_steps=self.start_steps,
            min_duration_s=self.min_duration_s,
        )
        bg = card.background_classes if self.background is None else tuple(self.background)
        return PostProcessor(card.class_names, background=bg, config=config)


class StreamOutputs:
    """One stream's postprocessing: outputs in, Predictions out; resets end the active action.

    A reset reported by an output (gap, source change, time reversal, reconnect, stream start)
    means the smoothing window and the active action belong to the old stream: that action
    ends, and its ``end`` event is in this Prediction. ``reset_counts`` counts them by reason.
    """

    def __init__(self, postprocessor: PostProcessor, stream_id: Hashable | None = None) -> None:
        self.postprocessor = postprocessor
        self.stream_id = stream_id
        self.reset_counts: collections.Counter[ResetReason] = collections.Counter()

    def predict(self, output: SessionOutput) -> Prediction:
        t0 = time.monotonic()
        events: list[ActionEvent] = []
        if output.reset is not None:
            self._note_reset(output.reset)
            events = self.postprocessor.reset()
        step = self.postprocessor.step(output.logits, output.timestamp, output.frame_index)
        spent_ms = (time.monotonic() - t0) * 1000.0
        return Prediction(
            label=step.top_labels[0],
            score=step.top_scores[0],
            top_k=tuple(zip(step.top_labels, step.top_scores)),
            probabilities=step.probs,
            frame_index=output.frame_index,
            timestamp=output.timestamp,
            frame_range=output.frame_range,
            events=tuple(events) + step.events,
            current=step.current,
            timings=replace(output.timings, postprocess_ms=spent_ms, end_to_end_ms=output.timings.end_to_end_ms + spent_ms),
            reset=output.reset,
            stream_id=self.stream_id,
        )

    def _note_reset(self, reset: Reset) -> None:
        self.reset_counts[reset.reason] += 1
        if reset.reason is not ResetReason.STREAM_START:
            where = "" if self.stream_id is None else f"stream {self.stream_id!r}: "
            logger.log(logging.WARNING if reset.reason.is_warning else logging.INFO, "%sstate reset: %s", where, reset.message)
