"""Export (torch/onnx): ONNX graphs with state I/O, and Triton model repositories.

Names are imported lazily so that ``streamtsm.export.triton`` stays usable without torch
(it describes an existing ONNX file). TensorRT engines are built by
:mod:`streamtsm.backends.tensorrt_engine`, which the runtime needs too.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export_onnx": ".onnx",
    "ExportError": ".onnx",
    "ExportCheck": ".onnx",
    "card_with_state": ".onnx",
    "write_triton_repository": ".triton",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamtsm.export' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
