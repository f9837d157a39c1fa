"""The ONNX Runtime engines: run a graph written by ``streamtsm export`` (no torch needed).

:func:`open_onnxruntime` loads the file, checks its card and I/O against
:mod:`streamtsm.contract` (a file without a card, or whose I/O differs from it, is refused
before it runs) and returns the engine its card asks for: :class:`OnnxRuntimeOnline` or
:class:`OnnxRuntimeClip`.

The online engine keeps the state where ONNX Runtime computes it: two preallocated sets of
state OrtValues per stream batch, read and written through an IOBinding built once per
direction (see :mod:`.pingpong`), so a step only copies the frame in and the logits out.

torch-free: imports numpy and (inside the functions) onnxruntime only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..card import ModelCard
from ..contract import ContractError, GraphSignature, check_graph_io, graph_signature, read_card_from_onnx_metadata
from .base import BackendError, ClipEngine, OnlineEngine, State, check_input, check_threads
from .pingpong import BufferPair, PingPongState, begin_step

log = logging.getLogger(__name__)

#: Execution providers in order of preference (the first available one runs the graph).
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}


def _import_ort() -> Any:
    try:
        import onnxruntime as ort
    except ModuleNotFoundError:
        raise BackendError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from None
    return ort


def available_providers() -> list[str]:
    """ONNX Runtime execution providers usable here, most preferred first ([] without onnxruntime)."""
    try:
        ort = _import_ort()
    except BackendError:
        return []
    have = set(ort.get_available_providers())
    return [p for p in PREFERRED_PROVIDERS if p in have]


class _OrtGraph:
    """A loaded, contract-checked ONNX Runtime session and what the engines derive from it."""

    def __init__(self, path: Path, providers: Sequence[str] | None, threads: int | None, spinning: bool | None) -> None:
        ort = _import_ort()
        if not path.is_file():
            raise BackendError(f"ONNX file {path} does not exist; export one with `streamtsm export`")
        wanted = list(providers) if providers else available_providers()
        have = set(ort.get_available_providers())
        unknown = [p for p in wanted if p not in have]
        if unknown:
            raise BackendError(f"ONNX Runtime execution providers {unknown} are not available here (available: {sorted(have)})")
        options = ort.SessionOptions()
        threads = check_threads(threads)
        if threads:
            options.intra_op_num_threads = threads
        if spinning is not None:
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self.session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
        except Exception as exc:  # invalid protobuf, unsupported op, …
            raise BackendError(f"{path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0][:300]}") from None
        found_in = {i.name: (_dims(i.shape), _ORT_DTYPES.get(i.type, i.type)) for i in self.session.get_inputs()}
        found_out = {o.name: (_dims(o.shape), _ORT_DTYPES.get(o.type, o.type)) for o in self.session.get_outputs()}
        try:
            self.card: ModelCard = read_card_from_onnx_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
            main_dims = found_in.get(self.card.input_name, ((1,), ""))[0]
            batch = main_dims[0] if main_dims else 1
            self.signature: GraphSignature = graph_signature(self.card, max(batch, 1))
            self.dynamic_batch = check_graph_io(self.signature, found_in, found_out, str(path))
        except ContractError as exc:
            raise BackendError(str(exc)) from None
        self.path = path
        self.fixed_batch = None if self.dynamic_batch else self.signature.inputs[0].shape[0]
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider in _GPU_PROVIDERS else "cpu"
        self.name = "onnxruntime-" + self.provider.replace("ExecutionProvider", "").lower()
        if self.device == "cpu" and self.card.precision == "int8" and self.card.calibration.get("target") == "tensorrt":
            log.warning(
                "%s was quantized for TensorRT (symmetric int8 activations): ONNX Runtime's CPU kernels run it less "
                "faithfully than a graph quantized for them. For this path export with `--int8 --int8-target cpu`", path)
        main = self.signature.inputs[0]
        self.main_shape = (-1, *main.shape[1:]) if self.dynamic_batch else main.shape

    def check_batch(self, batch_size: int) -> None:
        if batch_size < 1:
            raise BackendError(f"batch_size must be >= 1, got {batch_size}")
        if self.fixed_batch is not None and batch_size != self.fixed_batch:
            raise BackendError(
                f"{self.path} was exported for batch {self.fixed_batch}; for {batch_size} streams export with "
                f"`--batch {batch_size}` or `--dynamic-batch`"
            )

    def failed(self, exc: Exception) -> BackendError:
        return BackendError(f"ONNX Runtime failed on {self.path}: {str(exc).splitlines()[0][:300]}")


class _OrtEngineMixin:
    """Attributes both ONNX Runtime engines expose (path, session, card, batch facts)."""

    def _adopt(self, graph: _OrtGraph) -> None:
        self._graph = graph
        self.path, self.session, self.card, self.signature = graph.path, graph.session, graph.card, graph.signature
        self.dynamic_batch, self.fixed_batch = graph.dynamic_batch, graph.fixed_batch
        self.provider, self.device, self.name = graph.provider, graph.device, graph.name

    def _release(self) -> None:
        self.session = None  # type: ignore[assignment]
        self._graph.session = None


class OnnxRuntimeOnline(_OrtEngineMixin, OnlineEngine):
    """An exported online model: per-frame steps with ping-pong state OrtValues."""

    concurrent_step_host = True  # step_host keeps nothing between calls; InferenceSession.run is thread-safe

    def __init__(self, graph: _OrtGraph) -> None:
        if not graph.card.is_online:
            raise BackendError(f"{graph.path} is a window (clip) model: use OnnxRuntimeClip / run_clip")
        self._adopt(graph)
        self._owner = f"{self.name}@{id(self):x}"
        self._ort = _import_ort()

    def init_state(self, batch_size: int = 1) -> State:
        self._check_open()
        self._graph.check_batch(batch_size)
        specs = self.signature.inputs[1:]
        sets = [
            [self._ort.OrtValue.ortvalue_from_numpy(np.zeros((batch_size, *s.shape[1:]), dtype=s.dtype), self.device, 0) for s in specs]
            for _ in range(2)
        ]
        return PingPongState(BufferPair(sets[0], sets[1], self._owner), 0, batch_size)

    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        self._check_open()
        state, frame = begin_step(self._owner, state, frame, self._graph.main_shape)
        pair, k = state.pair, state.index
        binding = pair.bindings[k]
        if binding is None:
            binding = pair.bindings[k] = self._make_binding(pair.sets[k], pair.sets[1 - k])
        binding.bind_cpu_input("frame", frame)
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:
            raise self._graph.failed(exc) from None
        logits = np.array(binding.get_outputs()[0].numpy(), dtype=np.float32, copy=True)
        return logits, state.successor()

    def _make_binding(self, inputs: list[Any], outputs: list[Any]) -> Any:
        binding = self.session.io_binding()
        binding.bind_output("logits", "cpu")  # first: get_outputs()[0] is the logits
        for (in_name, out_name), src, dst in zip(self.signature.state_pairs, inputs, outputs):
            binding.bind_ortvalue_input(in_name, src)
            binding.bind_ortvalue_output(out_name, dst)
        return binding

    def step_host(self, frame: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        self._check_open()
        frame = check_input("frame", frame, self._graph.main_shape)
        self._graph.check_batch(frame.shape[0])
        feeds = {"frame": frame, **{name: s for (name, _), s in zip(self.signature.state_pairs, states)}}
        try:
            logits, *new_states = self.session.run(self.signature.output_names, feeds)
        except Exception as exc:
            raise self._graph.failed(exc) from None
        return logits, new_states

    def state_arrays(self, state: State) -> list[np.ndarray]:
        self._check_open()
        if not isinstance(state, PingPongState):
            raise BackendError(f"state must come from this engine, got {type(state).__name__}")
        state.check_current(self._owner)
        return [np.array(v.numpy(), copy=True) for v in state.pair.sets[state.index]]


class OnnxRuntimeClip(_OrtEngineMixin, ClipEngine):
    """An exported window model: one ``clip`` in, ``logits`` out."""

    def __init__(self, graph: _OrtGraph) -> None:
        if graph.card.is_online:
            raise BackendError(f"{graph.path} is an online (per-frame) model: use OnnxRuntimeOnline / step")
        self._adopt(graph)
        self.fixed_clip_len = graph.card.temporal.clip_len  # the graph's T (graph_signature of the card)

    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        self._check_open()
        clip = check_input("clip", clip, self._graph.main_shape)
        try:
            (logits,) = self.session.run(["logits"], {"clip": clip})
        except Exception as exc:
            raise self._graph.failed(exc) from None
        return logits


def open_onnxruntime(
    path: str | Path,
    providers: Sequence[str] | None = None,
    *,
    threads: int | None = None,
    spinning: bool | None = None,
) -> OnnxRuntimeOnline | OnnxRuntimeClip:
    """The ONNX Runtime engine for an exported file (online or clip, as its card says).

    ``providers``: execution providers in order (default: the preferred available ones).
    ``threads``: intra-op threads (None: ONNX Runtime's default, one per core).
    ``spinning``: whether idle intra-op workers busy-wait (``session.intra_op.allow_spinning``).
    """
    graph = _OrtGraph(Path(path), providers, threads, spinning)
    return OnnxRuntimeOnline(graph) if graph.card.is_online else OnnxRuntimeClip(graph)


def _dims(shape: Sequence[Any]) -> tuple[int, ...]:
    """ONNX Runtime shape (ints, or str/None for symbolic dims) -> ints with -1 for dynamic."""
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)
