"""One small interface for every inference engine (torch, ONNX Runtime, TensorRT).

Sessions talk to a ``Backend`` only, without branching on which engine it is. Tensors cross
the interface as numpy float32 arrays named as in the exported graphs (``frame``/``clip`` in,
``logits`` out). The online shift state is an opaque ``State`` owned by the caller: each engine
keeps it where it is computed (torch tensors, ONNX Runtime OrtValues, TensorRT device buffers)
so that no host copies happen between steps. torch-free module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..card import ModelCard

State = Any  # engine-specific; only the backend that made it may read it


class BackendError(RuntimeError):
    """An engine is unavailable, or a model does not fit the engine or the call."""


class Backend(ABC):
    """Runs one model. Online models use ``init_state``/``step``; window models use ``run_clip``."""

    name: str
    card: ModelCard

    # -- online -----------------------------------------------------------------------------
    def init_state(self, batch_size: int = 1) -> State:
        """Zero state for ``batch_size`` new streams."""
        raise BackendError(f"{self.card.arch} is a window model: it has no per-frame state; use run_clip")

    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """frame (N, 3, H, W) float32 -> (logits (N, K) float32, new state). Pure: ``state`` is not changed."""
        raise BackendError(f"{self.card.arch} is a window model: it takes clips, not single frames; use run_clip")

    def state_arrays(self, state: State) -> list[np.ndarray]:
        """Host copies of a state (for tests and debugging; not on the hot path)."""
        raise BackendError(f"{self.name} does not expose its state")

    # -- window -----------------------------------------------------------------------------
    @abstractmethod
    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        """clip in ``card.temporal.clip_layout`` ((N,3,T,H,W) or (N,T,3,H,W)) -> logits (N, K)."""

    def close(self) -> None:
        """Release engine resources (device memory, sessions)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} ({self.card.arch}, {'online' if self.card.is_online else 'window'})"


def check_input(name: str, array: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
    """Validate an input tensor against the graph's shape (-1 = any) and make it float32 C-contiguous."""
    if not isinstance(array, np.ndarray):
        raise BackendError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, array.shape)):
        raise BackendError(f"{name} has shape {array.shape}, the model expects {tuple(expected)} (-1 = any)")
    if array.dtype != np.float32:
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)
