"""The online form of a TSM network: one frame in, logits and the new shift state out.

``OnlineTSM`` is a pure function ``forward(frame, *state) -> (logits, *new_state)``. state[i]
is the cached channel slice of shift point i from the previous frame, shape
(N, C_i // shift_div, H_i, W_i), zeros at stream start. The module holds no state of its own:
whoever calls it (a session, an exported ONNX graph, a Triton sequence batcher) carries it.

Exactness: for a unidirectional model, stepping over frames 0..T-1 from zero state gives the
same per-frame logits as the offline forward of the clip (tested), because at each shift
point the offline shift hands frame t the fold of frame t-1 — exactly what the cache holds.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from .shift import online_shift
from .tsm import TemporalShiftNet


class NotOnlineCapableError(ValueError):
    """The model was trained with a shift that needs future frames (bidirectional)."""


class OnlineTSM(nn.Module):
    """Per-frame wrapper around a ``TemporalShiftNet`` (weights shared, nothing copied)."""

    def __init__(self, model: TemporalShiftNet, *, approximate_bidirectional: bool = False) -> None:
        super().__init__()
        if not isinstance(model, TemporalShiftNet):
            raise TypeError(
                f"to_online needs a TSM network (tsm_mobilenetv2, tsm_resnet50, …), got {type(model).__name__}. "
                "3D CNNs run as window models (WindowSession)."
            )
        mode = model.shift_mode
        if mode == "bi" and not approximate_bidirectional:
            raise NotOnlineCapableError(
                "this TSM model uses the bidirectional (offline) shift: channels [0, fold) come from the NEXT frame, "
                "which a live stream does not have yet. Use a model trained with shift_mode='uni' "
                "(e.g. the official online Jester demo weights or one you fine-tune with `streamtsm train`), or pass "
                "approximate_bidirectional=True to feed the past fold only and keep the current frame in the future "
                "fold (accuracy will drop; outputs will not match the offline model)."
            )
        self.model = model
        self.approximate = mode == "bi"
        if self.approximate:
            warnings.warn(
                "running a bidirectional TSM online as an APPROXIMATION: the future fold sees the current frame "
                "instead of the next one; predictions differ from the offline model.",
                stacklevel=2,
            )
        blocks = model.blocks()
        points = model.shift_points() if mode != "none" else ()
        self._points = {i: self._state_channels(blocks[i].in_channels, model.shift_div) for i in points}

    def _state_channels(self, channels: int, shift_div: int) -> tuple[int, int]:
        fold = channels // shift_div
        # uni: [0, fold) come from t-1.  bi approximated: the past fold [fold, 2·fold) comes from t-1.
        return (fold, 2 * fold) if self.approximate else (0, fold)

    @property
    def card(self):  # the wrapped model's card, if any
        return getattr(self.model, "card", None)

    @property
    def num_states(self) -> int:
        return len(self._points)

    def state_shapes(self, batch_size: int = 1, height: int | None = None, width: int | None = None) -> list[tuple[int, ...]]:
        """Shapes of the state tensors for frames of the given size, derived by a dry run."""
        if height is None or width is None:
            crop = self.card.preprocessing.crop_size if self.card is not None else 224
            height, width = height or crop, width or crop
        shapes: list[tuple[int, ...]] = []
        param = next(self.model.parameters())
        was_training = self.model.training
        self.model.eval()  # a dry run in train mode would update BatchNorm statistics
        try:
            with torch.no_grad():
                x = self.model.forward_stem(torch.zeros(1, 3, height, width, dtype=param.dtype, device=param.device))
                for i, block in enumerate(self.model.blocks()):
                    if i in self._points:
                        start, stop = self._points[i]
                        shapes.append((batch_size, stop - start, x.shape[2], x.shape[3]))
                    x = block(x)
        finally:
            self.model.train(was_training)
        return shapes

    def init_state(self, batch_size: int = 1, height: int | None = None, width: int | None = None) -> tuple[Tensor, ...]:
        """Zero state for a new stream."""
        param = next(self.model.parameters())
        return tuple(
            torch.zeros(s, dtype=param.dtype, device=param.device) for s in self.state_shapes(batch_size, height, width)
        )

    def forward(self, frame: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """frame (N, 3, H, W), state as from ``init_state`` -> (logits (N, K), *new_state)."""
        if len(state) != len(self._points):
            raise ValueError(f"expected {len(self._points)} state tensors, got {len(state)}; start with init_state()")
        x = self.model.forward_stem(frame)
        new_state: list[Tensor] = []
        k = 0
        for i, block in enumerate(self.model.blocks()):
            if i in self._points:
                shifted, cache = online_shift(x, state[k], self._points[i])
                new_state.append(cache)
                k += 1
                x = block.forward_branch_input(x, shifted)
            else:
                x = block(x)
        return (self.model.forward_frame_head(x), *new_state)


def to_online(model: nn.Module, *, approximate_bidirectional: bool = False) -> OnlineTSM:
    """The per-frame form of a TSM model. Refuses bidirectional models unless told to approximate."""
    online = OnlineTSM(model, approximate_bidirectional=approximate_bidirectional)
    online.train(model.training)
    return online
