"""``open_backend``: from what the user names to a running engine, saying which it picked.

Accepted model specs: ``None`` (the embedded default model), a torch ``nn.Module`` with a card,
a checkpoint path (``.safetensors``/``.pth``/``.pth.tar``), an ``.onnx`` file, a TensorRT
``.plan``, or a registry name (random weights: for latency work, not for predictions).

``backend="auto"``:

* an ``.onnx`` file: TensorRT (when tensorrt, pycuda and a GPU are present; the engine is built
  once and cached next to the ONNX file as ``NAME.<precision>.plan`` + sidecar, rebuilt when
  stale), else ONNX Runtime with CUDA, else ONNX Runtime on CPU. The choice and the reasons the
  others were skipped are logged at INFO.
* a ``.plan``: TensorRT (the sidecar must match this machine; no ONNX to rebuild from).
* a checkpoint / module / registry name: torch. We deliberately do not export behind the
  user's back here: torch is the reference, and its numbers are what a checkpoint means.
  Ask for ``backend="onnxruntime"`` (or ``"tensorrt"``) to run a checkpoint through an export
  cached by weights hash in ``$STREAMTSM_CACHE`` (default ``~/.cache/streamtsm/onnx``).

Options are passed to the engine that runs: torch ``device``, ``threads``; ONNX Runtime
``providers``, ``threads``; TensorRT ``precision`` ("fp16"/"fp32"), ``engine_dir``,
``workspace_gb``, ``max_batch``. With ``auto`` each engine receives only the options it knows.
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
    if backend in ("onnxruntime", "tensorrt"):
        onnx_path = _cached_export(model, options)
        return _open_exported(onnx_path, backend, **options)
    chosen = _open_torch(model, **options)
    log.info("backend: %s", chosen.describe())
    return chosen


def _load_torch_model(model: Any, options: dict[str, Any]) -> Any:
    """The torch module for a model spec (None, path, registry name or module)."""
    from ..checkpoints import load_model
    from ..models.registry import create_model, is_model

    if model is None or isinstance(model, (str, Path)):
        if isinstance(model, str) and not Path(model).exists() and is_model(model):
            log.warning("model %r built with RANDOM weights: predictions are meaningless (latency work only)", model)
            return create_model(model, num_classes=options.pop("num_classes", 400))
        return load_model(model)
    return model


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
    net = _load_torch_model(model, options)
    return TorchBackend(net, **options)


_ORT_OPTIONS = ("providers", "threads")
_TRT_OPTIONS = ("precision", "engine_dir", "workspace_gb", "max_batch")


def _only(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in names}


def _reject_unknown(options: dict[str, Any], names: tuple[str, ...], engine: str) -> None:
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise BackendError(f"options {unknown} do not apply to the {engine} backend (it takes {', '.join(names)})")


def _open_exported(path: Path, backend: str, **options: Any) -> Backend:
    if not path.is_file():
        raise BackendError(f"{path} does not exist; export a model with `streamtsm export MODEL -o engines/NAME.onnx`")
    if backend == "torch":
        raise BackendError(f"{path} is an exported graph: it runs with onnxruntime or tensorrt; torch needs the checkpoint")
    if path.suffix in (".plan", ".engine"):
        if backend not in ("auto", "tensorrt"):
            raise BackendError(f"{path} is a TensorRT engine: use backend='tensorrt' (or 'auto'), or pass the .onnx file")
        from .tensorrt_backend import TensorRTBackend

        _reject_unknown(options, ("precision",), "tensorrt (.plan)")
        chosen = TensorRTBackend(path, **options)
        log.info("backend: %s", chosen.describe())
        return chosen
    if backend == "onnxruntime":
        _reject_unknown(options, _ORT_OPTIONS, "onnxruntime")
        chosen = _open_ort(path, **options)
    elif backend == "tensorrt":
        _reject_unknown(options, _TRT_OPTIONS, "tensorrt")
        chosen = _open_tensorrt(path, **options)
    else:
        chosen = _auto_exported(path, options)
    return chosen


def _open_ort(path: Path, **options: Any) -> Backend:
    from .onnxruntime_backend import OnnxRuntimeBackend

    chosen = OnnxRuntimeBackend(path, **options)
    log.info("backend: %s", chosen.describe())
    return chosen


def _open_tensorrt(onnx_path: Path, *, precision: str = "fp16", engine_dir: Any = None, workspace_gb: float = 1.0,
                   max_batch: int = 8) -> Backend:
    from .tensorrt_engine import EngineError, ensure_engine
    from .tensorrt_backend import TensorRTBackend, tensorrt_unavailable_reason

    reason = tensorrt_unavailable_reason()
    if reason is not None:
        raise BackendError(f"TensorRT backend unavailable: {reason}")
    try:
        plan = ensure_engine(onnx_path, precision=precision, engine_dir=engine_dir, workspace_gb=workspace_gb, max_batch=max_batch)
    except EngineError as exc:
        raise BackendError(str(exc)) from None
    chosen = TensorRTBackend(plan, onnx=onnx_path, precision=precision)
    log.info("backend: %s (engine %s)", chosen.describe(), plan)
    return chosen


def _auto_exported(path: Path, options: dict[str, Any]) -> Backend:
    """TensorRT, then ONNX Runtime CUDA, then ONNX Runtime CPU; logs the pick and why others were skipped."""
    from .onnxruntime_backend import OnnxRuntimeBackend, available_providers
    from .tensorrt_backend import tensorrt_unavailable_reason

    _reject_unknown(options, _ORT_OPTIONS + _TRT_OPTIONS, "auto")
    skipped: list[str] = []
    reason = tensorrt_unavailable_reason()
    if reason is None:
        try:
            return _open_tensorrt(path, **_only(options, _TRT_OPTIONS))
        except BackendError as exc:
            skipped.append(f"TensorRT failed: {exc}")
    else:
        skipped.append(f"TensorRT skipped: {reason}")
    providers = available_providers()
    ort_options = _only(options, _ORT_OPTIONS)
    if "providers" in ort_options:
        chosen: Backend = OnnxRuntimeBackend(path, **ort_options)
    else:
        if "CUDAExecutionProvider" in providers:
            try:
                chosen = OnnxRuntimeBackend(path, ["CUDAExecutionProvider", "CPUExecutionProvider"], **ort_options)
                log.info("backend: %s (auto; %s)", chosen.describe(), "; ".join(skipped))
                return chosen
            except BackendError as exc:
                skipped.append(f"ONNX Runtime CUDA failed: {exc}")
        elif not providers:
            skipped.append("ONNX Runtime skipped: onnxruntime is not installed")
            raise BackendError(f"no engine can run {path}: " + "; ".join(skipped))
        else:
            skipped.append("ONNX Runtime CUDA skipped: CUDAExecutionProvider not available (pip install onnxruntime-gpu)")
        chosen = OnnxRuntimeBackend(path, ["CPUExecutionProvider"], **ort_options)
    log.info("backend: %s (auto; %s)", chosen.describe(), "; ".join(skipped))
    return chosen


def cache_dir() -> Path:
    """Where checkpoints run on ONNX Runtime/TensorRT get their cached exports."""
    import os

    return Path(os.environ.get("STREAMTSM_CACHE", Path.home() / ".cache" / "streamtsm")) / "onnx"


def _cached_export(model: Any, options: dict[str, Any]) -> Path:
    """Export a torch model spec to the cache (keyed by weights + card hash) and return the .onnx path."""
    import hashlib

    try:
        from ..export.onnx import export_onnx
    except ModuleNotFoundError as exc:
        if exc.name in ("torch", "onnx"):
            raise BackendError(
                f"running a checkpoint on ONNX Runtime/TensorRT exports it first, which needs {exc.name} "
                "(pip install streamtsm[export]); or pass an already exported .onnx file"
            ) from None
        raise
    net = _load_torch_model(model, options)

    h = hashlib.sha256(net.card.to_json(indent=None).encode())
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = cache_dir() / f"{net.card.arch}-{h.hexdigest()[:16]}.onnx"
    if path.is_file():
        log.info("using cached export %s", path)
    else:
        log.info("exporting %s to %s (once; cached by weights hash)", net.card.arch, path)
        export_onnx(net, path)
    return path
