"""Run a recognizer over scripted synthetic streams and score its start events (detections, delays).

Shared by ``benchmarks/delay.py`` (the default model against a 3D CNN) and
``benchmarks/finetune.py`` (a model fine-tuned on recorded gestures): both ask "which gestures
were detected, how long after they ended, and how many labels were said that did not happen",
on streams whose ground-truth timeline is known (:class:`streamtsm.synthetic.GestureScript`).
The sources run faster than real time on their own clock; the compute time of the step that
emitted each event is measured and added to its delay (see :mod:`streamtsm.bench.detection`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["score_scripts"]


def score_scripts(model: Any, *, seeds: Sequence[int], seconds: float, backend: str = "auto",
                  labels: Sequence[str] | None = None, window_after_end_s: float = 2.0,
                  options: dict[str, Any] | None = None, progress: bool = False, name: str = "") -> dict[str, Any]:
    """Score ``model`` (anything the Recognizer takes) over one scripted stream per seed.

    ``labels`` are the gestures the scripts perform (default: the default model's); ``options``
    go to the :class:`~streamtsm.Recognizer` (threads, stride, ...). Returns the detection
    summary with every delay, the number of start events and the per-step compute times.
    """
    from streamtsm import Recognizer
    from streamtsm.bench.detection import score_events
    from streamtsm.sources import SyntheticSource
    from streamtsm.synthetic import GestureScript

    total = None
    compute_ms: list[float] = []
    events_total = 0
    for seed in seeds:
        events: list[Any] = []
        rec = Recognizer(model, backend=backend, on_event=events.append, **(options or {}))
        source = SyntheticSource(seed=seed, duration_s=seconds, realtime=False, labels=labels)
        script_kw = {"labels": tuple(labels)} if labels else {}
        timeline = GestureScript(seed, duration_s=seconds, size=source.size, fps=source.fps, **script_kw).timeline
        step_s: dict[int, float] = {}
        preds = rec.run(source)
        if progress:
            from tqdm import tqdm

            preds = tqdm(preds, desc=f"{name} seed {seed}".strip(), unit="step", leave=False)
        for p in preds:
            t = p.timings
            ms = t.preprocess_ms + t.inference_ms + t.postprocess_ms
            step_s[p.frame_index] = ms / 1000.0
            compute_ms.append(ms)
        rec.close()
        score = score_events(timeline, events, window_after_end_s=window_after_end_s, compute_s=step_s)
        total = score if total is None else total + score
        events_total += sum(e.kind == "start" for e in events)
    if total is None:
        raise ValueError("score_scripts needs at least one seed")
    c = np.asarray(compute_ms)
    return {
        **total.summary(),
        "start_events": events_total,
        "delays_s": [m.delay_s for m in total.matches],
        "labels": [m.label for m in total.matches],
        "compute_ms": {"n": int(c.size), "median": float(np.median(c)), "p90": float(np.percentile(c, 90)),
                       "p99": float(np.percentile(c, 99))},
    }
