"""The TensorRT engines: a cached ``.plan`` run with tensors bound by name and state kept on the GPU.

Per stream batch, the online engine allocates two sets of state buffers on the device. A step
binds ``state_in.i`` to one set and ``state_out.i`` to the other (``set_tensor_address``), runs
``execute_async_v3`` and hands back a state that points at the written set; the next step
binds the other way round. Only the frame goes host -> device and only the logits come back:
the state never leaves the GPU (ping-pong, see :mod:`.pingpong`). The address list of each
direction is computed once per buffer pair, and input shapes are set only when the batch
size changes, as ONNX Runtime caches its bindings.

What is bound where is decided by a pure-Python ``BindingPlan`` derived from the model card,
so it is tested on a CPU-only machine; the engine's own tensor list is checked against it
before anything runs. pycuda provides device memory and the stream.

Written against TensorRT 10; NOT run in this repository's CI (no GPU). torch-free.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..card import ModelCard
from ..contract import ContractError, check_graph_io, graph_signature
from .base import BackendError, ClipEngine, OnlineEngine, State, check_input
from .pingpong import BufferPair, PingPongState, begin_step
from .tensorrt_engine import EngineError, engine_is_stale, read_sidecar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BufferSpec:
    """One device buffer the backend allocates: which tensor it serves and its size."""

    tensor: str
    shape: tuple[int, ...]
    dtype: str
    role: str  # "input" (frame/clip, copied from host), "output" (logits, copied to host), "state"
    swaps_with: str | None = None  # for state inputs: the output whose buffer becomes this input next step

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class BindingPlan:
    """Everything the runtime binds, for ``batch_size`` streams, derived from the card only.

    ``host_in``/``host_out`` are copied per call (frame or clip in, logits out). Each entry of
    ``state`` is a pair of equally sized device buffers: ``state_in.i`` reads set A and
    ``state_out.i`` writes set B, then the roles swap.
    """

    batch_size: int
    host_in: BufferSpec
    host_out: BufferSpec
    state: tuple[BufferSpec, ...]

    @property
    def tensor_names(self) -> list[str]:
        return [self.host_in.tensor, self.host_out.tensor] + [n for s in self.state for n in (s.tensor, s.swaps_with or "")]

    @property
    def state_bytes(self) -> int:
        """Device memory of one state set (the plan keeps two)."""
        return sum(s.nbytes for s in self.state)

    @property
    def input_shapes(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """(tensor, shape) of every input, for ``set_input_shape`` when the batch size changes."""
        return ((self.host_in.tensor, self.host_in.shape), *((s.tensor, s.shape) for s in self.state))

    def addresses(self, io: Mapping[str, int], state_sets: Sequence[Sequence[int]], read: int) -> dict[str, int]:
        """Tensor name -> device address for one step that reads state set ``read`` and writes the other."""
        out = {self.host_in.tensor: io[self.host_in.tensor], self.host_out.tensor: io[self.host_out.tensor]}
        for i, spec in enumerate(self.state):
            out[spec.tensor] = state_sets[read][i]
            out[spec.swaps_with or ""] = state_sets[1 - read][i]
        return out


def binding_plan(card: ModelCard, batch_size: int = 1) -> BindingPlan:
    """The binding plan of an exported model's card."""
    sig = graph_signature(card, batch_size)
    main, logits = sig.inputs[0], sig.outputs[0]
    outputs = {t.name: t for t in sig.outputs}
    state = tuple(
        BufferSpec(t.name, t.shape, t.dtype, "state", swaps_with=out)
        for t, (_, out) in zip(sig.inputs[1:], sig.state_pairs)
        if outputs[out].shape == t.shape
    )
    if len(state) != len(sig.state_pairs):
        raise BackendError("state input and output shapes differ in the card; the state cannot ping-pong")
    return BindingPlan(batch_size, BufferSpec(main.name, main.shape, main.dtype, "input"),
                       BufferSpec(logits.name, logits.shape, logits.dtype, "output"), state)


def check_engine_tensors(card: ModelCard, engine_tensors: Mapping[str, tuple[str, Sequence[int], str]], what: str) -> bool:
    """Check an engine's I/O (name -> ("input"|"output", shape with -1 dynamic, dtype)) against its card.

    Returns whether the batch is dynamic. Same rules and messages as for ONNX files.
    """
    sig = graph_signature(card, 1)
    ins = {n: (s, d) for n, (mode, s, d) in engine_tensors.items() if mode == "input"}
    outs = {n: (s, d) for n, (mode, s, d) in engine_tensors.items() if mode == "output"}
    main = ins.get(sig.inputs[0].name)
    batch = main[0][0] if main and len(main[0]) and main[0][0] > 0 else 1
    try:
        return check_graph_io(graph_signature(card, batch), ins, outs, what)
    except ContractError as exc:
        raise BackendError(str(exc)) from None


def tensorrt_unavailable_reason() -> str | None:
    """Why the native TensorRT backend cannot run here (None when tensorrt, pycuda and a GPU are present)."""
    try:
        import tensorrt  # noqa: F401
    except ModuleNotFoundError:
        return "the tensorrt package is not installed"
    try:
        import pycuda.driver as cuda
    except ModuleNotFoundError:
        return "pycuda is not installed (pip install pycuda)"
    try:
        cuda.init()
        if cuda.Device.count() < 1:
            return "no CUDA GPU found"
    except Exception as exc:  # driver missing or broken
        return f"CUDA is unusable: {exc}"
    return None


class _TensorRTPlan:
    """A deserialised, contract-checked engine plus its execution context, stream and I/O buffers."""

    def __init__(self, plan: Path, onnx: str | Path | None, precision: str | None, device: int) -> None:
        reason = tensorrt_unavailable_reason()
        if reason is not None:
            raise BackendError(f"TensorRT backend unavailable: {reason}")
        import pycuda.driver as cuda
        import tensorrt as trt

        self.plan = plan
        try:
            side = read_sidecar(plan)
        except EngineError as exc:
            raise BackendError(str(exc)) from None
        self.cuda = cuda
        cuda.init()
        self.context_cuda = cuda.Device(device).retain_primary_context()
        self.context_cuda.push()
        try:
            gpu = str(cuda.Device(device).name())
            stale = engine_is_stale(plan, onnx, trt_version=str(trt.__version__), gpu=gpu, precision=precision or side.precision)
            if stale is not None:
                raise BackendError(f"refusing stale TensorRT engine {plan}: {stale}. Rebuild it with `streamtsm build-engine`")
            self.card: ModelCard = side.model_card
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
            if self.engine is None:
                raise BackendError(f"TensorRT could not deserialise {plan}; rebuild it with `streamtsm build-engine`")
            tensors = {}
            for i in range(self.engine.num_io_tensors):
                name = self.engine.get_tensor_name(i)
                mode = "input" if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
                dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))).name
                tensors[name] = (mode, tuple(self.engine.get_tensor_shape(name)), dtype)
            self.dynamic_batch = check_engine_tensors(self.card, tensors, str(plan))
            self.max_batch = side.max_batch
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            self.io: dict[int, tuple[BindingPlan, dict[str, Any], dict[str, np.ndarray]]] = {}
            self.name = f"tensorrt-{side.precision}"
            self._shaped_for: int | None = None  # batch size the context's input shapes are set for
        finally:
            self.context_cuda.pop()

    def io_for(self, batch_size: int) -> tuple[BindingPlan, dict[str, Any], dict[str, np.ndarray]]:
        """Device + pinned host buffers of frame/clip and logits for a batch size (allocated once)."""
        if batch_size not in self.io:
            if (self.dynamic_batch and batch_size > self.max_batch) or (not self.dynamic_batch and batch_size != self.max_batch):
                raise BackendError(f"{self.plan} runs batch {'1…' if self.dynamic_batch else ''}{self.max_batch}, not {batch_size}")
            plan = binding_plan(self.card, batch_size)
            device, host = {}, {}
            for spec in (plan.host_in, plan.host_out):
                host[spec.tensor] = self.cuda.pagelocked_empty(spec.shape, np.dtype(spec.dtype))
                device[spec.tensor] = self.cuda.mem_alloc(spec.nbytes)
            self.io[batch_size] = (plan, device, host)
        return self.io[batch_size]

    def run(self, plan: BindingPlan, addresses: Sequence[tuple[str, int]], array: np.ndarray) -> np.ndarray:
        """Copy ``array`` in, bind ``addresses``, execute, copy the logits out (context pushed by the caller)."""
        cuda = self.cuda
        _, device, host = self.io[plan.batch_size]
        np.copyto(host[plan.host_in.tensor], array)
        cuda.memcpy_htod_async(device[plan.host_in.tensor], host[plan.host_in.tensor], self.stream)
        if self._shaped_for != plan.batch_size:
            for tensor, shape in plan.input_shapes:
                self.context.set_input_shape(tensor, shape)
            self._shaped_for = plan.batch_size
        for name, address in addresses:
            self.context.set_tensor_address(name, address)
        if not self.context.execute_async_v3(self.stream.handle):
            raise BackendError(f"TensorRT execution failed for {self.plan}")
        cuda.memcpy_dtoh_async(host[plan.host_out.tensor], device[plan.host_out.tensor], self.stream)
        self.stream.synchronize()
        return np.array(host[plan.host_out.tensor], copy=True)

    def release(self) -> None:
        ctx = self.context_cuda
        ctx.push()
        try:
            for _, device, _ in self.io.values():
                for buf in device.values():
                    buf.free()
            self.io.clear()
            self.context = None
            self.engine = None
        finally:
            ctx.pop()
            ctx.detach()


class _TensorRTMixin:
    def _adopt(self, engine: _TensorRTPlan) -> None:
        self._trt = engine
        self.plan, self.card, self.name = engine.plan, engine.card, engine.name
        self.dynamic_batch, self.max_batch = engine.dynamic_batch, engine.max_batch

    def _release(self) -> None:
        self._trt.release()


class TensorRTOnline(_TensorRTMixin, OnlineEngine):
    """An online model's engine: per-frame steps with the state on the GPU."""

    def __init__(self, engine: _TensorRTPlan) -> None:
        if not engine.card.is_online:
            raise BackendError(f"{engine.plan} is a window (clip) model: use run_clip")
        self._adopt(engine)
        self._owner = f"{self.name}@{id(self):x}"
        crop = self.card.preprocessing.crop_size
        self._frame_shape = (-1, 3, crop, crop)
        self._host_states: dict[int, PingPongState] = {}  # step_host's device state per batch size

    def init_state(self, batch_size: int = 1) -> State:
        self._check_open()
        trt = self._trt
        trt.context_cuda.push()
        try:
            plan, device, _ = trt.io_for(batch_size)
            sets = []
            for _ in range(2):
                buffers = []
                for spec in plan.state:
                    buf = trt.cuda.mem_alloc(spec.nbytes)
                    trt.cuda.memset_d32_async(buf, 0, spec.nbytes // 4, trt.stream)  # float32 zero = all-zero bits
                    buffers.append(buf)
                sets.append(buffers)
            trt.stream.synchronize()
        finally:
            trt.context_cuda.pop()
        pair = BufferPair(sets[0], sets[1], self._owner)
        io = {n: int(b) for n, b in device.items()}
        addresses = [[int(b) for b in s] for s in pair.sets]
        pair.bindings = [tuple(plan.addresses(io, addresses, k).items()) for k in (0, 1)]  # computed once per pair
        return PingPongState(pair, 0, batch_size)

    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        self._check_open()
        trt = self._trt
        state, frame = begin_step(self._owner, state, frame, self._frame_shape)  # batch == the state's
        trt.context_cuda.push()
        try:
            logits = trt.run(trt.io[state.batch_size][0], state.pair.bindings[state.index], frame)
        finally:
            trt.context_cuda.pop()
        return logits, state.successor()

    def step_host(self, frame: np.ndarray, states: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Host state in and out: copied into one device state per batch size (kept for reuse), stepped, copied back."""
        self._check_open()
        trt = self._trt
        batch = int(frame.shape[0]) if isinstance(frame, np.ndarray) and frame.ndim == 4 else 1
        state = self._host_states.get(batch) or self.init_state(batch)
        trt.context_cuda.push()
        try:
            for buf, array in zip(state.pair.sets[state.index], states):
                trt.cuda.memcpy_htod(buf, np.ascontiguousarray(array, dtype=np.float32))
        finally:
            trt.context_cuda.pop()
        logits, new_state = self.step(frame, state)
        self._host_states[batch] = new_state
        return logits, self.state_arrays(new_state)

    def state_arrays(self, state: State) -> list[np.ndarray]:
        self._check_open()
        state.check_current(self._owner)
        trt = self._trt
        plan, _, _ = trt.io_for(state.batch_size)
        out = []
        trt.context_cuda.push()
        try:
            for spec, buf in zip(plan.state, state.pair.sets[state.index]):
                host = np.empty(spec.shape, dtype=spec.dtype)
                trt.cuda.memcpy_dtoh(host, buf)
                out.append(host)
        finally:
            trt.context_cuda.pop()
        return out


class TensorRTClip(_TensorRTMixin, ClipEngine):
    """A window model's engine."""

    def __init__(self, engine: _TensorRTPlan) -> None:
        if engine.card.is_online:
            raise BackendError(f"{engine.plan} is an online (per-frame) model: use init_state()/step()")
        self._adopt(engine)
        self.fixed_clip_len = engine.card.temporal.clip_len  # built from an export: T is fixed

    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        self._check_open()
        if clip.ndim != 5:
            raise BackendError(f"clip must be 5-D ({self.card.temporal.clip_layout}), got shape {clip.shape}")
        trt = self._trt
        trt.context_cuda.push()
        try:
            plan, device, _ = trt.io_for(clip.shape[0])
            clip = check_input("clip", clip, plan.host_in.shape)
            return trt.run(plan, tuple((n, int(b)) for n, b in device.items()), clip)
        finally:
            trt.context_cuda.pop()


def open_tensorrt(
    plan: str | Path, *, onnx: str | Path | None = None, precision: str | None = None, device: int = 0
) -> TensorRTOnline | TensorRTClip:
    """The TensorRT engine for a built ``.plan`` (its sidecar must match this machine and ``onnx``)."""
    engine = _TensorRTPlan(Path(plan), onnx, precision, device)
    return TensorRTOnline(engine) if engine.card.is_online else TensorRTClip(engine)
