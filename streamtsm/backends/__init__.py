"""Inference engines: an online interface (``init_state``/``step``) and a clip interface
(``run_clip``), each implemented for torch, ONNX Runtime and TensorRT. Which engine runs a
model the user named is decided in :mod:`streamtsm.resolve`.
"""

from __future__ import annotations

from .base import BackendError, ClipEngine, Engine, OnlineEngine, State

__all__ = ["BackendError", "ClipEngine", "Engine", "OnlineEngine", "State"]
