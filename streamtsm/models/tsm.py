"""Temporal Shift Module networks: a 2D backbone whose residual branches see shifted inputs.

A ``TemporalShiftNet`` is a 2D backbone split into stem → blocks → frame head. Blocks listed
in ``shift_points`` get the temporal shift on the input of their residual branch only (the
identity path sees the unshifted x: "residual shift"). The same weights run three ways:

* offline clip: ``forward(clip)``, clip (N, T, 3, H, W) -> (N, num_classes). As in every family,
  ``forward = forward_head ∘ forward_features``; here the features are *per frame*
  (N, T, C, H', W') and the head is the average consensus of per-frame logits.
  ``forward_frames`` gives the per-frame logits of flattened (N·T, 3, H, W) frames (training);
* online: ``to_online(model)`` -> a pure per-frame function of (frame, *state), built from
  ``forward_stem``, ``blocks`` and ``forward_frame_head``;
* TSN (``shift_mode="none"``): the same network with no shift, the appearance-only baseline.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..card import Preprocessing, Temporal
from .registry import ModelDefaults
from .shift import temporal_shift

#: Card defaults of the ImageNet-initialised TSM/TSN backbones (official TSM and mmaction2 recipes).
TSM_IMAGENET = ModelDefaults(
    preprocessing=Preprocessing(crop_size=224, resize_short=256),
    temporal=Temporal(mode="online", fps=30.0, num_segments=8, clip_layout="NTCHW"),
)


class TemporalShiftNet(nn.Module):
    """Base class of TSM backbones. Subclasses define stem, blocks, frame head and shift points."""

    shift_mode: str
    shift_div: int

    # -- to be provided by the backbone ---------------------------------------------------
    def forward_stem(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def blocks(self) -> list[nn.Module]:
        raise NotImplementedError

    def forward_frame_head(self, x: Tensor) -> Tensor:
        """Feature map (N, C, H, W) of single frames -> their logits (N, K)."""
        raise NotImplementedError

    def shift_points(self) -> tuple[int, ...]:
        """Indices into ``blocks()`` whose residual branch is shifted."""
        raise NotImplementedError

    # -- shared forward passes ------------------------------------------------------------
    def forward_frame_features(self, frames: Tensor, num_frames: int) -> Tensor:
        """Feature maps (N·T, C, H', W') of (N·T, 3, H, W) frames that form clips of ``num_frames``."""
        x = self.forward_stem(frames)
        points = set(self.shift_points()) if self.shift_mode != "none" else set()
        for i, block in enumerate(self.blocks()):
            if i in points:
                shifted = temporal_shift(x, num_frames, self.shift_div, self.shift_mode)
                x = block.forward_branch_input(x, shifted)
            else:
                x = block(x)
        return x

    def forward_frames(self, frames: Tensor, num_frames: int) -> Tensor:
        """Per-frame logits for (N·T, 3, H, W) frames that form clips of ``num_frames``."""
        return self.forward_frame_head(self.forward_frame_features(frames, num_frames))

    def forward_features(self, clip: Tensor) -> Tensor:
        """clip (N, T, 3, H, W) -> per-frame feature maps (N, T, C, H', W'), shifted along T inside."""
        if clip.dim() != 5:
            raise ValueError(
                f"{type(self).__name__} expects a clip (N, T, 3, H, W); got shape {tuple(clip.shape)}. "
                "For single frames use streamtsm.to_online(model)."
            )
        n, t = clip.shape[:2]
        x = self.forward_frame_features(clip.reshape(n * t, *clip.shape[2:]), t)
        return x.reshape(n, t, *x.shape[1:])

    def forward_head(self, features: Tensor) -> Tensor:
        """Per-frame features (N, T, C, H, W) -> (N, num_classes): the mean of per-frame logits."""
        n, t = features.shape[:2]
        logits = self.forward_frame_head(features.reshape(n * t, *features.shape[2:]))
        return logits.reshape(n, t, -1).mean(dim=1)

    def forward(self, clip: Tensor) -> Tensor:
        """clip (N, T, 3, H, W) -> (N, num_classes): mean of per-frame logits."""
        return self.forward_head(self.forward_features(clip))
