"""The training loop: seed 002's recipe (SGD momentum 0.9, weight decay 1e-4, gradient clipping at
norm 40, step LR, cross-entropy) with a progress bar, per-epoch checkpoints and resume.

Two kinds of targets, chosen per dataset item:

* an ``int`` -- a clip label; the loss is cross-entropy of the *mean* of the T frames' logits
  (the TSN/TSM average consensus the offline model computes);
* an ``int64 (T,)`` array -- one label per frame (``IGNORE`` = no loss on that frame); the loss is
  cross-entropy of each frame's own logits. This is how an *online* model should be trained: live,
  the logits of every step are used on their own, and a unidirectional TSM's frame-t logits are
  exactly its online output at step t. (See ``streamtsm.train.default_model``.)

Clip models (3D CNNs, no ``forward_frames``) train on the same items: the frames are
stacked in the card's ``clip_layout`` and the model gives one logit vector per clip; a per-frame
target array becomes the clip's target with :func:`clip_targets` (the label of its last labelled
frame -- what a sliding window ending there should report).

Checkpoints: after every epoch the weights go to ``out`` (safetensors + card) and the optimiser,
epoch and card to ``<out>.resume.pt``, both replaced atomically; ``resume=True`` continues from
there and refuses a run whose card (architecture, classes, input size, fps, ...) differs from the
one being asked for. The resume file holds tensors, numbers and strings only, so it loads with
``torch.load(weights_only=True)``.

Validation: with ``val_clips`` the model is scored after every epoch (top-1; a tie is broken by a
loss lower by at least ``MIN_LOSS_DELTA``); ``out`` then holds the *best* epoch's weights, the
model ends with them, and ``config.patience`` stops the run after that many epochs without
improvement. Before each validation and save the BatchNorm statistics are recomputed for the
current weights (``train.batchnorm``).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..card import ModelCard
from ..checkpoints import load_model
from .augment import AugmentConfig, EvalTransform, TrainTransform
from .batchnorm import recalibrate_batchnorm
from .evaluate import EvalResult, batch_logits, evaluate, is_clip_model
from .finetune import keep_frozen_batchnorm_in_eval
from .outputs import check_output, resume_path_for, save_model_atomically, temp_path

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
    #: stop after this many epochs without a better validation score (0 = never; needs val_clips)
    patience: int = 0
    #: wall-clock budget in minutes for this call (0 = none): no epoch starts that the mean epoch
    #: time so far says would end past it, so a run of "at most 10 minutes" keeps to that
    max_minutes: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if self.optimizer not in ("sgd", "adamw"):
            raise TrainError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if not self.lr > 0 or self.grad_clip <= 0:
            raise TrainError(f"lr and grad_clip must be positive, got {self.lr} and {self.grad_clip}")
        if self.patience < 0:
            raise TrainError(f"patience must be >= 0 (0 = no early stopping), got {self.patience}")
        if not 0 <= self.max_minutes <= 7 * 24 * 60:
            raise TrainError(f"max_minutes must be between 0 (no budget) and a week (10080), got {self.max_minutes}")
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
    best: bool = False  # the best validation score so far: these weights are in ``out``
    #: on the last epoch of a run that ended before ``config.epochs``: "patience" or "budget"
    stopped_by: str | None = None


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


#: card fields a resumed run must share with the run it continues (the description may change)
_RESUME_FIELDS = ("arch", "arch_kwargs", "class_names", "preprocessing", "temporal", "shift_mode", "background_classes")


def _card_fields(card: ModelCard) -> dict[str, Any]:
    d = json.loads(card.to_json())  # JSON types (lists, not tuples), as stored in the resume file
    return {k: d.get(k) for k in _RESUME_FIELDS}


#: a validation loss must drop by this much to count as better when top-1 ties (noise is not progress)
MIN_LOSS_DELTA = 1e-3


def _improves(val: dict[str, Any], best: tuple[int, float, float] | None) -> bool:
    """Better than ``best`` (epoch, top1, loss): a higher top-1, or the same top-1 and a clearly lower loss."""
    if best is None:
        return True
    _, top1, loss = best
    return val["top1"] > top1 or (val["top1"] == top1 and val["loss"] < loss - MIN_LOSS_DELTA)


def _save_resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int, iteration: int,
                 history: list[EpochLog], best: tuple[int, float, float] | None, frozen: int) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": torch.tensor(epoch),
        "iteration": torch.tensor(iteration),
        "train_loss": torch.tensor([h.train_loss for h in history], dtype=torch.float64),
        "card": json.dumps(_card_fields(model.card)),
        "frozen_parameters": torch.tensor(frozen),
    }
    if best is not None:
        state["best"] = torch.tensor(best, dtype=torch.float64)  # (epoch, top1, loss)
    tmp = temp_path(path)
    try:
        torch.save(state, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _load_resume(path: Path, model: nn.Module, frozen: int) -> dict[str, Any]:
    """The resume state of a run that is this model's run, or a TrainError saying why not."""
    if not path.exists():
        raise TrainError(f"--resume: no resume state at {path}; start without --resume or point --out at the run to continue")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # an empty, truncated or foreign file fails in many ways (EOFError, RuntimeError, ...)
        raise TrainError(f"--resume: {path} is unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else 'empty'}); "
                         "it is probably truncated: restore it, or start over with --overwrite") from None
    if not isinstance(state, dict) or not {"model", "optimizer", "epoch", "iteration"} <= set(state):
        raise TrainError(f"--resume: {path} is not a streamtsm resume file; start over with --overwrite")
    if "card" in state:
        saved, wanted = json.loads(state["card"]), _card_fields(model.card)
        diff = [k for k in _RESUME_FIELDS if saved.get(k) != wanted.get(k)]
        if diff:
            detail = "; ".join(f"{k}: run {saved.get(k)!r} vs now {wanted.get(k)!r}" for k in diff[:3])
            raise TrainError(f"--resume: {path} belongs to a run with other settings ({detail}); resume with that run's "
                             "options, or start a new run with another --out")
    if "frozen_parameters" in state and int(state["frozen_parameters"]) != frozen:
        raise TrainError(f"--resume: {path} was trained with other frozen stages; resume with the same --freeze-stages")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise TrainError(f"--resume: {path} was saved from a different model ({str(exc).splitlines()[0]})") from None
    return state


def _over_budget(max_minutes: float, elapsed_s: float, epochs_done: int) -> bool:
    """Would one more epoch, as long as the mean one so far, end past the budget? (0 = no budget)."""
    if not max_minutes or not epochs_done:
        return False
    return elapsed_s + elapsed_s / epochs_done > 60.0 * max_minutes


def train_model(
    model: nn.Module,
    train_clips: Any,
    *,
    config: TrainConfig,
    out: str | Path,
    augment: AugmentConfig = AugmentConfig(),
    val_clips: Any | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Train ``model`` (a TSM/TSN or 3D CNN with a ``.card``) in place; returns one log entry per epoch run.

    ``train_clips``/``val_clips`` provide ``len()`` and ``load(i, rng) -> (uint8 (T,H,W,3), label)``.
    Preprocessing comes from ``model.card.preprocessing`` (the card that is saved with the weights).
    Parameters with ``requires_grad=False`` (frozen stages) are not trained and their BatchNorm
    statistics are kept. ``out`` is checked before the first epoch: an existing model there is
    replaced only with ``overwrite`` (or continued with ``resume``).
    """
    card = getattr(model, "card", None)
    if card is None:
        raise TrainError("train_model needs a model made by streamtsm.create_model or load_model (it carries a .card)")
    if card.num_classes < 2:
        raise TrainError(f"the model has {card.num_classes} class: a classifier needs at least 2 (add a background "
                         "class such as no_action, or another gesture)")
    if len(train_clips) == 0:
        raise TrainError("the training set is empty: check the annotation file and the --skip-bad report")
    if config.patience and val_clips is None:
        raise TrainError("early stopping (patience) needs validation clips: pass --val or --val-fraction")
    out = check_output(out, resume=resume, overwrite=overwrite)
    resume_file = resume_path_for(out)
    torch.manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TrainError("every parameter is frozen: freeze fewer stages")
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                                           weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, iteration = 0, 0
    best: tuple[int, float, float] | None = None  # (epoch, top1, loss)
    if resume:
        state = _load_resume(resume_file, model, frozen)
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, iteration = int(state["epoch"]) + 1, int(state["iteration"])
        if "best" in state:
            b = state["best"].tolist()
            best = (int(b[0]), float(b[1]), float(b[2]))
        log.info("resumed from %s at epoch %d", resume_file, start_epoch)
        if start_epoch >= config.epochs:
            log.info("nothing to do: the run already finished its %d epochs", config.epochs)
    train_set = AugmentedClips(train_clips, TrainTransform(card.preprocessing, augment), seed=config.seed)
    val_set = CentredClips(val_clips, card.preprocessing) if val_clips is not None else None
    recal_set = recalibration_clips(train_clips, card.preprocessing, config.bn_recalibration_clips, config.seed)
    history: list[EpochLog] = []
    best_state: dict[str, torch.Tensor] | None = None
    # see batch_logits; saved tensors are made contiguous again
    model.to(memory_format=torch.channels_last_3d if is_clip_model(model) else torch.channels_last)
    run_t0 = time.perf_counter()
    for epoch in range(start_epoch, config.epochs):
        if best is not None and config.patience and epoch - best[0] > config.patience:
            log.info("early stop: no better validation score for %d epochs (best: epoch %d)", config.patience, best[0] + 1)
            if history:
                history[-1].stopped_by = "patience"
            break
        if _over_budget(config.max_minutes, time.perf_counter() - run_t0, epoch - start_epoch):
            log.info("time budget of %g min reached after %d epochs", config.max_minutes, epoch - start_epoch)
            if history:
                history[-1].stopped_by = "budget"
            break
        train_set.epoch = epoch
        order = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=order,
                            num_workers=config.num_workers, collate_fn=_collate, drop_last=len(train_set) > config.batch_size)
        model.train()
        keep_frozen_batchnorm_in_eval(model)
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
            nn.utils.clip_grad_norm_(params, config.grad_clip)
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
        model.eval()
        if val_set is not None:
            result: EvalResult = evaluate(model, val_set, num_classes=card.num_classes, readout=config.eval_readout,
                                          batch_size=config.batch_size)
            entry.val = {"top1": result.top1, "top5": result.top5, "mean_class_accuracy": result.mean_class_accuracy,
                         "loss": result.loss}
            entry.best = _improves(entry.val, best)
            if entry.best:
                best = (epoch, result.top1, result.loss)
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if val_set is None or entry.best:
            save_model_atomically(model, out)
        _save_resume(resume_file, model, optimizer, epoch, iteration, history + [entry], best, frozen)
        history.append(entry)
        # the caller's on_epoch reports it (the CLI prints a line); otherwise the log does
        log.log(logging.DEBUG if on_epoch else logging.INFO,
                "epoch %d/%d: loss %.4f, lr %.3g, %.0f s (%.1f clips/s)%s", epoch + 1, config.epochs, entry.train_loss,
                 lr, seconds, entry.clips_per_second, f", val {entry.val}" if entry.val else "")
        if on_epoch is not None:
            on_epoch(entry)
    if val_set is not None and best is not None:
        if best_state is None:  # resumed after the best epoch: it is in ``out``
            best_state = load_model(out).state_dict()
        model.load_state_dict(best_state)
    model.eval()
    return history
