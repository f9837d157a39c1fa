"""R(2+1)D and R3D video ResNets in torchvision's ``VideoResNet`` layout (``r2plus1d_18/34``, ``r3d_18``).

Keys as torchvision's (``stem.0.weight``, ``layer1.0.conv1.0.0.weight`` …, ``fc``), so its
Kinetics-400 files load as they are. torchvision computes the (2+1)D mid channels once per block
from (inplanes, planes) and uses that number for *both* convs of the block, so the second conv of
a downsampling block has e.g. 230 mid channels, not the 288 that the paper's formula gives for
(128, 128); the Kinetics weights load only with that quirk reproduced. Caffe2-converted
R(2+1)D-34 weights (VMZ/IG65M) use the formula per conv instead: ``mid_channels="per_conv"``.
The seed's differently built R(2+1)D lives in ``r2plus1d_seed.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..card import KINETICS_MEAN, KINETICS_STD, Preprocessing, Temporal
from .registry import ModelDefaults, register_model
from .video import VideoClassifier, check_clip, factorised_mid_channels
from .weight_init import init_weights


class Conv2Plus1D(nn.Sequential):
    """Spatial 1×3×3 conv → BN → ReLU → temporal 3×1×1 conv (keys ``0``, ``1``, ``3``)."""

    def __init__(self, inp: int, out: int, mid: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(inp, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
        )


def _conv3x3x3(inp: int, out: int, mid: int, stride: int = 1) -> nn.Module:
    return nn.Conv3d(inp, out, 3, stride, 1, bias=False)


def _conv2plus1d(inp: int, out: int, mid: int, stride: int = 1) -> nn.Module:
    return Conv2Plus1D(inp, out, mid, stride)


@dataclass(frozen=True)
class VideoResNetSettings:
    """What distinguishes r3d_18, r2plus1d_18 and r2plus1d_34 from each other."""

    layers: tuple[int, int, int, int] = (2, 2, 2, 2)
    conv: str = "2plus1d"  # "2plus1d" or "3d"
    mid_channels: str = "per_block"  # torchvision: "per_block"; Caffe2/VMZ R(2+1)D-34: "per_conv"
    width: int = 64  # channels of layer1 (x2 per stage); < 64 = a reduced-width model trained from scratch

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be >= 1 (64 = the published models), got {self.width}")
        if self.conv not in ("2plus1d", "3d"):
            raise ValueError(f"conv must be '2plus1d' or '3d', got {self.conv!r}")
        if self.mid_channels not in ("per_block", "per_conv"):
            raise ValueError(f"mid_channels must be 'per_block' (torchvision) or 'per_conv' (Caffe2), got {self.mid_channels!r}")
        if len(self.layers) != 4 or min(self.layers) < 1:
            raise ValueError(f"layers needs four block counts >= 1, got {self.layers!r}")


class VideoBasicBlock(nn.Module):
    def __init__(self, inp: int, planes: int, stride: int, settings: VideoResNetSettings) -> None:
        super().__init__()
        make = _conv2plus1d if settings.conv == "2plus1d" else _conv3x3x3
        mid1 = factorised_mid_channels(inp, planes)
        mid2 = mid1 if settings.mid_channels == "per_block" else factorised_mid_channels(planes, planes)
        self.conv1 = nn.Sequential(make(inp, planes, mid1, stride), nn.BatchNorm3d(planes), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(make(planes, planes, mid2), nn.BatchNorm3d(planes))
        self.downsample: nn.Module | None = None
        if stride != 1 or inp != planes:
            self.downsample = nn.Sequential(nn.Conv3d(inp, planes, 1, stride, bias=False), nn.BatchNorm3d(planes))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


def _stem(conv: str, width: int = 64) -> nn.Sequential:
    if conv == "3d":
        return nn.Sequential(
            nn.Conv3d(3, width, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(width), nn.ReLU(inplace=True)
        )
    # R(2+1)D stem: 45 mid channels (at width 64), fixed by the original Caffe2 model rather than the formula.
    mid = max(1, round(45 * width / 64))
    return nn.Sequential(
        nn.Conv3d(3, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, width, (3, 1, 1), 1, (1, 0, 0), bias=False),
        nn.BatchNorm3d(width),
        nn.ReLU(inplace=True),
    )


class VideoResNet(VideoClassifier):
    """torchvision's VideoResNet with basic blocks; ``fc`` over 8 * width pooled features."""

    def __init__(self, settings: VideoResNetSettings, num_classes: int) -> None:
        super().__init__()
        self.settings = settings
        w = settings.width
        self.stem = _stem(settings.conv, w)
        inp = w
        for i, (planes, blocks) in enumerate(zip((w, 2 * w, 4 * w, 8 * w), settings.layers)):
            stride = 1 if i == 0 else 2
            layer = [VideoBasicBlock(inp, planes, stride, settings)]
            layer += [VideoBasicBlock(planes, planes, 1, settings) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))
            inp = planes
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(8 * w, num_classes)
        init_weights(self, conv_mode="fan_out", linear_std=0.01)

    def forward_features(self, x: Tensor) -> Tensor:
        """Output of layer4, (N, 8 * width, T/8, H/16, W/16)."""
        check_clip(x, type(self).__name__)
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.avgpool(features).flatten(1)
        return x if pre_logits else self.fc(x)


# torchvision's video classification reference trains/evaluates these on 16-frame clips at 15 fps,
# resized to 128x171 and centre-cropped to 112, with Kinetics mean/std.
TORCHVISION_KINETICS = ModelDefaults(
    preprocessing=Preprocessing(crop_size=112, resize_short=None, resize_hw=(128, 171), mean=KINETICS_MEAN, std=KINETICS_STD),
    temporal=Temporal(mode="window", clip_len=16, fps=15.0, clip_layout="NCTHW"),
)


@register_model(TORCHVISION_KINETICS)
def r2plus1d_18(*, num_classes: int, mid_channels: str = "per_block", width: int = 64) -> VideoResNet:
    """R(2+1)D-18, torchvision layout (Kinetics-400 weights load as is)"""
    return VideoResNet(VideoResNetSettings((2, 2, 2, 2), "2plus1d", mid_channels, width), num_classes)


@register_model(TORCHVISION_KINETICS)
def r2plus1d_34(*, num_classes: int, mid_channels: str = "per_block") -> VideoResNet:
    """R(2+1)D-34, torchvision layout"""
    return VideoResNet(VideoResNetSettings((3, 4, 6, 3), "2plus1d", mid_channels), num_classes)


@register_model(TORCHVISION_KINETICS)
def r3d_18(*, num_classes: int, width: int = 64) -> VideoResNet:
    """R3D-18 (full 3x3x3 convs), torchvision layout"""
    return VideoResNet(VideoResNetSettings((2, 2, 2, 2), "3d", width=width), num_classes)
