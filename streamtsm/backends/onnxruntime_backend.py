"""The ONNX Runtime engine: runs a graph written by ``streamtsm export`` (no torch needed).

The graph's card and I/O are checked against :mod:`streamtsm.contract` before it runs.

State stays where ONNX Runtime computes it. Each stream gets two preallocated sets of state
OrtValues on the engine's device; a step reads one set and writes the other through an
IOBinding that is built once per direction, so no state crosses to numpy between steps
(ping-pong). Consequence, checked at run time: a state handle is valid until its successor
is stepped (then its buffers receive the newer state); using it after that raises instead of
computing with overwritten values.

torch-free: imports numpy and (inside the backend) onnxruntime only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..contract import ContractError, check_graph_io, graph_signature, read_card_from_onnx_metadata
from .base import Backend, BackendError, State, check_input

log = logging.getLogger(__name__)

#: Execution providers in order of preference (the first available one runs the graph).
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}


# -- ping-pong state -----------------------------------------------------------------------------


class PingPongState:
    """Handle to one stream batch's state: which of its two buffer sets holds this state.

    ``pair.sets[index]`` holds the values; ``pair.holder[index] is self`` while they are
    still this state's (a later step writes the newer state into the same set).
    """

    __slots__ = ("pair", "index", "batch_size")

    def __init__(self, pair: "BufferPair", index: int, batch_size: int) -> None:
        self.pair = pair
        self.index = index
        self.batch_size = batch_size
        pair.holder[index] = self

    def check_current(self, backend_name: str) -> None:
        if self.pair.owner != backend_name:
            raise BackendError(f"this state was made by {self.pair.owner}, not {backend_name}; use init_state() of this backend")
        if self.pair.holder[self.index] is not self:
            raise BackendError(
                "stale state: its buffers were reused for a newer state (a state is valid until the state computed "
                "from it is stepped again). Carry the state returned by the latest step(), or start a new stream "
                "with init_state()."
            )


class BufferPair:
    """Two sets of device buffers of one stream batch, plus per-direction cached engine bindings."""

    __slots__ = ("sets", "holder", "bindings", "owner")

    def __init__(self, set_a: list[Any], set_b: list[Any], owner: str) -> None:
        self.sets = (set_a, set_b)
        self.holder: list[PingPongState | None] = [None, None]
        self.bindings: list[Any] = [None, None]  # bindings[k] reads sets[k], writes sets[1 - k]
        self.owner = owner


# -- the backend ---------------------------------------------------------------------------------


def _import_ort():
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


class OnnxRuntimeBackend(Backend):
    """Runs an exported ``.onnx`` file with ONNX Runtime (CPU, CUDA or TensorRT execution provider)."""

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None, *, threads: int | None = None) -> None:
        ort = _import_ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"ONNX file {self.path} does not exist; export one with `streamtsm export`")
        wanted = list(providers) if providers else available_providers()
        have = set(ort.get_available_providers())
        unknown = [p for p in wanted if p not in have]
        if unknown:
            raise BackendError(f"ONNX Runtime execution providers {unknown} are not available here (available: {sorted(have)})")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options, providers=wanted)
        except Exception as exc:  # invalid protobuf, unsupported op, …
            raise BackendError(f"{self.path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0][:300]}") from None
        what = str(self.path)
        found_in = {i.name: (_dims(i.shape), _ORT_DTYPES.get(i.type, i.type)) for i in self.session.get_inputs()}
        found_out = {o.name: (_dims(o.shape), _ORT_DTYPES.get(o.type, o.type)) for o in self.session.get_outputs()}
        try:
            self.card = read_card_from_onnx_metadata(self.session.get_modelmeta().custom_metadata_map, what)
            main_dims = found_in.get(self.card.input_name, ((1,), ""))[0]
            batch = main_dims[0] if main_dims else 1
            self.signature = graph_signature(self.card, max(batch, 1))
            self.dynamic_batch = check_graph_io(self.signature, found_in, found_out, what)
        except ContractError as exc:
            raise BackendError(str(exc)) from None
        self.fixed_batch = None if self.dynamic_batch else self.signature.inputs[0].shape[0]
        self.provider = self.session.get_providers()[0]
        self.device = "cuda" if self.provider in _GPU_PROVIDERS else "cpu"
        self.name = "onnxruntime-" + self.provider.replace("ExecutionProvider", "").lower()
        main = self.signature.inputs[0]
        self._main_shape = (-1, *main.shape[1:]) if self.dynamic_batch else main.shape

    # -- online -------------------------------------------------------------------------------
    def init_state(self, batch_size: int = 1) -> State:
        if not self.card.is_online:
            return super().init_state(batch_size)
        self._check_batch(batch_size)
        ort = _import_ort()
        sets = []
        for _ in range(2):
            sets.append(
                [
                    ort.OrtValue.ortvalue_from_numpy(np.zeros((batch_size, *s.shape[1:]), dtype=s.dtype), self.device, 0)
                    for s in self.signature.inputs[1:]
                ]
            )
        return PingPongState(BufferPair(sets[0], sets[1], self._owner_tag), 0, batch_size)

    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        if not self.card.is_online:
            return super().step(frame, state)
        if not isinstance(state, PingPongState):
            raise BackendError(f"state must come from this backend's init_state()/step(), got {type(state).__name__}")
        state.check_current(self._owner_tag)
        frame = check_input("frame", frame, self._main_shape)
        if frame.shape[0] != state.batch_size:
            raise BackendError(f"frame batch {frame.shape[0]} does not match the state's batch {state.batch_size}")
        pair, k = state.pair, state.index
        binding = pair.bindings[k]
        if binding is None:
            binding = pair.bindings[k] = self._make_binding(pair.sets[k], pair.sets[1 - k])
        binding.bind_cpu_input("frame", frame)
        try:
            self.session.run_with_iobinding(binding)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed on {self.path}: {str(exc).splitlines()[0][:300]}") from None
        logits = np.array(binding.get_outputs()[0].numpy(), dtype=np.float32, copy=True)
        return logits, PingPongState(pair, 1 - k, state.batch_size)

    def _make_binding(self, inputs: list[Any], outputs: list[Any]) -> Any:
        binding = self.session.io_binding()
        binding.bind_output("logits", "cpu")  # first: get_outputs()[0] is the logits
        for (in_name, out_name), src, dst in zip(self.signature.state_pairs, inputs, outputs):
            binding.bind_ortvalue_input(in_name, src)
            binding.bind_ortvalue_output(out_name, dst)
        return binding

    def state_arrays(self, state: State) -> list[np.ndarray]:
        if not isinstance(state, PingPongState):
            raise BackendError(f"state must come from this backend, got {type(state).__name__}")
        state.check_current(self._owner_tag)
        return [np.array(v.numpy(), copy=True) for v in state.pair.sets[state.index]]

    # -- window -------------------------------------------------------------------------------
    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        if self.card.is_online:
            raise BackendError(f"{self.path} is an online (per-frame) model: use init_state()/step(), not run_clip")
        clip = check_input("clip", clip, self._main_shape)
        try:
            (logits,) = self.session.run(["logits"], {"clip": clip})
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed on {self.path}: {str(exc).splitlines()[0][:300]}") from None
        return logits

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]

    # -- helpers ------------------------------------------------------------------------------
    @property
    def _owner_tag(self) -> str:
        return f"{self.name}@{id(self):x}"

    def _check_batch(self, batch_size: int) -> None:
        if batch_size < 1:
            raise BackendError(f"batch_size must be >= 1, got {batch_size}")
        if self.fixed_batch is not None and batch_size != self.fixed_batch:
            raise BackendError(
                f"{self.path} was exported for batch {self.fixed_batch}; for {batch_size} streams export with "
                f"`--batch {batch_size}` or `--dynamic-batch`"
            )


def _dims(shape: Sequence[Any]) -> tuple[int, ...]:
    """ONNX Runtime shape (ints, or str/None for symbolic dims) -> ints with -1 for dynamic."""
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in shape)
