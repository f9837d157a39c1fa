"""SlowFast in mmaction2's key layout: ``backbone.slow_path…``, ``backbone.fast_path…``, ``cls_head.fc_cls``.

One clip (N, 3, T, H, W) goes in; the model samples its two pathways itself, as mmaction2's
``ResNet3dSlowFast`` does: the slow pathway sees every ``resample_rate``-th frame (τ), the fast
pathway every ``resample_rate // speed_ratio``-th (τ/α). The fast pathway has
``1/channel_ratio`` of the channels (β). After the stem and after stages 1–3 a lateral
connection (a bias-free (fusion_kernel)x1x1 conv with temporal stride α, no norm, no
activation) maps fast features onto the slow time axis, doubling their channels, and they are
concatenated to the slow features; hence the slow stages take extra input channels.

The head pools both pathways and concatenates them *fast first*, then slow (as mmaction2's
SlowFastHead does), so the columns of ``fc_cls.weight`` are [fast 256 | slow 2048] for R50.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .registry import register_model
from .resnet3d import MMACTION2_32X2, ConvModule3d, I3DHead, ResNet3dBackbone, ResNet3dSettings, init_mmaction2
from .video import VideoClassifier, check_clip


@dataclass(frozen=True)
class SlowFastSettings:
    """τ, α, β⁻¹ and the lateral kernel; mmaction2's 4x16 recipe is (8, 8, 8, 5), 8x8 is (4, 4, 8, 7)."""

    resample_rate: int = 8  # tau
    speed_ratio: int = 8  # alpha
    channel_ratio: int = 8  # beta_inv
    fusion_kernel: int = 5
    slow_depth: int = 50
    fast_depth: int = 50
    base_channels: int = 64  # the slow pathway's stem width (the fast one has base_channels // channel_ratio)

    def __post_init__(self) -> None:
        for name in ("resample_rate", "speed_ratio", "channel_ratio", "fusion_kernel", "base_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"SlowFast {name} must be >= 1, got {getattr(self, name)}")
        if self.base_channels % self.channel_ratio:
            raise ValueError(f"SlowFast base_channels ({self.base_channels}) must be a multiple of channel_ratio "
                             f"({self.channel_ratio}): the fast pathway has base_channels // channel_ratio channels")
        if self.resample_rate % self.speed_ratio:
            raise ValueError(
                f"resample_rate (tau={self.resample_rate}) must be a multiple of speed_ratio (alpha={self.speed_ratio})"
            )
        for name in ("slow_depth", "fast_depth"):
            if getattr(self, name) < 50:
                raise ValueError(f"SlowFast pathways need a Bottleneck ResNet (depth 50/101/152), got {name}={getattr(self, name)}")

    @property
    def fast_step(self) -> int:
        return self.resample_rate // self.speed_ratio


def _lateral(inp: int, s: SlowFastSettings) -> ConvModule3d:
    k = s.fusion_kernel
    return ConvModule3d(inp, inp * 2, (k, 1, 1), (s.speed_ratio, 1, 1), ((k - 1) // 2, 0, 0), norm=False, act=False)


class SlowPathway(ResNet3dBackbone):
    """Slow ResNet3d whose stages also take the fast features, with the lateral convs as children."""

    def __init__(self, settings: ResNet3dSettings, s: SlowFastSettings) -> None:
        fast_base = settings.base_channels // s.channel_ratio
        exp = settings.block.expansion
        # channels of the fast pathway after the stem and after stages 1..3, doubled by the laterals
        fast_channels = [fast_base] + [fast_base * 2**i * exp for i in range(3)]
        super().__init__(settings, lateral_inplanes=[2 * c for c in fast_channels])
        self.conv1_lateral = _lateral(fast_channels[0], s)
        for i in range(3):
            self.add_module(f"layer{i + 1}_lateral", _lateral(fast_channels[i + 1], s))


class ResNet3dSlowFast(nn.Module):
    def __init__(self, s: SlowFastSettings) -> None:
        super().__init__()
        self.settings = s
        slow = ResNet3dSettings(depth=s.slow_depth, base_channels=s.base_channels, conv1_kernel=(1, 7, 7), inflate=(0, 0, 1, 1))
        fast = ResNet3dSettings(depth=s.fast_depth, base_channels=s.base_channels // s.channel_ratio, conv1_kernel=(5, 7, 7))
        self.slow_path = SlowPathway(slow, s)
        self.fast_path = ResNet3dBackbone(fast)
        self.feat_dim = self.slow_path.feat_dim + self.fast_path.feat_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.settings
        x_slow = self.slow_path.stem(every_nth_frame(x, s.resample_rate))
        x_fast = self.fast_path.stem(every_nth_frame(x, s.fast_step))
        x_slow = torch.cat((x_slow, self.slow_path.conv1_lateral(x_fast)), dim=1)
        for i in range(1, 5):
            x_slow = getattr(self.slow_path, f"layer{i}")(x_slow)
            x_fast = getattr(self.fast_path, f"layer{i}")(x_fast)
            if i < 4:  # no fusion after the last stage
                x_slow = torch.cat((x_slow, getattr(self.slow_path, f"layer{i}_lateral")(x_fast)), dim=1)
        return x_slow, x_fast


def every_nth_frame(x: Tensor, step: int) -> Tensor:
    """Frames 0, step, 2·step … (T // step of them).

    The same frames as mmaction2's ``interpolate(mode='nearest', scale_factor=1/step)`` on the
    time axis, written as a slice because that exports to ONNX/TensorRT as a plain Slice.
    """
    if step == 1:
        return x
    n = x.shape[2] // step
    return x[:, :, : n * step : step]


class SlowFastHead(I3DHead):
    """I3DHead over both pathways: pooled [fast | slow] features, as mmaction2's SlowFastHead."""

    def pool(self, feats: tuple[Tensor, Tensor]) -> Tensor:
        x_slow, x_fast = feats
        return torch.cat((self.avg_pool(x_fast), self.avg_pool(x_slow)), dim=1).flatten(1)


class SlowFast(VideoClassifier):
    """``backbone`` (ResNet3dSlowFast) + ``cls_head`` (SlowFastHead), mmaction2's names."""

    def __init__(self, settings: SlowFastSettings, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.settings = settings
        self.backbone = ResNet3dSlowFast(settings)
        self.cls_head = SlowFastHead(self.backbone.feat_dim, num_classes, dropout)
        init_mmaction2(self)

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(slow, fast) pathway outputs; pooled they give the (N, 2304 for R50) input of ``fc_cls``."""
        check_clip(x, "SlowFast", min_frames=self.settings.resample_rate)
        return self.backbone(x)

    def forward_head(self, features: tuple[Tensor, Tensor], pre_logits: bool = False) -> Tensor:
        return self.cls_head.pool(features) if pre_logits else self.cls_head(features)


# mmaction2's slowfast_r50 4x16 Kinetics recipe: 32 frames every 2nd (15 fps), ImageNet mean/std,
# short side 256, centre crop 224 (the ResNet3d 32x2 card).
def _slowfast(num_classes: int, dropout: float, **kw: Any) -> SlowFast:
    return SlowFast(SlowFastSettings(**kw), num_classes, dropout)


@register_model(MMACTION2_32X2)
def slowfast_r50(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> SlowFast:
    """SlowFast R50 (mmaction2 ResNet3dSlowFast + SlowFastHead)"""
    return _slowfast(num_classes, dropout, **{"slow_depth": 50, "fast_depth": 50, **kw})


@register_model(MMACTION2_32X2)
def slowfast_r101(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> SlowFast:
    """SlowFast R101 (mmaction2 ResNet3dSlowFast + SlowFastHead)"""
    return _slowfast(num_classes, dropout, **{"slow_depth": 101, "fast_depth": 101, **kw})
