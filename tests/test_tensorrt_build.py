"""``build_engine`` / ``ensure_engine`` against a stand-in ``tensorrt`` module (tests/fake_tensorrt.py).

What is tested is our side of the TensorRT 10 calls on the embedded default's real ONNX export:
the flags and workspace asked for, one optimisation profile covering every dynamic input, the
ONNX file read once, the plan, sidecar and timing cache replaced atomically, failures that
leave an existing engine alone, and the cache rule of ``ensure_engine``. That the engine runs
is only checked on a GPU (tests/test_tensorrt_logic.py, skipped here).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

import pytest

from fake_tensorrt import PLAN_BYTES, fake_tensorrt
from streamtsm.backends import tensorrt_engine
from streamtsm.backends.tensorrt_engine import (
    EngineError,
    build_engine,
    engine_path_for,
    ensure_engine,
    read_onnx_graph,
    sidecar_path,
)
from streamtsm.resolve import DEFAULT_ONNX

pytest.importorskip("onnx")  # the stand-in parser reads the graph's inputs with it
pytestmark = pytest.mark.runtime


@pytest.fixture
def trt(monkeypatch):
    module = fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setattr(tensorrt_engine, "current_gpu_name", lambda: "Fake GPU")
    return module


@pytest.fixture
def onnx_copy(tmp_path):
    path = tmp_path / "default.onnx"
    path.write_bytes(DEFAULT_ONNX.read_bytes())
    return path


@pytest.fixture
def reads(monkeypatch):
    """Count how often the ONNX file is opened (read_bytes, and the hashing that opens it)."""
    counted: list[str] = []
    real_read_bytes = Path.read_bytes

    def read_bytes(self):
        if self.suffix == ".onnx":
            counted.append(str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(tensorrt_engine, "file_sha256", lambda path: counted.append(f"hash {path}") or "x")
    return counted


def test_fp32_build_asks_for_a_profile_per_dynamic_input(trt, onnx_copy, reads, tmp_path):
    plan = build_engine(onnx_copy, tmp_path / "engines" / "d.fp32.plan", workspace_gb=0.5, max_batch=6)
    assert reads == [str(onnx_copy)]  # read once: card, precision, parse and hash
    assert trt.parsed == [onnx_copy.read_bytes()]
    (builder,) = trt.builders
    (network, config), = builder.built
    assert config.flags == set() and config.pool_limits == {"workspace": 1 << 29}
    (profile,) = config.profiles
    inputs = {t.name: t.shape for t in network.inputs}
    assert len(inputs) == 1 + len(read_onnx_graph(onnx_copy).card.state)  # the frame and every shift state
    assert set(profile.shapes) == set(inputs)
    for name, (low, opt, high) in profile.shapes.items():
        rest = inputs[name][1:]
        assert inputs[name][0] == -1 and low == opt == (1, *rest) and high == (6, *rest)
    assert plan.read_bytes() == PLAN_BYTES
    side = json.loads(sidecar_path(plan).read_text())
    assert side["onnx_sha256"] == hashlib.sha256(onnx_copy.read_bytes()).hexdigest()
    assert (side["precision"], side["gpu"], side["tensorrt_version"], side["max_batch"]) == ("fp32", "Fake GPU", "10.3.0", 6)
    assert sorted(p.name for p in plan.parent.iterdir()) == ["d.fp32.plan", "d.fp32.plan.json"]  # no temporary left


def test_fp16_build_sets_the_flag_and_warns_without_fast_fp16(monkeypatch, onnx_copy, tmp_path, caplog):
    trt = fake_tensorrt(fast_fp16=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tensorrt_engine, "current_gpu_name", lambda: "Fake GPU")
    with caplog.at_level(logging.WARNING, logger="streamtsm.backends.tensorrt_engine"):
        plan = build_engine(onnx_copy, tmp_path / "d.fp16.plan", fp16=True)
    assert trt.builders[0].config.flags == {"fp16"}
    assert json.loads(sidecar_path(plan).read_text())["precision"] == "fp16"
    assert "no fast fp16" in caplog.text


def test_timing_cache_is_read_and_written_back(trt, onnx_copy, tmp_path):
    cache = tmp_path / ".timing.cache"
    cache.write_bytes(b"earlier")
    build_engine(onnx_copy, tmp_path / "d.fp32.plan", timing_cache=cache)
    assert trt.builders[0].config.timing_cache.data == b"earlier"
    assert cache.read_bytes() == b"earlier+tuned"


def test_a_failed_build_keeps_the_engine_there_was(monkeypatch, onnx_copy, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(fail_build=True))
    monkeypatch.setattr(tensorrt_engine, "current_gpu_name", lambda: "Fake GPU")
    plan = tmp_path / "d.fp32.plan"
    plan.write_bytes(b"the working engine")
    sidecar_path(plan).write_text("{}")
    with pytest.raises(EngineError, match="failed to build an engine"):
        build_engine(onnx_copy, plan)
    assert plan.read_bytes() == b"the working engine" and sidecar_path(plan).read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.fp32.plan", "d.fp32.plan.json", "default.onnx"]


def test_a_file_that_is_not_onnx_is_refused_before_the_builder(trt, tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_bytes(b"\x08\x07 not a protobuf \xff")
    with pytest.raises(EngineError, match="not a readable ONNX file"):
        build_engine(bad, tmp_path / "x.plan")
    with pytest.raises(EngineError, match="does not exist"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "x.plan")
    assert trt.builders == [] and not (tmp_path / "x.plan").exists()


def test_ensure_engine_builds_once_then_reuses_until_the_onnx_changes(trt, onnx_copy, reads):
    plan = ensure_engine(onnx_copy, precision="fp16")
    assert plan == engine_path_for(onnx_copy, "fp16") and len(trt.builders) == 1
    assert reads == [str(onnx_copy)]  # precision, staleness and build from one read
    assert (plan.parent / ".timing.cache").read_bytes() == b"+tuned"
    assert ensure_engine(onnx_copy, precision="fp16") == plan and len(trt.builders) == 1  # fresh: reused
    ensure_engine(onnx_copy, precision="fp32")
    assert len(trt.builders) == 2  # another precision is another engine
    import onnx

    model = onnx.load(str(onnx_copy))
    model.metadata_props.add(key="note", value="exported again")  # the file changed, the model did not
    onnx.save(model, str(onnx_copy))
    ensure_engine(onnx_copy, precision="fp16")
    assert len(trt.builders) == 3


def test_without_onnx_installed_the_card_comes_from_onnxruntime(monkeypatch, onnx_copy, tmp_path):
    """A Jetson often has onnxruntime but not onnx: the graph is still read once, its Q/DQ unknown."""
    with_onnx = read_onnx_graph(onnx_copy)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails
    graph = read_onnx_graph(onnx_copy)
    assert graph.card == with_onnx.card and graph.sha256 == with_onnx.sha256 and graph.zero_points is None
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(EngineError, match="not a readable ONNX file"):
        read_onnx_graph(bad)
