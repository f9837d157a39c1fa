"""``open_backend``: from what the user names to a running engine, saying which it picked.

Accepted model specs: ``None`` (the embedded default model), a torch ``nn.Module`` with a card,
a checkpoint path (``.safetensors``/``.pth``/``.pth.tar``), an ``.onnx`` file, a TensorRT
``.plan``, or a registry name (random weights: for latency work, not for predictions).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .base import Backend, BackendError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")


def open_backend(model: Any = None, backend: str = "auto", **options: Any) -> Backend:
    """Build the engine for ``model``. ``backend`` is one of ``BACKENDS``."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    path = Path(model) if isinstance(model, (str, Path)) else None
    if path is not None and path.suffix in (".onnx", ".plan", ".engine"):
        return _open_exported(path, backend, **options)
    if backend not in ("auto", "torch"):
        raise BackendError(
            f"backend {backend!r} runs exported models: export first with `streamtsm export MODEL -o engines/NAME.onnx` "
            "and pass the .onnx file"
        )
    chosen = _open_torch(model, **options)
    log.info("backend: %s", chosen.describe())
    return chosen


def _open_torch(model: Any, **options: Any) -> Backend:
    try:
        from .torch_backend import TorchBackend
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise BackendError(
                "this model needs torch (it is a checkpoint, not an exported graph). Install streamtsm[torch], "
                "or export it on another machine with `streamtsm export` and run the .onnx file here"
            ) from None
        raise
    from ..checkpoints import load_model
    from ..models.registry import create_model, is_model

    if model is None or isinstance(model, (str, Path)):
        if isinstance(model, str) and not Path(model).exists() and is_model(model):
            log.warning("model %r built with RANDOM weights: predictions are meaningless (latency work only)", model)
            net = create_model(model, num_classes=options.pop("num_classes", 400))
        else:
            net = load_model(model)
    else:
        net = model
    return TorchBackend(net, **options)


def _open_exported(path: Path, backend: str, **options: Any) -> Backend:
    raise BackendError(f"{path}: exported models need the ONNX Runtime/TensorRT backends, not in this build yet")
