"""The vocabulary of checkpoint formats: how one is recognised and how it becomes ours.

Each supported format is one ``CheckpointFormat``: a ``detect`` predicate over the raw key
names and shapes, and a ``convert`` that renames keys to the layout of our registry model and
says which architecture, class count and card values the file implies. Family modules
(``tsm.py``, ``video3d.py``) each export ``FORMATS``; ``loader.py`` tries them in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from ..describe import CheckpointError  # noqa: F401  (defined torch-free; raised by every module here)

StateDict = dict[str, torch.Tensor]
KeyShapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class Converted:
    """A state dict renamed to a registry model's layout, plus what the file says about it.

    ``card_overrides`` holds ModelCard fields implied by the source (class_names,
    preprocessing, temporal, shift_mode, background_classes); the rest come from the
    registry defaults of ``arch``.
    """

    arch: str
    arch_kwargs: dict[str, Any]
    state_dict: StateDict
    card_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckpointFormat:
    name: str
    description: str
    detect: Callable[[KeyShapes], bool]
    convert: Callable[[StateDict], Converted]


def key_shapes(sd: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in sd.items() if isinstance(v, torch.Tensor)}


def strip_prefix(sd: StateDict, prefix: str) -> StateDict:
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}


def rename_keys(sd: StateDict, rules: list[tuple[str, str]]) -> StateDict:
    """Apply regex substitution rules (in order) to every key."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for k, v in sd.items():
        for pat, rep in compiled:
            k = pat.sub(rep, k)
        out[k] = v
    return out
