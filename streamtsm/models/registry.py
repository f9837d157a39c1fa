"""Model registry: plain builder functions by name, each with the card defaults of its family.

Builders are small functions (``tsm_mobilenetv2(num_classes=..., **kw) -> nn.Module``) as in
timm/torchvision. The registry only maps names to builders and attaches a ``ModelCard`` so that
a freshly created model already knows its preprocessing and timing. No config indirection.
The family modules register themselves when ``streamtsm.models`` is imported.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..card import ModelCard, Preprocessing, Temporal


@dataclass(frozen=True)
class ModelDefaults:
    """What a builder's weights expect, used for the card of a freshly built model."""

    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    temporal: Temporal = field(default_factory=Temporal)
    description: str = ""


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., nn.Module]
    defaults: ModelDefaults


_REGISTRY: dict[str, _Entry] = {}


def register_model(defaults: ModelDefaults | None = None) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder under its function name.

    A ``defaults`` without a description takes the first line of the builder's docstring.
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if fn.__name__ in _REGISTRY:
            raise ValueError(f"model {fn.__name__!r} registered twice")
        entry = defaults or ModelDefaults()
        if not entry.description:
            entry = dataclasses.replace(entry, description=(fn.__doc__ or "").strip().split("\n")[0])
        _REGISTRY[fn.__name__] = _Entry(fn, entry)
        return fn

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style pattern, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def is_model(name: str) -> bool:
    return name in _REGISTRY


def _lookup(name: str) -> _Entry:
    if name not in _REGISTRY:
        close = [n for n in _REGISTRY if name.split("_")[0] in n][:5]
        hint = f" Did you mean one of {close}?" if close else ""
        raise KeyError(f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def create_model(
    name: str,
    *,
    num_classes: int,
    class_names: tuple[str, ...] | list[str] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model with random weights and attach its ``.card``.

    ``class_names`` default to ``class_0 … class_{n-1}``. Extra keyword arguments go to the
    builder and are recorded in the card so the same model can be rebuilt from it.
    """
    entry = _lookup(name)
    model = entry.builder(num_classes=num_classes, **kwargs)
    names = tuple(class_names) if class_names is not None else tuple(f"class_{i}" for i in range(num_classes))
    model.card = ModelCard(
        arch=name,
        arch_kwargs={"num_classes": num_classes, **kwargs},
        class_names=names,
        preprocessing=entry.defaults.preprocessing,
        temporal=entry.defaults.temporal,
        shift_mode=getattr(model, "shift_mode", "none"),
        description=entry.defaults.description,
    )
    return model
