"""The embedded default model exported to ONNX once per test session (the Triton tests share it)."""

from __future__ import annotations

import functools
from pathlib import Path


@functools.lru_cache(maxsize=None)
def exported_default(folder: Path, dynamic_batch: bool) -> Path:
    """``folder/default.{dyn,fixed}.onnx``: the embedded model (80 px, 10 shift points)."""
    from streamtsm.checkpoints import load_model
    from streamtsm.export.onnx import export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"default_{'dyn' if dynamic_batch else 'fixed'}.onnx"
    return export_onnx(load_model(None).eval(), path, dynamic_batch=dynamic_batch, check_steps=1)
