"""TensorRT engines built from our ONNX graphs, cached with a sidecar that says what they were built from.

An engine (``NAME.plan``) is only valid for the exact ONNX file, TensorRT version, GPU and
precision it was built with; TensorRT does not check most of that itself and a mismatched
plan either fails to deserialise or, worse, runs a different model. So every plan has a JSON
sidecar ``NAME.plan.json`` (card, ONNX SHA-256, TensorRT version, GPU name, precision) and
``engine_is_stale`` compares it with the present situation: a stale engine is rebuilt
(``ensure_engine``) or refused (``open_tensorrt``), never silently used.

Written against the TensorRT 10 Python API (explicit batch networks, ``build_serialized_network``,
``set_memory_pool_limit``, named I/O tensors).

INT8 is TensorRT 10's *explicit* quantization: the graph carries QuantizeLinear/DequantizeLinear
nodes (``streamtsm export --int8 --int8-target tensorrt``) and the builder gets the INT8 flag;
the implicit calibrator API is deprecated since 10.1 and not used. Such a graph's card says
``precision="int8"``; asked for fp32 or fp16, it builds as ``int8`` or ``int8_fp16`` (the layers
left unquantized run in fp32 or fp16), and the sidecar records that. TensorRT reads only
symmetric signed Q/DQ (zero point 0, int8), so a graph quantized for the CPU (uint8 activations)
is refused before the build with the command that makes a suitable one. torch-free: runs on a Jetson with JetPack's
``tensorrt``. NOT exercised on a GPU in this repository's CI (no GPU there); the sidecar and
staleness logic is tested on CPU.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..card import CardError, ModelCard
from ..contract import ContractError, read_card_from_onnx_metadata
from ..digest import file_sha256
from ..outputs import write_bytes_atomic, write_text_atomic

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "int8_fp16")
#: What a requested precision becomes for a Q/DQ (int8) graph: its quantized layers always run int8.
_INT8_PRECISION = {"fp32": "int8", "fp16": "int8_fp16", "int8": "int8", "int8_fp16": "int8_fp16"}
SIDECAR_VERSION = 1


class EngineError(RuntimeError):
    """An engine cannot be built, or a cached engine does not fit this machine/model."""


@dataclass(frozen=True)
class EngineSidecar:
    """What a ``.plan`` was built from (stored next to it as ``NAME.plan.json``)."""

    onnx_sha256: str
    tensorrt_version: str
    gpu: str
    precision: str
    card: dict[str, Any]
    onnx_path: str = ""
    max_batch: int = 1
    sidecar_version: int = SIDECAR_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str, what: str) -> "EngineSidecar":
        try:
            d = json.loads(text)
            return cls(**{k: d[k] for k in ("onnx_sha256", "tensorrt_version", "gpu", "precision", "card")},
                       **{k: d[k] for k in ("onnx_path", "max_batch", "sidecar_version") if k in d})
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise EngineError(f"{what}: unreadable engine sidecar ({type(exc).__name__}: {exc}); delete it and rebuild") from None

    @property
    def model_card(self) -> ModelCard:
        return ModelCard.from_dict(self.card)


def sidecar_path(plan: str | Path) -> Path:
    """``engines/x.fp16.plan`` -> ``engines/x.fp16.plan.json``."""
    p = Path(plan)
    return p.with_name(p.name + ".json")


def engine_precision(requested: str, quantized: bool) -> str:
    """The precision an engine is built in: ``requested`` for an fp32 graph, its int8 form for a Q/DQ graph."""
    if requested not in PRECISIONS:
        raise EngineError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    if quantized:
        return _INT8_PRECISION[requested]
    if requested.startswith("int8"):
        raise EngineError(
            "TensorRT builds int8 engines from Q/DQ graphs only (explicit quantization): export one with "
            "`streamtsm export MODEL -o NAME.int8.onnx --int8 --int8-target tensorrt --calibrate SOURCE`"
        )
    return requested


def tensorrt_int8_problems(card: ModelCard, zero_points: list[tuple[str, str, bool]] | None) -> list[str]:
    """Why a graph's Q/DQ cannot be TensorRT's explicit quantization ([] if it can).

    ``zero_points``: (node name, zero-point dtype, all zero) of every Q/DQ node, or None when the
    graph could not be read (no ``onnx`` installed); then the card's calibration record decides.
    """
    problems: list[str] = []
    if zero_points is None:
        target = card.calibration.get("target")
        if target != "tensorrt":
            problems.append(f"its card says it was quantized for target {target!r}")
        return problems
    if not zero_points:
        problems.append("its card says int8 but the graph has no QuantizeLinear/DequantizeLinear nodes")
    asymmetric = [name for name, dtype, zero in zero_points if dtype != "int8" or not zero]
    if asymmetric:
        problems.append(f"{len(asymmetric)} Q/DQ nodes are not symmetric int8 (zero point 0), e.g. {asymmetric[0]!r}")
    return problems


@dataclass(frozen=True)
class OnnxGraph:
    """An exported ONNX file read once: its bytes (what TensorRT parses), their SHA-256, its card,
    and its Q/DQ zero points (None without ``onnx``). A build otherwise read the file five times
    (card, precision, int8 check, parse, hash), a big window model's 120 MB each time."""

    path: Path
    data: bytes = field(repr=False)
    sha256: str
    card: ModelCard
    zero_points: list[tuple[str, str, bool]] | None


def read_onnx_graph(onnx_path: str | Path) -> OnnxGraph:
    """Read an exported ONNX file once (see :class:`OnnxGraph`)."""
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise EngineError(f"ONNX file {onnx_path} does not exist; export one with `streamtsm export`")
    data = onnx_path.read_bytes()
    try:
        import onnx
    except ModuleNotFoundError:  # a Jetson has onnxruntime (or only TensorRT) but rarely onnx
        import onnxruntime as ort

        try:
            session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's own Fail/InvalidProtobuf
            raise EngineError(f"{onnx_path} is not a readable ONNX file ({type(exc).__name__}); export it again") from None
        metadata, zero_points = session.get_modelmeta().custom_metadata_map, None
    else:
        try:
            model = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise EngineError(f"{onnx_path} is not a readable ONNX file ({type(exc).__name__}); export it again") from None
        metadata = {p.key: p.value for p in model.metadata_props}
        zero_points = _qdq_zero_points(model)
    try:
        card = read_card_from_onnx_metadata(metadata, str(onnx_path))
    except ContractError as exc:
        raise EngineError(str(exc)) from None
    return OnnxGraph(onnx_path, data, hashlib.sha256(data).hexdigest(), card, zero_points)


def _as_graph(onnx: str | Path | OnnxGraph) -> OnnxGraph:
    return onnx if isinstance(onnx, OnnxGraph) else read_onnx_graph(onnx)


def _qdq_zero_points(model: Any) -> list[tuple[str, str, bool]]:
    """(node, zero-point dtype, all zero) of every Q/DQ node of a loaded ONNX model."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in model.graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    found = []
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        zp = consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is None:  # ONNX default: uint8 with zero point 0
            found.append((node.name, "uint8", True))
        else:
            found.append((node.name, zp.dtype.name, bool((zp == 0).all())))
    return found


def onnx_precision(onnx: str | Path | OnnxGraph, requested: str) -> str:
    """The precision a graph builds in when ``requested`` is asked for; refuses int8 graphs TensorRT cannot read."""
    graph = _as_graph(onnx)
    card = graph.card
    precision = engine_precision(requested, card.precision == "int8")
    if card.precision == "int8":
        problems = tensorrt_int8_problems(card, graph.zero_points)
        if problems:
            raise EngineError(
                f"{graph.path} is an int8 graph TensorRT cannot build: {'; '.join(problems)}. TensorRT needs symmetric "
                "int8 Q/DQ: re-export with `streamtsm export MODEL -o NAME.int8.onnx --int8 --int8-target tensorrt "
                "--calibrate SOURCE` (the default --int8-target cpu is for ONNX Runtime)"
            )
    return precision


def engine_path_for(onnx_path: str | Path, precision: str, engine_dir: str | Path | None = None) -> Path:
    """Where the cached engine of an ONNX file lives: ``<engine_dir or its folder>/<stem>.<precision>.plan``."""
    if precision not in PRECISIONS:
        raise EngineError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    onnx_path = Path(onnx_path)
    folder = Path(engine_dir) if engine_dir is not None else onnx_path.parent
    return folder / f"{onnx_path.stem}.{precision}.plan"


def read_sidecar(plan: str | Path) -> EngineSidecar:
    side = sidecar_path(plan)
    if not side.is_file():
        raise EngineError(f"{plan} has no sidecar {side.name}: its origin is unknown; rebuild it with `streamtsm build-engine`")
    return EngineSidecar.from_json(side.read_text(encoding="utf-8"), str(side))


def engine_is_stale(
    plan: str | Path, onnx: str | Path | OnnxGraph | None, *, trt_version: str, gpu: str, precision: str
) -> str | None:
    """Why the cached ``plan`` must not be used here, or None if it fits.

    Compares the sidecar with the ONNX file's hash (skipped when ``onnx`` is None: running a
    shipped plan alone; an :class:`OnnxGraph` gives it without reading the file again), the
    installed TensorRT version, this GPU's name and the precision asked for.
    """
    plan = Path(plan)
    if not plan.is_file():
        return f"engine {plan} does not exist"
    try:
        side = read_sidecar(plan)
    except EngineError as exc:
        return str(exc)
    if side.sidecar_version > SIDECAR_VERSION:
        return f"sidecar version {side.sidecar_version} is newer than this streamtsm understands"
    if onnx is not None:
        if not isinstance(onnx, OnnxGraph) and not Path(onnx).is_file():
            return f"ONNX file {onnx} does not exist"
        name, digest = (onnx.path.name, onnx.sha256) if isinstance(onnx, OnnxGraph) else (Path(onnx).name, file_sha256(onnx))
        if digest != side.onnx_sha256:
            return f"{name} changed since the engine was built (SHA-256 {digest[:12]}… vs {side.onnx_sha256[:12]}…)"
    if side.tensorrt_version != trt_version:
        return f"built with TensorRT {side.tensorrt_version}, this is TensorRT {trt_version} (plans are version-locked)"
    if side.gpu != gpu:
        return f"built for GPU {side.gpu!r}, this is {gpu!r} (plans are tuned per GPU model)"
    try:
        wanted = engine_precision(precision, side.model_card.precision == "int8")
    except (EngineError, CardError) as exc:
        return str(exc)
    if side.precision != wanted:
        return f"built in {side.precision}, {wanted} was asked for"
    return None


# -- building (needs tensorrt and a GPU) -----------------------------------------------------------


def current_gpu_name() -> str:
    """Name of CUDA device 0 (via pycuda), e.g. 'Orin' or 'NVIDIA GeForce RTX 4090'."""
    import pycuda.driver as cuda

    cuda.init()
    return str(cuda.Device(0).name())


def build_engine(
    onnx: str | Path | OnnxGraph,
    plan_path: str | Path,
    *,
    fp16: bool = False,
    workspace_gb: float = 1.0,
    timing_cache: str | Path | None = None,
    max_batch: int = 8,
) -> Path:
    """Build a TensorRT engine from an exported ONNX file and write ``plan_path`` + its sidecar.

    fp16 applies to the layers; graph inputs/outputs (frame, state, logits) stay fp32, so the
    carried state is not re-quantised at every step. A Q/DQ graph (card precision int8) gets the
    INT8 flag as well, after its Q/DQ nodes are checked to be symmetric int8. A dynamic batch dimension gets an
    optimisation profile 1 … ``max_batch`` (optimum: 1 stream). ``timing_cache`` is read if it
    exists and written back after the build: rebuilds on the same GPU then take seconds, not minutes.
    ``onnx``: a path, or the :class:`OnnxGraph` the caller read already. The plan, its sidecar and
    the timing cache are each replaced atomically.
    """
    try:
        import tensorrt as trt
    except ModuleNotFoundError:
        raise EngineError("TensorRT is not installed (pip install tensorrt, or JetPack on a Jetson)") from None
    graph, plan_path = _as_graph(onnx), Path(plan_path)
    onnx_path, card = graph.path, graph.card
    quantized = card.precision == "int8"
    precision = onnx_precision(graph, "fp16" if fp16 else "fp32")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph.data):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast fp16: the fp16 engine may be slower than fp32")
        config.set_flag(trt.BuilderFlag.FP16)
    if quantized:  # explicit quantization: the Q/DQ scales are in the graph, no calibrator
        config.set_flag(trt.BuilderFlag.INT8)
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    dynamic = [network.get_input(i) for i in range(network.num_inputs) if -1 in tuple(network.get_input(i).shape)]
    built_batch = 1
    if dynamic:
        profile = builder.create_optimization_profile()
        for tensor in dynamic:
            rest = tuple(tensor.shape)[1:]
            profile.set_shape(tensor.name, (1, *rest), (1, *rest), (max_batch, *rest))
        config.add_optimization_profile(profile)
        built_batch = max_batch
    else:
        built_batch = int(network.get_input(0).shape[0])
    log.info("building TensorRT engine from %s (%s, workspace %.1f GB); this can take minutes", onnx_path, precision, workspace_gb)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(plan_path, bytes(serialized))
    if timing_cache:
        write_bytes_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    side = EngineSidecar(
        onnx_sha256=graph.sha256,
        tensorrt_version=str(trt.__version__),
        gpu=current_gpu_name(),
        precision=precision,
        card=card.to_dict(),
        onnx_path=str(onnx_path),
        max_batch=built_batch,
    )
    write_text_atomic(sidecar_path(plan_path), side.to_json() + "\n")
    return plan_path


def ensure_engine(
    onnx_path: str | Path,
    *,
    precision: str = "fp16",
    engine_dir: str | Path | None = None,
    workspace_gb: float = 1.0,
    max_batch: int = 8,
) -> Path:
    """The cached engine for ``onnx_path``, rebuilt (with the reason logged) when missing or stale."""
    import tensorrt as trt

    graph = read_onnx_graph(onnx_path)  # once: precision, staleness and the build all use it
    precision = onnx_precision(graph, precision)
    plan = engine_path_for(onnx_path, precision, engine_dir)
    reason = engine_is_stale(plan, graph, trt_version=str(trt.__version__), gpu=current_gpu_name(), precision=precision)
    if reason is None:
        log.info("using cached TensorRT engine %s", plan)
        return plan
    log.info("building TensorRT engine %s: %s", plan, reason)
    return build_engine(
        graph, plan, fp16=precision.endswith("fp16"), workspace_gb=workspace_gb,
        timing_cache=plan.with_name(".timing.cache"), max_batch=max_batch,
    )
