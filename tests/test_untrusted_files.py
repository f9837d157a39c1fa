"""Files from strangers: refused before they can run code or give quietly wrong predictions.

* A pickle that would create a marker file when unpickled, given to every loading entry point
  (tests/test_checkpoints.py covers ``load_model``; here: ``Recognizer(path)``, the
  ``streamtsm info`` command in a subprocess and ``streamtsm train --imagenet-init``).
* ONNX files built with the onnx helper API: no model card in the metadata, unexpected I/O
  names, unexpected shapes. Each is refused by ``Recognizer``/``open_onnxruntime`` with a
  message naming the problem. (Engine sidecar mismatches are tested by the TensorRT export
  tests: tests of ``engine_is_stale``.)
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from streamtsm.backends.base import BackendError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


class _WritesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture
def evil_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _WritesMarker(marker)}, path)
    assert not marker.exists()  # torch.save pickles the object without calling it
    return path, marker


def test_evil_pickle_really_would_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "proof"
    data = pickle.dumps(_WritesMarker(marker))
    pickle.loads(data)  # the unsafe way
    assert marker.exists()


def test_recognizer_refuses_a_pickle_that_runs_code(evil_checkpoint) -> None:
    from streamtsm.recognizer import Recognizer

    path, marker = evil_checkpoint
    with pytest.raises(Exception, match="refused to unpickle") as info:
        Recognizer(str(path))
    assert not marker.exists()
    assert "Traceback" not in str(info.value)


def test_info_command_refuses_a_pickle_that_runs_code(evil_checkpoint) -> None:
    path, marker = evil_checkpoint
    result = subprocess.run(
        [sys.executable, "-m", "streamtsm.cli", "info", str(path)],
        capture_output=True, text=True, timeout=240, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert not marker.exists()
    assert result.returncode != 0
    assert "refused to unpickle" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_train_imagenet_init_refuses_a_pickle_that_runs_code(evil_checkpoint, tmp_path, capsys) -> None:
    import cv2

    from streamtsm.cli import main

    path, marker = evil_checkpoint
    lines = []
    for i in range(2):  # two tiny real videos, one per class, so training would otherwise start
        video = tmp_path / f"clip{i}.avi"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 32))
        for t in range(8):
            writer.write(np.full((32, 32, 3), 20 * t + 60 * i, np.uint8))
        writer.release()
        lines.append(f"{video.name} {i}")
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.safetensors"
    rc = main(["train", str(tmp_path / "train.txt"), "--out", str(out), "--imagenet-init", str(path), "--epochs", "1",
               "--input-size", "32", "--num-segments", "2", "--no-progress"])  # fmt: skip
    assert rc != 0 and "refused to unpickle" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()


# -- ONNX files with the wrong contract -------------------------------------------------------


@pytest.fixture(scope="module")
def real_export(tmp_path_factory) -> Path:
    """A genuine export of a small online TSM (64 px), the reference for the forgeries."""
    from streamtsm.export.onnx import export_onnx
    from streamtsm.models import create_model

    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=4, width_mult=0.5)
    model.card = model.card.replace(preprocessing=model.card.preprocessing.__class__(crop_size=64, resize_short=64))
    return export_onnx(model, tmp_path_factory.mktemp("onnx") / "real.onnx")


def forge(path: Path, inputs: dict[str, list[int]], outputs: dict[str, list[int]], card_json: str | None) -> Path:
    """A valid ONNX graph with the given I/O (outputs are constants) and optional card metadata."""
    nodes, outs = [], []
    for name, shape in outputs.items():
        value = helper.make_tensor(name + "_value", TensorProto.FLOAT, shape, np.zeros(int(np.prod(shape))).tolist())
        nodes.append(helper.make_node("Constant", [], [name], value=value))
        outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    ins = [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in inputs.items()]
    graph = helper.make_graph(nodes, "forged", ins, outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)  # what ORT reads
    if card_json is not None:
        model.metadata_props.add(key="streamtsm.card", value=card_json)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def real_io(path: Path) -> tuple[dict[str, list[int]], dict[str, list[int]], str]:
    m = onnx.load(str(path))
    dims = lambda vi: [d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    meta = {p.key: p.value for p in m.metadata_props}
    return {i.name: dims(i) for i in m.graph.input}, {o.name: dims(o) for o in m.graph.output}, meta["streamtsm.card"]


def test_the_real_export_loads(real_export: Path) -> None:
    from streamtsm.recognizer import Recognizer

    rec = Recognizer(str(real_export), backend="onnxruntime")
    assert rec.push(np.zeros((64, 64, 3), np.uint8), 0.0) is not None


def test_forgery_with_the_real_contract_loads(real_export: Path, tmp_path: Path) -> None:
    """Guard: the forging helper itself makes acceptable files, so the refusals below are
    about the one thing each forgery changes."""
    from streamtsm.backends.onnxruntime_backend import open_onnxruntime

    ins, outs, card = real_io(real_export)
    open_onnxruntime(forge(tmp_path / "same.onnx", ins, outs, card)).close()


def test_onnx_without_card_metadata_is_refused(real_export: Path, tmp_path: Path) -> None:
    from streamtsm.recognizer import Recognizer

    ins, outs, _ = real_io(real_export)
    with pytest.raises(BackendError, match="no streamtsm model card.*streamtsm export"):
        Recognizer(str(forge(tmp_path / "nocard.onnx", ins, outs, None)), backend="onnxruntime")


def test_onnx_with_unexpected_io_names_is_refused(real_export: Path, tmp_path: Path) -> None:
    from streamtsm.recognizer import Recognizer

    ins, outs, card = real_io(real_export)
    renamed_in = {("input" if k == "frame" else k): v for k, v in ins.items()}
    with pytest.raises(BackendError, match=r"does not match its model card.*frame"):
        Recognizer(str(forge(tmp_path / "names.onnx", renamed_in, outs, card)), backend="onnxruntime")
    renamed_out = {("output" if k == "logits" else k): v for k, v in outs.items()}
    with pytest.raises(BackendError, match=r"does not match its model card.*logits"):
        Recognizer(str(forge(tmp_path / "names2.onnx", ins, renamed_out, card)), backend="onnxruntime")
    fewer_states = {k: v for k, v in ins.items() if k != "state_in.0"}
    with pytest.raises(BackendError, match=r"does not match its model card.*state_in.0"):
        Recognizer(str(forge(tmp_path / "states.onnx", fewer_states, outs, card)), backend="onnxruntime")


def test_onnx_with_unexpected_shapes_is_refused(real_export: Path, tmp_path: Path) -> None:
    from streamtsm.recognizer import Recognizer

    ins, outs, card = real_io(real_export)
    wrong_frame = {**ins, "frame": [1, 3, 32, 32]}
    with pytest.raises(BackendError, match=r"'frame': expected shape"):
        Recognizer(str(forge(tmp_path / "frame.onnx", wrong_frame, outs, card)), backend="onnxruntime")
    wrong_state = dict(ins)
    shape = list(wrong_state["state_in.1"])
    shape[1] += 1
    wrong_state["state_in.1"] = shape
    with pytest.raises(BackendError, match=r"'state_in.1': expected shape"):
        Recognizer(str(forge(tmp_path / "state.onnx", wrong_state, outs, card)), backend="onnxruntime")
    wrong_logits = {**outs, "logits": [1, 7]}
    with pytest.raises(BackendError, match=r"'logits': expected shape"):
        Recognizer(str(forge(tmp_path / "logits.onnx", ins, wrong_logits, card)), backend="onnxruntime")


def test_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    from streamtsm.recognizer import Recognizer

    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x80\x04not a protobuf" * 10)
    with pytest.raises(BackendError, match="ONNX Runtime cannot load it"):
        Recognizer(str(path), backend="onnxruntime")
