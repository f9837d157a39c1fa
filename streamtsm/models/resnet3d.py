"""ResNet3d in mmaction2's key layout: inflated 3D ResNets, I3D and SlowOnly.

The module tree mirrors mmaction2's ``Recognizer3D(backbone=ResNet3d, cls_head=I3DHead)`` so
that its checkpoints load after only unwrapping ``{"state_dict": …}``: every conv is a
``ConvModule`` with children ``conv`` and ``bn`` (``backbone.layer1.0.conv1.conv.weight``,
``backbone.layer1.0.conv1.bn.running_mean``, ``backbone.layer1.0.downsample.conv.weight``),
and the classifier is ``cls_head.fc_cls``.

Which kernels are 3D is set per block by ``inflate`` (1 = inflated) and ``inflate_style``:
a Bottleneck inflates either its first 1x1 conv to 3x1x1 (``3x1x1``, the I3D-ResNet default)
or its 3x3 conv to 3x3x3 (``3x3x3``); a BasicBlock inflates both 3x3 convs to 3x3x3.
Temporal strides and pooling are not visible in the weights, so they live in the presets
(``i3d_r50``, ``slowonly_r50/101/152``) and in ``ResNet3dSettings``.

All models take a clip (N, 3, T, H, W) and return logits (N, num_classes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

from torch import Tensor, nn

from ..card import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, Temporal
from .registry import ModelDefaults, register_model
from .video import VideoClassifier, check_clip
from .weight_init import init_weights


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


class ConvModule3d(nn.Module):
    """Conv3d (no bias) → optional BN → optional ReLU, with mmaction2's child names ``conv``/``bn``."""

    def __init__(
        self,
        inp: int,
        out: int,
        kernel: int | tuple[int, int, int],
        stride: int | tuple[int, int, int] = 1,
        padding: int | tuple[int, int, int] = 0,
        norm: bool = True,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv3d(inp, out, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(out) if norm else None
        self.act = nn.ReLU(inplace=True) if act else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.act is not None:
            x = self.act(x)
        return x


class BasicBlock3d(nn.Module):
    expansion = 1

    def __init__(
        self, inp: int, planes: int, spatial_stride: int, temporal_stride: int, inflate: bool, inflate_style: str,
        downsample: nn.Module | None,
    ) -> None:
        super().__init__()
        k, p = ((3, 3, 3), (1, 1, 1)) if inflate else ((1, 3, 3), (0, 1, 1))
        self.conv1 = ConvModule3d(inp, planes, k, (temporal_stride, spatial_stride, spatial_stride), p)
        self.conv2 = ConvModule3d(planes, planes, k, 1, p, act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv2.bn.weight)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class Bottleneck3d(nn.Module):
    """1x1 → 3x3 (stride here, "pytorch" style) → 1x1 expansion ×4."""

    expansion = 4

    def __init__(
        self, inp: int, planes: int, spatial_stride: int, temporal_stride: int, inflate: bool, inflate_style: str,
        downsample: nn.Module | None,
    ) -> None:
        super().__init__()
        if inflate and inflate_style == "3x1x1":
            k1, p1, k2, p2 = (3, 1, 1), (1, 0, 0), (1, 3, 3), (0, 1, 1)
        elif inflate:  # 3x3x3
            k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (3, 3, 3), (1, 1, 1)
        else:
            k1, p1, k2, p2 = (1, 1, 1), (0, 0, 0), (1, 3, 3), (0, 1, 1)
        self.conv1 = ConvModule3d(inp, planes, k1, 1, p1)
        self.conv2 = ConvModule3d(planes, planes, k2, (temporal_stride, spatial_stride, spatial_stride), p2)
        self.conv3 = ConvModule3d(planes, planes * 4, 1, act=False)
        self.downsample = downsample
        self.relu = nn.ReLU(inplace=True)

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.bn.weight)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


#: depth -> (block, blocks per stage), as mmaction2's ResNet3d.arch_settings.
ARCH_SETTINGS: dict[int, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    18: (BasicBlock3d, (2, 2, 2, 2)),
    34: (BasicBlock3d, (3, 4, 6, 3)),
    50: (Bottleneck3d, (3, 4, 6, 3)),
    101: (Bottleneck3d, (3, 4, 23, 3)),
    152: (Bottleneck3d, (3, 8, 36, 3)),
}


def _ints(v: Sequence[Any]) -> tuple[int, ...]:
    return tuple(int(x) for x in v)


@dataclass(frozen=True)
class ResNet3dSettings:
    """The architecture knobs of mmaction2's ResNet3d that change shapes or the computation.

    ``inflate`` has one entry per stage: an int for all blocks of that stage or a tuple with
    one 0/1 per block. Lists (from a JSON card) are accepted and stored as tuples.
    """

    depth: int = 50
    base_channels: int = 64
    conv1_kernel: tuple[int, int, int] = (3, 7, 7)
    conv1_stride_t: int = 1
    pool1_stride_t: int = 1
    with_pool1: bool = True
    with_pool2: bool = True
    inflate: tuple[int | tuple[int, ...], ...] = (1, 1, 1, 1)
    inflate_style: str = "3x1x1"
    spatial_strides: tuple[int, int, int, int] = (1, 2, 2, 2)
    temporal_strides: tuple[int, int, int, int] = (1, 1, 1, 1)

    def __post_init__(self) -> None:
        if self.depth not in ARCH_SETTINGS:
            raise ValueError(f"ResNet3d depth must be one of {sorted(ARCH_SETTINGS)}, got {self.depth}")
        if self.inflate_style not in ("3x1x1", "3x3x3"):
            raise ValueError(f"inflate_style must be '3x1x1' or '3x3x3', got {self.inflate_style!r}")
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("conv1_kernel", _ints(self.conv1_kernel))
        set_("spatial_strides", _ints(self.spatial_strides))
        set_("temporal_strides", _ints(self.temporal_strides))
        set_("inflate", tuple(int(v) if isinstance(v, (int, bool)) else _ints(v) for v in self.inflate))
        if len(self.conv1_kernel) != 3:
            raise ValueError(f"conv1_kernel needs three sizes (t, h, w), got {self.conv1_kernel}")
        if not len(self.inflate) == len(self.spatial_strides) == len(self.temporal_strides) == 4:
            raise ValueError("inflate, spatial_strides and temporal_strides need one entry per stage (4)")
        for i, (v, n) in enumerate(zip(self.inflate, self.stage_blocks)):
            if isinstance(v, tuple) and len(v) != n:
                raise ValueError(f"inflate[{i}] has {len(v)} entries but stage {i + 1} of ResNet3d-{self.depth} has {n} blocks")

    @property
    def block(self) -> type[nn.Module]:
        return ARCH_SETTINGS[self.depth][0]

    @property
    def stage_blocks(self) -> tuple[int, int, int, int]:
        return ARCH_SETTINGS[self.depth][1]

    def block_inflate(self, stage: int) -> tuple[bool, ...]:
        v = self.inflate[stage]
        n = self.stage_blocks[stage]
        return tuple(bool(b) for b in v) if isinstance(v, tuple) else (bool(v),) * n

    def replace(self, **changes: Any) -> "ResNet3dSettings":
        return dataclasses.replace(self, **changes)


class ResNet3dBackbone(nn.Module):
    """mmaction2's ResNet3d: stem (conv1 + maxpool), layer1..4, pool2 after layer1.

    ``lateral_inplanes`` adds input channels to each stage's first block; SlowFast's slow
    pathway uses it for the features concatenated from the fast pathway.
    """

    def __init__(self, settings: ResNet3dSettings, lateral_inplanes: Sequence[int] = (0, 0, 0, 0)) -> None:
        super().__init__()
        s = self.settings = settings
        kt, kh, kw = s.conv1_kernel
        self.conv1 = ConvModule3d(
            3, s.base_channels, s.conv1_kernel, (s.conv1_stride_t, 2, 2), ((kt - 1) // 2, (kh - 1) // 2, (kw - 1) // 2)
        )
        self.maxpool = nn.MaxPool3d((1, 3, 3), (s.pool1_stride_t, 2, 2), (0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1), (2, 1, 1))
        block = s.block
        inp = s.base_channels
        for i, n in enumerate(s.stage_blocks):
            planes = s.base_channels * 2**i
            self.add_module(
                f"layer{i + 1}",
                _make_stage(
                    block, inp + lateral_inplanes[i], planes, s.spatial_strides[i], s.temporal_strides[i],
                    s.block_inflate(i), s.inflate_style,
                ),
            )
            inp = planes * block.expansion
        self.feat_dim = inp

    def stem(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.maxpool(x) if self.settings.with_pool1 else x

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer1(self.stem(x))
        if self.settings.with_pool2:
            x = self.pool2(x)
        return self.layer4(self.layer3(self.layer2(x)))


def _make_stage(
    block: type[nn.Module], inp: int, planes: int, spatial_stride: int, temporal_stride: int,
    inflate: tuple[bool, ...], inflate_style: str,
) -> nn.Sequential:
    out = planes * block.expansion
    downsample = None
    if spatial_stride != 1 or inp != out:
        downsample = ConvModule3d(inp, out, 1, (temporal_stride, spatial_stride, spatial_stride), act=False)
    blocks = [block(inp, planes, spatial_stride, temporal_stride, inflate[0], inflate_style, downsample)]
    blocks += [block(out, planes, 1, 1, inflate[i], inflate_style, None) for i in range(1, len(inflate))]
    return nn.Sequential(*blocks)


class I3DHead(nn.Module):
    """Global average pool → dropout → ``fc_cls`` (mmaction2's I3DHead)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc_cls.weight, 0, 0.01)
        nn.init.zeros_(self.fc_cls.bias)

    def pool(self, x: Tensor) -> Tensor:
        """Backbone output -> the pooled (N, in_channels) vector ``fc_cls`` sees."""
        return self.avg_pool(x).flatten(1)

    def forward(self, x: Any) -> Tensor:
        return self.fc_cls(self.dropout(self.pool(x)))


def init_mmaction2(model: nn.Module) -> None:
    """mmaction2's defaults: Kaiming convs, unit BN, zero last BN of each residual branch (heads init themselves)."""
    init_weights(model, conv_mode="fan_out", zero_init_last=True)


class Recognizer3D(VideoClassifier):
    """``backbone`` + ``cls_head``: mmaction2's module names, so checkpoint keys match."""

    def __init__(self, settings: ResNet3dSettings, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.settings = settings
        self.backbone = ResNet3dBackbone(settings)
        self.cls_head = I3DHead(self.backbone.feat_dim, num_classes, dropout)
        init_mmaction2(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """Backbone output (N, feat_dim, T', H/32, W/32)."""
        check_clip(x, f"ResNet3d-{self.settings.depth}")
        return self.backbone(x)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        return self.cls_head.pool(features) if pre_logits else self.cls_head(features)


# --------------------------------------------------------------------------------------------
# presets
# --------------------------------------------------------------------------------------------

# mmaction2's Kinetics recipes: ImageNet mean/std in 0-255, short side 256, centre crop 224,
# 32 frames taken every 2nd frame of ~30 fps video (15 fps).
MMACTION2_KINETICS = Preprocessing(crop_size=224, resize_short=256, mean=IMAGENET_MEAN, std=IMAGENET_STD)
MMACTION2_32X2 = ModelDefaults(
    preprocessing=MMACTION2_KINETICS, temporal=Temporal(mode="window", clip_len=32, fps=15.0, clip_layout="NCTHW")
)
# The slowonly_r50 and slowonly_r101 8x8 recipes: 8 frames, one every 8th (3.75 fps of 30 fps video).
SLOWONLY_8X8 = ModelDefaults(
    preprocessing=MMACTION2_KINETICS, temporal=Temporal(mode="window", clip_len=8, fps=3.75, clip_layout="NCTHW")
)

#: I3D-ResNet-50 as mmaction2's i3d_r50 model config builds it.
I3D_R50 = ResNet3dSettings(
    depth=50, conv1_kernel=(5, 7, 7), conv1_stride_t=2, pool1_stride_t=2,
    inflate=((1, 1, 1), (1, 0, 1, 0), (1, 0, 1, 0, 1, 0), (0, 1, 0)),
)
#: mmaction2's ResNet3dSlowOnly at depth 50: a 1x7x7 stem, stages 3-4 inflated, and no pool2 (at any
#: depth), so no temporal downsampling at all. The published configs are depth 50 and 101.
SLOWONLY_R50 = ResNet3dSettings(depth=50, conv1_kernel=(1, 7, 7), inflate=(0, 0, 1, 1), with_pool2=False)
SLOWONLY_DEPTHS = (50, 101, 152)


def _recognizer(base: ResNet3dSettings, num_classes: int, dropout: float, kw: dict[str, Any]) -> Recognizer3D:
    try:
        settings = base.replace(**kw)
    except TypeError as exc:
        fields = ", ".join(f.name for f in dataclasses.fields(ResNet3dSettings))
        raise TypeError(f"{exc}; ResNet3d settings are: {fields}") from None
    return Recognizer3D(settings, num_classes, dropout)


@register_model(MMACTION2_32X2)
def resnet3d_18(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """mmaction2 ResNet3d-18 (all blocks inflated unless told), mmaction2 key layout"""
    return _recognizer(ResNet3dSettings(depth=18), num_classes, dropout, kw)


@register_model(MMACTION2_32X2)
def resnet3d_34(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """mmaction2 ResNet3d-34 (all blocks inflated unless told), mmaction2 key layout"""
    return _recognizer(ResNet3dSettings(depth=34), num_classes, dropout, kw)


@register_model(MMACTION2_32X2)
def resnet3d_50(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """mmaction2 ResNet3d-50 (all blocks inflated unless told), mmaction2 key layout"""
    return _recognizer(ResNet3dSettings(depth=50), num_classes, dropout, kw)


@register_model(MMACTION2_32X2)
def resnet3d_101(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """mmaction2 ResNet3d-101 (all blocks inflated unless told), mmaction2 key layout"""
    return _recognizer(ResNet3dSettings(depth=101), num_classes, dropout, kw)


@register_model(MMACTION2_32X2)
def resnet3d_152(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """mmaction2 ResNet3d-152 (all blocks inflated unless told), mmaction2 key layout"""
    return _recognizer(ResNet3dSettings(depth=152), num_classes, dropout, kw)


@register_model(MMACTION2_32X2)
def i3d_r50(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """I3D ResNet-50 (mmaction2 i3d_r50, 32x2 Kinetics recipe)"""
    return _recognizer(I3D_R50, num_classes, dropout, kw)


@register_model(SLOWONLY_8X8)
def slowonly_r50(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """SlowOnly ResNet-50 (mmaction2 ResNet3dSlowOnly, 8x8 recipe)"""
    return _recognizer(SLOWONLY_R50, num_classes, dropout, kw)


@register_model(SLOWONLY_8X8)
def slowonly_r101(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """SlowOnly ResNet-101 (mmaction2 ResNet3dSlowOnly, 8x8 recipe)"""
    return _recognizer(SLOWONLY_R50.replace(depth=101), num_classes, dropout, kw)


@register_model(SLOWONLY_8X8)
def slowonly_r152(*, num_classes: int, dropout: float = 0.5, **kw: Any) -> Recognizer3D:
    """SlowOnly ResNet-152 (mmaction2 ResNet3dSlowOnly, 8x8 timing assumed)"""
    return _recognizer(SLOWONLY_R50.replace(depth=152), num_classes, dropout, kw)
