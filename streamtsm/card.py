"""ModelCard: everything the runtime must know about a set of weights, in one JSON document.

Why a card: the numbers that make a model produce correct output (mean/std, input size,
colour order, the frame rate it was trained for, whether its shift is online-capable, the
class names) differ by where the weights came from. If any of them is guessed at run time the
model silently degrades. So each value lives here exactly once and travels with the weights:
next to a safetensors file, inside ONNX metadata, and in the TensorRT engine sidecar.

One strict validator: the dataclasses check every field in ``__post_init__`` (type, range,
consistency), so a card made in code, read from a ``.card.json`` file, from ONNX metadata or
from an engine sidecar passes the same checks; ``ModelCard.from_dict`` is the one way in from
JSON and adds what only JSON can get wrong (unknown or missing keys, a list where an object
belongs, the card version). A card that would run and quietly give wrong numbers (a NaN mean,
missing preprocessing falling back to 224-px defaults, a class name with a newline that shifts
every later line of a ``labels.txt``) is refused with one line naming the field, the value
found and what is allowed.

This module is torch-free (it is on the Jetson runtime path).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .outputs import write_text_atomic

#: 2 added precision, calibration, weights_name, weights_sha256 and unverified; version-1 cards still load.
CARD_VERSION = 2
#: Fields a version-1 card cannot have.
VERSION_2_FIELDS = ("precision", "calibration", "weights_name", "weights_sha256", "unverified")
PRECISIONS = ("fp32", "int8")

#: ImageNet statistics in 0-255 pixel units, RGB order (TSM official, mmaction2).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
#: torchvision's Kinetics-400 statistics for its video ResNets, 0-255 units, RGB order.
KINETICS_MEAN = (110.2008, 100.63983, 95.99475)
KINETICS_STD = (58.14765, 56.46975, 55.332195)

SHIFT_MODES = ("uni", "bi", "none")
TEMPORAL_MODES = ("online", "window")
CLIP_LAYOUTS = ("NCTHW", "NTCHW")
CHANNEL_ORDERS = ("RGB", "BGR")
STATE_DTYPES = ("float32", "float16")

# Bounds no real model comes near; a card outside them is broken or forged, and honouring it
# would allocate absurd buffers before anything could fail.
MIN_SIDE, MAX_SIDE = 8, 4096  # pixels: crop and resize sizes
MAX_CLASSES = 100_000
MAX_CLASS_NAME = 256  # characters
MAX_FPS = 1000.0
MAX_FRAMES = 1024  # clip_len, num_segments
MAX_GAP_S = 86_400.0
MAX_STATE_ELEMENTS = 1 << 26  # per state tensor (256 MB of float32)
MAX_CARD_BYTES = 16 << 20

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}")  # arch, source_format, weights_name
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STATE_NAME = re.compile(r"state_in\.(0|[1-9][0-9]*)")


class CardError(ValueError):
    """A model card is missing, malformed, or inconsistent with what it describes."""


# -- field checks: each returns the normalised value or raises one CardError line ---------------


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bad(name: str, allowed: str, value: Any) -> CardError:
    return CardError(f"{name} must be {allowed}, got {_show(value)}")


def _integer(value: Any, name: str, lo: int, hi: int, lo_text: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise _bad(name, f"an integer from {lo_text or lo} to {hi}", value)
    return int(value)


def _number(value: Any, name: str, lo: float, hi: float, *, above_lo: bool = False) -> float:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(value)
        and (value > lo if above_lo else value >= lo)
        and value <= hi
    )
    if not ok:
        allowed = f"a finite number above {lo:g} and at most {hi:g}" if above_lo else f"a finite number from {lo:g} to {hi:g}"
        raise _bad(name, allowed, value)
    return float(value)


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _bad(name, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def _text(value: Any, name: str, *, pattern: re.Pattern[str] | None = None, allowed: str = "", empty_ok: bool = False,
          max_len: int = 10_000) -> str:
    if not isinstance(value, str) or len(value) > max_len or (pattern is not None and not (
        (empty_ok and value == "") or pattern.fullmatch(value)
    )):
        raise _bad(name, allowed or f"a string of at most {max_len} characters", value)
    return value


def _items(value: Any, name: str, *, length: int | None = None, max_len: int = MAX_CLASSES) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or (
        length is not None and len(value) != length
    ) or len(value) > max_len:
        raise _bad(name, f"a list of {length} values" if length is not None else f"a list (at most {max_len} entries)", value)
    return tuple(value)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(name, "a JSON object", value)
    return dict(value)


def _plain(value: Any, name: str, depth: int = 0) -> None:
    """JSON data only (no NaN/inf, string keys), nested at most 16 deep."""
    if depth > 16:
        raise CardError(f"{name} is nested more than 16 levels deep")
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise _bad(name, "finite", value)
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _plain(v, f"{name}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                raise _bad(f"keys of {name}", "strings", k)
            _plain(v, f"{name}.{k}", depth + 1)
        return
    raise _bad(name, "JSON data (null, true/false, a number, a string, a list or an object)", value)


def _class_name(value: Any, name: str) -> str:
    """One label: one line of a labels.txt, so no line breaks, no invisible characters, no padding."""
    ok = isinstance(value, str) and 0 < len(value) <= MAX_CLASS_NAME and value == value.strip() and not any(
        unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp") for ch in value
    )
    if not ok:
        raise _bad(
            name, f"a non-empty single-line class name of at most {MAX_CLASS_NAME} characters, without control or "
            "invisible characters and without leading/trailing spaces", value,
        )
    return value


def _unique(values: tuple[str, ...], name: str) -> None:
    seen: dict[str, int] = {}
    for i, v in enumerate(values):
        if v in seen:
            raise CardError(f"{name} must be unique: {v!r} appears at index {seen[v]} and {i}")
        seen[v] = i


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclasses: store the normalised value


# -- the card ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preprocessing:
    """How a BGR uint8 camera frame becomes the model's input tensor.

    Pixel values stay in 0-255 units; ``mean``/``std`` are given in the same units and in
    ``channel_order``. Resize is either short-side (``resize_short``, aspect kept) or an exact
    ``resize_hw`` (as torchvision's 128x171 and the seed R(2+1)D's 171x128 recipes), then a
    centre crop of ``crop_size`` (square), which must fit in the resized frame.
    """

    crop_size: int = 224
    resize_short: int | None = 256
    resize_hw: tuple[int, int] | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        crop = _integer(self.crop_size, "preprocessing.crop_size", MIN_SIDE, MAX_SIDE)
        _set(self, "crop_size", crop)
        if (self.resize_short is None) == (self.resize_hw is None):
            raise CardError(
                "preprocessing needs exactly one of resize_short (short side, aspect kept) or resize_hw ([height, width]), "
                f"got resize_short={_show(self.resize_short)}, resize_hw={_show(self.resize_hw)}"
            )
        at_least = f"crop_size ({crop})"
        if self.resize_short is not None:
            _set(self, "resize_short", _integer(self.resize_short, "preprocessing.resize_short", crop, MAX_SIDE, at_least))
        else:
            hw = _items(self.resize_hw, "preprocessing.resize_hw", length=2)
            _set(self, "resize_hw", tuple(_integer(v, f"preprocessing.resize_hw[{i}]", crop, MAX_SIDE, at_least) for i, v in enumerate(hw)))
        mean = _items(self.mean, "preprocessing.mean", length=3)
        _set(self, "mean", tuple(_number(v, f"preprocessing.mean[{i}]", 0.0, 255.0) for i, v in enumerate(mean)))
        std = _items(self.std, "preprocessing.std", length=3)
        _set(self, "std", tuple(_number(v, f"preprocessing.std[{i}]", 0.0, 255.0, above_lo=True) for i, v in enumerate(std)))
        _choice(self.channel_order, "preprocessing.channel_order", CHANNEL_ORDERS)


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
        _choice(self.mode, "temporal.mode", TEMPORAL_MODES)
        _set(self, "fps", _number(self.fps, "temporal.fps", 0.0, MAX_FPS, above_lo=True))
        _set(self, "num_segments", _integer(self.num_segments, "temporal.num_segments", 1, MAX_FRAMES))
        _set(self, "clip_len", _integer(self.clip_len, "temporal.clip_len", 1, MAX_FRAMES))
        _set(self, "max_gap_s", _number(self.max_gap_s, "temporal.max_gap_s", 0.0, MAX_GAP_S, above_lo=True))
        _choice(self.clip_layout, "temporal.clip_layout", CLIP_LAYOUTS)


@dataclass(frozen=True)
class StateTensor:
    """One carried state tensor of an online model (the cached fold of one shift point)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _text(self.name, "state name", pattern=_STATE_NAME, allowed="'state_in.<i>'", max_len=32)
        where = f"state {self.name}"
        dims = _items(self.shape, f"{where}: shape", max_len=6)
        if not 2 <= len(dims) <= 6:
            raise _bad(f"{where}: shape", "a list of 2 to 6 dimensions", self.shape)
        shape = tuple(_integer(v, f"{where}: shape[{i}]", 1, MAX_STATE_ELEMENTS) for i, v in enumerate(dims))
        if math.prod(shape) > MAX_STATE_ELEMENTS:
            raise _bad(f"{where}: shape", f"at most {MAX_STATE_ELEMENTS} elements in all", self.shape)
        _set(self, "shape", shape)
        _choice(self.dtype, f"{where}: dtype", STATE_DTYPES)


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
    downstream mistakes a guess for a fact: top-level field names, ``preprocessing.<x>`` /
    ``temporal.<x>``, or a sub-field's bare name (``fps``).

    Which values are allowed is written in ``__post_init__`` below; the bounds are the
    ``MIN_*``/``MAX_*`` constants of this module.
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
        _text(self.arch, "arch", pattern=_NAME, allowed="a registry model name (letters, digits, '_', '.', '-')")
        names = tuple(_class_name(c, f"class_names[{i}]") for i, c in enumerate(_items(self.class_names, "class_names")))
        if not names:
            raise _bad("class_names", f"a list of 1 to {MAX_CLASSES} names", self.class_names)
        _unique(names, "class_names")
        _set(self, "class_names", names)
        kwargs = _mapping(self.arch_kwargs, "arch_kwargs")
        for key in kwargs:
            if not isinstance(key, str) or not key.isidentifier():
                raise _bad("arch_kwargs keys", "Python argument names", key)
        _plain(kwargs, "arch_kwargs")
        _set(self, "arch_kwargs", kwargs)
        if "num_classes" in kwargs:
            n = _integer(kwargs["num_classes"], "arch_kwargs.num_classes", 1, MAX_CLASSES)
            if n != len(names):
                raise CardError(f"card for {self.arch!r} has arch_kwargs.num_classes={n} but {len(names)} class names")
        if not isinstance(self.preprocessing, Preprocessing):
            raise _bad("preprocessing", "a Preprocessing", self.preprocessing)
        if not isinstance(self.temporal, Temporal):
            raise _bad("temporal", "a Temporal", self.temporal)
        _choice(self.shift_mode, "shift_mode", SHIFT_MODES)
        if kwargs.get("shift_mode", self.shift_mode) != self.shift_mode:
            raise CardError(f"shift_mode is {self.shift_mode!r} but arch_kwargs.shift_mode is {kwargs['shift_mode']!r}")
        background = tuple(_items(self.background_classes, "background_classes"))
        for i, b in enumerate(background):
            if not isinstance(b, str) or b not in names:
                raise _bad(f"background_classes[{i}]", "one of the class names", b)
        _unique(background, "background_classes")
        _set(self, "background_classes", background)
        state = _items(self.state, "state", max_len=1024)
        for i, s in enumerate(state):
            if not isinstance(s, StateTensor):
                raise _bad(f"state[{i}]", "a StateTensor", s)
            if s.name != f"state_in.{i}":
                raise _bad(f"state[{i}].name", f"'state_in.{i}' (states are numbered in order)", s.name)
        if state and self.temporal.mode != "online":
            raise CardError(f"card for {self.arch!r} is a window model (temporal.mode 'window') but lists {len(state)} state tensors")
        _set(self, "state", state)
        _text(self.source_format, "source_format", pattern=_NAME, allowed="a checkpoint format name", empty_ok=True)
        _text(self.description, "description")
        _choice(self.precision, "precision", PRECISIONS)
        calibration = _mapping(self.calibration, "calibration")
        _plain(calibration, "calibration")
        _set(self, "calibration", calibration)
        _text(self.weights_name, "weights_name", pattern=_NAME, allowed="a weight-registry name or ''", empty_ok=True)
        _text(self.weights_sha256, "weights_sha256", pattern=_SHA256, allowed="64 lowercase hex digits or ''", empty_ok=True)
        unverified = _items(self.unverified, "unverified", max_len=64)
        for i, u in enumerate(unverified):
            if not isinstance(u, str) or u not in _UNVERIFIABLE:
                raise _bad(f"unverified[{i}]", "the name of a card field (e.g. 'class_names', 'fps')", u)
        _unique(unverified, "unverified")
        _set(self, "unverified", unverified)

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
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelCard":
        """The card described by a JSON object, or one :class:`CardError` line saying what is wrong."""
        if not isinstance(d, Mapping):
            raise CardError(f"a model card must be a JSON object, got {type(d).__name__}")
        d = dict(d)
        if "card_version" not in d:
            raise CardError(f"card_version is missing: a model card states its format version (1 to {CARD_VERSION})")
        version = d.pop("card_version")
        if isinstance(version, numbers.Integral) and not isinstance(version, bool) and version > CARD_VERSION:
            raise CardError(
                f"card_version {version} is newer than this streamtsm understands ({CARD_VERSION}); upgrade streamtsm"
            )
        version = _integer(version, "card_version", 1, CARD_VERSION)
        known = _TOP_LEVEL if version >= 2 else _TOP_LEVEL - set(VERSION_2_FIELDS)
        for key in d:
            if key not in known:
                if key in VERSION_2_FIELDS:
                    raise CardError(f"{key} is a card_version 2 field, but the card says card_version {version}")
                raise CardError(f"unknown card field {_show(key)}; a card has: {', '.join(sorted(known | {'card_version'}))}")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise CardError(f"model card lacks required field {missing[0]!r} (required: {', '.join(_REQUIRED)})")
        d["preprocessing"] = _sub_object(d["preprocessing"], Preprocessing, "preprocessing", _REQUIRED_PREPROCESSING)
        d["temporal"] = _sub_object(d["temporal"], Temporal, "temporal", _REQUIRED_TEMPORAL)
        states = _items(d.get("state", ()), "state", max_len=1024)
        d["state"] = tuple(_sub_object(s, StateTensor, f"state[{i}]", ("name", "shape")) for i, s in enumerate(states))
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CardError(f"model card is not valid JSON: {exc}") from None
        except RecursionError:
            raise CardError("model card JSON is nested too deeply") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the card as JSON, atomically (a reader sees the old card or the new one)."""
        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "ModelCard":
        p = Path(path)
        if not p.is_file():
            raise CardError(f"model card {p} does not exist")
        if p.stat().st_size > MAX_CARD_BYTES:
            raise CardError(f"{p}: {p.stat().st_size} bytes is too large for a model card (at most {MAX_CARD_BYTES})")
        try:
            return cls.from_json(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise CardError(f"{p}: a model card must be UTF-8 text ({exc.reason} at byte {exc.start})") from None
        except CardError as exc:
            raise CardError(f"{p}: {exc}") from None


def _sub_object(value: Any, cls: type, name: str, required: tuple[str, ...]) -> Any:
    """``cls(**value)`` for a JSON object with only ``cls``'s keys and all of ``required``."""
    data = _mapping(value, name)
    allowed = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in allowed:
            raise CardError(f"unknown field {name}.{key}; {name} has: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise CardError(f"{name}.{key} is missing (required: {', '.join(required)})")
    if cls is Preprocessing:  # the resize not given is "not used", not the 256-px default
        data.setdefault("resize_short", None)
        data.setdefault("resize_hw", None)
    return cls(**data)


_TOP_LEVEL = frozenset(f.name for f in dataclasses.fields(ModelCard))
#: What a card file must say: without these the runtime would have to guess (224-px ImageNet
#: defaults, no shift) and run with wrong numbers instead of failing.
_REQUIRED = ("arch", "arch_kwargs", "class_names", "preprocessing", "temporal", "shift_mode")
_REQUIRED_PREPROCESSING = ("crop_size", "mean", "std", "channel_order")
_REQUIRED_TEMPORAL = ("mode", "fps", "clip_len", "clip_layout")
_SUB_FIELDS = {
    "preprocessing": [f.name for f in dataclasses.fields(Preprocessing)],
    "temporal": [f.name for f in dataclasses.fields(Temporal)],
}
_UNVERIFIABLE = frozenset(
    {*_TOP_LEVEL}
    | {f"{group}.{name}" for group, names in _SUB_FIELDS.items() for name in names}
    | {name for names in _SUB_FIELDS.values() for name in names}
)


def card_path_for(weights: str | Path) -> Path:
    """The card that sits next to a weights file: ``model.safetensors`` -> ``model.card.json``."""
    p = Path(weights)
    return p.with_name(p.stem + ".card.json")
