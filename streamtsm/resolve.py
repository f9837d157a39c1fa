"""From what a user names to a running engine or a torch model: the one place that decides.

A *model spec* is ``None`` or ``"default"`` (the embedded default model), a path (an exported
``.onnx``, a TensorRT ``.plan``/``.engine``, or a checkpoint: ``.safetensors``, ``.pth``,
``.pth.tar``, …), a weight name such as ``tsm_mobilenetv2.jester_online`` (``streamtsm
models``: downloaded once, with the card of its source), a model-registry name such as
``tsm_mobilenetv2`` (RANDOM weights: latency work only), a torch ``nn.Module`` carrying a
``.card``, or an already open engine.

:func:`open_engine` turns a spec plus backend options into an :class:`OnlineEngine` or a
:class:`ClipEngine`; :func:`load_torch_model` turns a spec into a torch model. Everything
that runs a named model (Recognizer, ``streamtsm export``/``eval``/``info``, benchmarks,
the soak, the default model's script check) goes through these two.

Engine choice with ``backend="auto"``: every model runs as an exported graph, because ONNX
Runtime is several times faster than torch on a CPU and stays steady when the CPU is busy.

* the default model: its shipped export ``assets/default.onnx`` (no torch needed);
* a checkpoint or a registry name: exported once into the export cache
  (:mod:`streamtsm.exports`), then run like an ``.onnx`` file;
* an ``.onnx`` file: TensorRT (tensorrt, pycuda and a GPU present; the engine is built once
  and cached beside the ONNX file with a sidecar, rebuilt when stale), else ONNX Runtime
  with CUDA, else ONNX Runtime on CPU;
* a ``.plan``: TensorRT (its sidecar must match this machine);
* an in-memory torch module stays on torch, and so does everything when onnxruntime is not
  installed. ``backend="torch"`` runs the reference engine on purpose.

The log line ``engine: …`` says which engine runs and why.

Options go to the engine that runs: torch ``device``, ``threads``; ONNX Runtime
``providers``, ``threads``, ``spinning``; TensorRT ``precision``, ``engine_dir``,
``workspace_gb``, ``max_batch``. torch is imported only in the checkpoint branches.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import reprlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import exports, weights
from .backends.base import BackendError, ClipEngine, Engine, OnlineEngine
from .backends.onnxruntime_backend import available_providers, open_onnxruntime
from .backends.tensorrt_backend import open_tensorrt, tensorrt_unavailable_reason
from .backends.tensorrt_engine import EngineError, ensure_engine
from .describe import CheckpointError, check_checkpoint_file

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
EXPORTED_SUFFIXES = (".onnx", ".plan", ".engine")
ENGINE_OPTIONS = {
    "torch": ("device", "threads"),
    "onnxruntime": ("providers", "threads", "spinning"),
    "tensorrt": ("precision", "engine_dir", "workspace_gb", "max_batch"),
}

AnyEngine = OnlineEngine | ClipEngine

#: The embedded default model's ONNX export (generated from default.safetensors: tools/export_default_onnx.py).
DEFAULT_ONNX = Path(__file__).resolve().parent / "assets" / "default.onnx"


class ModelSpecError(FileNotFoundError):
    """A model spec names nothing that exists; the message lists what would."""


#: Suffixes that make a model spec a file name (not a weight or architecture name).
FILE_SUFFIXES = (*EXPORTED_SUFFIXES, ".safetensors", ".pth", ".pt", ".tar", ".ckpt")


_OTHER_SPECS = "'default', a weight name (`streamtsm models`) or an architecture name"


def check_model_file(model: Any, *, instead: str = _OTHER_SPECS) -> None:
    """Refuse, cheaply and without torch, a spec that can only be a file and is not one.

    A spec with a folder in it or a model file's suffix is a path; if nothing is there, no
    weight or architecture name can rescue it, so callers check this before slow work (the
    demo before it opens a camera, ``export`` and ``train --init`` before they import torch).
    ``instead``: what the caller takes besides a file, for the message.
    """
    if not isinstance(model, (str, Path)) or model == "default" or Path(model).exists():
        return
    text = str(model)
    if ("/" in text or "\\" in text or Path(text).suffix.lower() in FILE_SUFFIXES) and weights.find_weight(text) is None:
        raise ModelSpecError(f"model file {text} does not exist (a folder in it or a model file's suffix makes it a path): "
                             f"check the path, or give {instead}")


#: The model registry's architecture names (``streamtsm.list_models()``), known here without torch so
#: that a misspelled name says so on a device without torch (tests/test_model_spec_checks.py keeps them equal).
ARCHITECTURES = (
    "i3d_r50", "r2plus1d_18", "r2plus1d_34", "r2plus1d_seed", "r3d_18", "resnet3d_101", "resnet3d_152", "resnet3d_18",
    "resnet3d_34", "resnet3d_50", "slowfast_r101", "slowfast_r50", "slowonly_r101", "slowonly_r152", "slowonly_r50",
    "tsm_mobilenetv2", "tsm_resnet101", "tsm_resnet18", "tsm_resnet34", "tsm_resnet50", "tsn_mobilenetv2", "tsn_resnet50",
)


def check_model_spec(model: Any) -> None:
    """Refuse, without torch, a spec that names no model: the same message with torch or without.

    Passes ``None``, ``'default'``, an open engine, a module with a ``.card``, an exported file
    (``.onnx``, ``.plan``: its reader judges it), an existing file that can be a checkpoint (by
    its first bytes), a weight name and an architecture name: those
    need torch or the export cache, and only then may "needs torch" be the answer. Refuses
    anything else (not a path or name; a missing path; a folder; a file that cannot be a
    checkpoint; a name that is neither a weight nor an architecture, with the closest names).
    """
    if model is None or model == "default" or isinstance(model, Engine) or _has_card(model):
        return
    if not isinstance(model, (str, Path)):
        module = " (a torch module needs a .card: build it with streamtsm.create_model or load_model)" if hasattr(
            model, "state_dict") else ""
        raise ModelSpecError(f"model spec {reprlib.repr(model)} (type {type(model).__name__}) is not a model{module}: give the "
                             "path of a checkpoint or an exported .onnx/.plan, 'default', a weight name (`streamtsm models`), "
                             "an architecture name, or a torch module with a .card")
    check_model_file(model)
    path = Path(model)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; pass the checkpoint file inside it")
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        return  # an exported graph: its own reader (ONNX Runtime, TensorRT) judges the file
    if path.exists():
        check_checkpoint_file(path)
        return
    name = str(model)
    if weights.find_weight(name) is None and name not in ARCHITECTURES:
        raise ModelSpecError(_not_found_message(name, [*ARCHITECTURES, *(w.name for w in weights.list_weights())]))


def spec_text(model: Any) -> str:
    """A model spec in a few words, for logs and messages: an in-memory module is its class and
    card arch, never its repr (hundreds of lines for a CNN)."""
    if model is None or model == "default":
        return "the default model"
    if isinstance(model, (str, Path)):
        return str(model)
    if isinstance(model, Engine):
        return model.describe()
    arch = getattr(getattr(model, "card", None), "arch", None)
    return f"an in-memory {type(model).__name__}" + (f" ({arch})" if arch else "")


def open_engine(model: Any = None, backend: str = "auto", **options: Any) -> AnyEngine:
    """The engine for ``model`` (see the module docstring for specs, backends and options)."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if isinstance(model, Engine):
        if options:
            raise BackendError(f"backend options {sorted(options)} given with an already open engine: pass them when opening it")
        return model
    path = _exported_path(model)
    if path is not None:
        return _open_exported(path, backend, options, why=f"{path.name} is an exported graph")
    check_model_spec(model)  # a typo, a folder or a JPEG says so, not "needs torch" where torch is absent
    if backend == "torch" or (backend == "auto" and _has_card(model)):
        why = "asked for" if backend == "torch" else "an in-memory torch model stays on torch"
        return _open_torch(load_torch_model(model), options, why)
    if backend == "auto" and not available_providers():
        return _open_torch(load_torch_model(model), options, "onnxruntime is not installed (pip install onnxruntime)")
    if model is None or model == "default":
        if DEFAULT_ONNX.is_file():
            return _open_exported(DEFAULT_ONNX, backend, options, why="the embedded default model's ONNX export")
        return _open_exported(cached_export_of(None), backend, options, why="default model exported to the cache")
    return _open_exported(cached_export_of(model), backend, options, why=f"{spec_text(model)} exported to the cache")


def load_torch_model(model: Any = None, *, num_classes: int | None = None, input_size: int | None = None) -> Any:
    """The torch model for a spec: a checkpoint (any supported format), the default, or a registry name.

    ``num_classes`` and ``input_size`` apply to registry names only (random weights, seeded so
    that the same name gives the same model, and its export is cached once); a checkpoint's
    card fixes both.
    """
    if _has_card(model):
        return model
    if isinstance(model, Engine) or _exported_path(model) is not None:
        raise ModelSpecError(f"{spec_text(model)} is an exported graph, not trainable weights: it has no torch model")
    check_model_spec(model)  # the same refusals as without torch, before torch is imported
    checkpoints, models = _torch_side()
    if model is None or model == "default":
        return _with_weights_hash(checkpoints.load_model(None), checkpoints.DEFAULT_MODEL)
    if Path(model).exists():
        if input_size is not None or num_classes is not None:
            raise ValueError("--input-size/--num-classes apply to registry names only: a checkpoint's card fixes them")
        return _with_weights_hash(checkpoints.load_model(model), Path(model))
    name = str(model)
    if weights.find_weight(name) is not None:
        return checkpoints.load_model(name)  # downloaded once into the cache, with the entry's card
    if models.is_model(name):
        import torch

        log.warning("model %r built with RANDOM weights: predictions are meaningless (latency work only)", name)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = models.create_model(name, num_classes=400 if num_classes is None else num_classes)
        return net if input_size is None else _with_input_size(net, input_size)
    raise ModelSpecError(_not_found_message(name, models.list_models() + [w.name for w in weights.list_weights()]))


def cached_export_of(model: Any) -> Path:
    """The cached export of a checkpoint path, registry name or the default (exported now if needed).

    A checkpoint file's export is found by its bytes alone, so this needs torch only the
    first time (to export).
    """
    key, digest = None, None
    path = Path(model) if isinstance(model, (str, Path)) else None
    if path is not None and not path.exists() and weights.find_weight(str(model)) is not None:
        try:  # a weight name: its export is found by the cached file's bytes, without torch
            cached = weights.ensure_weight(weights.get_weight(str(model)), download=False)
            path, digest = cached.path, cached.sha256  # checked just now: hashed once
        except weights.WeightsError:
            path = None  # not downloaded yet: loading it (with torch) downloads it
    if path is not None and path.is_file():
        key = exports.key_for_file(path, _safe_stem(path), sha256=digest)
        found = exports.lookup(key)
        if found is not None:
            log.info("using the cached export %s of %s", found, spec_text(model))
            return found
    try:
        net = load_torch_model(model)
    except BackendError as exc:
        hint = f" Run `streamtsm download {model} --onnx` where torch is installed." if weights.find_weight(str(model)) else ""
        raise BackendError(
            f"{spec_text(model)} has no cached export here, and exporting it needs torch: {exc}.{hint}"
        ) from None
    if key is None and path is not None and path.is_file():
        key = exports.key_for_file(path, _safe_stem(path))  # a weight name downloaded just now
    return exports.cached_export(net, key, source=str(model or "default") if isinstance(model, (str, Path, type(None))) else spec_text(model))


# -- helpers ---------------------------------------------------------------------------------------


def _has_card(model: Any) -> bool:
    return not isinstance(model, (str, Path, Engine)) and model is not None and hasattr(model, "card")


def _exported_path(model: Any) -> Path | None:
    if isinstance(model, (str, Path)) and Path(model).suffix.lower() in EXPORTED_SUFFIXES:
        return Path(model)
    return None


def _torch_side() -> tuple[Any, Any]:
    """``(streamtsm.checkpoints, streamtsm.models)``, imported only here: torch is optional."""
    try:
        from . import checkpoints, models
    except ModuleNotFoundError as exc:
        if exc.name == "torch":
            raise BackendError(
                "this model needs torch (it is a checkpoint or a model name, not an exported graph). Install "
                "streamtsm[torch], or export it where torch is installed (`streamtsm export MODEL -o NAME.onnx`) "
                "and run the .onnx file here"
            ) from None
        raise
    return checkpoints, models


def _not_found_message(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f" Closest names: {', '.join(close)}." if close else ""
    return (
        f"{name!r} is neither an existing checkpoint file nor a known model name.{hint} Give a checkpoint path, an exported "
        ".onnx/.plan, 'default', a weight name (`streamtsm models`), or an architecture of `streamtsm.list_models()` (random weights)"
    )


def _with_input_size(net: Any, input_size: int) -> Any:
    import dataclasses

    pre = net.card.preprocessing
    if pre.resize_hw is not None:
        resize: dict[str, Any] = dict(resize_hw=(max(input_size, pre.resize_hw[0]), max(input_size, pre.resize_hw[1])))
    else:
        resize = dict(resize_short=max(input_size, round(input_size * 256 / 224)))
    net.card = net.card.replace(preprocessing=dataclasses.replace(pre, crop_size=input_size, **resize))
    return net


def keyword_only(init: Callable[..., None]) -> tuple[str, ...]:
    """The keyword-only parameters of a constructor: its own options, for :func:`check_option_names`."""
    return tuple(n for n, p in inspect.signature(init).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)


def check_option_names(options: Mapping[str, Any], own: Sequence[str], error: type[Exception]) -> None:
    """Refuse a keyword that is neither one of the caller's own (``own``) nor an option of any
    engine: a typo such as ``smoothin=3`` would otherwise reach the engine, which would say
    that it does not apply to the backend."""
    engine_names = sorted({name for names in ENGINE_OPTIONS.values() for name in names})
    unknown = sorted(set(options) - set(own) - set(engine_names))
    if unknown:
        known = [*own, *engine_names]
        close = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise error(f"unknown option {unknown[0]!r}{hint}: the options are {', '.join(known)}")


def _reject_unknown(options: dict[str, Any], names: tuple[str, ...], engine: str) -> None:
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise BackendError(f"options {unknown} do not apply to the {engine} backend (it takes {', '.join(names)})")


def _only(options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in names}


def _with_weights_hash(net: Any, path: Path) -> Any:
    """Record the weights file's SHA-256 in the card: exports made from it then say where they came from."""
    if path.is_file():
        net.card = net.card.replace(weights_sha256=exports.file_sha256(path))
    return net


def _safe_stem(path: Path) -> str:
    stem = path.name.split(".")[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60] or "model"


def _open_torch(net: Any, options: dict[str, Any], why: str) -> AnyEngine:
    from .backends.torch_backend import open_torch  # torch is installed: _torch_side() loaded the model

    _reject_unknown(options, ENGINE_OPTIONS["torch"], "torch")
    engine = open_torch(net, **options)
    log.info("engine: %s (%s)", engine.describe(), why)
    return engine


#: ONNX Runtime defaults for the runtime: one intra-op thread that does not spin while idle.
#: Measured (benchmarks/contention.py): a stream of the default model keeps its card rate with
#: 0 resets when two busy processes hog both cores; more threads or spinning workers fight them.
ORT_DEFAULTS = {"threads": 1, "spinning": False}


def _open_exported(path: Path, backend: str, options: dict[str, Any], *, why: str) -> AnyEngine:
    if not path.is_file():
        raise BackendError(f"{path} does not exist; export a model with `streamtsm export MODEL -o engines/NAME.onnx`")
    if backend == "torch":
        raise BackendError(f"{path} is an exported graph: it runs with onnxruntime or tensorrt; torch needs the checkpoint")
    if path.suffix.lower() in (".plan", ".engine"):
        if backend not in ("auto", "tensorrt"):
            raise BackendError(f"{path} is a TensorRT engine: use backend='tensorrt' (or 'auto'), or pass the .onnx file")
        _reject_unknown(options, ("precision",), "tensorrt (.plan)")
        engine = open_tensorrt(path, **options)
    elif backend == "onnxruntime":
        _reject_unknown(options, ENGINE_OPTIONS["onnxruntime"], "onnxruntime")
        engine = open_onnxruntime(path, **{**ORT_DEFAULTS, **options})
    elif backend == "tensorrt":
        _reject_unknown(options, ENGINE_OPTIONS["tensorrt"], "tensorrt")
        engine = _tensorrt_from_onnx(path, **options)
    else:
        return _auto_exported(path, options, why)
    log.info("engine: %s (%s)", engine.describe(), why)
    return engine


def _tensorrt_from_onnx(onnx_path: Path, *, precision: str = "fp16", engine_dir: Any = None, workspace_gb: float = 1.0,
                        max_batch: int = 8) -> AnyEngine:
    reason = tensorrt_unavailable_reason()
    if reason is not None:
        raise BackendError(f"TensorRT backend unavailable: {reason}")
    try:
        plan = ensure_engine(onnx_path, precision=precision, engine_dir=engine_dir, workspace_gb=workspace_gb, max_batch=max_batch)
    except EngineError as exc:
        raise BackendError(str(exc)) from None
    return open_tensorrt(plan, onnx=onnx_path, precision=precision)


def _auto_exported(path: Path, options: dict[str, Any], why: str) -> AnyEngine:
    """TensorRT, then ONNX Runtime CUDA, then ONNX Runtime CPU; logs the pick and why others were skipped."""
    _reject_unknown(options, ENGINE_OPTIONS["onnxruntime"] + ENGINE_OPTIONS["tensorrt"], "auto")
    skipped: list[str] = []
    reason = tensorrt_unavailable_reason()
    if reason is None:
        try:
            return _tensorrt_from_onnx(path, **_only(options, ENGINE_OPTIONS["tensorrt"]))
        except BackendError as exc:
            skipped.append(f"TensorRT failed: {exc}")
    else:
        skipped.append(f"TensorRT skipped: {reason}")
    providers = available_providers()
    ort_options = {**ORT_DEFAULTS, **_only(options, ENGINE_OPTIONS["onnxruntime"])}
    if "providers" not in ort_options:
        if not providers:
            skipped.append("ONNX Runtime skipped: onnxruntime is not installed")
            raise BackendError(f"no engine can run {path}: " + "; ".join(skipped))
        if "CUDAExecutionProvider" in providers:
            try:
                engine = open_onnxruntime(path, ["CUDAExecutionProvider", "CPUExecutionProvider"], **ort_options)
                log.info("engine: %s (%s; %s)", engine.describe(), why, "; ".join(skipped))
                return engine
            except BackendError as exc:
                skipped.append(f"ONNX Runtime CUDA failed: {exc}")
        else:
            skipped.append("ONNX Runtime CUDA skipped: CUDAExecutionProvider not available (pip install onnxruntime-gpu)")
        ort_options["providers"] = ["CPUExecutionProvider"]
    engine = open_onnxruntime(path, **ort_options)
    log.info("engine: %s (%s; %s)", engine.describe(), why, "; ".join(skipped))
    return engine
