"""TSM MobileNetV2 in the layout of the official TSM online demo.

Key names match ``mobilenetv2_jester_online.pth.tar`` (``features.N.conv.{0,1,3,4,6,7}``,
``classifier``), so that file loads without renaming; torchvision and offline-TSM files are
renamed to it in ``checkpoints/tsm.py``. Shift points are the inverted residual blocks with
an identity shortcut (features 3, 5, 6, 8, 9, 10, 12, 13, 15, 16 at width 1.0), and the shift
goes on the input of their 1x1 expansion conv.
"""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model
from .tsm import TSM_IMAGENET, TemporalShiftNet
from .weight_init import init_weights

# (expand ratio t, output channels c, repeats n, first stride s), as in the MobileNetV2 paper.
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10% (MobileNet rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def conv_bn_relu6(inp: int, oup: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(inp, oup, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(oup),
        nn.ReLU6(inplace=True),
    ]


class InvertedResidual(nn.Module):
    """Expansion 1x1 -> depthwise 3x3 -> linear 1x1, with an identity shortcut when shapes allow."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.in_channels = inp
        self.has_identity = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers += conv_bn_relu6(inp, hidden, 1)
        layers += conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)
        layers += [nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.has_identity else self.conv(x)

    def forward_branch_input(self, x: Tensor, branch_in: Tensor) -> Tensor:
        if not self.has_identity:
            raise RuntimeError("a residual shift needs a block with an identity shortcut")
        return x + self.conv(branch_in)


class MobileNetV2(TemporalShiftNet):
    """MobileNetV2 with optional temporal shift (``shift_mode`` uni/bi/none)."""

    def __init__(
        self,
        num_classes: int,
        *,
        width_mult: float = 1.0,
        shift_mode: str = "uni",
        shift_div: int = 8,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.shift_mode, self.shift_div = shift_mode, shift_div
        inp = make_divisible(32 * width_mult)
        self.last_channel = make_divisible(1280 * width_mult) if width_mult > 1.0 else 1280
        features: list[nn.Module] = [nn.Sequential(*conv_bn_relu6(3, inp, 3, 2))]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            oup = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(inp, oup, s if i == 0 else 1, t))
                inp = oup
        features.append(nn.Sequential(*conv_bn_relu6(inp, self.last_channel, 1)))
        self.features = nn.Sequential(*features)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.last_channel, num_classes)
        init_weights(self, conv_mode="fan_out", linear_std=0.01)

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.features[0](x)

    def blocks(self) -> list[nn.Module]:
        return list(self.features)[1:-1]

    def forward_frame_head(self, x: Tensor) -> Tensor:
        """Last 1x1 conv (to ``last_channel``), global average pool, dropout, classifier."""
        x = self.features[-1](x).mean((2, 3))
        return self.classifier(self.dropout(x))

    def shift_points(self) -> tuple[int, ...]:
        return tuple(i for i, b in enumerate(self.blocks()) if b.has_identity)


@register_model(TSM_IMAGENET)
def tsm_mobilenetv2(*, num_classes: int, shift_mode: str = "uni", **kw) -> MobileNetV2:
    """TSM MobileNetV2 (residual shift on identity blocks); shift_mode uni runs online, bi is the offline TSM."""
    return MobileNetV2(num_classes, shift_mode=shift_mode, **kw)


@register_model(TSM_IMAGENET)
def tsn_mobilenetv2(*, num_classes: int, **kw) -> MobileNetV2:
    """MobileNetV2 without shift (TSN): the appearance-only baseline."""
    return MobileNetV2(num_classes, shift_mode="none", **kw)
