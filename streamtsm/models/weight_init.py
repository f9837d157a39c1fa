"""Random initialisation shared by every model family, with each family's own choices as arguments.

Kaiming-normal convs, unit BatchNorm, optionally a small normal classifier and zero-initialised
last BN of each residual branch (blocks that offer ``zero_init_last``, as timm's blocks do).
One pass over ``model.modules()`` in registration order, so a seeded build draws the same
numbers whichever family calls it.
"""

from __future__ import annotations

from torch import nn

_CONVS = (nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm2d, nn.BatchNorm3d)


def init_weights(
    model: nn.Module, *, conv_mode: str = "fan_out", linear_std: float | None = None, zero_init_last: bool = False
) -> None:
    """Initialise ``model`` in place.

    ``conv_mode`` is Kaiming's ``fan_out`` (torchvision, mmaction2, TSM) or ``fan_in`` (the seed
    R(2+1)D); ``linear_std=None`` leaves ``nn.Linear`` layers as they are (heads that initialise
    themselves); ``zero_init_last`` makes every residual block start as the identity.
    """
    for m in model.modules():
        if isinstance(m, _CONVS):
            nn.init.kaiming_normal_(m.weight, mode=conv_mode, nonlinearity="relu")
        elif isinstance(m, _NORMS):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0, linear_std)
            nn.init.zeros_(m.bias)
    if zero_init_last:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()
