"""Checkpoint loading and saving (torch only): format detection, key mapping, safetensors."""

from .formats import CheckpointError, CheckpointFormat, Converted
from .loader import DEFAULT_MODEL, CheckpointInfo, inspect_checkpoint, load_model, read_state_dict, save_model

__all__ = [
    "DEFAULT_MODEL",
    "CheckpointError",
    "CheckpointFormat",
    "CheckpointInfo",
    "Converted",
    "inspect_checkpoint",
    "load_model",
    "read_state_dict",
    "save_model",
]
