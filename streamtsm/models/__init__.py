"""Models (torch only): registry, temporal shift, TSM backbones, online TSM, 3D CNNs.

Importing the package imports every family module, which registers its builders.
"""

from . import mobilenetv2, r2plus1d, r2plus1d_seed, resnet, resnet3d, slowfast  # noqa: F401  (registration)
from .online import NotOnlineCapableError, OnlineTSM, to_online
from .registry import ModelDefaults, create_model, is_model, list_models, register_model
from .tsm import TemporalShiftNet
from .video import ClipShapeError, VideoClassifier

__all__ = [
    "ClipShapeError",
    "ModelDefaults",
    "NotOnlineCapableError",
    "OnlineTSM",
    "TemporalShiftNet",
    "VideoClassifier",
    "create_model",
    "is_model",
    "list_models",
    "register_model",
    "to_online",
]
