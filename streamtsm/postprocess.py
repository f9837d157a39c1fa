"""From per-step logits to what an application acts on: probabilities, top-k, start/end events.

numpy only (on the Jetson path). Three small pieces, each usable alone:

* :class:`TemporalSmoother` averages the last few steps. A per-frame online model flickers
  between neighbouring classes; averaging ~0.25 s of steps removes most of that at the cost of
  a fraction of that latency.
* :class:`EventDetector` turns smoothed probabilities into ``start``/``end`` events with
  hysteresis (a higher threshold to start than to stay active), so a probability hovering
  around one threshold does not produce a burst of events.
* :class:`PostProcessor` chains softmax -> smoothing -> events and top-k, configured from
  the :class:`~streamtsm.card.ModelCard` (class names, background classes) plus a frozen
  :class:`PostprocessConfig` of tunables.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # card is torch-free too, but only needed for the type here
    from streamtsm.card import ModelCard

SMOOTHING_MODES = ("prob", "logit")
_FULL_SORT_UP_TO = 2048  # classes; above, top-k partitions first


def softmax(logits: Any, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (the max is subtracted first, so large logits do not overflow).

    Integer input is computed in float64; float input keeps its precision.
    """
    x = np.asarray(logits)
    if x.dtype.kind not in "f":
        x = x.astype(np.float64)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


def _softmax_vector(x: np.ndarray) -> np.ndarray:
    """:func:`softmax` of one float64 ``(C,)`` vector in the fewest numpy calls (the per-step hot
    path: on a 2-core VM each call with ``axis``/``keepdims`` costs a few microseconds)."""
    e = np.exp(x - x.max())
    e /= e.sum()
    return e


def _as_class_vector(values: Any, num_classes: int | None, what: str) -> np.ndarray:
    """Accept ``(C,)`` or a single-row ``(1, C)`` (what a backend returns for batch 1)."""
    if (type(values) is np.ndarray and values.ndim == 1 and values.dtype == np.float64
            and (num_classes is None or values.shape[0] == num_classes)):  # already one: no copy
        return values
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 1:
        raise ValueError(f"{what} must have shape (num_classes,) or (1, num_classes), got {v.shape}")
    if num_classes is not None and v.shape[0] != num_classes:
        raise ValueError(f"{what} has {v.shape[0]} classes, expected {num_classes}")
    return v


class TemporalSmoother:
    """Mean over the last ``window`` steps.

    ``mode="prob"``: softmax each step, average the probabilities (a confident outlier step
    counts at most 1/window). ``mode="logit"``: average the logits, then softmax (equivalent to
    a geometric mean of probabilities; sharper). :meth:`update` takes logits either way and
    returns probabilities. Until ``window`` steps have been seen the mean is over the steps so
    far. A ring buffer keeps the sum exact (no running-sum drift on week-long streams).
    """

    def __init__(self, window: int = 1, mode: str = "prob") -> None:
        if int(window) < 1:
            raise ValueError(f"smoothing window must be >= 1 step, got {window}")
        if mode not in SMOOTHING_MODES:
            raise ValueError(f"smoothing mode must be one of {SMOOTHING_MODES}, got {mode!r}")
        self.window = int(window)
        self.mode = mode
        self._buffer: np.ndarray | None = None
        self._count = 0

    def reset(self) -> None:
        self._buffer = None
        self._count = 0

    @property
    def steps_seen(self) -> int:
        return self._count

    def update(self, logits: Any) -> np.ndarray:
        """Add one step of logits ``(C,)``; return smoothed probabilities ``(C,)``."""
        x = _as_class_vector(logits, None if self._buffer is None else self._buffer.shape[1], "logits")
        if self._buffer is None:
            self._buffer = np.zeros((self.window, x.shape[0]), dtype=np.float64)
        row = _softmax_vector(x) if self.mode == "prob" else x
        self._buffer[self._count % self.window] = row
        self._count += 1
        held = min(self._count, self.window)
        mean = np.add.reduce(self._buffer[:held], axis=0)
        mean /= held
        return mean if self.mode == "prob" else _softmax_vector(mean)


@dataclass(frozen=True)
class ActionEvent:
    """An action started or ended.

    ``confidence`` is the probability at the start step for ``start`` events and the peak
    probability over the action for ``end`` events. ``duration_s`` is set on ``end`` events
    (end timestamp minus start timestamp) and 0 on ``start`` events.
    """

    kind: str  # "start" | "end"
    label: str
    class_index: int
    timestamp: float
    frame_index: int
    confidence: float
    duration_s: float = 0.0


class EventDetector:
    """Hysteresis over smoothed probabilities -> ``start`` / ``end`` events.

    * A non-background class *starts* when its probability is the highest among non-background
      classes and exceeds ``start_threshold`` for ``start_steps`` consecutive steps.
    * The active class *ends* when its probability falls below ``end_threshold`` (after it has
      been active ``min_duration_s``: a hold time that stops a short dip ending an action), or
      when another class starts; the ``end`` of the old class is emitted before the ``start``
      of the new one, in the same :meth:`update` call.
    * Background classes (from the card's ``background_classes`` or the ``background``
      argument; never a magic index) never start events; their probability only matters by
      pulling the others down.
    * :meth:`reset` emits the ``end`` of an active action (a reset means the stream changed,
      so whatever was happening ended) and returns it; nothing is ended silently.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        *,
        background: Sequence[str] = (),
        start_threshold: float = 0.6,
        end_threshold: float = 0.4,
        start_steps: int = 1,
        min_duration_s: float = 0.0,
    ) -> None:
        self.class_names = tuple(str(c) for c in class_names)
        if not self.class_names:
            raise ValueError("EventDetector needs at least one class name")
        unknown = [b for b in background if b not in self.class_names]
        if unknown:
            raise ValueError(f"background classes {unknown} are not among the class names {list(self.class_names)}")
        if not 0.0 <= end_threshold <= start_threshold <= 1.0:
            raise ValueError(
                f"need 0 <= end_threshold <= start_threshold <= 1 for hysteresis, got "
                f"end_threshold={end_threshold}, start_threshold={start_threshold}"
            )
        if int(start_steps) < 1:
            raise ValueError(f"start_steps must be >= 1, got {start_steps}")
        if min_duration_s < 0:
            raise ValueError(f"min_duration_s must be >= 0, got {min_duration_s}")
        self.background = tuple(background)
        self.start_threshold = float(start_threshold)
        self.end_threshold = float(end_threshold)
        self.start_steps = int(start_steps)
        self.min_duration_s = float(min_duration_s)
        self._foreground = np.array([c not in self.background for c in self.class_names], dtype=bool)
        if not self._foreground.any():
            raise ValueError("every class is a background class; no event could ever start")
        self._fg_indices = np.flatnonzero(self._foreground)
        self._clear()

    def _clear(self) -> None:
        self._active: int | None = None
        self._active_since = 0.0
        self._peak = 0.0
        self._candidate: int | None = None
        self._candidate_steps = 0
        self._last_timestamp: float | None = None
        self._last_frame_index = -1

    @property
    def current(self) -> str | None:
        """Label of the active action, or None."""
        return None if self._active is None else self.class_names[self._active]

    def _end(self, timestamp: float, frame_index: int) -> ActionEvent:
        assert self._active is not None
        event = ActionEvent(
            "end",
            self.class_names[self._active],
            self._active,
            timestamp,
            frame_index,
            self._peak,
            duration_s=timestamp - self._active_since,
        )
        self._active = None
        self._peak = 0.0
        return event

    def update(self, probs: Any, timestamp: float, frame_index: int) -> list[ActionEvent]:
        """One step of (smoothed) probabilities -> the events it causes (usually none)."""
        p = _as_class_vector(probs, len(self.class_names), "probs")
        self._last_timestamp, self._last_frame_index = float(timestamp), int(frame_index)
        events: list[ActionEvent] = []

        best = int(self._fg_indices[np.argmax(p[self._fg_indices])])
        if p[best] > self.start_threshold and best != self._active:
            self._candidate_steps = self._candidate_steps + 1 if self._candidate == best else 1
            self._candidate = best
        else:
            self._candidate, self._candidate_steps = None, 0
        starting = self._candidate is not None and self._candidate_steps >= self.start_steps

        if self._active is not None:
            self._peak = max(self._peak, float(p[self._active]))
            held = timestamp - self._active_since < self.min_duration_s
            if starting or (p[self._active] < self.end_threshold and not held):
                events.append(self._end(timestamp, frame_index))

        if starting and self._active is None:
            assert self._candidate is not None
            self._active, self._active_since, self._peak = self._candidate, float(timestamp), float(p[self._candidate])
            events.append(
                ActionEvent("start", self.class_names[self._active], self._active, timestamp, frame_index, self._peak)
            )
            self._candidate, self._candidate_steps = None, 0
        return events

    def reset(self, timestamp: float | None = None, frame_index: int | None = None) -> list[ActionEvent]:
        """Forget all state; return the ``end`` event of the active action, if there is one.

        The end is stamped with ``timestamp``/``frame_index`` if given, else with the last step seen.
        """
        events: list[ActionEvent] = []
        if self._active is not None:
            ts = self._last_timestamp if timestamp is None else float(timestamp)
            fi = self._last_frame_index if frame_index is None else int(frame_index)
            events.append(self._end(ts if ts is not None else self._active_since, fi))
        self._clear()
        return events


@dataclass(frozen=True)
class PostprocessConfig:
    """Tunables of :class:`PostProcessor` (the card supplies class names and background)."""

    smoothing_window: int = 8
    smoothing_mode: str = "prob"
    top_k: int = 5
    start_threshold: float = 0.6
    end_threshold: float = 0.4
    start_steps: int = 1
    min_duration_s: float = 0.0


@dataclass(frozen=True, eq=False)  # holds an array: compare fields explicitly
class StepOutput:
    """What one step yields: smoothed probabilities, top-k, the events it caused, active label."""

    probs: np.ndarray
    top_indices: tuple[int, ...]
    top_labels: tuple[str, ...]
    top_scores: tuple[float, ...]
    events: tuple[ActionEvent, ...]
    current: str | None


class PostProcessor:
    """softmax -> temporal smoothing -> top-k + hysteresis events, one call per model step."""

    def __init__(
        self,
        class_names: Sequence[str],
        *,
        background: Sequence[str] = (),
        config: PostprocessConfig = PostprocessConfig(),
    ) -> None:
        self.class_names = tuple(class_names)
        self.config = config
        if config.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {config.top_k}")
        self.smoother = TemporalSmoother(config.smoothing_window, config.smoothing_mode)
        self.detector = EventDetector(
            self.class_names,
            background=background,
            start_threshold=config.start_threshold,
            end_threshold=config.end_threshold,
            start_steps=config.start_steps,
            min_duration_s=config.min_duration_s,
        )
        self._k = min(config.top_k, len(self.class_names))

    @classmethod
    def from_card(cls, card: "ModelCard", config: PostprocessConfig | None = None, **overrides: Any) -> "PostProcessor":
        """Class names and background classes from ``card``; tunables from ``config`` + ``overrides``."""
        cfg = dataclasses.replace(config or PostprocessConfig(), **overrides)
        return cls(card.class_names, background=card.background_classes, config=cfg)

    @property
    def current(self) -> str | None:
        return self.detector.current

    def step(self, logits: Any, timestamp: float, frame_index: int) -> StepOutput:
        """One step of raw logits ``(C,)`` or ``(1, C)``."""
        logits_vec = _as_class_vector(logits, len(self.class_names), "logits")
        probs = self.smoother.update(logits_vec)
        k = self._k
        if probs.shape[0] <= _FULL_SORT_UP_TO:  # one stable sort: ties go to the lower class index
            top = np.argsort(-probs, kind="stable")[:k]
        else:
            top = np.argpartition(-probs, k - 1)[:k]
            top = top[np.lexsort((top, -probs[top]))]
        indices = top.tolist()
        events = self.detector.update(probs, timestamp, frame_index)
        return StepOutput(
            probs=probs.astype(np.float32),
            top_indices=tuple(indices),
            top_labels=tuple([self.class_names[i] for i in indices]),
            top_scores=tuple(probs[top].tolist()),
            events=tuple(events),
            current=self.detector.current,
        )

    def reset(self, timestamp: float | None = None, frame_index: int | None = None) -> list[ActionEvent]:
        """Clear smoothing and event state; returns the ``end`` of an active action (see EventDetector.reset)."""
        self.smoother.reset()
        return self.detector.reset(timestamp, frame_index)
