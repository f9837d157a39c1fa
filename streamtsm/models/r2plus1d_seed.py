"""R(2+1)D in the layout of the seed's ``R2Plus1DClassifier`` (pytorch-video-recognition).

Keys ``res2plus1d.conv1.spatial_conv.weight`` … ``linear``. It differs from torchvision's
R(2+1)D in more than names: BN+ReLU after *both* factorised sub-convs, an extra BN+ReLU around
them in each block, a factorised 1x1x1 downsample with its own BN, and the mid-channel formula
evaluated per conv. It was trained on UCF101 frames read with OpenCV, i.e. BGR with a plain
mean subtracted, which its card says.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..card import Preprocessing, Temporal
from .registry import ModelDefaults, register_model
from .video import VideoClassifier, check_clip, factorised_mid_channels
from .weight_init import init_weights


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
            mid = factorised_mid_channels(inp, out, kt, kh)
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
    """The seed's feature extractor: clip (N, 3, T, H, W) → pooled features (N, 512)."""

    def __init__(self, layer_sizes: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.conv1 = SpatioTemporalConv(3, 64, (1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), first_conv=True)
        self.conv2 = SpatioTemporalResLayer(64, 64, layer_sizes[0])
        self.conv3 = SpatioTemporalResLayer(64, 128, layer_sizes[1], downsample=True)
        self.conv4 = SpatioTemporalResLayer(128, 256, layer_sizes[2], downsample=True)
        self.conv5 = SpatioTemporalResLayer(256, 512, layer_sizes[3], downsample=True)
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(x)))))

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(self.forward_features(x)).flatten(1)


class R2Plus1DClassifier(VideoClassifier):
    """The seed's classifier: ``res2plus1d`` features → ``linear``."""

    def __init__(self, num_classes: int, layer_sizes: tuple[int, int, int, int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        layer_sizes = tuple(int(n) for n in layer_sizes)
        if len(layer_sizes) != 4 or min(layer_sizes) < 1:
            raise ValueError(f"layer_sizes needs four block counts >= 1, got {layer_sizes!r}")
        self.layer_sizes = layer_sizes
        self.res2plus1d = R2Plus1DNet(layer_sizes)
        self.linear = nn.Linear(512, num_classes)
        init_weights(self, conv_mode="fan_in")  # the seed's init: Kaiming (fan-in) convs, unit BN, default Linear

    def forward_features(self, x: Tensor) -> Tensor:
        """Output of conv5, (N, 512, T/8, H/16, W/16)."""
        check_clip(x, type(self).__name__)
        return self.res2plus1d.forward_features(x)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        x = self.res2plus1d.pool(features).flatten(1)
        return x if pre_logits else self.linear(x)


# The seed's data code reads UCF101 with OpenCV (BGR), keeps every 4th frame of the 25 fps video,
# resizes to 128x171, crops 112 and subtracts [[[90, 98, 102]]] from the BGR frames (no std).
SEED_UCF101 = ModelDefaults(
    preprocessing=Preprocessing(
        crop_size=112, resize_short=None, resize_hw=(128, 171), mean=(90.0, 98.0, 102.0), std=(1.0, 1.0, 1.0), channel_order="BGR"
    ),
    temporal=Temporal(mode="window", clip_len=16, fps=6.25, clip_layout="NCTHW"),
)


@register_model(SEED_UCF101)
def r2plus1d_seed(*, num_classes: int, layer_sizes: tuple[int, int, int, int] = (2, 2, 2, 2)) -> R2Plus1DClassifier:
    """R(2+1)D in the seed's pytorch-video-recognition layout (res2plus1d.*, linear)"""
    return R2Plus1DClassifier(num_classes, tuple(layer_sizes))
