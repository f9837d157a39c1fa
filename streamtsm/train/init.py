"""Where training starts: :func:`build_model` (random weights) or :func:`load_init_model` (``--init SPEC``),
the one place that turns an initialisation spec into a torch model to fine-tune.

A spec is

* ``default`` -- the embedded model (an online TSM that already knows motion);
* a checkpoint path in any format :func:`streamtsm.load_model` reads: the architecture, its
  weights and its card (input size, preprocessing, frame rate) all come from it;
* a weight name (``streamtsm models``: ``tsm_mobilenetv2.jester_online``, …), downloaded once;
* a torchvision ImageNet MobileNetV2/ResNet state dict (a 1000-class classifier), as a file or by
  name (``mobilenet_v2.imagenet``, ``resnet50.imagenet``): only the 2D backbone comes from it,
  into the architecture the arguments chose (``--arch``); preprocessing and frame rate then come
  from the arguments too (``InitModel.from_card`` is False).

Everything but ImageNet backbones goes through :func:`streamtsm.resolve.load_torch_model`; a bare
architecture name is refused (random weights are what training without ``--init`` starts from).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from ..checkpoints import CheckpointError, read_state_dict
from ..checkpoints.tsm import imagenet_backbone_state_dict
from ..models import create_model, is_model
from ..resolve import ModelSpecError, load_torch_model
from ..weights import WeightsError, find_weight, weight_file
from .families import FAMILIES, FamilyError, family_of
from .finetune import classifier_name, with_classes

__all__ = ["InitError", "InitModel", "build_model", "load_init_model", "is_imagenet_classifier"]

IMAGENET_CLASSES = 1000


class InitError(ValueError):
    """The --init spec names nothing loadable, or something that does not fit."""


@dataclass
class InitModel:
    """The model to fine-tune and where it came from."""

    model: nn.Module  # with a .card for the dataset's classes
    source: str  # for messages and the card's description
    from_card: bool  # True: input size, preprocessing and fps come from the init card
    new_head: bool  # the classifier was replaced (the classes differ)


def build_model(arch: str, class_names: Sequence[str], *, shift: str | None = None, width: float | None = None,
                dropout: float | None = None) -> nn.Module:
    """A randomly initialised ``arch`` for ``class_names``; unset options keep the architecture's defaults.

    Options the family does not have are an error naming what it has, not a TypeError from the builder.
    """
    family = family_of(arch)
    kwargs: dict[str, Any] = {}
    if shift is not None and shift not in family.shifts:
        hint = " (use a tsm_* architecture for a shift)" if family.name == "TSN" else ""
        raise FamilyError(f"--shift {shift}: {arch} ({family.name}) supports {'/'.join(family.shifts)}{hint}")
    if family.name == "TSM":
        kwargs["shift_mode"] = shift or family.shifts[0]
    if width is not None:
        if family.width is None:
            raise FamilyError(f"{arch} has no width option; architectures with one: "
                              f"{', '.join(a for a, f in FAMILIES.items() if f.width)}")
        kwargs[family.width] = float(width) if family.width == "width_mult" else int(width)
    if dropout is not None:
        if not family.dropout:
            raise FamilyError(f"--dropout: {arch} ({family.name}) has no dropout layer")
        kwargs["dropout"] = float(dropout)
    return create_model(arch, num_classes=len(class_names), class_names=tuple(class_names), **kwargs)


def is_imagenet_classifier(sd: dict) -> bool:
    """A torchvision ImageNet classification state dict (its classifier has 1000 outputs)."""
    for key in ("classifier.1.weight", "classifier.weight", "fc.weight"):
        w = sd.get(key)
        if w is not None and w.dim() == 2 and w.shape[0] == IMAGENET_CLASSES:
            return True
    return False


def _imagenet_backbone(path: Path, sd: dict, build_arch: Callable[[], nn.Module] | None) -> nn.Module:
    if build_arch is None:
        raise InitError(f"--init {path} is an ImageNet backbone: it needs an architecture to go into (--arch)")
    family, backbone = imagenet_backbone_state_dict(sd)
    model = build_arch()
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    head = classifier_name(model) + "."
    lost = [k for k in missing if not k.startswith(head)]
    if unexpected or lost:
        raise InitError(f"--init {path} ({family} ImageNet weights) does not fit {model.card.arch}: "
                        f"unexpected {list(unexpected)[:4]}, missing {lost[:4]}")
    return model


def load_init_model(spec: str, class_names: Sequence[str] | None = None, *, build_arch: Callable[[], nn.Module] | None = None,
                    dropout: float | None = None) -> InitModel:
    """The model ``spec`` names, ready to fine-tune on ``class_names`` (see the module docstring).

    ``build_arch`` builds the architecture chosen by the arguments (for ImageNet backbones, which
    carry no architecture). With ``class_names`` a new classifier replaces the old one unless the
    classes are the same (without, the model keeps its classes: see ``finetune.with_classes``).
    """
    path = Path(spec)
    entry = find_weight(spec) if not path.exists() else None
    if entry is not None and entry.is_backbone:  # an ImageNet backbone by name: its file, downloaded once
        try:
            path = weight_file(spec)
        except WeightsError as exc:
            raise InitError(f"--init {spec}: {exc}") from None
    if spec != "default" and path.is_file() and path.suffix not in (".safetensors", ".onnx", ".plan"):
        try:
            sd = read_state_dict(path)
        except CheckpointError as exc:
            raise InitError(f"--init {spec}: {exc}") from None
        if is_imagenet_classifier(sd):
            model = _imagenet_backbone(path, sd, build_arch)
            if class_names is not None:
                model, _ = with_classes(model, class_names, dropout=dropout)
            return InitModel(model.train(), f"ImageNet backbone {path.name}", from_card=False, new_head=True)
    if is_model(spec):
        raise InitError(f"--init {spec}: that is an architecture (random weights), not weights to start from; "
                        f"use --arch {spec} without --init")
    try:
        model = load_torch_model(spec)  # 'default', a checkpoint path or a weight name
    except (CheckpointError, ModelSpecError) as exc:
        raise InitError(f"--init {spec}: {exc}") from None
    source = "the embedded default model" if spec == "default" else (spec if entry is not None else path.name)
    model, new_head = with_classes(model, class_names, dropout=dropout) if class_names is not None else (model, False)
    model.train()
    return InitModel(model, source, from_card=True, new_head=new_head)


def model_from_resume_card(fields: dict[str, Any], source: str) -> nn.Module:
    """The architecture a resume state's card fields describe (arch, classes, preprocessing, frame rate),
    with random weights: ``train --resume`` then loads the run's weights into it. ``source`` names
    the file for messages."""
    from ..card import CardError, Preprocessing, Temporal

    try:
        kwargs = {k: v for k, v in dict(fields["arch_kwargs"]).items() if k != "num_classes"}
        names = tuple(fields["class_names"])
        model = create_model(fields["arch"], num_classes=len(names), class_names=names, **kwargs)
        model.card = model.card.replace(
            preprocessing=Preprocessing(**{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in fields["preprocessing"].items()}),
            temporal=Temporal(**fields["temporal"]), background_classes=tuple(fields.get("background_classes") or ()))
    except (KeyError, TypeError, ValueError, CardError) as exc:
        raise InitError(f"--resume: {source} holds settings this streamtsm cannot rebuild the model from "
                        f"({type(exc).__name__}: {exc}); resume with the run's --init and options, or start over "
                        "with --overwrite") from None
    return model
