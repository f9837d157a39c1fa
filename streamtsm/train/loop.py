"""The training loop: seed 002's recipe (SGD momentum 0.9, weight decay 1e-4, gradient clipping at
norm 40, step LR, cross-entropy) with a progress bar, per-epoch checkpoints and resume.

Two kinds of targets, chosen per dataset item:

* an ``int`` -- a clip label; the loss is cross-entropy of the *mean* of the T frames' logits
  (the TSN/TSM average consensus the offline model computes);
* an ``int64 (T,)`` array -- one label per frame (``IGNORE`` = no loss on that frame); the loss is
  cross-entropy of each frame's own logits. This is how an *online* model should be trained: live,
  the logits of every step are used on their own, and a unidirectional TSM's frame-t logits are
  exactly its online output at step t. (See ``streamtsm.train.default_model``.)

Clip models (3D CNNs, ``card.temporal.mode == "window"``) train on the same items: the frames are
stacked in the card's ``clip_layout`` and the model gives one logit vector per clip; a per-frame
target array becomes the clip's target with :func:`clip_targets` (the label of its last labelled
frame -- what a sliding window ending there should report).

Checkpoints: after every epoch the weights go to ``out`` with :func:`save_model` (safetensors +
card) and the optimiser/epoch to ``<out>.resume.pt``; ``resume=True`` continues from there. The
resume file holds tensors and numbers only, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..checkpoints import save_model
from .augment import AugmentConfig, EvalTransform, TrainTransform
from .batchnorm import recalibrate_batchnorm
from .evaluate import EvalResult, batch_logits, evaluate, is_clip_model

__all__ = ["IGNORE", "TrainConfig", "EpochLog", "TrainError", "AugmentedClips", "train_model", "resume_path_for", "clip_loss",
           "clip_targets", "is_clip_model", "CentredClips", "recalibration_clips"]

log = logging.getLogger(__name__)

IGNORE = -100  # per-frame label meaning "no loss on this frame"


class TrainError(RuntimeError):
    """Training cannot start or continue (bad configuration, missing resume file, ...)."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (defaults: seed 002's sgd_tsm schedule scaled to one device)."""

    epochs: int = 50
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float = 40.0
    lr_steps: tuple[int, ...] = (20, 40)  # epochs (0-based start) at which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1
    lr_cycle_epochs: int = 0  # > 0: the step schedule restarts every this many epochs (warm restarts)
    warmup_iters: int = 0  # linear LR warm-up over the first iterations (from-scratch training)
    seed: int = 0
    num_workers: int = 0
    eval_readout: str | int = "mean"
    optimizer: str = "sgd"  # "sgd" (seed 002) or "adamw" (converges faster from random init)
    #: training clips (centre-sampled, eval preprocessing) over which the BatchNorm statistics are
    #: recomputed before each validation and save (see ``train.batchnorm``); 0 keeps the running averages
    bn_recalibration_clips: int = 128

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.optimizer not in ("sgd", "adamw"):
            raise TrainError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if not self.lr > 0 or self.grad_clip <= 0:
            raise TrainError(f"lr and grad_clip must be positive, got {self.lr} and {self.grad_clip}")
        if self.bn_recalibration_clips < 0:
            raise TrainError(f"bn_recalibration_clips must be >= 0 (0 = off), got {self.bn_recalibration_clips}")
        if self.lr_cycle_epochs < 0:
            raise TrainError(f"lr_cycle_epochs must be >= 0 (0 = no restarts), got {self.lr_cycle_epochs}")

    def lr_at(self, epoch: int, iteration: int) -> float:
        """Learning rate for ``epoch`` (0-based) at global ``iteration``.

        With ``lr_cycle_epochs`` the step schedule is applied within each cycle, so a run of two
        cycles is exactly "train, then resume with the same schedule again" -- the way a model that
        was still improving when its LR decayed is trained further without starting over.
        """
        in_cycle = epoch % self.lr_cycle_epochs if self.lr_cycle_epochs else epoch
        lr = self.lr * self.lr_gamma ** sum(1 for s in self.lr_steps if in_cycle >= s)
        if self.warmup_iters and iteration < self.warmup_iters:
            lr *= (iteration + 1) / self.warmup_iters
        return lr


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    lr: float
    seconds: float
    clips_per_second: float
    val: dict[str, Any] | None = None


class AugmentedClips(Dataset):
    """Wraps a raw clip set (``load(i, rng) -> (uint8 (T,H,W,3) BGR, label)``) with a transform.

    The random stream of item ``i`` in epoch ``e`` is derived from ``(seed, e, i)``, so a run is
    reproducible whatever the number of loader workers, and a resumed run sees the same
    augmentation as an uninterrupted one.
    """

    def __init__(self, clips: Any, transform: Callable, seed: int = 0) -> None:
        self.clips, self.transform, self.seed, self.epoch = clips, transform, seed, 0

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frames, label = self.clips.load(index, rng)
        return self.transform(frames, label, rng)


class CentredClips(Dataset):
    """A raw clip set with the deterministic evaluation view: centred segments, the runtime preprocessing.

    ``indices`` picks a subset (default: all). Used for validation and BatchNorm recalibration,
    which must not depend on the epoch's random draws.
    """

    def __init__(self, clips: Any, preprocessing: Any, indices: Sequence[int] | None = None) -> None:
        self.clips, self.transform = clips, EvalTransform(preprocessing)
        self.indices = list(range(len(clips))) if indices is None else list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        frames, label = self.clips.load(self.indices[index], None)
        return self.transform(frames, label)


def recalibration_clips(train_clips: Any, preprocessing: Any, count: int, seed: int) -> CentredClips | None:
    """A fixed, seeded subset of ``count`` training clips for :func:`recalibrate_batchnorm` (None when off)."""
    if count <= 0:
        return None
    order = np.random.default_rng([seed, 7]).permutation(len(train_clips))[:count]
    return CentredClips(train_clips, preprocessing, sorted(int(i) for i in order))


def _collate(items: Sequence[tuple[np.ndarray, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.stack([it[0] for it in items]))
    labels = [it[1] for it in items]
    if isinstance(labels[0], np.ndarray):
        y = torch.from_numpy(np.stack(labels).astype(np.int64))
    else:
        y = torch.tensor([int(v) for v in labels], dtype=torch.long)
    return x, y


def clip_targets(y: torch.Tensor) -> torch.Tensor:
    """Per-frame targets (N, T) -> per-clip targets (N,): each clip's last target that is not ``IGNORE``."""
    labelled = y != IGNORE
    if not bool(labelled.any(1).all()):
        raise TrainError("a clip has no labelled frame (all targets IGNORE); it cannot train a clip model")
    last = (labelled * torch.arange(1, y.shape[1] + 1)).argmax(1)
    return y[torch.arange(y.shape[0]), last]


def clip_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for a batch ``x`` (N, T, 3, S, S): per clip (y (N,)) or per frame (y (N, T))."""
    logits = batch_logits(model, x)
    if is_clip_model(model):
        return nn.functional.cross_entropy(logits[:, 0], clip_targets(y) if y.dim() == 2 else y)
    if y.dim() == 2:
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
    return nn.functional.cross_entropy(logits.mean(1), y)


def resume_path_for(out: Path) -> Path:
    return Path(out).with_suffix(".resume.pt")


def _save_resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, iteration: int,
                 history: list[EpochLog]) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": torch.tensor(epoch),
        "iteration": torch.tensor(iteration),
        "train_loss": torch.tensor([h.train_loss for h in history], dtype=torch.float64),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def train_model(
    model: nn.Module,
    train_clips: Any,
    *,
    config: TrainConfig,
    out: str | Path,
    augment: AugmentConfig = AugmentConfig(),
    val_clips: Any | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Train ``model`` (a TSM/TSN with a ``.card``) in place; returns one log entry per epoch run.

    ``train_clips``/``val_clips`` provide ``len()`` and ``load(i) -> (uint8 (T,H,W,3), label)``.
    Preprocessing comes from ``model.card.preprocessing`` (the card that is saved with the weights).
    """
    card = getattr(model, "card", None)
    if card is None:
        raise TrainError("train_model needs a model made by streamtsm.create_model or load_model (it carries a .card)")
    if len(train_clips) == 0:
        raise TrainError("the training set is empty: check the annotation file and the --skip-bad report")
    out = Path(out)
    if out.suffix != ".safetensors":
        out = out.with_suffix(".safetensors")
    resume_file = resume_path_for(out)
    torch.manual_seed(config.seed)
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                                           weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, iteration = 0, 0
    if resume:
        if not resume_file.exists():
            raise TrainError(f"--resume: no resume state at {resume_file}; start without --resume or point --out at the run to continue")
        state = torch.load(resume_file, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as exc:
            raise TrainError(f"--resume: {resume_file} was saved from a different model ({str(exc).splitlines()[0]})") from None
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, iteration = int(state["epoch"]) + 1, int(state["iteration"])
        log.info("resumed from %s at epoch %d", resume_file, start_epoch)
        if start_epoch >= config.epochs:
            log.info("nothing to do: the run already finished its %d epochs", config.epochs)
    train_set = AugmentedClips(train_clips, TrainTransform(card.preprocessing, augment), seed=config.seed)
    val_set = CentredClips(val_clips, card.preprocessing) if val_clips is not None else None
    recal_set = recalibration_clips(train_clips, card.preprocessing, config.bn_recalibration_clips, config.seed)
    history: list[EpochLog] = []
    # see clip_loss; saved tensors are made contiguous again
    model.to(memory_format=torch.channels_last_3d if is_clip_model(model) else torch.channels_last)
    for epoch in range(start_epoch, config.epochs):
        train_set.epoch = epoch
        order = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=order,
                            num_workers=config.num_workers, collate_fn=_collate, drop_last=len(train_set) > config.batch_size)
        model.train()
        total, count, t0 = 0.0, 0, time.perf_counter()
        batches: Any = loader
        if progress:
            from tqdm import tqdm

            batches = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False)
        lr = config.lr_at(epoch, iteration)
        for x, y in batches:
            lr = config.lr_at(epoch, iteration)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = clip_loss(model, x, y)
            if not torch.isfinite(loss):
                raise TrainError(f"loss became {float(loss)} at epoch {epoch + 1}, iteration {iteration}: lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            total += float(loss.detach()) * x.shape[0]
            count += x.shape[0]
            iteration += 1
            if progress:
                batches.set_postfix(loss=f"{total / count:.4f}", lr=f"{lr:.2g}")
        if recal_set is not None:
            recalibrate_batchnorm(model, recal_set, batch_logits, batch_size=config.batch_size)
        seconds = time.perf_counter() - t0
        entry = EpochLog(epoch=epoch, train_loss=total / max(count, 1), lr=lr, seconds=seconds,
                         clips_per_second=count / max(seconds, 1e-9))
        if val_set is not None:
            result: EvalResult = evaluate(model, val_set, num_classes=card.num_classes, readout=config.eval_readout,
                                          batch_size=config.batch_size)
            entry.val = {"top1": result.top1, "top5": result.top5, "mean_class_accuracy": result.mean_class_accuracy,
                         "loss": result.loss}
        model.eval()
        save_model(model, out)
        _save_resume(resume_file, model, optimizer, epoch, iteration, history + [entry])
        history.append(entry)
        log.info("epoch %d/%d: loss %.4f, lr %.3g, %.0f s (%.1f clips/s)%s", epoch + 1, config.epochs, entry.train_loss,
                 lr, seconds, entry.clips_per_second, f", val {entry.val}" if entry.val else "")
        if on_epoch is not None:
            on_epoch(entry)
    model.eval()
    return history


def config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)
