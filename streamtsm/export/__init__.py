"""Export (torch/onnx only): ONNX graphs with the shift state as I/O, checked against torch.

What a deployment needs without torch lives elsewhere: TensorRT engines are built by
:mod:`streamtsm.backends.tensorrt_engine`, Triton repositories by :mod:`streamtsm.triton`.
"""

from __future__ import annotations

import importlib
from typing import Any

#: ONNX opsets an export may ask for. torch 2.13's TorchScript exporter writes 7-20 (above 20
#: it warns and is unsupported; 99 fails deep inside torch) and ONNX Runtime runs 7 and up, but
#: below 10 the ONNX ``Slice`` op has no step, which SlowFast's strided frame sampling needs:
#: 10-20 is the range in which every architecture of the registry exports.
MIN_OPSET, MAX_OPSET = 10, 20

_LAZY = {
    "export_onnx": ".onnx",
    "ExportError": ".onnx",
    "ExportCheck": ".onnx",
    "card_with_state": ".onnx",
}

__all__ = ["MIN_OPSET", "MAX_OPSET", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamtsm.export' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
