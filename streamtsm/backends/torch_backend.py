"""The torch engine: runs a model straight from its checkpoint (development, training, reference)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..card import ModelCard
from .base import Backend, BackendError, State, check_input


class TorchBackend(Backend):
    """Online models step through ``OnlineTSM``; window models run the clip forward."""

    def __init__(self, model: nn.Module, *, device: str = "cpu", threads: int | None = None) -> None:
        from ..models.online import to_online

        card: ModelCard | None = getattr(model, "card", None)
        if card is None:
            raise BackendError("TorchBackend needs a model with a .card (use create_model or load_model)")
        if threads:
            torch.set_num_threads(threads)
        self.card = card
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.online = to_online(self.model) if card.is_online else None
        self.name = f"torch-{self.device.type}"
        crop = card.preprocessing.crop_size
        self._frame_shape = (-1, 3, crop, crop)

    def init_state(self, batch_size: int = 1) -> State:
        if self.online is None:
            return super().init_state(batch_size)
        crop = self.card.preprocessing.crop_size
        return self.online.init_state(batch_size, crop, crop)

    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        if self.online is None:
            return super().step(frame, state)
        x = torch.from_numpy(check_input("frame", frame, self._frame_shape)).to(self.device)
        with torch.inference_mode():
            logits, *new_state = self.online(x, *state)
        return logits.float().cpu().numpy(), tuple(new_state)

    def state_arrays(self, state: State) -> list[np.ndarray]:
        return [s.cpu().numpy().copy() for s in state]

    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        if clip.ndim != 5:
            raise BackendError(f"clip must be 5-D ({self.card.temporal.clip_layout}), got shape {clip.shape}")
        x = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()
