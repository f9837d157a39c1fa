"""ModelCard: everything the runtime must know about a set of weights, in one JSON document.

Why a card: the numbers that make a model produce correct output (mean/std, input size,
colour order, the frame rate it was trained for, whether its shift is online-capable, the
class names) differ by where the weights came from. If any of them is guessed at run time the
model silently degrades. So each value lives here exactly once and travels with the weights:
next to a safetensors file, inside ONNX metadata, and in the TensorRT engine sidecar.

This module is torch-free (it is on the Jetson runtime path).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: 2 added precision, calibration, weights_name, weights_sha256 and unverified; version-1 cards still load.
CARD_VERSION = 2
PRECISIONS = ("fp32", "int8")

#: ImageNet statistics in 0-255 pixel units, RGB order (TSM official, mmaction2).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
#: torchvision's Kinetics-400 statistics for its video ResNets, 0-255 units, RGB order.
KINETICS_MEAN = (110.2008, 100.63983, 95.99475)
KINETICS_STD = (58.14765, 56.46975, 55.332195)

SHIFT_MODES = ("uni", "bi", "none")
TEMPORAL_MODES = ("online", "window")


class CardError(ValueError):
    """A model card is missing, malformed, or inconsistent with what it describes."""


@dataclass(frozen=True)
class Preprocessing:
    """How a BGR uint8 camera frame becomes the model's input tensor.

    Pixel values stay in 0-255 units; ``mean``/``std`` are given in the same units and in
    ``channel_order``. Resize is either short-side (``resize_short``, aspect kept) or an exact
    ``resize_hw`` (as torchvision's 128x171 and the seed R(2+1)D's 171x128 recipes), then a
    centre crop of ``crop_size`` (square).
    """

    crop_size: int = 224
    resize_short: int | None = 256
    resize_hw: tuple[int, int] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise CardError(f"preprocessing.channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}")
        if self.crop_size <= 0:
            raise CardError(f"preprocessing.crop_size must be positive, got {self.crop_size}")
        if (self.resize_short is None) == (self.resize_hw is None):
            raise CardError("preprocessing needs exactly one of resize_short or resize_hw")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise CardError("preprocessing.mean/std need three values each, std > 0")


@dataclass(frozen=True)
class Temporal:
    """How frames are spaced in time for this model.

    ``fps`` is the frame rate the model was trained on: sessions sample live frames by
    timestamp to this rate, because an online TSM's shift encodes "one step ago" and a
    different step length changes what it sees. ``mode`` is ``online`` (one frame per step,
    shift state carried) or ``window`` (a clip of ``clip_len`` frames per prediction).
    ``num_segments`` is the clip length the offline TSM form was trained with.
    ``clip_layout`` is the window input layout: (N, 3, T, H, W) for 3D CNNs, (N, T, 3, H, W)
    for TSM/TSN run as a window model.
    A gap in the stream longer than ``max_gap_s`` resets the state.
    """

    mode: str = "online"
    fps: float = 30.0
    num_segments: int = 8
    clip_len: int = 1
    max_gap_s: float = 1.0
    clip_layout: str = "NCTHW"

    def __post_init__(self) -> None:
        if self.clip_layout not in ("NCTHW", "NTCHW"):
            raise CardError(f"temporal.clip_layout must be 'NCTHW' (3D CNNs) or 'NTCHW' (TSM), got {self.clip_layout!r}")
        if self.mode not in TEMPORAL_MODES:
            raise CardError(f"temporal.mode must be one of {TEMPORAL_MODES}, got {self.mode!r}")
        if self.fps <= 0 or self.clip_len <= 0 or self.num_segments <= 0 or self.max_gap_s <= 0:
            raise CardError("temporal.fps, clip_len, num_segments and max_gap_s must be positive")


@dataclass(frozen=True)
class StateTensor:
    """One carried state tensor of an online model (the cached fold of one shift point)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"


@dataclass(frozen=True)
class ModelCard:
    """The one description of a model: architecture, labels, preprocessing, timing, state.

    ``arch`` is a registry name and ``arch_kwargs`` the keyword arguments that rebuild it
    (``num_classes`` included), so ``create_model(card.arch, **card.arch_kwargs)`` recreates
    the exact module. ``state`` is empty for window models; for online models it is filled
    from the model itself (never by hand) when the card is attached or exported.

    Provenance: ``weights_name`` is the weight-registry entry the weights came from (``""`` when
    unknown), ``weights_sha256`` the SHA-256 of the weights file an export was made from.
    ``precision`` is ``fp32`` or ``int8`` (a QDQ-quantized graph; ``calibration`` then says on
    what data). ``unverified`` names the fields that could not be known from the file and are
    placeholders (e.g. ``class_names`` of a bare checkpoint become ``class_0…``), so nothing
    downstream mistakes a guess for a fact.
    """

    arch: str
    arch_kwargs: dict[str, Any]
    class_names: tuple[str, ...]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    temporal: Temporal = field(default_factory=Temporal)
    shift_mode: str = "none"
    background_classes: tuple[str, ...] = ()
    state: tuple[StateTensor, ...] = ()
    source_format: str = "streamtsm"
    description: str = ""
    precision: str = "fp32"
    calibration: dict[str, Any] = field(default_factory=dict)
    weights_name: str = ""
    weights_sha256: str = ""
    unverified: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise CardError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.shift_mode not in SHIFT_MODES:
            raise CardError(f"shift_mode must be one of {SHIFT_MODES}, got {self.shift_mode!r}")
        n = self.arch_kwargs.get("num_classes")
        if n is not None and n != len(self.class_names):
            raise CardError(
                f"card for {self.arch!r} has num_classes={n} but {len(self.class_names)} class names"
            )
        unknown = set(self.background_classes) - set(self.class_names)
        if unknown:
            raise CardError(f"background_classes {sorted(unknown)} are not among the class names")

    # -- derived values -------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def is_online(self) -> bool:
        return self.temporal.mode == "online"

    @property
    def input_name(self) -> str:
        """Graph input name: ``frame`` for online models, ``clip`` for window models."""
        return "frame" if self.is_online else "clip"

    def replace(self, **changes: Any) -> "ModelCard":
        return dataclasses.replace(self, **changes)

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["card_version"] = CARD_VERSION
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelCard":
        if not isinstance(d, dict):
            raise CardError(f"a model card must be a JSON object, got {type(d).__name__}")
        d = dict(d)
        version = d.pop("card_version", CARD_VERSION)
        if version > CARD_VERSION:
            raise CardError(
                f"card_version {version} is newer than this streamtsm understands ({CARD_VERSION}); upgrade streamtsm"
            )
        missing = [k for k in ("arch", "arch_kwargs", "class_names") if k not in d]
        if missing:
            raise CardError(f"model card lacks required fields {missing}")
        try:
            pre = d.pop("preprocessing", {}) or {}
            if pre.get("resize_hw") is not None:
                pre["resize_hw"] = tuple(pre["resize_hw"])
            for k in ("mean", "std"):
                if k in pre:
                    pre[k] = tuple(float(v) for v in pre[k])
            state = tuple(
                StateTensor(name=s["name"], shape=tuple(int(x) for x in s["shape"]), dtype=s.get("dtype", "float32"))
                for s in d.pop("state", ()) or ()
            )
            return cls(
                arch=str(d.pop("arch")),
                arch_kwargs=dict(d.pop("arch_kwargs")),
                class_names=tuple(str(c) for c in d.pop("class_names")),
                preprocessing=Preprocessing(**pre),
                temporal=Temporal(**(d.pop("temporal", {}) or {})),
                state=state,
                background_classes=tuple(d.pop("background_classes", ()) or ()),
                calibration=dict(d.pop("calibration", {}) or {}),
                unverified=tuple(str(u) for u in d.pop("unverified", ()) or ()),
                **{k: v for k, v in d.items()
                   if k in ("shift_mode", "source_format", "description", "precision", "weights_name", "weights_sha256")},
            )
        except TypeError as exc:  # unknown or misspelled keys in a sub-object
            raise CardError(f"malformed model card: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise CardError(f"model card is not valid JSON: {exc}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        p = Path(path)
        if not p.is_file():
            raise CardError(f"model card {p} does not exist")
        try:
            return cls.from_json(p.read_text(encoding="utf-8"))
        except CardError as exc:
            raise CardError(f"{p}: {exc}") from None


def card_path_for(weights: str | Path) -> Path:
    """The card that sits next to a weights file: ``model.safetensors`` -> ``model.card.json``."""
    p = Path(weights)
    return p.with_name(p.stem + ".card.json")
