"""R(2+1)D and R3D video ResNets: torchvision's layout, and the seed (pytorch-video-recognition) layout.

Two key layouts of the same idea live here because published weights exist in both:

* torchvision's ``VideoResNet`` (``stem.0.weight``, ``layer1.0.conv1.0.0.weight`` …, ``fc``):
  ``r2plus1d_18``/``r2plus1d_34`` and the plain 3D sibling ``r3d_18``. torchvision computes the
  (2+1)D mid channels once per block from (inplanes, planes) and uses that number for *both*
  convs of the block, so the second conv of a downsampling block has e.g. 230 mid channels,
  not the 288 that the paper's formula would give for (128, 128). Kinetics-400 weight files load
  only with that quirk reproduced. Caffe2-converted R(2+1)D-34 weights (VMZ/IG65M) use the
  formula per conv instead; ``mid_channels="per_conv"`` builds that variant.
* the seed's ``R2Plus1DClassifier`` (``res2plus1d.conv1.spatial_conv.weight`` …, ``linear``):
  BN+ReLU after *both* factorised sub-convs, an extra BN+ReLU around them in each block, a
  factorised 1x1x1 downsample with its own BN, and the mid-channel formula evaluated per conv.
  It was trained on UCF101 frames read with OpenCV, i.e. BGR with a plain mean subtracted.

All models take a clip (N, 3, T, H, W) and return logits (N, num_classes).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from ..card import KINETICS_MEAN, KINETICS_STD, Preprocessing, Temporal
from .registry import ModelDefaults, register_model
from .resnet3d import check_clip


def factorised_mid_channels(inp: int, out: int, kt: int = 3, ks: int = 3) -> int:
    """Mid channels that give a (2+1)D pair the parameter count of one kt×ks×ks 3D conv (paper §3.5)."""
    return (kt * ks * ks * inp * out) // (ks * ks * inp + kt * out)


# --------------------------------------------------------------------------------------------
# torchvision layout
# --------------------------------------------------------------------------------------------


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


class VideoResNet(nn.Module):
    """torchvision's VideoResNet with basic blocks; ``fc`` over 512 pooled features."""

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
        _init_weights(self)

    def features(self, x: Tensor) -> Tensor:
        """Pooled clip features (N, 8 * width; 512 for the published models), the input of ``fc``."""
        check_clip(x, type(self).__name__)
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# torchvision's video classification reference trains/evaluates these on 16-frame clips at 15 fps,
# resized to 128x171 and centre-cropped to 112, with Kinetics mean/std.
_TORCHVISION_KINETICS = dict(
    preprocessing=Preprocessing(crop_size=112, resize_short=None, resize_hw=(128, 171), mean=KINETICS_MEAN, std=KINETICS_STD),
    temporal=Temporal(mode="window", clip_len=16, fps=15.0, clip_layout="NCTHW"),
)


@register_model(ModelDefaults(**_TORCHVISION_KINETICS, description="R(2+1)D-18, torchvision layout (Kinetics-400 weights load as is)"))
def r2plus1d_18(*, num_classes: int, mid_channels: str = "per_block", width: int = 64) -> VideoResNet:
    return VideoResNet(VideoResNetSettings((2, 2, 2, 2), "2plus1d", mid_channels, width), num_classes)


@register_model(ModelDefaults(**_TORCHVISION_KINETICS, description="R(2+1)D-34, torchvision layout"))
def r2plus1d_34(*, num_classes: int, mid_channels: str = "per_block") -> VideoResNet:
    return VideoResNet(VideoResNetSettings((3, 4, 6, 3), "2plus1d", mid_channels), num_classes)


@register_model(ModelDefaults(**_TORCHVISION_KINETICS, description="R3D-18 (full 3x3x3 convs), torchvision layout"))
def r3d_18(*, num_classes: int, width: int = 64) -> VideoResNet:
    return VideoResNet(VideoResNetSettings((2, 2, 2, 2), "3d", width=width), num_classes)


# --------------------------------------------------------------------------------------------
# seed layout (seeds/001: pytorch-video-recognition's R2Plus1DClassifier)
# --------------------------------------------------------------------------------------------


class SpatioTemporalConv(nn.Module):
    """Seed's factorised conv: spatial conv → BN → ReLU → temporal conv → BN → ReLU.

    Unlike torchvision, BN+ReLU follow the temporal conv too, and the mid channels come from
    the paper's formula for *this* conv's kernel (so a 1x1x1 conv gets in·out/(in+out)).
    ``first_conv`` is the stem: spatial kernel as given, temporal kernel 3, 45 mid channels.
    """

    def __init__(
        self,
        inp: int,
        out: int,
        kernel: tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        padding: tuple[int, int, int] = (0, 0, 0),
        first_conv: bool = False,
    ) -> None:
        super().__init__()
        kt, kh, kw = kernel
        if first_conv:
            spatial = dict(kernel_size=kernel, stride=(1, stride[1], stride[2]), padding=padding)
            temporal = dict(kernel_size=(3, 1, 1), stride=(stride[0], 1, 1), padding=(1, 0, 0))
            mid = 45
        else:
            spatial = dict(kernel_size=(1, kh, kw), stride=(1, stride[1], stride[2]), padding=(0, padding[1], padding[2]))
            temporal = dict(kernel_size=(kt, 1, 1), stride=(stride[0], 1, 1), padding=(padding[0], 0, 0))
            mid = (kt * kh * kw * inp * out) // (kh * kw * inp + kt * out)
        self.spatial_conv = nn.Conv3d(inp, mid, bias=False, **spatial)
        self.bn1 = nn.BatchNorm3d(mid)
        self.temporal_conv = nn.Conv3d(mid, out, bias=False, **temporal)
        self.bn2 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.spatial_conv(x)))
        return self.relu(self.bn2(self.temporal_conv(x)))


class SpatioTemporalResBlock(nn.Module):
    """Seed's residual block: two SpatioTemporalConvs, each followed by the block's own BN.

    With ``downsample`` the first conv has stride 2 in T, H and W, and the identity goes
    through a factorised 1x1x1 SpatioTemporalConv (stride 2) plus ``downsamplebn``.
    """

    def __init__(self, inp: int, out: int, downsample: bool = False) -> None:
        super().__init__()
        self.downsample = downsample
        stride = (2, 2, 2) if downsample else (1, 1, 1)
        if downsample:
            self.downsampleconv = SpatioTemporalConv(inp, out, (1, 1, 1), stride=(2, 2, 2))
            self.downsamplebn = nn.BatchNorm3d(out)
        self.conv1 = SpatioTemporalConv(inp, out, (3, 3, 3), stride=stride, padding=(1, 1, 1))
        self.bn1 = nn.BatchNorm3d(out)
        self.relu = nn.ReLU()
        self.conv2 = SpatioTemporalConv(out, out, (3, 3, 3), padding=(1, 1, 1))
        self.bn2 = nn.BatchNorm3d(out)

    def forward(self, x: Tensor) -> Tensor:
        res = self.relu(self.bn1(self.conv1(x)))
        res = self.bn2(self.conv2(res))
        if self.downsample:
            x = self.downsamplebn(self.downsampleconv(x))
        return self.relu(x + res)


class SpatioTemporalResLayer(nn.Module):
    def __init__(self, inp: int, out: int, layer_size: int, downsample: bool = False) -> None:
        super().__init__()
        self.block1 = SpatioTemporalResBlock(inp, out, downsample)
        self.blocks = nn.ModuleList(SpatioTemporalResBlock(out, out) for _ in range(layer_size - 1))

    def forward(self, x: Tensor) -> Tensor:
        x = self.block1(x)
        for block in self.blocks:
            x = block(x)
        return x


class R2Plus1DNet(nn.Module):
    """Seed feature extractor: clip (N, 3, T, H, W) → pooled features (N, 512)."""

    def __init__(self, layer_sizes: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv1 = SpatioTemporalConv(3, 64, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), first_conv=True)
        self.conv2 = SpatioTemporalResLayer(64, 64, layer_sizes[0])
        self.conv3 = SpatioTemporalResLayer(64, 128, layer_sizes[1], downsample=True)
        self.conv4 = SpatioTemporalResLayer(128, 256, layer_sizes[2], downsample=True)
        self.conv5 = SpatioTemporalResLayer(256, 512, layer_sizes[3], downsample=True)
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(x)))))
        return self.pool(x).flatten(1)


class R2Plus1DClassifier(nn.Module):
    """The seed's classifier: ``res2plus1d`` features → ``linear``."""

    def __init__(self, num_classes: int, layer_sizes: tuple[int, int, int, int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        layer_sizes = tuple(int(n) for n in layer_sizes)
        if len(layer_sizes) != 4 or min(layer_sizes) < 1:
            raise ValueError(f"layer_sizes needs four block counts >= 1, got {layer_sizes!r}")
        self.layer_sizes = layer_sizes
        self.res2plus1d = R2Plus1DNet(layer_sizes)
        self.linear = nn.Linear(512, num_classes)
        for m in self.modules():  # the seed's init: Kaiming convs, unit BN
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        check_clip(x, type(self).__name__)
        return self.res2plus1d(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x))


# The seed's data code reads UCF101 with OpenCV (BGR), keeps every 4th frame of the 25 fps video,
# resizes to 128x171, crops 112 and subtracts [[[90, 98, 102]]] from the BGR frames (no std).
_SEED_UCF101 = ModelDefaults(
    preprocessing=Preprocessing(
        crop_size=112, resize_short=None, resize_hw=(128, 171), mean=(90.0, 98.0, 102.0), std=(1.0, 1.0, 1.0), channel_order="BGR"
    ),
    temporal=Temporal(mode="window", clip_len=16, fps=6.25, clip_layout="NCTHW"),
    description="R(2+1)D in the seed's pytorch-video-recognition layout (res2plus1d.*, linear)",
)


@register_model(_SEED_UCF101)
def r2plus1d_seed(*, num_classes: int, layer_sizes: tuple[int, int, int, int] = (2, 2, 2, 2)) -> R2Plus1DClassifier:
    return R2Plus1DClassifier(num_classes, tuple(layer_sizes))
