"""Inference engines behind one interface (``Backend``): torch, ONNX Runtime, TensorRT.

``open_backend`` turns what a user names (nothing = the default model, a checkpoint, an
``.onnx`` file, a TensorRT ``.plan``, a registry name) into a backend. torch is imported only
when a torch backend is asked for, so ONNX/TensorRT deployments run without it.
"""

from __future__ import annotations

from .base import Backend, BackendError, State
from .factory import BACKENDS, open_backend

__all__ = ["BACKENDS", "Backend", "BackendError", "State", "open_backend"]
