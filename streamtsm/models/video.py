"""What the 3D-CNN families share: the clip check, the classifier interface, the (2+1)D channel rule.

Every 3D model takes one clip (N, 3, T, H, W) and answers timm's interface:
``forward_features(clip)`` gives the backbone's unpooled output (a (slow, fast) pair for
SlowFast), ``forward_head(features)`` the logits (``pre_logits=True``: the pooled vector the
classifier sees), and ``forward(clip) = forward_head(forward_features(clip))``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn


class ClipShapeError(ValueError):
    """A 3D model was given something other than a (N, 3, T, H, W) clip."""


def check_clip(x: Tensor, model: str, min_frames: int = 1) -> None:
    """Refuse a wrong input with a message that says which layout is expected.

    Without this, a (N, T, 3, H, W) clip (the TSM layout) fails deep inside a Conv3d with a
    channel-count error that does not mention the layout at all.
    """
    if not isinstance(x, Tensor):
        raise ClipShapeError(f"{model} expects a torch.Tensor clip, got {type(x).__name__}")
    if x.dim() != 5 or x.shape[1] != 3:
        raise ClipShapeError(
            f"{model} expects a clip of shape (N, 3, T, H, W), got {tuple(x.shape)}; "
            "a (N, T, 3, H, W) clip needs clip.permute(0, 2, 1, 3, 4)"
        )
    if x.shape[2] < min_frames:
        raise ClipShapeError(f"{model} needs at least {min_frames} frames per clip, got T={x.shape[2]}")


def factorised_mid_channels(inp: int, out: int, kt: int = 3, ks: int = 3) -> int:
    """Mid channels that give a (2+1)D pair the parameter count of one kt×ks×ks 3D conv (R(2+1)D paper §3.5)."""
    return (kt * ks * ks * inp * out) // (ks * ks * inp + kt * out)


class VideoClassifier(nn.Module):
    """Base of the 3D families: subclasses define ``forward_features`` and ``forward_head``."""

    def forward_features(self, x: Tensor) -> Any:
        raise NotImplementedError

    def forward_head(self, features: Any, pre_logits: bool = False) -> Tensor:
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """Pooled clip features (N, D), the input of the classifier."""
        return self.forward_head(self.forward_features(x), pre_logits=True)

    def forward(self, x: Tensor) -> Tensor:
        """clip (N, 3, T, H, W) -> logits (N, num_classes)."""
        return self.forward_head(self.forward_features(x))
