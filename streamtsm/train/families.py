"""The architectures ``streamtsm train`` builds, and how each is configured for training (torch-free:
the command-line parser lists them without importing torch).

One table, because the families differ in exactly these few ways: whether the model sees a clip
(3D CNNs, (N, 3, T, H, W), one prediction per clip) or frames (TSM/TSN, (N, T, 3, H, W), one
prediction per frame); which temporal shifts it has; which builder argument sets its width; whether
it has a dropout before the classifier; and the fewest frames its temporal strides allow. Every
entry trains through the one loop (``train.loop``); the tests run a tiny model of each family.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..card import ModelCard, Preprocessing, Temporal

__all__ = ["Family", "FAMILIES", "TRAINABLE_ARCHS", "FamilyError", "family_of", "training_card",
           "default_sampling", "default_frames"]


class FamilyError(ValueError):
    """An option that the chosen architecture does not have."""


@dataclass(frozen=True)
class Family:
    name: str
    clip_model: bool  # 3D CNN: one prediction per clip
    shifts: tuple[str, ...] = ("none",)  # allowed shift modes, the first is the default
    width: str | None = None  # builder argument of the width knob
    dropout: bool = True  # has a dropout before the classifier
    min_frames: int = 1  # temporal strides need at least this many frames per clip


_TSM = dict(shifts=("uni", "bi", "none"))
_R3D = dict(clip_model=True, width="base_channels")

FAMILIES: dict[str, Family] = {
    "tsm_mobilenetv2": Family("TSM", False, width="width_mult", **_TSM),
    "tsm_resnet18": Family("TSM", False, **_TSM),
    "tsm_resnet34": Family("TSM", False, **_TSM),
    "tsm_resnet50": Family("TSM", False, **_TSM),
    "tsm_resnet101": Family("TSM", False, **_TSM),
    "tsn_mobilenetv2": Family("TSN", False, width="width_mult"),
    "tsn_resnet50": Family("TSN", False),
    "r2plus1d_18": Family("R(2+1)D", True, width="width", dropout=False),
    "r2plus1d_34": Family("R(2+1)D", True, dropout=False),
    "r2plus1d_seed": Family("R(2+1)D", True, dropout=False),
    "r3d_18": Family("R3D", True, width="width", dropout=False),
    "resnet3d_18": Family("ResNet3d", min_frames=2, **_R3D),
    "resnet3d_34": Family("ResNet3d", min_frames=2, **_R3D),
    "resnet3d_50": Family("ResNet3d", min_frames=2, **_R3D),
    "resnet3d_101": Family("ResNet3d", min_frames=2, **_R3D),
    "resnet3d_152": Family("ResNet3d", min_frames=2, **_R3D),
    "i3d_r50": Family("I3D", min_frames=8, **_R3D),  # temporal stride 2 in conv1, pool1 and pool2
    "slowonly_r50": Family("SlowOnly", **_R3D),
    "slowonly_r101": Family("SlowOnly", **_R3D),
    "slowonly_r152": Family("SlowOnly", **_R3D),
    "slowfast_r50": Family("SlowFast", min_frames=8, **_R3D),  # the slow pathway takes every 8th frame
    "slowfast_r101": Family("SlowFast", min_frames=8, **_R3D),
}
TRAINABLE_ARCHS: tuple[str, ...] = tuple(sorted(FAMILIES))


def family_of(arch: str) -> Family:
    if arch not in FAMILIES:
        raise FamilyError(f"architecture {arch!r} cannot be trained here; choose one of {', '.join(TRAINABLE_ARCHS)}")
    return FAMILIES[arch]


def training_card(card: ModelCard, *, preprocessing: Preprocessing, fps: float, frames: int) -> ModelCard:
    """The card of a model trained on ``frames``-frame samples at ``fps``: how it must be fed at run time.

    A unidirectional TSM runs online (one frame per step, state carried); every other model is a
    window model whose window is the ``frames`` frames it was trained on.
    """
    clip = family_of(card.arch).clip_model
    base = card.temporal
    if not clip and card.shift_mode == "uni":
        temporal = Temporal(mode="online", fps=fps, num_segments=frames, clip_len=1, max_gap_s=base.max_gap_s,
                            clip_layout="NTCHW")
    else:
        temporal = Temporal(mode="window", fps=fps, num_segments=frames, clip_len=frames, max_gap_s=base.max_gap_s,
                            clip_layout="NCTHW" if clip else "NTCHW")
    # new weights: no registry entry or file hash describes them, and every field is now known
    return card.replace(preprocessing=preprocessing, temporal=temporal, weights_name="", weights_sha256="", unverified=())


def default_sampling(card: ModelCard) -> str:
    """How a model's training/evaluation samples are drawn by default (a ``sampling.SAMPLING_MODES`` mode).

    Dense (consecutive frames at the card's fps) for what runs on consecutive frames live: online
    TSMs and clip models. TSN segments for offline frame models (bidirectional TSM, TSN), as they
    were trained in mmaction2 and seed 002.
    """
    clip = card.arch in FAMILIES and FAMILIES[card.arch].clip_model or card.temporal.clip_layout == "NCTHW"
    return "dense" if clip or card.shift_mode == "uni" else "segments"


def default_frames(card: ModelCard) -> int:
    """Frames per sample the card's model was made for: the window of a window model, else num_segments."""
    clip = card.arch in FAMILIES and FAMILIES[card.arch].clip_model or card.temporal.clip_layout == "NCTHW"
    return card.temporal.clip_len if clip or card.temporal.mode == "window" else card.temporal.num_segments
