"""TensorRT code paths that need no GPU: engine sidecars and staleness, the binding plan derived
from the card, and the engine I/O check (Triton repositories: tests/test_triton.py).
GPU tests at the end skip with a reason when tensorrt/pycuda/a GPU are absent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from streamtsm.backends.base import BackendError
from streamtsm.backends.tensorrt_backend import binding_plan, check_engine_tensors, tensorrt_unavailable_reason
from streamtsm.backends.tensorrt_engine import (
    EngineError,
    EngineSidecar,
    engine_is_stale,
    engine_path_for,
    file_sha256,
    read_sidecar,
    sidecar_path,
)

torch = pytest.importorskip("torch")

from streamtsm.export.onnx import card_with_state  # noqa: E402
from streamtsm.models import create_model  # noqa: E402


@pytest.fixture(scope="module")
def card():
    model = create_model("tsm_mobilenetv2", num_classes=9, width_mult=0.5)
    model.card = model.card.replace(preprocessing=dataclasses.replace(model.card.preprocessing, crop_size=112, resize_short=128))
    return card_with_state(model.eval())


# -- sidecar and staleness ------------------------------------------------------------------------


@pytest.fixture
def built(tmp_path, card):
    """A plan + sidecar as build_engine writes them (the plan bytes are opaque to the logic)."""
    onnx = tmp_path / "tsm.onnx"
    onnx.write_bytes(b"onnx graph bytes v1")
    plan = engine_path_for(onnx, "fp16")
    plan.write_bytes(b"serialized engine")
    side = EngineSidecar(file_sha256(onnx), "10.3.0", "Orin", "fp16", card.to_dict(), str(onnx))
    sidecar_path(plan).write_text(side.to_json())
    return onnx, plan


def test_engine_paths(tmp_path):
    plan = engine_path_for(tmp_path / "a" / "x.onnx", "fp32")
    assert plan == tmp_path / "a" / "x.fp32.plan"
    assert sidecar_path(plan).name == "x.fp32.plan.json"
    assert engine_path_for("x.onnx", "fp16", tmp_path).parent == tmp_path
    with pytest.raises(EngineError, match="precision"):
        engine_path_for("x.onnx", "int4")


def test_matching_engine_is_fresh(built, card):
    onnx, plan = built
    assert engine_is_stale(plan, onnx, trt_version="10.3.0", gpu="Orin", precision="fp16") is None
    assert read_sidecar(plan).model_card == card


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"trt_version": "10.4.0"}, "TensorRT 10.3.0"),
        ({"gpu": "NVIDIA GeForce RTX 4090"}, "built for GPU 'Orin'"),
        ({"precision": "fp32"}, "built in fp16, fp32 was asked for"),
    ],
)
def test_mismatch_makes_engine_stale(built, change, expected):
    onnx, plan = built
    now = {"trt_version": "10.3.0", "gpu": "Orin", "precision": "fp16", **change}
    reason = engine_is_stale(plan, onnx, **now)
    assert reason is not None and expected in reason


def test_changed_onnx_makes_engine_stale(built):
    onnx, plan = built
    onnx.write_bytes(b"onnx graph bytes v2 (re-exported)")
    reason = engine_is_stale(plan, onnx, trt_version="10.3.0", gpu="Orin", precision="fp16")
    assert reason is not None and "changed since the engine was built" in reason


def test_missing_or_broken_sidecar_makes_engine_stale(built):
    onnx, plan = built
    side = sidecar_path(plan)
    side.write_text("{not json")
    assert "unreadable engine sidecar" in engine_is_stale(plan, onnx, trt_version="10.3.0", gpu="Orin", precision="fp16")
    side.unlink()
    assert "no sidecar" in engine_is_stale(plan, onnx, trt_version="10.3.0", gpu="Orin", precision="fp16")
    plan.unlink()
    assert "does not exist" in engine_is_stale(plan, onnx, trt_version="10.3.0", gpu="Orin", precision="fp16")


# -- binding plan and engine I/O check ------------------------------------------------------------


def test_binding_plan_from_card(card):
    plan = binding_plan(card, batch_size=2)
    assert plan.host_in.tensor == "frame" and plan.host_in.shape == (2, 3, 112, 112)
    assert plan.host_out.tensor == "logits" and plan.host_out.shape == (2, 9)
    assert [s.tensor for s in plan.state] == [s.name for s in card.state]
    assert [s.swaps_with for s in plan.state] == [f"state_out.{i}" for i in range(len(card.state))]
    assert [s.shape for s in plan.state] == [(2, *s.shape[1:]) for s in card.state]
    assert plan.state_bytes == sum(2 * int(np.prod(s.shape[1:])) * 4 for s in card.state)
    # ping-pong: step k reads set k and writes the other set; the next step reverses it
    io = {"frame": 1000, "logits": 2000}
    sets = [[10 + i for i in range(len(plan.state))], [100 + i for i in range(len(plan.state))]]
    a, b = plan.addresses(io, sets, 0), plan.addresses(io, sets, 1)
    assert a["state_in.0"] == b["state_out.0"] == 10 and a["state_out.0"] == b["state_in.0"] == 100
    assert set(a) == {"frame", "logits", *(s.tensor for s in plan.state), *(s.swaps_with for s in plan.state)}


def test_window_card_has_no_state_buffers():
    model = create_model("tsm_mobilenetv2", num_classes=4, width_mult=0.5)
    model.card = model.card.replace(temporal=dataclasses.replace(model.card.temporal, mode="window", clip_len=8, clip_layout="NTCHW"))
    plan = binding_plan(card_with_state(model), 1)
    assert plan.host_in.tensor == "clip" and plan.host_in.shape == (1, 8, 3, 224, 224) and plan.state == ()


def _engine_tensors(card, batch=-1):
    tensors = {"frame": ("input", (batch, 3, 112, 112), "float32"), "logits": ("output", (batch, 9), "float32")}
    for s in card.state:
        tensors[s.name] = ("input", (batch, *s.shape[1:]), "float32")
        tensors[s.name.replace("in", "out")] = ("output", (batch, *s.shape[1:]), "float32")
    return tensors


def test_engine_io_check(card):
    assert check_engine_tensors(card, _engine_tensors(card), "x.plan") is True
    assert check_engine_tensors(card, _engine_tensors(card, 1), "x.plan") is False
    wrong = _engine_tensors(card, 1)
    wrong["state_out.1"] = ("output", (1, 5, 7, 7), "float32")
    with pytest.raises(BackendError, match=r"output 'state_out.1': expected shape"):
        check_engine_tensors(card, wrong, "x.plan")
    half = _engine_tensors(card, 1)
    half["state_in.0"] = ("input", half["state_in.0"][1], "float16")
    with pytest.raises(BackendError, match="expected dtype float32, found float16"):
        check_engine_tensors(card, half, "x.plan")


def test_build_engine_command_explains_missing_tensorrt(tmp_path, capsys):
    if tensorrt_unavailable_reason() is None:
        pytest.skip("TensorRT is available here: the refusal path does not apply")
    pytest.importorskip("onnxruntime")
    from streamtsm.card import Preprocessing
    from streamtsm.cli import main
    from streamtsm.export.onnx import export_onnx

    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.25)
    model.card = model.card.replace(preprocessing=Preprocessing(crop_size=32, resize_short=36))
    graph = export_onnx(model.eval(), tmp_path / "x.onnx", check_steps=1)  # a missing file is refused as missing
    assert main(["build-engine", str(graph)]) == 1
    assert "cannot build a TensorRT engine here" in capsys.readouterr().err


# -- GPU ------------------------------------------------------------------------------------------

_NO_TRT = tensorrt_unavailable_reason()


@pytest.mark.gpu
@pytest.mark.skipif(_NO_TRT is not None, reason=f"TensorRT GPU test: {_NO_TRT}")
def test_tensorrt_matches_onnxruntime(tmp_path):  # pragma: no cover - needs a GPU
    from streamtsm.backends.onnxruntime_backend import open_onnxruntime
    from streamtsm.backends.tensorrt_backend import open_tensorrt
    from streamtsm.export.onnx import export_onnx
    from streamtsm.backends.tensorrt_engine import build_engine

    model = create_model("tsm_mobilenetv2", num_classes=9, width_mult=0.5).eval()
    onnx_path = export_onnx(model, tmp_path / "m.onnx")
    plan = build_engine(onnx_path, tmp_path / "m.fp32.plan", fp16=False)
    trt_b, ort_b = open_tensorrt(plan, onnx=onnx_path), open_onnxruntime(onnx_path, ["CPUExecutionProvider"])
    s_t, s_o = trt_b.init_state(), ort_b.init_state()
    rng = np.random.default_rng(0)
    for _ in range(8):
        x = rng.standard_normal((1, 3, 224, 224), dtype=np.float32)
        l_t, s_t = trt_b.step(x, s_t)
        l_o, s_o = ort_b.step(x, s_o)
        assert np.abs(l_t - l_o).max() < 1e-3
    trt_b.close()
