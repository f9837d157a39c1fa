"""Checkpoint formats of 2D TSM/TSN models (official TSM repo, mmaction2) and their key maps.

Our layout: MobileNetV2 as the official TSM online demo (``features.N.conv.{0,1,3,4,6,7}``,
``classifier``), ResNet as torchvision (``layerK.i.convJ``, ``fc``). What each source calls
things, and how it maps:

* official online demo (``mobilenetv2_jester_online.pth.tar``): bare state dict already in our
  MobileNetV2 layout; unidirectional shift (its Jester labels come with the weight entry
  ``tsm_mobilenetv2.jester_online``, not from the class count).
* official offline (``TSM_kinetics_RGB_*.pth``): ``{"state_dict": …}`` with ``module.base_model.``
  prefix, shifted convs wrapped as ``….net``, classifier ``module.new_fc``; bidirectional.
* mmaction2 (``tsm_r50_…pth``): ``backbone.`` prefix, ConvModule names (``conv1.conv``,
  ``conv1.bn``), shifted convs ``….net``, classifier ``cls_head.fc_cls``; bidirectional.
* torchvision ImageNet MobileNetV2/ResNet: backbone initialisation for training
  (``imagenet_backbone_state_dict``), not a video model by itself.
"""

from __future__ import annotations

import re

from ..card import Temporal
from .formats import CheckpointError, CheckpointFormat, Converted, KeyShapes, StateDict, rename_keys, strip_prefix

# Block counts per stage -> depth, for ResNets recognised from their keys.
_RESNET_DEPTHS = {(2, 2, 2, 2, False): 18, (3, 4, 6, 3, False): 34, (3, 4, 6, 3, True): 50, (3, 4, 23, 3, True): 101}
# mmaction2 MobileNetV2 stages (layer1..layer7) -> flat ``features`` indices 1..17.
_MMACTION_MBV2_BLOCKS = (1, 2, 3, 4, 3, 3, 1)


def _resnet_arch(keys: KeyShapes, prefix: str, conv3_name: str) -> str:
    counts = []
    for stage in range(1, 5):
        idx = {int(m.group(1)) for k in keys if (m := re.match(rf"{re.escape(prefix)}layer{stage}\.(\d+)\.", k))}
        counts.append(len(idx))
    bottleneck = any(conv3_name in k for k in keys)
    depth = _RESNET_DEPTHS.get((*counts, bottleneck))
    if depth is None:
        raise CheckpointError(f"ResNet with blocks per stage {counts} (bottleneck={bottleneck}) is not a supported depth")
    return f"resnet{depth}"


def _classes_from(sd: StateDict, fc_key: str) -> int:
    if fc_key not in sd or sd[fc_key].dim() != 2:
        raise CheckpointError(f"classifier weight {fc_key!r} missing or not 2-D")
    return int(sd[fc_key].shape[0])


def _card_for_shift(shift_mode: str) -> dict:
    """Card fields a TSM file implies: its shift mode and hence online or window use.

    Class names and frame rate are not in the tensors: a bare file gets class_0… and the registry
    default rate, listed in ``unverified`` by the loader. Load it by weight name
    (``load_model("tsm_mobilenetv2.jester_online")``) to get the card of its source.
    """
    return {
        "shift_mode": shift_mode,
        "temporal": Temporal(mode="online" if shift_mode == "uni" else "window", num_segments=8, clip_len=8,
                             clip_layout="NTCHW"),
    }


# -- official online demo -----------------------------------------------------------------

def _detect_official_online(keys: KeyShapes) -> bool:
    return "features.0.0.weight" in keys and "classifier.weight" in keys and len(keys.get("features.1.conv.0.weight", ())) == 4


def _convert_official_online(sd: StateDict) -> Converted:
    n = _classes_from(sd, "classifier.weight")
    return Converted("tsm_mobilenetv2", {"num_classes": n, "shift_mode": "uni"}, dict(sd), _card_for_shift("uni"))


# -- official offline ---------------------------------------------------------------------

def _detect_official_offline(keys: KeyShapes) -> bool:
    return any(k.startswith("module.base_model.") for k in keys) and "module.new_fc.weight" in keys


def _convert_official_offline(sd: StateDict) -> Converted:
    shifted = any(".net." in k for k in sd)
    shift = "bi" if shifted else "none"
    sd = strip_prefix(sd, "module.base_model.")
    sd = rename_keys(sd, [(r"\.net\.", ".")])
    if any(k.startswith("features.") for k in sd):
        sd = rename_keys(sd, [(r"^module\.new_fc\.", "classifier.")])
        arch = "mobilenetv2"
    else:
        sd = rename_keys(sd, [(r"^module\.new_fc\.", "fc.")])
        arch = _resnet_arch(sd, "", ".conv3.")
    key = "classifier.weight" if arch == "mobilenetv2" else "fc.weight"
    n = _classes_from(sd, key)
    return Converted(f"tsm_{arch}", {"num_classes": n, "shift_mode": shift}, sd, _card_for_shift(shift))


# -- mmaction2 ----------------------------------------------------------------------------

def _detect_mmaction2_tsm(keys: KeyShapes) -> bool:
    return len(keys.get("backbone.conv1.conv.weight", ())) == 4 and "cls_head.fc_cls.weight" in keys


def _mmaction_mbv2_to_ours(sd: StateDict) -> StateDict:
    stage_start, flat = {}, 1
    for stage, n in enumerate(_MMACTION_MBV2_BLOCKS, start=1):
        stage_start[stage] = flat
        flat += n
    out: StateDict = {}
    for k, v in sd.items():
        k = k.replace(".net.", ".")
        if k.startswith("conv1."):
            k = "features.0." + {"conv": "0", "bn": "1"}[k.split(".")[1]] + "." + k.split(".", 2)[2]
        elif k.startswith("conv2."):
            k = "features.18." + {"conv": "0", "bn": "1"}[k.split(".")[1]] + "." + k.split(".", 2)[2]
        elif m := re.match(r"layer(\d)\.(\d+)\.conv\.(\d)\.(conv|bn)\.(.+)", k):
            stage, block, unit, kind, rest = int(m[1]), int(m[2]), int(m[3]), m[4], m[5]
            # ConvModule unit u (conv+bn+act) sits at Sequential index 3u in the flat layout.
            k = f"features.{stage_start[stage] + block}.conv.{3 * unit + (1 if kind == 'bn' else 0)}.{rest}"
        elif k.startswith("fc."):
            k = "classifier." + k[3:]
        out[k] = v
    return out


def _convert_mmaction2_tsm(sd: StateDict) -> Converted:
    shifted = any(".net." in k for k in sd)
    shift = "bi" if shifted else "none"
    sd = strip_prefix(sd, "backbone.")
    sd = rename_keys(sd, [(r"^cls_head\.fc_cls\.", "fc.")])
    if any(k.startswith("layer7.") for k in sd):
        sd = _mmaction_mbv2_to_ours(sd)
        arch, fc = "mobilenetv2", "classifier.weight"
    else:
        sd = rename_keys(sd, [
            (r"\.net\.", "."),
            (r"^conv1\.conv\.", "conv1."), (r"^conv1\.bn\.", "bn1."),
            (r"\.conv(\d)\.conv\.", r".conv\1."), (r"\.conv(\d)\.bn\.", r".bn\1."),
            (r"\.downsample\.conv\.", ".downsample.0."), (r"\.downsample\.bn\.", ".downsample.1."),
        ])
        arch, fc = _resnet_arch(sd, "", ".conv3."), "fc.weight"
    n = _classes_from(sd, fc)
    return Converted(f"tsm_{arch}", {"num_classes": n, "shift_mode": shift}, sd, _card_for_shift(shift))


FORMATS: list[CheckpointFormat] = [
    CheckpointFormat(
        "tsm_official_online",
        "official TSM online demo (features.N.conv.K, classifier; unidirectional shift)",
        _detect_official_online,
        _convert_official_online,
    ),
    CheckpointFormat(
        "tsm_official_offline",
        "official TSM offline (module.base_model.…, .net, module.new_fc; bidirectional shift)",
        _detect_official_offline,
        _convert_official_offline,
    ),
    CheckpointFormat(
        "mmaction2_tsm",
        "mmaction2 TSM/TSN (backbone.conv1.conv 2-D, cls_head.fc_cls; bidirectional shift)",
        _detect_mmaction2_tsm,
        _convert_mmaction2_tsm,
    ),
]


def imagenet_backbone_state_dict(sd: StateDict) -> tuple[str, StateDict]:
    """Rename a torchvision ImageNet MobileNetV2/ResNet state dict to our layout, without the classifier.

    Returns (backbone family, state dict) where the family is ``mobilenetv2`` or ``resnetNN``.
    Used to initialise training; the ImageNet classifier is dropped (it has 1000 classes).
    """
    if "features.1.conv.0.0.weight" in sd:  # torchvision MobileNetV2
        out: StateDict = {}
        for k, v in sd.items():
            if k.startswith("classifier."):
                continue
            m = re.match(r"features\.(\d+)\.conv\.(.+)", k)
            if m:
                block, rest = int(m[1]), m[2]
                expand = block != 1
                table = (
                    {"0.0": "0", "0.1": "1", "1.0": "3", "1.1": "4", "2": "6", "3": "7"}
                    if expand
                    else {"0.0": "0", "0.1": "1", "1": "3", "2": "4"}
                )
                head, _, tail = rest.rpartition(".")
                k = f"features.{block}.conv.{table[head]}.{tail}"
            out[k] = v
        return "mobilenetv2", out
    if "features.1.conv.0.weight" in sd:  # already our layout (official TSM)
        return "mobilenetv2", {k: v for k, v in sd.items() if not k.startswith("classifier.")}
    if "conv1.weight" in sd and "layer1.0.conv1.weight" in sd:
        return _resnet_arch(sd, "", ".conv3."), {k: v for k, v in sd.items() if not k.startswith("fc.")}
    raise CheckpointError(
        "not a torchvision ImageNet MobileNetV2 or ResNet state dict "
        f"(first keys: {list(sd)[:5]}); pass the file saved by torchvision (e.g. mobilenet_v2-b0353104.pth)"
    )
