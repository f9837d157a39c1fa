"""``build-engine`` and ``export`` check what they are given before anything else (real subprocesses).

``build-engine`` said only "the tensorrt package is not installed" for a missing file, a
checkpoint and an int8 graph quantized for ONNX Runtime, none of which any TensorRT could
build; ``export --calib-frames 100`` without ``--int8`` was silently ignored while
``--calibrate`` alone was refused. The build-engine checks are torch-free and TensorRT-free:
the child runs with ``torch`` (and ``tensorrt``) unimportable.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from test_cli_manners import one_line_error, run_without

from streamtsm.backends.tensorrt_backend import tensorrt_unavailable_reason

NO_TRT = tensorrt_unavailable_reason()


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    """A real fp32 export (tiny online TSM) and its int8 graphs for ONNX Runtime (cpu) and TensorRT."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxruntime.quantization")
    from streamtsm.card import Preprocessing
    from streamtsm.export.int8 import CalibrationSource, Int8Config, quantize_online
    from streamtsm.export.onnx import export_onnx
    from streamtsm.models import create_model

    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.25)
    model.card = model.card.replace(preprocessing=Preprocessing(crop_size=32, resize_short=36))
    tmp = tmp_path_factory.mktemp("graphs")
    fp32 = export_onnx(model, tmp / "m.onnx", check_steps=1)
    found = {"fp32": fp32}
    for target in ("cpu", "tensorrt"):
        config = Int8Config(target=target, calib_frames=16, check_frames=16, min_agreement=0.0)
        found[target], _ = quantize_online(fp32, tmp / f"{target}.int8.onnx", CalibrationSource.parse("synthetic"), config)
    return found


def test_build_engine_missing_file(tmp_path):
    line = one_line_error(run_without("torch,tensorrt", "build-engine", str(tmp_path / "nonexist.onnx")))
    assert "nonexist.onnx does not exist" in line and "not installed" not in line


def test_build_engine_missing_checkpoint(tmp_path):
    line = one_line_error(run_without("torch,tensorrt", "build-engine", str(tmp_path / "m1.safetensors")))
    assert "m1.safetensors does not exist" in line and "takes an .onnx graph" in line


def test_build_engine_checkpoint_is_not_a_graph(tmp_path):
    ckpt = tmp_path / "m1.safetensors"
    ckpt.write_bytes(b"\0" * 64)
    line = one_line_error(run_without("torch,tensorrt", "build-engine", str(ckpt)))
    assert "is not an .onnx graph" in line and f"streamtsm export {ckpt} -o engines/m1.onnx" in line


def test_build_engine_folder_and_unreadable_file(tmp_path):
    assert "is a directory" in one_line_error(run_without("torch,tensorrt", "build-engine", str(tmp_path)))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf" * 8)
    assert "is not a readable ONNX file" in one_line_error(run_without("torch,tensorrt", "build-engine", str(junk)))


def test_build_engine_refuses_a_cpu_int8_graph_for_what_it_is(graphs):
    line = one_line_error(run_without("torch,tensorrt", "build-engine", str(graphs["cpu"])))
    assert "is an int8 graph TensorRT cannot build" in line and "--int8-target tensorrt" in line
    assert "not installed" not in line


def test_build_engine_checks_its_numbers_and_output_first(graphs, tmp_path):
    fp32 = str(graphs["fp32"])
    assert "--max-batch 0 is out of range" in one_line_error(run_without("torch,tensorrt", "build-engine", fp32, "--max-batch", "0"))
    assert "--workspace-gb 0 is out of range" in one_line_error(run_without("torch,tensorrt", "build-engine", fp32, "--workspace-gb", "0"))
    line = one_line_error(run_without("torch,tensorrt", "build-engine", fp32, "-o", str(tmp_path / "e.txt")))
    assert "ending in .plan" in line


@pytest.mark.skipif(NO_TRT is None, reason="TensorRT is available here: the refusal path does not apply")
@pytest.mark.parametrize("which", ["fp32", "tensorrt"])
def test_a_buildable_graph_then_explains_missing_tensorrt(graphs, which):
    """Only a graph TensorRT could build gets the "not installed" answer (fp32, and int8 for target tensorrt)."""
    line = one_line_error(run_without("torch", "build-engine", str(graphs[which])))
    assert "cannot build a TensorRT engine here" in line and str(graphs[which]) in line


# -- export: int8-only options need --int8 -----------------------------------------------------------


@pytest.mark.parametrize(
    "flags, shown",
    [
        (["--calib-frames", "100"], "--calib-frames only applies with --int8"),
        (["--check-frames", "50"], "--check-frames only applies with --int8"),
        (["--min-agreement", "0"], "--min-agreement only applies with --int8"),
        (["--int8-target", "tensorrt"], "--int8-target only applies with --int8"),
        (["--keep-fp32"], "--keep-fp32 only applies with --int8"),
        (["--calibrate", "synthetic", "--calib-frames", "100"], "--calibrate --calib-frames only apply with --int8"),
    ],
)
def test_export_refuses_int8_options_without_int8(tmp_path, flags, shown):
    out = tmp_path / "m.onnx"
    line = one_line_error(run_without("torch", "export", "default", "-o", str(out), *flags))
    assert shown in line and "add --int8" in line
    assert not out.exists()


def test_build_engine_still_builds_once_the_input_is_checked(tmp_path, monkeypatch, capsys):
    """The checks moved ahead of the TensorRT check: the build itself, against the stand-in tensorrt module."""
    pytest.importorskip("onnx")
    from fake_tensorrt import fake_tensorrt

    from streamtsm.backends import tensorrt_backend, tensorrt_engine
    from streamtsm.cli import main
    from streamtsm.resolve import DEFAULT_ONNX

    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt())
    monkeypatch.setattr(tensorrt_backend, "tensorrt_unavailable_reason", lambda: None)
    monkeypatch.setattr(tensorrt_engine, "current_gpu_name", lambda: "Fake GPU")
    graph = tmp_path / "default.onnx"
    graph.write_bytes(DEFAULT_ONNX.read_bytes())
    assert main(["build-engine", str(graph), "--max-batch", "4"]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "default.fp32.plan").is_file()
    assert main(["build-engine", str(graph), "--max-batch", "4"]) == 0
    assert "is up to date" in capsys.readouterr().out
