"""Models (torch only): registry, temporal shift, TSM backbones, online TSM, 3D CNNs."""

from .online import NotOnlineCapableError, OnlineTSM, to_online
from .registry import ModelDefaults, create_model, is_model, list_models, register_model
from .tsm import TemporalShiftNet

__all__ = [
    "ModelDefaults",
    "NotOnlineCapableError",
    "OnlineTSM",
    "TemporalShiftNet",
    "create_model",
    "is_model",
    "list_models",
    "register_model",
    "to_online",
]
