"""What fine-tuning changes in a network: a new classifier for new classes, and frozen early stages.

Stages are listed per architecture (stem first, then the residual stages in order, as
mmaction2's and torchvision's ``frozen_stages`` count them), because the early stages hold the
generic edge/motion filters worth keeping when a dataset is a few dozen clips. A frozen stage
keeps its weights *and* its BatchNorm statistics: :func:`keep_frozen_batchnorm_in_eval` is applied
whenever the loop switches the model to training mode.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..models.mobilenetv2 import INVERTED_RESIDUAL_SETTING, MobileNetV2
from ..models.r2plus1d import VideoResNet
from ..models.r2plus1d_seed import R2Plus1DClassifier
from ..models.registry import create_model
from ..models.resnet import ResNet
from ..models.resnet3d import Recognizer3D
from ..models.slowfast import SlowFast

__all__ = ["FinetuneError", "classifier_name", "stages", "freeze_stages", "keep_frozen_batchnorm_in_eval",
           "with_classes", "same_classes_reordered"]


class FinetuneError(ValueError):
    """The model cannot be fine-tuned that way (unknown head, too many stages to freeze)."""


def classifier_name(model: nn.Module) -> str:
    """Dotted name of the final ``nn.Linear`` that maps features to class logits."""
    for cls, name in ((MobileNetV2, "classifier"), (ResNet, "fc"), (VideoResNet, "fc"), (Recognizer3D, "cls_head.fc_cls"),
                      (SlowFast, "cls_head.fc_cls"), (R2Plus1DClassifier, "linear")):
        if isinstance(model, cls):
            return name
    raise FinetuneError(f"do not know the classifier of a {type(model).__name__}")


def stages(model: nn.Module) -> list[list[nn.Module]]:
    """The network's stages in input order: ``[stem, stage 1, stage 2, ...]`` (the classifier is not one)."""
    if isinstance(model, MobileNetV2):
        f, out, i = list(model.features), [[model.features[0]]], 1
        for _, _, n, _ in INVERTED_RESIDUAL_SETTING:
            out.append(f[i:i + n])
            i += n
        return out + [[f[-1]]]  # the last 1x1 conv to the feature width
    if isinstance(model, ResNet):
        return [[model.conv1, model.bn1]] + [[s] for s in model.stages()]
    if isinstance(model, VideoResNet):
        return [[model.stem]] + [[getattr(model, f"layer{i}")] for i in range(1, 5)]
    if isinstance(model, Recognizer3D):
        b = model.backbone
        return [[b.conv1]] + [[getattr(b, f"layer{i}")] for i in range(1, 5)]
    if isinstance(model, SlowFast):
        slow, fast = model.backbone.slow_path, model.backbone.fast_path
        out = [[slow.conv1, fast.conv1, slow.conv1_lateral]]
        for i in range(1, 5):
            lateral = [getattr(slow, f"layer{i}_lateral")] if i < 4 else []
            out.append([getattr(slow, f"layer{i}"), getattr(fast, f"layer{i}")] + lateral)
        return out
    if isinstance(model, R2Plus1DClassifier):
        net = model.res2plus1d
        return [[getattr(net, f"conv{i}")] for i in range(1, 6)]
    raise FinetuneError(f"do not know the stages of a {type(model).__name__}")


def freeze_stages(model: nn.Module, count: int) -> int:
    """Freeze the first ``count`` stages (1 = the stem only); returns the number of frozen parameters."""
    all_stages = stages(model)
    if not 0 <= count < len(all_stages) + 1:
        raise FinetuneError(f"--freeze-stages {count}: {model.card.arch if hasattr(model, 'card') else type(model).__name__} "
                            f"has {len(all_stages)} stages (stem + {len(all_stages) - 1}); use 0..{len(all_stages)}")
    frozen = 0
    for stage in all_stages[:count]:
        for module in stage:
            for p in module.parameters():
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


def keep_frozen_batchnorm_in_eval(model: nn.Module) -> None:
    """BatchNorm layers whose affine parameters are frozen keep their running statistics (eval mode)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and not m.weight.requires_grad:
            m.eval()


def with_classes(model: nn.Module, class_names: Sequence[str], *, dropout: float | None = None,
                 reorder: bool = False) -> tuple[nn.Module, bool]:
    """``model`` for ``class_names``: the same weights, with a new (randomly initialised) classifier
    unless the classes are exactly the model's (same names, same order). Returns (model, new_head).

    ``reorder``: when the names are the model's in another order, keep the trained classifier with
    its rows (and biases) moved to the new order (``new_head`` is then False; see
    :func:`same_classes_reordered`). ``dropout`` rebuilds the model with another dropout rate (a
    builder argument, not a weight).
    """
    card = model.card
    names = tuple(class_names)
    kwargs = {k: v for k, v in card.arch_kwargs.items() if k != "num_classes"}
    if dropout is not None:
        kwargs["dropout"] = float(dropout)
    same = names == card.class_names
    if same and dropout is None:
        return model, False
    moved = reorder and not same and same_classes_reordered(card.class_names, names)
    fresh = create_model(card.arch, num_classes=len(names), class_names=names, **kwargs)
    head = classifier_name(fresh) + "."
    old = model.state_dict()
    keep = {k: v for k, v in old.items() if same or not k.startswith(head)}
    if moved:
        order = torch.tensor([card.class_names.index(n) for n in names])
        for k, v in old.items():
            if k.startswith(head):  # weight (K, F) and bias (K,): rows follow the classes
                keep[k] = v.index_select(0, order).clone() if v.dim() >= 1 and v.shape[0] == len(names) else v
    missing, unexpected = fresh.load_state_dict(keep, strict=False)
    if unexpected or any(not k.startswith(head) for k in missing):
        raise FinetuneError(f"{card.arch}: rebuilding for new classes lost weights other than the classifier "
                            f"({[k for k in missing if not k.startswith(head)][:4]}, {unexpected[:4]})")
    fresh.card = card.replace(arch_kwargs={"num_classes": len(names), **kwargs}, class_names=names,
                              background_classes=tuple(c for c in card.background_classes if c in names))
    with torch.no_grad():
        fresh.train(model.training)
    return fresh, not (same or moved)


def same_classes_reordered(old: Sequence[str], new: Sequence[str]) -> bool:
    """The same class names (each once), in another order."""
    return tuple(old) != tuple(new) and len(old) == len(new) == len(set(old)) and set(old) == set(new)
