"""INT8 export of online graphs: the embedded default quantized with streamed calibration, run by
the real runtime (ONNX Runtime backend, Recognizer), its card, the refusal paths, and the
TensorRT side that needs no GPU (precision resolution, Q/DQ symmetry check, sidecar staleness)."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from streamtsm.backends.onnxruntime_backend import open_onnxruntime  # noqa: E402
from streamtsm.backends.tensorrt_engine import (  # noqa: E402
    EngineError,
    EngineSidecar,
    engine_is_stale,
    engine_path_for,
    engine_precision,
    file_sha256,
    onnx_precision,
    sidecar_path,
)
from streamtsm.card import ModelCard  # noqa: E402
from streamtsm.checkpoints import load_model  # noqa: E402
from streamtsm.export.int8 import (  # noqa: E402
    CalibrationSource,
    Int8Config,
    Int8Error,
    count_qdq,
    quantize_online,
    synthetic_calibration_seeds,
)
from streamtsm.export.onnx import export_onnx  # noqa: E402
from streamtsm.models import create_model  # noqa: E402
from streamtsm.preprocess import FramePreprocessor  # noqa: E402
from streamtsm.synthetic import GestureScript  # noqa: E402

CALIB_FRAMES = 100


@pytest.fixture(scope="module")
def default_pair(tmp_path_factory):
    """The embedded default exported fp32, and quantized (streamed synthetic calibration)."""
    tmp = tmp_path_factory.mktemp("int8")
    fp32 = export_onnx(load_model(None), tmp / "default.onnx", check_steps=1)
    int8, check = quantize_online(fp32, tmp / "default.int8.onnx", CalibrationSource.parse("synthetic"),
                                  Int8Config(calib_frames=CALIB_FRAMES, check_frames=100))
    return fp32, int8, check


def test_int8_agrees_with_fp32_over_a_held_out_stream(default_pair):
    """300 frames of a *test*-split script (never calibrated on), state carried by each engine."""
    fp32_path, int8_path, _ = default_pair
    fp32, int8 = open_onnxruntime(fp32_path, threads=1), open_onnxruntime(int8_path, threads=1)
    pre = FramePreprocessor(fp32.card.preprocessing)
    script = GestureScript(31, duration_s=30.0, fps=fp32.card.temporal.fps, split="test")
    sa, sb = fp32.init_state(1), int8.init_state(1)
    agree = []
    for i in range(300):
        x = pre(script.frame_at(i))[None]
        la, sa = fp32.step(x, sa)
        lb, sb = int8.step(x, sb)
        agree.append(int(la.argmax()) == int(lb.argmax()))
    assert np.mean(agree) >= 0.9, f"top-1 agreement {np.mean(agree):.3f} over 300 streamed frames"


def test_int8_graph_is_quantized_and_keeps_the_state_io(default_pair):
    fp32_path, int8_path, _ = default_pair
    a, b = onnx.load(str(fp32_path)), onnx.load(str(int8_path))
    assert count_qdq(a) == 0 and count_qdq(b) > 50

    def io(model):
        def spec(v):
            return v.name, v.type.tensor_type.elem_type, [d.dim_value for d in v.type.tensor_type.shape.dim]
        return [spec(v) for v in model.graph.input], [spec(v) for v in model.graph.output]

    assert io(b) == io(a)
    names = [v.name for v in b.graph.input]
    assert names[0] == "frame" and names[1:] == [f"state_in.{i}" for i in range(len(names) - 1)]


def test_int8_card_round_trips_precision_and_calibration(default_pair):
    fp32_path, int8_path, check = default_pair
    fp32_card, card = open_onnxruntime(fp32_path).card, open_onnxruntime(int8_path).card
    assert fp32_card.precision == "fp32" and card.precision == "int8"
    assert ModelCard.from_json(card.to_json()) == card
    cal = card.calibration
    assert cal["source"] == "synthetic" and cal["split"] == "train" and cal["frames"] == CALIB_FRAMES
    assert cal["seeds"] == synthetic_calibration_seeds(cal["streams"])  # the default recipe's training seeds
    assert cal["per_channel"] is True and cal["activation_type"].startswith("uint8") and cal["target"] == "cpu"
    assert cal["excluded"]["classifier"] == ["/classifier/Gemm"]
    assert cal["check"]["top1_agreement"] == pytest.approx(check.top1_agreement) and cal["check"]["held_out"]
    assert card.replace(precision="fp32", calibration={}) == fp32_card  # nothing else changed


def test_recognizer_auto_runs_the_int8_graph(default_pair):
    import streamtsm

    _, int8_path, _ = default_pair
    rec = streamtsm.Recognizer(str(int8_path))
    assert rec.engine.name.startswith("onnxruntime") and rec.engine.card.precision == "int8"
    script = GestureScript(32, duration_s=3.0, fps=30.0, split="test")
    preds = [rec.push(script.frame_at(i), timestamp=i / 30.0) for i in range(script.num_frames)]
    kept = [p for p in preds if p is not None]
    assert len(kept) >= 25 and all(p.label in rec.engine.card.class_names for p in kept)
    rec.close()


# -- refusals ---------------------------------------------------------------------------------------


def _write_video(path, frames, fps):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()


def test_calibrating_on_unrepresentative_frames_is_refused_and_writes_nothing(default_pair, tmp_path):
    """Calibrated on black frames, the int8 graph clips every real activation: the check must refuse it."""
    fp32_path, _, _ = default_pair
    script = GestureScript(33, duration_s=8.0, fps=10.0, split="test")
    frames = [np.zeros((120, 160, 3), np.uint8)] * 30 + [cv2.resize(script.frame_at(i), (160, 120)) for i in range(60)]
    video = tmp_path / "clip.mp4"
    _write_video(video, frames, 10.0)
    out = tmp_path / "bad.int8.onnx"
    with pytest.raises(Int8Error, match="NOT written") as info:
        quantize_online(fp32_path, out, CalibrationSource.parse(video), Int8Config(calib_frames=30, check_frames=60))
    assert "held-out frames" in str(info.value)
    assert not out.exists() and not list(tmp_path.glob("*.part"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--int8", "--calibrate", "synthetic", "--calib-frames", "0"], "--calib-frames must be a positive"),
        (["--int8", "--calibrate", "{tmp}/missing"], "no such file or folder"),
        (["--int8", "--calibrate", "{tmp}"], "holds no video files"),
        (["--int8", "--calibrate", "{tmp}/notes.txt"], "not a video file"),
        (["--int8"], "--int8 needs --calibrate"),
        (["--calibrate", "synthetic"], "--calibrate only applies with --int8"),
        (["--int8", "--calibrate", "synthetic", "--min-agreement", "1.5"], "--min-agreement must be a fraction"),
        (["--int8", "--calibrate", "synthetic", "--int8-target", "gpu"], "--int8-target must be one of cpu, tensorrt"),
        (["--int8", "--calibrate", "synthetic", "--keep-fp32", "stem"], "--keep-fp32 groups ['stem'] are unknown"),
    ],
)
def test_export_refuses_bad_int8_arguments_before_work_starts(tmp_path, capsys, monkeypatch, argv, message):
    import streamtsm.resolve
    from streamtsm.cli import main

    def no_work(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(streamtsm.resolve, "load_torch_model", no_work)
    (tmp_path / "notes.txt").write_text("not a video")
    out = tmp_path / "m.int8.onnx"
    args = ["export", "default", "-o", str(out)] + [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1  # one line, no traceback
    assert not out.exists()


def test_export_help_states_the_int8_defaults():
    from streamtsm.cli import build_parser
    from streamtsm.export.int8 import FP32_GROUPS, TARGETS

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["export"]
    helps = {a.dest: a.help for a in sub._actions}
    config = Int8Config()
    assert f"(default {config.calib_frames})" in helps["calib_frames"]
    assert f"(default {config.check_frames})" in helps["check_frames"]
    assert f"(default {config.min_agreement:g};" in helps["min_agreement"]
    assert f"(default {config.target})" in helps["int8_target"] and all(t in helps["int8_target"] for t in TARGETS)
    assert f"(default: {' '.join(config.keep_fp32)};" in helps["keep_fp32"] and ", ".join(FP32_GROUPS) in helps["keep_fp32"]


def test_calibration_sources_name_their_files_relative_to_the_folder(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/one.mp4", "two.avi", "readme.txt"):
        (tmp_path / name).write_bytes(b"x")
    src = CalibrationSource.parse(tmp_path)
    assert src.kind == "folder" and [src._name_of(f) for f in src.files] == ["a/one.mp4", "two.avi"]
    assert CalibrationSource.parse("synthetic").kind == "synthetic"


# -- TensorRT logic (no GPU needed) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "requested, quantized, expected",
    [("fp32", False, "fp32"), ("fp16", False, "fp16"), ("fp32", True, "int8"), ("fp16", True, "int8_fp16"),
     ("int8", True, "int8"), ("int8_fp16", True, "int8_fp16")],
)
def test_engine_precision_of_a_graph(requested, quantized, expected):
    assert engine_precision(requested, quantized) == expected
    assert engine_path_for("m.onnx", expected).name == f"m.{expected}.plan"


def test_int8_precision_needs_a_qdq_graph():
    with pytest.raises(EngineError, match="Q/DQ graphs only"):
        engine_precision("int8", False)


@pytest.fixture(scope="module")
def tensorrt_int8(default_pair, tmp_path_factory):
    """The default quantized for TensorRT (symmetric int8 Q/DQ), and its agreement check."""
    return quantize_online(default_pair[0], tmp_path_factory.mktemp("trt") / "trt.int8.onnx",
                           CalibrationSource.parse("synthetic"), Int8Config(target="tensorrt", calib_frames=30, check_frames=30))


def test_tensorrt_refuses_a_cpu_int8_graph_and_takes_a_symmetric_one(default_pair, tensorrt_int8, caplog):
    fp32_path, cpu_int8, _ = default_pair
    assert onnx_precision(fp32_path, "fp16") == "fp16"
    with pytest.raises(EngineError, match="--int8-target tensorrt"):
        onnx_precision(cpu_int8, "fp16")  # uint8 activations: TensorRT reads symmetric int8 only
    trt_int8, check = tensorrt_int8
    assert onnx_precision(trt_int8, "fp16") == "int8_fp16" and onnx_precision(trt_int8, "fp32") == "int8"
    with caplog.at_level(logging.WARNING, logger="streamtsm.backends.onnxruntime_backend"):
        card = open_onnxruntime(trt_int8).card
    assert "quantized for TensorRT" in caplog.text and "--int8-target cpu" in caplog.text  # it used to run silently
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streamtsm.backends.onnxruntime_backend"):
        open_onnxruntime(cpu_int8)
    assert caplog.text == ""
    assert card.calibration["activation_type"] == "int8 symmetric" and "float ops" in check.kernels


def test_int8_engine_build_asks_for_explicit_quantization(default_pair, tensorrt_int8, tmp_path, monkeypatch):
    """build_engine against the stand-in tensorrt module (tests/fake_tensorrt.py): the flags it asks for."""
    from fake_tensorrt import fake_tensorrt

    from streamtsm.backends import tensorrt_engine

    trt = fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(tensorrt_engine, "current_gpu_name", lambda: "Fake GPU")
    plan = tensorrt_engine.build_engine(tensorrt_int8[0], tmp_path / "d.int8_fp16.plan", fp16=True)
    assert trt.builders[0].config.flags == {"int8", "fp16"}  # Q/DQ scales from the graph, leftover layers fp16
    assert json.loads(sidecar_path(plan).read_text())["precision"] == "int8_fp16"
    with pytest.raises(EngineError, match="--int8-target tensorrt"):  # a CPU int8 graph: refused before building
        tensorrt_engine.build_engine(default_pair[1], tmp_path / "cpu.int8.plan")
    assert len(trt.builders) == 1 and not (tmp_path / "cpu.int8.plan").exists()


def test_int8_engine_sidecar_staleness(default_pair, tmp_path):
    _, int8_path, _ = default_pair
    card = open_onnxruntime(int8_path).card
    plan = engine_path_for(int8_path, "int8_fp16", tmp_path)
    plan.write_bytes(b"serialized engine")
    side = EngineSidecar(file_sha256(int8_path), "10.3.0", "Orin", "int8_fp16", card.to_dict(), str(int8_path))
    sidecar_path(plan).write_text(side.to_json())
    now = dict(trt_version="10.3.0", gpu="Orin")
    assert engine_is_stale(plan, int8_path, precision="fp16", **now) is None  # fp16 asked -> int8 + fp16 layers
    assert engine_is_stale(plan, int8_path, precision="int8_fp16", **now) is None
    assert "built in int8_fp16, int8 was asked for" in engine_is_stale(plan, int8_path, precision="fp32", **now)
    fp32_side = dataclasses.replace(side, card=card.replace(precision="fp32", calibration={}).to_dict(), precision="fp16")
    sidecar_path(plan).write_text(fp32_side.to_json())
    assert "Q/DQ graphs only" in engine_is_stale(plan, int8_path, precision="int8", **now)
    assert json.loads(sidecar_path(plan).read_text())["precision"] == "fp16"


def test_window_models_are_refused(tmp_path):
    model = create_model("r2plus1d_18", num_classes=3, width=8)
    model.card = model.card.replace(
        temporal=dataclasses.replace(model.card.temporal, clip_len=4),
        preprocessing=dataclasses.replace(model.card.preprocessing, crop_size=32, resize_short=None, resize_hw=(36, 36)))
    fp32 = export_onnx(model.eval(), tmp_path / "clip.onnx", check_steps=1)
    with pytest.raises(Int8Error, match="window"):
        quantize_online(fp32, tmp_path / "clip.int8.onnx", CalibrationSource.parse("synthetic"))
