"""Export (torch/onnx only): ONNX graphs with the shift state as I/O, checked against torch.

What a deployment needs without torch lives elsewhere: TensorRT engines are built by
:mod:`streamtsm.backends.tensorrt_engine`, Triton repositories by :mod:`streamtsm.triton`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export_onnx": ".onnx",
    "ExportError": ".onnx",
    "ExportCheck": ".onnx",
    "card_with_state": ".onnx",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamtsm.export' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
