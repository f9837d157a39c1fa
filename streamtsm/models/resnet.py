"""TSM ResNet in torchvision's key layout (``conv1``, ``bn1``, ``layerK.i.conv1`` …, ``fc``).

ImageNet ResNet state dicts load as they are; official-TSM (``.net``) and mmaction2
(``conv1.conv``, ``bn``) files are renamed to this layout in ``checkpoints/tsm.py``.
The shift goes on the input of ``conv1`` of each block (residual shift); ResNet-101/152 shift
every other block of each stage, as the official code does for deep nets.
"""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model
from .tsm import TSM_IMAGENET, TemporalShiftNet
from .weight_init import init_weights


def conv3x3(inp: int, oup: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, oup, 3, stride, 1, bias=False)


def conv1x1(inp: int, oup: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inp, oup, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inp: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.in_channels = inp
        self.conv1, self.bn1 = conv3x3(inp, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_branch_input(x, x)

    def forward_branch_input(self, x: Tensor, branch_in: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(branch_in)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inp: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.in_channels = inp
        self.conv1, self.bn1 = conv1x1(inp, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = conv1x1(planes, planes * 4), nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_branch_input(x, x)

    def forward_branch_input(self, x: Tensor, branch_in: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(branch_in)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(TemporalShiftNet):
    """ResNet-18…152 with optional temporal shift on every (or every other) block."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int,
        *,
        shift_mode: str = "uni",
        shift_div: int = 8,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.shift_mode, self.shift_div = shift_mode, shift_div
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inp = 64
        for k, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stride = 1 if k == 1 else 2
            down = None
            if stride != 1 or inp != planes * block.expansion:
                down = nn.Sequential(conv1x1(inp, planes * block.expansion, stride), nn.BatchNorm2d(planes * block.expansion))
            stage = [block(inp, planes, stride, down)]
            inp = planes * block.expansion
            stage += [block(inp, planes) for _ in range(1, n)]
            setattr(self, f"layer{k}", nn.Sequential(*stage))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(inp, num_classes)
        # Deep nets shift every other block of each stage (official TSM, layer3 >= 23 blocks).
        self._shift_every = 2 if layers[2] >= 23 else 1
        init_weights(self, conv_mode="fan_out", linear_std=0.01)

    def stages(self) -> list[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def blocks(self) -> list[nn.Module]:
        return [b for stage in self.stages() for b in stage]

    def forward_frame_head(self, x: Tensor) -> Tensor:
        """Global average pool, dropout, ``fc``."""
        return self.fc(self.dropout(x.mean((2, 3))))

    def shift_points(self) -> tuple[int, ...]:
        points, offset = [], 0
        for stage in self.stages():
            points += [offset + i for i in range(0, len(stage), self._shift_every)]
            offset += len(stage)
        return tuple(points)


def _resnet(block, layers, num_classes: int, shift_mode: str, **kw) -> ResNet:
    return ResNet(block, layers, num_classes, shift_mode=shift_mode, **kw)


@register_model(TSM_IMAGENET)
def tsm_resnet18(*, num_classes: int, shift_mode: str = "uni", **kw) -> ResNet:
    """TSM ResNet-18."""
    return _resnet(BasicBlock, (2, 2, 2, 2), num_classes, shift_mode, **kw)


@register_model(TSM_IMAGENET)
def tsm_resnet34(*, num_classes: int, shift_mode: str = "uni", **kw) -> ResNet:
    """TSM ResNet-34."""
    return _resnet(BasicBlock, (3, 4, 6, 3), num_classes, shift_mode, **kw)


@register_model(TSM_IMAGENET)
def tsm_resnet50(*, num_classes: int, shift_mode: str = "uni", **kw) -> ResNet:
    """TSM ResNet-50 (the paper's main model)."""
    return _resnet(Bottleneck, (3, 4, 6, 3), num_classes, shift_mode, **kw)


@register_model(TSM_IMAGENET)
def tsm_resnet101(*, num_classes: int, shift_mode: str = "uni", **kw) -> ResNet:
    """TSM ResNet-101 (shift on every other block)."""
    return _resnet(Bottleneck, (3, 4, 23, 3), num_classes, shift_mode, **kw)


@register_model(TSM_IMAGENET)
def tsn_resnet50(*, num_classes: int, **kw) -> ResNet:
    """ResNet-50 without shift (TSN baseline)."""
    return _resnet(Bottleneck, (3, 4, 6, 3), num_classes, "none", **kw)
