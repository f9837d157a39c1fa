"""Checkpoint formats of the 3D-CNN families: torchvision R(2+1)D/R3D, the seed R(2+1)D, mmaction2 ResNet3d/I3D/SlowOnly and SlowFast.

Detection looks only at key names and shapes; conversion reads the architecture off the
weights (blocks per stage, basic vs bottleneck from ``conv3``, kernel sizes of every block for
the inflation pattern, lateral kernel size) and returns keys exactly as our model's
``state_dict``. Weights do not record temporal strides or SlowFast's τ/α; where a known recipe
fixes them (I3D, SlowOnly, the 4x16/8x8 SlowFast pairs) the matching preset is chosen, and the
card description says what was assumed.

Checkpoints saved from ``nn.DataParallel`` (every key prefixed ``module.``) are accepted too.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..models.resnet3d import ARCH_SETTINGS, I3D_R50, SLOWONLY_DEPTHS, SLOWONLY_R50, ResNet3dSettings
from .formats import CheckpointError, CheckpointFormat, Converted, KeyShapes, StateDict

_DP = "module."


def _plain(keys: Mapping[str, Any]) -> Mapping[str, Any]:
    """Keys without a DataParallel ``module.`` prefix (only if every key has it)."""
    if keys and all(k.startswith(_DP) for k in keys):
        return {k[len(_DP):]: v for k, v in keys.items()}
    return keys


def _blocks_per_stage(keys: Mapping[str, Any], prefix: str, stages: int = 4) -> tuple[int, ...]:
    """Count ``{prefix}layer{i}.{j}.`` blocks: (2, 2, 2, 2) for an 18-layer net, (3, 4, 6, 3) for 34/50 …"""
    counts = []
    for i in range(1, stages + 1):
        pat = re.compile(rf"^{re.escape(prefix)}layer{i}\.(\d+)\.")
        idx = {int(m.group(1)) for k in keys if (m := pat.match(k))}
        counts.append(max(idx) + 1 if idx else 0)
    return tuple(counts)


def _num_classes(sd: StateDict, key: str) -> int:
    if key not in sd or sd[key].dim() != 2:
        raise CheckpointError(f"classifier weight {key!r} missing or not 2-D; cannot tell the number of classes")
    return int(sd[key].shape[0])


# -- torchvision VideoResNet ----------------------------------------------------------------

_TV_DEPTHS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34}


def _detect_torchvision_r2plus1d(keys: KeyShapes) -> bool:
    keys = _plain(keys)
    return keys.get("stem.0.weight", ())[:1] == (45,) and len(keys.get("stem.3.weight", ())) == 5 and "fc.weight" in keys


def _convert_torchvision_r2plus1d(sd: StateDict) -> Converted:
    sd = dict(_plain(sd))
    blocks = _blocks_per_stage(sd, "")
    depth = _TV_DEPTHS.get(blocks)
    if depth is None:
        raise CheckpointError(f"torchvision R(2+1)D with {blocks} blocks per stage: only 18 {(2, 2, 2, 2)} and 34 {(3, 4, 6, 3)} are supported")
    kwargs: dict[str, Any] = {"num_classes": _num_classes(sd, "fc.weight")}
    # torchvision reuses the first conv's mid channels for the second conv of a block (230 for 64->128);
    # Caffe2/VMZ conversions compute them per conv (288 for 128->128).
    mid2 = sd["layer2.0.conv2.0.0.weight"].shape[0] if "layer2.0.conv2.0.0.weight" in sd else None
    if mid2 == 288:
        kwargs["mid_channels"] = "per_conv"
    return Converted(f"r2plus1d_{depth}", kwargs, sd, {})


def _detect_torchvision_r3d(keys: KeyShapes) -> bool:
    keys = _plain(keys)
    if keys.get("stem.0.weight") != (64, 3, 3, 7, 7) or "fc.weight" not in keys or "stem.3.weight" in keys:
        return False
    # every block conv is a full 3x3x3 (torchvision's MC3 has 1x3x3 convs after layer1: not this format)
    convs = [s for k, s in keys.items() if re.match(r"^layer\d\.\d+\.conv[12]\.0\.weight$", k)]
    return bool(convs) and all(s[2:] == (3, 3, 3) for s in convs)


def _convert_torchvision_r3d(sd: StateDict) -> Converted:
    sd = dict(_plain(sd))
    blocks = _blocks_per_stage(sd, "")
    if blocks != (2, 2, 2, 2):
        raise CheckpointError(f"torchvision R3D with {blocks} blocks per stage: only r3d_18 (2, 2, 2, 2) is supported")
    return Converted("r3d_18", {"num_classes": _num_classes(sd, "fc.weight")}, sd, {})


# -- seed R2Plus1DClassifier ------------------------------------------------------------------


def _detect_seed_r2plus1d(keys: KeyShapes) -> bool:
    keys = _plain(keys)
    return "res2plus1d.conv1.spatial_conv.weight" in keys and "linear.weight" in keys


def _convert_seed_r2plus1d(sd: StateDict) -> Converted:
    sd = dict(_plain(sd))
    layer_sizes = []
    for i in range(2, 6):
        pat = re.compile(rf"^res2plus1d\.conv{i}\.blocks\.(\d+)\.")
        idx = {int(m.group(1)) for k in sd if (m := pat.match(k))}
        layer_sizes.append(1 + (max(idx) + 1 if idx else 0))
    return Converted("r2plus1d_seed", {"num_classes": _num_classes(sd, "linear.weight"), "layer_sizes": tuple(layer_sizes)}, sd, {})


# -- mmaction2 ResNet3d (I3D, SlowOnly, plain inflated ResNet3d) ---------------------------------


def _detect_mmaction2_resnet3d(keys: KeyShapes) -> bool:
    keys = _plain(keys)
    return (
        len(keys.get("backbone.conv1.conv.weight", ())) == 5
        and "cls_head.fc_cls.weight" in keys
        and not any(k.startswith(("backbone.slow_path.", "backbone.fast_path.")) for k in keys)
    )


def _depth_of(sd: Mapping[str, Any], prefix: str) -> int:
    blocks = _blocks_per_stage(sd, prefix)
    bottleneck = f"{prefix}layer1.0.conv3.conv.weight" in sd
    for depth, (block, counts) in ARCH_SETTINGS.items():
        if counts == blocks and (block.expansion == 4) == bottleneck:
            return depth
    kind = "Bottleneck" if bottleneck else "BasicBlock"
    raise CheckpointError(f"ResNet3d with {kind} blocks {blocks} per stage matches no depth of 18/34/50/101/152")


def _inflation(sd: StateDict, prefix: str, depth: int) -> tuple[tuple[tuple[int, ...], ...], str]:
    """Per-block inflate flags and the inflate style, read from the temporal kernel sizes."""
    bottleneck = ARCH_SETTINGS[depth][0].expansion == 4
    stages, styles = [], set()
    for i, n in enumerate(ARCH_SETTINGS[depth][1]):
        flags = []
        for j in range(n):
            kt1 = sd[f"{prefix}layer{i + 1}.{j}.conv1.conv.weight"].shape[2]
            kt2 = sd[f"{prefix}layer{i + 1}.{j}.conv2.conv.weight"].shape[2]
            if bottleneck and kt1 > 1:
                styles.add("3x1x1")
            elif bottleneck and kt2 > 1:
                styles.add("3x3x3")
            flags.append(int(kt1 > 1 or kt2 > 1))
        stages.append(tuple(flags))
    if len(styles) > 1:
        raise CheckpointError("ResNet3d checkpoint mixes 3x1x1 and 3x3x3 inflated blocks; one inflate_style per network is supported")
    return tuple(stages), styles.pop() if styles else "3x1x1"


def _same_design(a: ResNet3dSettings, b: ResNet3dSettings) -> bool:
    """Same depth, stem and inflation pattern: all that the weights say about a ResNet3d."""
    return (
        (a.depth, a.base_channels, a.conv1_kernel, a.inflate_style) == (b.depth, b.base_channels, b.conv1_kernel, b.inflate_style)
        and all(a.block_inflate(i) == b.block_inflate(i) for i in range(4))
    )


def _convert_mmaction2_resnet3d(sd: StateDict) -> Converted:
    sd = dict(_plain(sd))
    if any(".non_local_block." in k for k in sd):
        raise CheckpointError("mmaction2 ResNet3d with non-local blocks (I3D-NL) is not supported; use a checkpoint without non-local blocks")
    depth = _depth_of(sd, "backbone.")
    conv1 = sd["backbone.conv1.conv.weight"].shape
    inflate, style = _inflation(sd, "backbone.", depth)
    found = ResNet3dSettings(depth=depth, base_channels=int(conv1[0]), conv1_kernel=tuple(conv1[2:]), inflate=inflate, inflate_style=style)
    n = _num_classes(sd, "cls_head.fc_cls.weight")
    if _same_design(found, I3D_R50):
        return Converted("i3d_r50", {"num_classes": n}, sd, {})
    # ResNet3dSlowOnly (a 1x7x7 stem, stages 3-4 inflated) has no pool2 at any depth, unlike the generic
    # ResNet3d; its published configs are Bottleneck nets, so a BasicBlock net keeps the generic reading.
    if depth in SLOWONLY_DEPTHS and _same_design(found, SLOWONLY_R50.replace(depth=depth)):
        note = (
            f"mmaction2 SlowOnly ResNet3d-{depth} (1x7x7 stem, stages 3-4 inflated, no pool2); 8x8 timing assumed "
            "(8 frames, one every 8th): a 4x16 checkpoint wants temporal clip_len=4, fps=1.875"
        )
        return Converted(f"slowonly_r{depth}", {"num_classes": n}, sd, {"description": note})
    kwargs: dict[str, Any] = {"num_classes": n, "conv1_kernel": found.conv1_kernel, "inflate": inflate, "inflate_style": style}
    if found.base_channels != 64:
        kwargs["base_channels"] = found.base_channels
    note = (
        f"mmaction2 ResNet3d-{depth} (inflation read from the weights; temporal strides assumed 1 "
        "and pool2 on: set conv1_stride_t/pool1_stride_t/with_pool2 in arch_kwargs if your config differs)"
    )
    return Converted(f"resnet3d_{depth}", kwargs, sd, {"description": note})


# -- mmaction2 SlowFast -----------------------------------------------------------------------

#: lateral kernel -> (tau, alpha) of mmaction2's (and PySlowFast's) recipes: 4x16 uses 5, 8x8 uses 7.
_SLOWFAST_RECIPES = {5: (8, 8), 7: (4, 4)}


def _detect_mmaction2_slowfast(keys: KeyShapes) -> bool:
    keys = _plain(keys)
    return (
        "backbone.slow_path.conv1.conv.weight" in keys
        and "backbone.fast_path.conv1.conv.weight" in keys
        and "cls_head.fc_cls.weight" in keys
    )


def _convert_mmaction2_slowfast(sd: StateDict) -> Converted:
    sd = dict(_plain(sd))
    if "backbone.slow_path.conv1_lateral.conv.weight" not in sd:
        raise CheckpointError("SlowFast checkpoint without lateral connections (conv1_lateral) is not supported")
    slow_depth = _depth_of(sd, "backbone.slow_path.")
    fast_depth = _depth_of(sd, "backbone.fast_path.")
    slow_c = sd["backbone.slow_path.conv1.conv.weight"].shape[0]
    fast_c = sd["backbone.fast_path.conv1.conv.weight"].shape[0]
    if slow_c != 64 or slow_c % fast_c:
        raise CheckpointError(f"SlowFast stems with {slow_c} slow / {fast_c} fast channels: expected 64 slow and 64/beta fast")
    fusion_kernel = int(sd["backbone.slow_path.conv1_lateral.conv.weight"].shape[2])
    tau, alpha = _SLOWFAST_RECIPES.get(fusion_kernel, (8, 8))
    kwargs = {
        "num_classes": _num_classes(sd, "cls_head.fc_cls.weight"),
        "resample_rate": tau,
        "speed_ratio": alpha,
        "channel_ratio": slow_c // fast_c,
        "fusion_kernel": fusion_kernel,
        "slow_depth": slow_depth,
        "fast_depth": fast_depth,
    }
    arch = "slowfast_r101" if slow_depth == 101 else "slowfast_r50"
    note = (
        f"mmaction2 SlowFast R{slow_depth}/R{fast_depth}: tau={tau}, alpha={alpha} assumed from the "
        f"{fusion_kernel}x1x1 lateral kernel (the {'8x8' if tau == 4 else '4x16'} recipe); weights do not record them"
    )
    return Converted(arch, kwargs, sd, {"description": note})


FORMATS: list[CheckpointFormat] = [
    CheckpointFormat(
        "torchvision_r2plus1d",
        "torchvision R(2+1)D-18/34 state dict (stem.0 with 45 channels, layerK.i.convJ.0.0, fc)",
        _detect_torchvision_r2plus1d,
        _convert_torchvision_r2plus1d,
    ),
    CheckpointFormat(
        "torchvision_r3d",
        "torchvision R3D-18 state dict (stem.0 3x7x7, 3x3x3 block convs, fc)",
        _detect_torchvision_r3d,
        _convert_torchvision_r3d,
    ),
    CheckpointFormat(
        "seed_r2plus1d",
        "seed / pytorch-video-recognition R2Plus1DClassifier (res2plus1d.conv1.spatial_conv, linear)",
        _detect_seed_r2plus1d,
        _convert_seed_r2plus1d,
    ),
    CheckpointFormat(
        "mmaction2_resnet3d",
        "mmaction2 Recognizer3D with ResNet3d/I3D/SlowOnly backbone (backbone.conv1.conv 5-D, cls_head.fc_cls)",
        _detect_mmaction2_resnet3d,
        _convert_mmaction2_resnet3d,
    ),
    CheckpointFormat(
        "mmaction2_slowfast",
        "mmaction2 Recognizer3D with ResNet3dSlowFast backbone (backbone.slow_path, backbone.fast_path, cls_head.fc_cls)",
        _detect_mmaction2_slowfast,
        _convert_mmaction2_slowfast,
    ),
]
