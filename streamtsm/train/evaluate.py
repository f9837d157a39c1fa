"""Clip classification metrics: top-1, top-5, mean class accuracy and the confusion matrix.

Two readouts of a TSM's per-frame logits, because the model is used two ways:

* ``readout="mean"`` -- the offline TSN/TSM consensus: the mean of all T frames' logits (what
  ``model(clip)`` returns, and what seed 002's ``AvgConsensus`` computes);
* ``readout=K`` (an int) -- the mean of the *last K* frames' logits. For a unidirectional model
  frame t's logits are exactly what the online model outputs at step t (the offline/online
  equivalence the models test), so this is what a live recognizer reports over the last K steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["EvalResult", "evaluate", "batch_logits", "frame_logits", "readout_scores", "metrics_from_scores", "confusion_markdown"]


@dataclass(frozen=True)
class EvalResult:
    """Metrics of one evaluation. ``confusion[i, j]`` counts clips of true class i predicted j."""

    num_clips: int
    top1: float
    top5: float
    mean_class_accuracy: float
    per_class_accuracy: tuple[float, ...]
    confusion: np.ndarray = field(repr=False)
    loss: float = float("nan")

    def as_dict(self, class_names: Sequence[str] | None = None) -> dict:
        names = list(class_names) if class_names is not None else [str(i) for i in range(len(self.per_class_accuracy))]
        return {
            "num_clips": self.num_clips,
            "top1": self.top1,
            "top5": self.top5,
            "mean_class_accuracy": self.mean_class_accuracy,
            "per_class_accuracy": dict(zip(names, self.per_class_accuracy)),
            "confusion": self.confusion.tolist(),
            "loss": self.loss,
        }


def metrics_from_scores(scores: np.ndarray, labels: np.ndarray, num_classes: int, loss: float = float("nan")) -> EvalResult:
    """Metrics from (N, C) scores and (N,) integer labels (classes absent from labels count as NaN)."""
    scores = np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.int64)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be (N, C) and labels (N,), got {scores.shape} and {labels.shape}")
    pred = scores.argmax(1)
    k = min(5, scores.shape[1])
    topk = np.argsort(-scores, axis=1)[:, :k]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    totals = confusion.sum(1)
    per_class = tuple(float(confusion[i, i] / totals[i]) if totals[i] else float("nan") for i in range(num_classes))
    present = [a for a in per_class if not np.isnan(a)]
    return EvalResult(
        num_clips=int(labels.shape[0]),
        top1=float((pred == labels).mean()) if len(labels) else float("nan"),
        top5=float((topk == labels[:, None]).any(1).mean()) if len(labels) else float("nan"),
        mean_class_accuracy=float(np.mean(present)) if present else float("nan"),
        per_class_accuracy=per_class,
        confusion=confusion,
        loss=loss,
    )


def is_clip_model(model: nn.Module) -> bool:
    """True for clip models (3D CNNs: one prediction per clip), False for frame models (TSM/TSN).

    Decided by what the network computes, not by the card's temporal mode: an offline
    (bidirectional) TSM or a TSN runs as a window model yet still gives one prediction per frame.
    """
    return not callable(getattr(model, "forward_frames", None))


def frames_to_clip(x: torch.Tensor, layout: str) -> torch.Tensor:
    """(N, T, 3, H, W) frames -> the clip model's input layout (``NCTHW`` or ``NTCHW``)."""
    return x.permute(0, 2, 1, 3, 4) if layout == "NCTHW" else x


def batch_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits ``(N, T, C)`` per frame of a 2D/TSM model, ``(N, 1, C)`` per clip of a clip model, for ``x`` (N, T, 3, H, W).

    The one forward used by training, BatchNorm recalibration and evaluation. Channels-last is
    ~2x faster for these convolutions on CPU (oneDNN); the values are the same up to rounding.
    """
    n, t = x.shape[:2]
    if is_clip_model(model):
        clip = frames_to_clip(x, model.card.temporal.clip_layout)
        return model(clip.contiguous(memory_format=torch.channels_last_3d)).reshape(n, 1, -1)
    frames = x.reshape(n * t, *x.shape[2:]).contiguous(memory_format=torch.channels_last)
    return model.forward_frames(frames, t).reshape(n, t, -1)


@torch.no_grad()
def frame_logits(model: nn.Module, clips, *, batch_size: int = 8, progress: bool = False,
                 describe: str = "eval") -> tuple[np.ndarray, np.ndarray]:
    """Per-frame logits ``(N, T, C)`` and labels ``(N,)`` of preprocessed clips ``(float32 (T,3,S,S), label)``.

    A clip model (card mode ``window``) gives ``(N, 1, C)``: its one prediction per clip, so every
    readout of :func:`readout_scores` is that prediction.
    """
    was_training = model.training
    model.eval()
    logits_out, labels = [], []
    indices = range(0, len(clips), batch_size)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc=describe, unit="batch", leave=False)
    try:
        for start in indices:
            items = [clips[i] for i in range(start, min(start + batch_size, len(clips)))]
            logits = batch_logits(model, torch.from_numpy(np.stack([it[0] for it in items])))
            logits_out.append(logits.numpy())
            labels.append(np.array([int(it[1]) for it in items], np.int64))
    finally:
        model.train(was_training)
    if not labels:
        raise ValueError("evaluation set is empty")
    return np.concatenate(logits_out), np.concatenate(labels)


def readout_scores(per_frame: np.ndarray, readout: str | int) -> np.ndarray:
    """(N, T, C) per-frame logits -> (N, C) clip scores: mean of all frames or of the last K."""
    if readout == "mean":
        return per_frame.mean(1)
    if isinstance(readout, int) and not isinstance(readout, bool) and readout > 0:
        return per_frame[:, -min(readout, per_frame.shape[1]):].mean(1)
    raise ValueError(f"readout must be 'mean' or a positive number of last frames, got {readout!r}")


def _mean_cross_entropy(scores: np.ndarray, labels: np.ndarray) -> float:
    z = scores - scores.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def evaluate(
    model: nn.Module,
    clips,
    *,
    num_classes: int,
    readout: str | int = "mean",
    batch_size: int = 8,
    progress: bool = False,
    describe: str = "eval",
) -> EvalResult:
    """Evaluate ``model`` on preprocessed clips: items ``(float32 (T, 3, S, S), int label)``."""
    readout_scores(np.zeros((1, 1, 1)), readout)  # validate before the expensive part
    per_frame, labels = frame_logits(model, clips, batch_size=batch_size, progress=progress, describe=describe)
    scores = readout_scores(per_frame, readout)
    return metrics_from_scores(scores, labels, num_classes, loss=_mean_cross_entropy(scores, labels))


def confusion_markdown(confusion: np.ndarray, class_names: Sequence[str], rows: Sequence[int] | None = None,
                       cols: Sequence[int] | None = None) -> str:
    """A Markdown table of (a block of) a confusion matrix: rows = true class, columns = predicted."""
    rows = list(range(len(class_names))) if rows is None else list(rows)
    cols = list(range(len(class_names))) if cols is None else list(cols)
    head = "| true \\ predicted | " + " | ".join(class_names[c] for c in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    body = ["| " + class_names[r] + " | " + " | ".join(str(int(confusion[r, c])) for c in cols) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def print_result(result: EvalResult, class_names: Sequence[str], echo: Callable[[str], None] = print) -> None:
    """Human-readable summary for the CLI."""
    echo(f"clips: {result.num_clips}  top-1: {result.top1:.4f}  top-5: {result.top5:.4f}  "
         f"mean class accuracy: {result.mean_class_accuracy:.4f}")
    for name, acc in zip(class_names, result.per_class_accuracy):
        echo(f"  {name:>16}: {acc:.4f}")
    echo(confusion_markdown(result.confusion, class_names))
