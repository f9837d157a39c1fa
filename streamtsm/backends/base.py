"""The two engine interfaces every inference engine (torch, ONNX Runtime, TensorRT) implements.

An online model (online TSM) and a clip model (3D CNNs, TSM/TSN run on clips) are used in
different ways, so they get different interfaces instead of one class whose every method
branches on the card:

* :class:`OnlineEngine`: ``init_state(n)`` and ``step(frame, state) -> (logits, state)``.
  The shift state is an opaque handle owned by the caller; each engine keeps it where it is
  computed (torch tensors, ONNX Runtime OrtValues, TensorRT device buffers), so no host
  copies happen between steps.
* :class:`ClipEngine`: ``run_clip(clip) -> logits``.

Tensors cross the interface as numpy float32 arrays named as in the exported graphs (see
:mod:`streamtsm.contract`). After :meth:`Engine.close` every method raises
:class:`BackendError`; closing twice is harmless. torch-free module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from ..arguments import check_whole
from ..card import ModelCard

State = Any  # engine-specific; only the engine that made it may read it


class BackendError(RuntimeError):
    """An engine is unavailable, closed, or a model does not fit the engine or the call."""


class StateLost(BackendError):
    """The engine no longer holds the stream's state (a Triton server restarted, or let the sequence
    expire): the frame did not go through. An online session starts the stream again from that frame
    (its output carries a ``RECONNECT`` reset), so a plain ``Recognizer.run`` survives it."""


class Engine(ABC):
    """What every engine has: a name, the model card, and a lifecycle."""

    name: str
    card: ModelCard
    _closed: bool = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release engine resources (sessions, device memory). Idempotent."""
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Subclasses free their resources here (called once)."""

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self.name} engine for {self.card.arch} is closed; open a new one")

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.name} ({self.card.arch}, {self.card.temporal.mode})"


class OnlineEngine(Engine):
    """Steps an online model one frame (per stream) at a time, carrying its shift state."""

    #: True where :meth:`step_host` may run from several threads at once, each call on rows of
    #: its own (ONNX Runtime's ``run`` is thread-safe); MultiRecognizer lanes need it.
    concurrent_step_host: bool = False

    @abstractmethod
    def init_state(self, batch_size: int = 1) -> State:
        """Zero state for ``batch_size`` new streams."""

    @abstractmethod
    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """frame (N, 3, H, W) float32 -> (logits (N, K) float32, new state). ``state`` is not changed."""

    def state_arrays(self, state: State) -> list[np.ndarray]:
        """Host copies of a state (for tests and debugging; not on the hot path)."""
        raise BackendError(f"{self.name} does not expose its state")

    def step_host(self, frame: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """One step with the state as host arrays, one row per stream, in ``card.state`` order.

        For batching streams whose steps fall due at different times: the caller gathers the
        due streams' state rows, steps them together, and scatters the new rows back.
        """
        raise BackendError(f"{self.name} cannot step host-side state; use init_state()/step()")

    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        raise BackendError(f"{self.card.arch} is an online (per-frame) model: use init_state()/step(), not run_clip")


class ClipEngine(Engine):
    """Runs a clip model on whole clips. ``init_state``/``step`` exist only to say so.

    ``fixed_clip_len``: the only clip length the engine runs (an exported graph's ``T`` is the
    card's ``clip_len``), or None when any length works (torch), so a session can refuse
    another ``window`` before the first clip instead of failing at it.
    """

    fixed_clip_len: int | None = None

    @abstractmethod
    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        """clip in ``card.temporal.clip_layout`` ((N,3,T,H,W) or (N,T,3,H,W)) -> logits (N, K)."""

    def init_state(self, batch_size: int = 1) -> State:
        raise BackendError(f"{self.card.arch} is a window model: it has no per-frame state; use run_clip")

    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        raise BackendError(f"{self.card.arch} is a window model: it takes clips, not single frames; use run_clip")


MAX_THREADS = 256


def check_threads(threads: object) -> int | None:
    """An engine's thread count: None (the engine's default) or a whole number from 1 to ``MAX_THREADS``
    (``"two"`` was a bare ValueError; 0 and -1 quietly meant the default)."""
    return check_whole("threads", threads, 1, MAX_THREADS, BackendError, none="the engine's default")


def check_input(name: str, array: np.ndarray, expected: tuple[int, ...]) -> np.ndarray:
    """Validate an input tensor against the graph's shape (-1 = any) and make it float32 C-contiguous."""
    if not isinstance(array, np.ndarray):
        raise BackendError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.ndim != len(expected) or any(e not in (-1, a) for e, a in zip(expected, array.shape)):
        raise BackendError(f"{name} has shape {array.shape}, the model expects {tuple(expected)} (-1 = any)")
    if array.dtype != np.float32:
        array = array.astype(np.float32)
    return np.ascontiguousarray(array)
