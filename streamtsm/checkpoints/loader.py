"""``load_model`` / ``save_model``: one entry point for every checkpoint format.

Files from strangers are data, never code. A pickle is read with ``torch.load(weights_only=True)``;
only when that refuses the file (mmengine training checkpoints also hold a message hub, optimizer
state and numpy values) does ``restricted_pickle`` read it, and that reader cannot run code from
the file because:

* a global is looked up in a fixed table, never imported: torch's tensor rebuilders
  (``_rebuild_tensor``/``_v2``/``_v3``, ``_rebuild_parameter``/``_with_state``,
  ``_rebuild_from_type_v2`` for plain tensors), storage type names (as dtype tokens), dtypes,
  ``torch.Size``, ``torch.device``, ``OrderedDict``, ``set``, ``frozenset``, ``bytearray``,
  ``complex`` and ``_codecs.encode``, each wrapped to check its arguments. Any other name is an
  inert placeholder: its module is not imported, nothing is looked up on it;
* only those table entries are ever called. REDUCE/NEWOBJ/BUILD on a placeholder record the name,
  arguments and state as plain data; calls of names only attacks use (``os.system``,
  ``builtins.eval``, ``io.open`` …) are refused;
* tensors are bounds-checked, detached views on the archive's own uncompressed storage records.

Our own format is safetensors plus a JSON card. Loading is strict: every key of the model must be
filled with a tensor of the right shape, or the error says which were not.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..card import CardError, ModelCard, StateTensor, card_path_for
from ..models.online import to_online
from ..models.registry import create_model
from ..describe import card_fields, check_checkpoint_file
from ..weights import WeightEntry, ensure_weight, find_weight, near_miss_message
from . import tsm, video3d
from .formats import CheckpointError, CheckpointFormat, Converted, StateDict, key_shapes
from .restricted_pickle import NotAZipCheckpoint, UnpicklingRefused, read_checkpoint

log = logging.getLogger(__name__)

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "assets" / "default.safetensors"
OWN_FORMAT = "streamtsm"
#: Every foreign format, tried in this order.
FORMATS: list[CheckpointFormat] = [*tsm.FORMATS, *video3d.FORMATS]


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint file is, without keeping the model."""

    path: str
    format: str
    card: ModelCard
    num_parameters: int


def _unpickle(path: Path) -> Any:
    """The pickled object: weights_only first, the restricted reader when weights_only refuses."""
    check_checkpoint_file(path)  # a JPEG or a text file is not a pickle the restricted reader refused
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # torch's reason is the line naming the global it refused
        lines = str(exc).splitlines() or [""]
        refusal = next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0]).split(" Please use")[0].strip()[:200]
    except Exception as exc:  # garbage bytes make the unpickler fail in many ways (IndexError, EOFError, …)
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated download or a different file type?): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        ) from None
    else:
        log.debug("%s: read with torch.load(weights_only=True)", path)
        return obj
    try:
        result = read_checkpoint(path)
    except NotAZipCheckpoint:
        raise CheckpointError(
            f"{path}: refused to unpickle: the file contains Python objects other than tensors and plain containers "
            f"({refusal}) and is not a torch zip archive, which the restricted reader needs. Loading it fully could "
            "run arbitrary code. If you trust its author, re-save only its state_dict "
            "(torch.save(ckpt['state_dict'], 'clean.pth')) in a separate environment and load that."
        ) from None
    except UnpicklingRefused as exc:
        raise CheckpointError(f"{path}: refused to unpickle: {exc}") from None
    unknown = sorted(n.encode("unicode_escape").decode("ascii")[:80] for n in result.placeholders)  # names from the file
    log.info(
        "%s: torch.load(weights_only=True) refused it; read its tensors with streamtsm's restricted unpickler "
        "(nothing executed; %d unknown global(s) kept as inert records: %s)",
        path, len(unknown), ", ".join(unknown[:8]) + (" …" if len(unknown) > 8 else ""),
    )  # fmt: skip
    return result.obj


def read_state_dict(path: Path) -> StateDict:
    """Tensors of a pickled checkpoint, unwrapped from the usual containers (safe unpickling only)."""
    obj = _unpickle(path)
    for container in ("state_dict", "model_state", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(container), dict):
            obj = obj[container]
            break
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    sd = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not sd:
        keys = [k[:40] for k in obj if isinstance(k, str)][:8]
        raise CheckpointError(f"{path}: contains no tensors (top-level keys: {keys})")
    return sd


def _load_strict(model: nn.Module, sd: StateDict, path: Path, fmt: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"shape mismatches (first 5): {wrong[:5]}")
        if missing:
            parts.append(f"{len(missing)} keys missing from the file (first 5): {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys in the file (first 5): {unexpected[:5]}")
        arch = model.card.arch if hasattr(model, "card") else type(model).__name__
        raise CheckpointError(
            f"{path}: looks like format {fmt!r} but does not fit architecture {arch!r}: " + "; ".join(parts)
            + ". The file may be for another depth/width or class count; check `streamtsm info` on it."
        )
    model.load_state_dict(sd, strict=True)


def _detect(sd: StateDict, path: Path) -> tuple[CheckpointFormat, Converted]:
    keys = key_shapes(sd)
    for fmt in FORMATS:
        if fmt.detect(keys):
            return fmt, fmt.convert(sd)
    names = "\n  ".join(f"{f.name}: {f.description}" for f in FORMATS)
    raise CheckpointError(
        f"{path}: unknown checkpoint format. Its first keys are {list(keys)[:6]}. Supported formats:\n  {names}\n"
        "Own models are saved with streamtsm.save_model (.safetensors + .card.json)."
    )


def _with_state_spec(model: nn.Module, card: ModelCard) -> ModelCard:
    """Fill the card's state spec from the model itself (online TSM only)."""
    if card.shift_mode != "uni" or not card.is_online:
        return card.replace(state=())
    online = to_online(model)
    crop = card.preprocessing.crop_size
    shapes = online.state_shapes(1, crop, crop)
    return card.replace(state=tuple(StateTensor(f"state_in.{i}", s) for i, s in enumerate(shapes)))


def _from_safetensors(path: Path) -> tuple[nn.Module, str]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card_file = card_path_for(path)
    try:
        card = ModelCard.load(card_file)
    except CardError as exc:
        raise CheckpointError(f"{path}: its model card is unusable: {exc}. save_model writes both files; keep them together.") from None
    try:
        sd = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file (truncated?): {exc}") from None
    kwargs = {k: v for k, v in card.arch_kwargs.items() if k != "num_classes"}
    try:
        model = create_model(card.arch, num_classes=card.num_classes, class_names=card.class_names, **kwargs)
    except KeyError as exc:
        raise CheckpointError(f"{card_file}: {exc.args[0]}") from None
    except TypeError as exc:  # which arguments a builder takes is known only here, not to the card validator
        if "keyword argument" not in str(exc):
            raise
        raise CheckpointError(f"{card_file}: arch_kwargs do not fit {card.arch}: {exc}; remove or correct that key") from None
    _load_strict(model, sd, path, OWN_FORMAT)
    model.card = card
    return model, OWN_FORMAT


def load_model(
    path: str | Path | None = None,
    *,
    expected_arch: str | None = None,
    class_names: Sequence[str] | None = None,
    shift_mode: str | None = None,
) -> nn.Module:
    """Load any supported checkpoint into an eval-mode model with a ``.card``.

    ``path=None`` loads the embedded default model; a weight name (``"tsm_mobilenetv2.jester_online"``,
    see ``streamtsm models``) loads that entry's file, downloaded once, with the entry's card.
    ``expected_arch`` refuses a file for another
    architecture; ``class_names`` names the classes of a file that does not carry them (its
    count must match); ``shift_mode`` overrides the shift a foreign format implies (e.g. an
    official-offline file you know was trained unidirectionally).
    """
    entry = _weight_entry(path)
    if entry is not None:
        return _load_entry(entry, expected_arch=expected_arch, class_names=class_names, shift_mode=shift_mode)
    p = Path(path) if path is not None else DEFAULT_MODEL
    if not p.exists():
        hint = " (the embedded default model is missing: reinstall streamtsm)" if path is None else ""
        raise CheckpointError(f"checkpoint {p} does not exist{hint}")
    if p.is_dir():
        raise CheckpointError(f"{p} is a directory; pass the checkpoint file inside it")
    if p.suffix == ".onnx":
        raise CheckpointError(f"{p} is an ONNX graph, not trainable weights: run it with streamtsm.Recognizer({str(p)!r})")
    check_checkpoint_file(p)
    if p.suffix == ".safetensors":
        model, fmt = _from_safetensors(p)
        card = model.card
    else:
        sd = read_state_dict(p)
        fmt_obj, conv = _detect(sd, p)
        fmt = fmt_obj.name
        kwargs = dict(conv.arch_kwargs)
        if shift_mode is not None and "shift_mode" in kwargs:
            kwargs["shift_mode"] = shift_mode
        n = kwargs.pop("num_classes")
        model = create_model(conv.arch, num_classes=n, **kwargs)
        _load_strict(model, conv.state_dict, p, fmt)
        overrides = {k: v for k, v in conv.card_overrides.items()}
        overrides.setdefault("unverified", _PLACEHOLDERS_ONLINE if kwargs.get("shift_mode") == "uni" else _PLACEHOLDERS)
        if shift_mode is not None:
            overrides["shift_mode"] = shift_mode
            temporal = overrides.get("temporal", model.card.temporal)
            overrides["temporal"] = dataclasses.replace(temporal, mode="online" if shift_mode == "uni" else "window")
        card = model.card.replace(source_format=fmt, **overrides)
    if expected_arch is not None and card.arch != expected_arch:
        raise CheckpointError(
            f"{p}: is a {card.arch!r} checkpoint (format {fmt!r}), not {expected_arch!r}. "
            f"Use --model with a {expected_arch} checkpoint, or drop the architecture requirement."
        )
    if class_names is not None:
        if len(class_names) != card.num_classes:
            raise CheckpointError(
                f"{p}: has {card.num_classes} classes but {len(class_names)} class names were given"
            )
        card = card.replace(class_names=tuple(class_names), background_classes=(),
                            unverified=tuple(u for u in card.unverified if u != "class_names"))
    model.eval()
    model.card = _with_state_spec(model, card)
    return model


#: card fields a foreign checkpoint cannot tell (the tensors hold no labels, frame rate or clip length)
_PLACEHOLDERS = ("class_names", "fps", "clip_len")
_PLACEHOLDERS_ONLINE = ("class_names", "fps")


def _weight_entry(path: str | Path | None) -> WeightEntry | None:
    """The weight-registry entry a string names, None for a path; a near-miss name lists the closest names."""
    if not isinstance(path, str) or Path(path).exists():
        return None
    if (message := near_miss_message(path)) is not None:
        raise CheckpointError(message)
    return find_weight(path)


def _load_entry(entry: WeightEntry, *, expected_arch: str | None, class_names: Sequence[str] | None,
                shift_mode: str | None) -> nn.Module:
    """Load a registry entry's file (downloaded and checked once) and give the model the entry's card."""
    if entry.is_backbone:
        raise CheckpointError(
            f"{entry.name} is an ImageNet backbone, not a video model: it initialises training: "
            f"`streamtsm train DATA --init {entry.name} --arch ARCH` (`streamtsm download {entry.name}` fetches it ahead)"
        )
    if expected_arch is not None and expected_arch != entry.arch:
        raise CheckpointError(f"{entry.name} is a {entry.arch!r} model, not {expected_arch!r}")
    if shift_mode is not None and shift_mode != entry.shift_mode:
        raise CheckpointError(f"{entry.name} has shift mode {entry.shift_mode!r} (fixed by its weights), not {shift_mode!r}")
    loaded: list[nn.Module] = []

    def load_and_check(e: WeightEntry, path: Path) -> None:  # the strict load that checks an unhashed file
        loaded[:] = [load_model(path, expected_arch=e.arch)]
        e.check_card(loaded[0].card)

    weight = ensure_weight(entry, verify=load_and_check)
    if not loaded:  # the file had a checksum to check: load it now
        load_and_check(entry, weight.path)
    model = loaded[0]
    card = model.card.replace(**entry.card_overrides(), weights_sha256=weight.sha256)
    if class_names is not None:
        if len(class_names) != card.num_classes:
            raise CheckpointError(f"{entry.name}: has {card.num_classes} classes but {len(class_names)} class names were given")
        card = card.replace(class_names=tuple(class_names), background_classes=())
    same_input = (card.preprocessing.crop_size, card.is_online) == (model.card.preprocessing.crop_size, model.card.is_online)
    model.card = card if same_input else _with_state_spec(model, card)  # the state spec depends on both
    return model


def save_model(model: nn.Module, path: str | Path, *, card: ModelCard | None = None) -> Path:
    """Write ``path`` (.safetensors) and its card ``*.card.json``; returns the weights path."""
    from safetensors.torch import save_file

    card = card or getattr(model, "card", None)
    if card is None:
        raise CheckpointError("save_model needs a model built by create_model/load_model (it has no .card) or card=")
    p = Path(path)
    if p.suffix != ".safetensors":
        p = p.with_suffix(".safetensors")
    p.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(sd, str(p), metadata={"format": OWN_FORMAT, "arch": card.arch})
    card.replace(source_format=OWN_FORMAT).save(card_path_for(p))
    return p


def inspect_checkpoint(path: str | Path | None = None) -> CheckpointInfo:
    """Format, card and parameter count of a checkpoint (for ``streamtsm info``)."""
    model = load_model(path)
    n = sum(p.numel() for p in model.parameters())
    return CheckpointInfo(str(path or DEFAULT_MODEL), model.card.source_format, model.card, n)


def card_summary(info: CheckpointInfo) -> dict[str, Any]:
    return {"path": info.path, "format": info.format, **card_fields(info.card), "parameters": info.num_parameters}


def card_json(info: CheckpointInfo) -> str:
    return json.dumps(card_summary(info), indent=2)
