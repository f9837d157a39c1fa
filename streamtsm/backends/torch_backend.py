"""The torch engines: run a model straight from its weights (reference, development, training).

torch is the reference engine, not the default one: its numbers are what a checkpoint
means, and exports are checked against it. ``threads`` sets torch's intra-op thread count,
which is process-global (it changes every torch model in the process).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..card import ModelCard
from ..models.online import to_online
from .base import BackendError, ClipEngine, OnlineEngine, State, check_input, check_threads


def _prepare(model: nn.Module, device: str, threads: int | None) -> tuple[ModelCard, torch.device, nn.Module]:
    card: ModelCard | None = getattr(model, "card", None)
    if card is None:
        raise BackendError("a torch engine needs a model with a .card (use create_model or load_model)")
    threads = check_threads(threads)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    return card, dev, model.eval().to(dev)


class TorchOnline(OnlineEngine):
    """An online TSM stepped through :class:`~streamtsm.models.OnlineTSM`; the state is a tuple of tensors."""

    def __init__(self, model: nn.Module, *, device: str = "cpu", threads: int | None = None) -> None:
        self.card, self.device, self.model = _prepare(model, device, threads)
        self.online = to_online(self.model)
        self.name = f"torch-{self.device.type}"
        crop = self.card.preprocessing.crop_size
        self._frame_shape = (-1, 3, crop, crop)

    def init_state(self, batch_size: int = 1) -> State:
        self._check_open()
        crop = self.card.preprocessing.crop_size
        return self.online.init_state(batch_size, crop, crop)

    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        self._check_open()
        x = torch.from_numpy(check_input("frame", frame, self._frame_shape)).to(self.device)
        with torch.inference_mode():
            logits, *new_state = self.online(x, *state)
        return logits.float().cpu().numpy(), tuple(new_state)

    def state_arrays(self, state: State) -> list[np.ndarray]:
        return [s.cpu().numpy().copy() for s in state]

    def step_host(self, frame: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        state = tuple(torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32)).to(self.device) for s in states)
        logits, new_state = self.step(frame, state)
        return logits, self.state_arrays(new_state)

    def _release(self) -> None:
        self.model = self.online = None  # type: ignore[assignment]


class TorchClip(ClipEngine):
    """A clip model's forward pass."""

    def __init__(self, model: nn.Module, *, device: str = "cpu", threads: int | None = None) -> None:
        self.card, self.device, self.model = _prepare(model, device, threads)
        self.name = f"torch-{self.device.type}"

    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        self._check_open()
        if clip.ndim != 5:
            raise BackendError(f"clip must be 5-D ({self.card.temporal.clip_layout}), got shape {clip.shape}")
        x = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()

    def _release(self) -> None:
        self.model = None  # type: ignore[assignment]


def open_torch(model: nn.Module, *, device: str = "cpu", threads: int | None = None) -> TorchOnline | TorchClip:
    """The torch engine for a model with a card (online or clip, as its card says)."""
    card: ModelCard | None = getattr(model, "card", None)
    if card is None:
        raise BackendError("a torch engine needs a model with a .card (use create_model or load_model)")
    cls = TorchOnline if card.is_online else TorchClip
    return cls(model, device=device, threads=threads)
