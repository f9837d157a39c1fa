"""Ping-pong state handles shared by the ONNX Runtime and TensorRT online engines.

Each stream batch gets two preallocated sets of state buffers on the engine's device; a step
reads one set and writes the other, so state never crosses to the host between steps.
Consequence, checked on every step: a state handle is valid until its successor is stepped
(then its buffers receive the newer state); using it after that raises instead of computing
with overwritten values. :func:`begin_step` is the step preamble both engines run.
torch-free.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import BackendError, State, check_input


class PingPongState:
    """Handle to one stream batch's state: which of its two buffer sets holds this state.

    ``pair.sets[index]`` holds the values; ``pair.holder[index] is self`` while they are
    still this state's (a later step writes the newer state into the same set).
    """

    __slots__ = ("pair", "index", "batch_size")

    def __init__(self, pair: "BufferPair", index: int, batch_size: int) -> None:
        self.pair = pair
        self.index = index
        self.batch_size = batch_size
        pair.holder[index] = self

    def successor(self) -> "PingPongState":
        """The handle of the state a step from this one writes (into the other set)."""
        return PingPongState(self.pair, 1 - self.index, self.batch_size)

    def check_current(self, owner: str) -> None:
        if self.pair.owner != owner:
            raise BackendError(f"this state was made by {self.pair.owner}, not {owner}; use init_state() of this engine")
        if self.pair.holder[self.index] is not self:
            raise BackendError(
                "stale state: its buffers were reused for a newer state (a state is valid until the state computed "
                "from it is stepped again). Carry the state returned by the latest step(), or start a new stream "
                "with init_state()."
            )


class BufferPair:
    """Two sets of device buffers of one stream batch, plus per-direction cached engine bindings.

    ``bindings[k]`` is whatever the engine needs to run a step that reads ``sets[k]`` and writes
    ``sets[1 - k]`` (an ONNX Runtime IOBinding, a TensorRT address list), built once.
    """

    __slots__ = ("sets", "holder", "bindings", "owner")

    def __init__(self, set_a: list[Any], set_b: list[Any], owner: str) -> None:
        self.sets = (set_a, set_b)
        self.holder: list[PingPongState | None] = [None, None]
        self.bindings: list[Any] = [None, None]
        self.owner = owner


def begin_step(owner: str, state: State, frame: np.ndarray, frame_shape: tuple[int, ...]) -> tuple[PingPongState, np.ndarray]:
    """Validate a step's arguments: the state is this engine's and current, the frame fits it."""
    if not isinstance(state, PingPongState):
        raise BackendError(f"state must come from this engine's init_state()/step(), got {type(state).__name__}")
    state.check_current(owner)
    frame = check_input("frame", frame, frame_shape)
    if frame.shape[0] != state.batch_size:
        raise BackendError(f"frame batch {frame.shape[0]} does not match the state's batch {state.batch_size}")
    return state, frame
