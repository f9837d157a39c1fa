"""Temporal Shift Module networks: a 2D backbone whose residual branches see shifted inputs.

A ``TemporalShiftNet`` is any 2D backbone split into stem → blocks → head. Blocks listed in
``shift_points`` get the temporal shift on the input of their residual branch only (the
identity path sees the unshifted x: "residual shift"). The same weights run three ways:

* offline clip: ``forward(clip)`` with clip (N, T, 3, H, W) -> (N, num_classes), the average
  consensus of per-frame logits (``forward_frames`` gives the per-frame logits);
* online: ``to_online(model)`` -> a pure per-frame function of (frame, *state);
* TSN (``shift_mode="none"``): the same network with no shift, the appearance-only baseline.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from .shift import temporal_shift


class ResidualBlock(Protocol):
    """A block whose residual branch input can be replaced (where the shift goes)."""

    in_channels: int

    def forward(self, x: Tensor) -> Tensor: ...

    def forward_branch_input(self, x: Tensor, branch_in: Tensor) -> Tensor:
        """Output of the block when the residual branch sees ``branch_in`` and the identity ``x``."""
        ...


class TemporalShiftNet(nn.Module):
    """Base class of TSM backbones. Subclasses define stem, blocks, head and shift points."""

    shift_mode: str
    shift_div: int

    # -- to be provided by the backbone ---------------------------------------------------
    def forward_stem(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    def forward_head(self, x: Tensor) -> Tensor:
        """Feature map -> per-frame logits (pooling, dropout, classifier)."""
        raise NotImplementedError

    def shift_points(self) -> tuple[int, ...]:
        """Indices into ``blocks()`` whose residual branch is shifted."""
        raise NotImplementedError

    # -- shared forward passes ------------------------------------------------------------
    def forward_frames(self, frames: Tensor, num_frames: int) -> Tensor:
        """Per-frame logits for (N·T, 3, H, W) frames that form clips of ``num_frames``."""
        x = self.forward_stem(frames)
        points = set(self.shift_points()) if self.shift_mode != "none" else set()
        for i, block in enumerate(self.blocks()):
            if i in points:
                shifted = temporal_shift(x, num_frames, self.shift_div, self.shift_mode)
                x = block.forward_branch_input(x, shifted)
            else:
                x = block(x)
        return self.forward_head(x)

    def forward(self, clip: Tensor) -> Tensor:
        """clip (N, T, 3, H, W) -> (N, num_classes): mean of per-frame logits."""
        if clip.dim() != 5:
            raise ValueError(
                f"{type(self).__name__} expects a clip (N, T, 3, H, W); got shape {tuple(clip.shape)}. "
                "For single frames use streamtsm.to_online(model)."
            )
        n, t = clip.shape[:2]
        logits = self.forward_frames(clip.reshape(n * t, *clip.shape[2:]), t)
        return logits.reshape(n, t, -1).mean(dim=1)


def residual_shift_points(blocks: list[nn.Module], every_other: bool = False) -> tuple[int, ...]:
    """Indices of blocks with an identity shortcut (where a residual shift is well defined)."""
    points = [i for i, b in enumerate(blocks) if getattr(b, "has_identity", True)]
    return tuple(points[::2]) if every_other else tuple(points)
