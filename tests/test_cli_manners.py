"""The command line as a Unix tool: ``info`` on exported files without torch, checked numbers,
``--version``, and a closed stdout that ends the command quietly.

Real subprocesses throughout; "without torch" means ``sys.modules["torch"] = None`` in the child
before streamtsm is imported, so any ``import torch`` fails.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import streamtsm

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

_CHILD = textwrap.dedent(
    """
    import sys
    for name in sys.argv[1].split(","):
        sys.modules[name] = None  # `import <name>` now raises ImportError
    from streamtsm.cli import main
    code = main(sys.argv[2:])
    leaked = sorted(m for m in sys.argv[1].split(",") if sys.modules.get(m) is not None)
    assert not leaked, leaked
    sys.exit(code)
    """
)


def run_without(blocked: str, *args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD, blocked, *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=REPO)


def run_cli(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamtsm.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=REPO)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A real export: online TSM-MobileNetV2 x0.25 at 32 px, dynamic batch, opset 13."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from streamtsm.card import Preprocessing
    from streamtsm.export.onnx import export_onnx
    from streamtsm.models import create_model

    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.25, class_names=("left", "right", "idle"))
    model.card = model.card.replace(preprocessing=Preprocessing(crop_size=32, resize_short=36))
    return export_onnx(model, tmp_path_factory.mktemp("export") / "small.onnx", dynamic_batch=True, opset=13, check_steps=1)


# -- info on .onnx and .plan -----------------------------------------------------------------------


def test_info_describes_an_onnx_file_without_torch(exported: Path) -> None:
    result = run_without("torch", "info", str(exported), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout)
    assert info["format"] == "onnx" and info["arch"] == "tsm_mobilenetv2" and info["classes"] == ["left", "right", "idle"]
    assert info["opset"] == 13 and info["batch"] == "dynamic" and info["precision"] == "fp32" and info["calibration"] == {}
    assert info["file_size_bytes"] == exported.stat().st_size and info["input_size"] == [32, 32]
    names = [t["name"] for t in info["inputs"]]
    assert names[0] == "frame" and names[1:] == [f"state_in.{i}" for i in range(info["state_tensors"])] and len(names) > 3
    assert info["inputs"][0]["shape"] == ["batch", 3, 32, 32] and info["inputs"][0]["dtype"] == "float32"
    assert [t["name"] for t in info["outputs"]][0] == "logits" and info["outputs"][0]["shape"] == ["batch", 3]
    assert info["card"]["temporal"]["mode"] == "online" and info["card"]["card_version"] == 2
    table = run_without("torch", "info", str(exported))
    assert table.returncode == 0 and "opset: 13" in table.stdout and "frame ['batch', 3, 32, 32] float32" in table.stdout


def test_info_reads_onnx_with_onnxruntime_when_onnx_is_not_installed(exported: Path) -> None:
    """A Jetson has onnxruntime but often not the onnx package: the I/O and card still show, the opset is unknown."""
    result = run_without("torch,onnx", "info", str(exported), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout)
    assert info["opset"] is None and info["batch"] == "dynamic" and info["inputs"][0]["name"] == "frame"
    assert info["state_tensors"] == len(info["inputs"]) - 1


def test_info_describes_a_tensorrt_plan_from_its_sidecar_without_torch_or_gpu(exported: Path, tmp_path: Path) -> None:
    """A .plan cannot be read without TensorRT and a GPU, but its sidecar says what it was built from."""
    import onnx

    from streamtsm.backends.tensorrt_engine import EngineSidecar, file_sha256, sidecar_path
    from streamtsm.contract import CARD_METADATA_KEY

    meta = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    plan = tmp_path / "small.fp16.plan"
    plan.write_bytes(os.urandom(4096))  # the engine bytes are not read
    sidecar_path(plan).write_text(EngineSidecar(
        onnx_sha256=file_sha256(exported), tensorrt_version="10.3.0", gpu="Orin", precision="fp16",
        card=json.loads(meta[CARD_METADATA_KEY]), onnx_path=str(exported), max_batch=8,
    ).to_json())
    result = run_without("torch,tensorrt", "info", str(plan), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    info = json.loads(result.stdout)
    assert info["format"] == "tensorrt" and info["tensorrt_version"] == "10.3.0" and info["gpu"] == "Orin"
    assert info["engine_precision"] == "fp16" and info["onnx_sha256"] == file_sha256(exported) and info["onnx_matches"] is True
    assert info["file_size_bytes"] == 4096 and info["max_batch"] == 8 and info["inputs"][0]["name"] == "frame"
    assert info["classes"] == ["left", "right", "idle"]
    sidecar_path(plan).unlink()
    assert "has no sidecar" in one_line_error(run_without("torch", "info", str(plan)))


@pytest.mark.runtime
def test_info_on_an_onnx_file_with_a_broken_card_names_the_field(tmp_path: Path) -> None:
    from test_cards import base_card, tiny_onnx_with_card

    card = base_card()
    card["preprocessing"]["mean"] = [float("nan")] * 3
    path = tiny_onnx_with_card(tmp_path / "forged.onnx", json.dumps(card))
    assert "preprocessing.mean[0] must be a finite number" in one_line_error(run_without("torch", "info", str(path)))


# -- checked numbers ---------------------------------------------------------------------------------


# Each command checks what it can before it imports torch (3 s here): with torch blocked in the child,
# a check that came after the import would fail on the import instead of printing its own line.
@pytest.mark.runtime
@pytest.mark.parametrize("args, fragment", [
    (["export", "tsm_mobilenetv2", "-o", "{tmp}/x.onnx", "--opset", "99"], "--opset 99 is out of range: use a value from 10 to 20"),
    (["export", "tsm_mobilenetv2", "-o", "{tmp}/x.onnx", "--opset", "9"], "--opset 9 is out of range: use a value from 10 to 20"),
    (["export", "tsm_mobilenetv2", "-o", "{tmp}/x.onnx", "--num-classes", "0"], "--num-classes 0 is out of range: use a value from 1 to 100000"),
    (["export", "tsm_mobilenetv2", "-o", "{tmp}/x.onnx", "--batch", "0"], "--batch 0 is out of range: use a value from 1 to"),
    (["export", "tsm_mobilenetv2", "-o", "{tmp}/x.onnx", "--int8"], "--int8 needs --calibrate SOURCE"),
    (["export", "{tmp}/missing.pth", "-o", "{tmp}/x.onnx"], "model file {tmp}/missing.pth does not exist"),
    (["train", "{tmp}/missing", "--out", "{tmp}/x"], "dataset {tmp}/missing does not exist"),
    (["train", "{tmp}", "--out", "{tmp}/x", "--val", "{tmp}/missing"], "--val {tmp}/missing does not exist"),
    (["train", "{tmp}", "--out", "{tmp}/x", "--classes", "{tmp}/missing.txt"], "class names file {tmp}/missing.txt cannot be read"),
    (["train", "{tmp}", "--out", "{tmp}/x", "--patience", "3"], "--patience needs validation clips"),
    (["train", "{tmp}", "--out", "{tmp}/x", "--width-mult", "0.5", "--width", "32"], "--width-mult (MobileNetV2) and --width"),
    (["train", "{tmp}", "--out", "{tmp}/x", "--init", "{tmp}/missing.pth"], "--init {tmp}/missing.pth: model file"),
    (["eval", "default", "{tmp}/missing"], "dataset {tmp}/missing does not exist"),
    (["info", "{tmp}/missing.pth"], "checkpoint {tmp}/missing.pth does not exist"),
    (["info", "tsm_mobilenetv2"], "Closest weight names: tsm_mobilenetv2.kinetics400"),
    # the demo: before the camera opens (there is none here: that error would come first otherwise)
    (["demo", "--model", "{tmp}/missing.pth", "--camera", "0", "--headless"], "model file {tmp}/missing.pth does not exist"),
    (["demo", "--model", "missing.onnx", "--source", "synthetic", "--headless"], "model file missing.onnx does not exist"),
    (["demo", "--source", "synthetic", "--source", "synthetic:2", "--lanes", "2", "--backend", "torch", "--headless"],
     "--backend torch cannot"),
    (["demo", "--source", "synthetic", "--threads", "0", "--headless"], "--threads 0 is out of range: use a value from 1 to 256"),
    (["demo", "--source", "synthetic", "--max-frames", "0", "--headless"], "--max-frames 0 is out of range: use a value of at least 1"),
], ids=["opset 99", "opset 9", "num-classes 0", "batch 0", "int8 alone", "export path", "train data", "train val", "train classes",
        "train patience", "train widths", "train init", "eval data", "info path", "info near-miss name", "demo camera", "demo source", "demo lanes on torch",
        "demo threads", "demo max-frames"])
def test_bad_arguments_are_refused_before_torch_is_imported(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = run_without("torch", *(a.format(tmp=tmp_path) for a in args))
    assert fragment.format(tmp=tmp_path) in one_line_error(result)
    assert len(result.stderr.splitlines()) <= 2 and sorted(tmp_path.iterdir()) == []  # nothing written


def test_the_opset_range_ends_both_export(tmp_path: Path) -> None:
    """10 and 20, the ends of the accepted range, both export and pass the ONNX Runtime check."""
    torch = pytest.importorskip("torch")
    import onnx

    from streamtsm.card import Preprocessing
    from streamtsm.contract import MAX_OPSET, MIN_OPSET
    from streamtsm.export.onnx import ExportError, export_onnx
    from streamtsm.models import create_model

    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.25)
    model.card = model.card.replace(preprocessing=Preprocessing(crop_size=32, resize_short=32))
    for opset in (MIN_OPSET, MAX_OPSET):
        path = export_onnx(model, tmp_path / f"o{opset}.onnx", opset=opset, check_steps=1)
        assert next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx")) == opset
    with pytest.raises(ExportError, match="opset must be an integer from 10 to 20, got 21"):
        export_onnx(model, tmp_path / "o21.onnx", opset=21)


# -- --version and a closed stdout -------------------------------------------------------------------


@pytest.mark.runtime
def test_version_prints_the_package_version() -> None:
    from importlib.metadata import version

    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout == f"streamtsm {streamtsm.__version__}\n"
    assert version("streamtsm") == streamtsm.__version__  # pyproject takes its version from the package


def test_a_reader_that_leaves_before_the_output_ends_the_command_quietly(tmp_path: Path) -> None:
    """The read end of stdout is closed before ``streamtsm info --json`` writes (``| head -0``):
    the command exits 141 (as killed by SIGPIPE) with nothing on stderr, not a BrokenPipeError
    traceback. (``--help`` was already quiet: argparse ignores write errors.)"""
    err = tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "streamtsm.cli", "info", "--json"], stdout=subprocess.PIPE,
                                stderr=stderr, env=ENV, cwd=REPO)
        proc.stdout.close()
        rc = proc.wait(timeout=150)
    text = err.read_text()
    assert rc == 141 and "Traceback" not in text and "BrokenPipe" not in text and "Exception ignored" not in text, (rc, text)


def test_demo_json_lines_piped_into_head_end_quietly(tmp_path: Path) -> None:
    """``streamtsm demo --source synthetic --headless | head -1``: the demo runs until its reader
    has taken one line and left, then stops with 141 and a clean stderr."""
    err = tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "streamtsm.cli", "demo", "--source", "synthetic", "--headless"],
                                stdout=subprocess.PIPE, stderr=stderr, env=ENV, cwd=REPO)
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(proc.stdout, selectors.EVENT_READ)
                ready = sel.select(timeout=120)
            assert ready, "the demo printed nothing within 120 s"
            first = proc.stdout.readline()
            proc.stdout.close()
            rc = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    assert json.loads(first)["type"] == "prediction"
    text = err.read_text()
    assert rc == 141 and "Traceback" not in text and "BrokenPipe" not in text and "Exception ignored" not in text, (rc, text[-2000:])


def _absent_camera_index() -> int:
    return next(i for i in range(10, 100) if not Path(f"/dev/video{i}").exists())


@pytest.mark.runtime
def test_a_camera_that_does_not_open_is_one_line_and_opencvs_warnings_come_with_verbose() -> None:
    """OpenCV's own "[ WARN ...] can't open camera by index" lines used to precede our message;
    they are hidden unless -v (``python demo.py -v`` works as ``streamtsm -v demo``) or the
    user's own OPENCV_LOG_LEVEL asks for them."""
    index = _absent_camera_index()
    quiet = run_cli("demo", "--camera", str(index), "--headless")
    line = one_line_error(quiet)
    assert f"could not open camera index {index}" in line and quiet.stderr.strip() == line, quiet.stderr

    loud = subprocess.run([sys.executable, "demo.py", "-v", "--camera", str(index), "--headless"], capture_output=True,
                          text=True, timeout=150, env=ENV, cwd=REPO)
    assert loud.returncode == 1 and f"could not open camera index {index}" in loud.stderr, loud.stderr[-2000:]
    assert "[ WARN" in loud.stderr, loud.stderr[-2000:]

    asked = subprocess.run([sys.executable, "-m", "streamtsm.cli", "demo", "--camera", str(index), "--headless"],
                           capture_output=True, text=True, timeout=150, env={**ENV, "OPENCV_LOG_LEVEL": "WARNING"}, cwd=REPO)
    assert asked.returncode == 1 and "[ WARN" in asked.stderr and "Traceback" not in asked.stderr, asked.stderr[-2000:]
