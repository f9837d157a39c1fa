"""A stand-in for the ``tensorrt`` module, for testing what ``build_engine`` asks of TensorRT 10.

It is not a model and builds nothing: the "plan" it serializes is a fixed byte string. It
records what our code asked for (flags, workspace, optimisation profiles, timing cache, the
bytes parsed) so a test can check that logic on a machine without a GPU. Its parser reads the
real graph's inputs (names, dynamic dimensions as -1) from the bytes it is given, with ``onnx``,
so a profile is checked against the graph the build would really see. Only the calls
``streamtsm.backends.tensorrt_engine`` makes exist here (TensorRT 10 names).
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any

PLAN_BYTES = b"fake serialized engine"


class Logger:
    WARNING = "warning"

    def __init__(self, severity: str) -> None:
        self.severity = severity


class MemoryPoolType:
    WORKSPACE = "workspace"


class BuilderFlag:
    FP16 = "fp16"
    INT8 = "int8"


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]


@dataclass
class Network:
    inputs: list[Tensor] = field(default_factory=list)

    @property
    def num_inputs(self) -> int:
        return len(self.inputs)

    def get_input(self, i: int) -> Tensor:
        return self.inputs[i]


class OnnxParser:
    def __init__(self, network: Network, logger: Logger) -> None:
        self.network, self.errors = network, []
        self.module = _current

    def parse(self, data: bytes) -> bool:
        import onnx

        self.module.parsed.append(data)
        try:
            graph = onnx.load_model_from_string(data).graph
        except Exception as exc:  # noqa: BLE001 - reported like TensorRT's parser: False + errors
            self.errors.append(f"cannot read the model: {type(exc).__name__}")
            return False
        for value in graph.input:
            dims = value.type.tensor_type.shape.dim
            self.network.inputs.append(Tensor(value.name, tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)))
        return True

    @property
    def num_errors(self) -> int:
        return len(self.errors)

    def get_error(self, i: int) -> str:
        return self.errors[i]


@dataclass
class Profile:
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    def set_shape(self, name: str, min: tuple[int, ...], opt: tuple[int, ...], max: tuple[int, ...]) -> None:
        self.shapes[name] = (tuple(min), tuple(opt), tuple(max))


@dataclass
class TimingCache:
    data: bytes

    def serialize(self) -> bytes:
        return self.data + b"+tuned"


@dataclass
class BuilderConfig:
    flags: set[str] = field(default_factory=set)
    pool_limits: dict[str, int] = field(default_factory=dict)
    profiles: list[Profile] = field(default_factory=list)
    timing_cache: TimingCache | None = None

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        self.pool_limits[pool] = size

    def set_flag(self, flag: str) -> None:
        self.flags.add(flag)

    def create_timing_cache(self, data: bytes) -> TimingCache:
        return TimingCache(bytes(data))

    def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
        self.timing_cache = cache
        return True

    def get_timing_cache(self) -> TimingCache:
        assert self.timing_cache is not None
        return self.timing_cache

    def add_optimization_profile(self, profile: Profile) -> int:
        self.profiles.append(profile)
        return len(self.profiles) - 1


class Builder:
    def __init__(self, logger: Logger) -> None:
        self.module = _current
        self.module.builders.append(self)
        self.platform_has_fast_fp16 = self.module.fast_fp16
        self.config: BuilderConfig | None = None
        self.built: list[tuple[Network, BuilderConfig]] = []

    def create_network(self, flags: int) -> Network:
        assert flags == 0, "TensorRT 10 networks are explicit-batch: create_network(0)"
        return Network()

    def create_builder_config(self) -> BuilderConfig:
        self.config = BuilderConfig()
        return self.config

    def create_optimization_profile(self) -> Profile:
        return Profile()

    def build_serialized_network(self, network: Network, config: BuilderConfig) -> bytes | None:
        self.built.append((network, config))
        return None if self.module.fail_build else PLAN_BYTES


_current: Any = None


def fake_tensorrt(*, version: str = "10.3.0", fast_fp16: bool = True, fail_build: bool = False) -> types.ModuleType:
    """A fresh module object to put in ``sys.modules['tensorrt']``; ``.builders`` and ``.parsed`` record the builds."""
    global _current
    module = types.ModuleType("tensorrt")
    module.__version__ = version
    module.Logger, module.MemoryPoolType, module.BuilderFlag = Logger, MemoryPoolType, BuilderFlag
    module.Builder, module.OnnxParser = Builder, OnnxParser
    module.builders, module.parsed = [], []
    module.fast_fp16, module.fail_build = fast_fp16, fail_build
    _current = module
    return module
