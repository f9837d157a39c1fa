"""Export (torch/onnx only): ONNX graphs with state I/O, TensorRT engines, Triton model repositories.

Names are imported lazily so that ``streamtsm.export.tensorrt``/``triton`` stay usable on a
machine with the engine but without torch (building an engine from an existing ONNX file).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export_onnx": ".onnx",
    "ExportError": ".onnx",
    "ExportCheck": ".onnx",
    "card_with_state": ".onnx",
    "build_engine": ".tensorrt",
    "engine_is_stale": ".tensorrt",
    "EngineSidecar": ".tensorrt",
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
