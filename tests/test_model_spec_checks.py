"""A model spec that names nothing gets the same message with torch and without it.

On a device without torch a typo (``Recognizer("tsm_mobilenet")``), a folder or ``Recognizer(5)``
used to read "has no cached export here, and exporting it needs torch": a Jetson user would
install torch only to find the typo. Now the names are checked against the weight registry and
the architecture names (known torch-free) first, and "needs torch" is said only of specs that
do need it. Real subprocesses with ``sys.modules["torch"] = None``; files written by the test.

Also: an in-memory torch module is logged as its class and arch, never as its repr.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

_CHILD = textwrap.dedent(
    """
    import json, sys
    if sys.argv[1] == "block":
        sys.modules["torch"] = None
    import streamtsm
    out = []
    for spec in json.loads(sys.argv[2]):
        spec = spec[1] if isinstance(spec, list) else spec  # ["int", 5]: a spec that is not text
        try:
            streamtsm.Recognizer(spec).close()
            out.append(["ok", ""])
        except Exception as exc:
            out.append([type(exc).__name__, str(exc)])
    assert sys.argv[1] != "block" or sys.modules.get("torch") is None
    print(json.dumps(out))
    """
)


def _recognize(specs: list, *, torch: bool) -> list[tuple[str, str]]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, "torch" if torch else "block", json.dumps(specs)],
                          capture_output=True, text=True, timeout=240, env={**ENV, "STREAMTSM_OFFLINE": "1"}, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [tuple(r) for r in json.loads(proc.stdout.strip().splitlines()[-1])]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("specs")
    (root / "notes.txt").write_text("not a model\n")
    (root / "folder").mkdir()
    (root / "model.pth").write_bytes(pickle.dumps({"w": [0.0]}, protocol=2))  # can be a checkpoint: needs torch to tell
    return {"text": str(root / "notes.txt"), "folder": str(root / "folder"), "pickle": str(root / "model.pth")}


#: spec (a {name} is one of the files above), error class, the message's start
REFUSED = [
    ("tsm_mobilenet", "ModelSpecError", "'tsm_mobilenet' is neither an existing checkpoint file nor a known model name. "
     "Closest names: tsm_mobilenetv2, tsn_mobilenetv2"),
    ("tsm_mobilenetv2.jester", "ModelSpecError", "'tsm_mobilenetv2.jester' is neither an existing checkpoint file nor a "
     "known model name. Closest names: tsm_mobilenetv2.jester_online"),
    ("resnet3d18", "ModelSpecError", "'resnet3d18' is neither an existing checkpoint file nor a known model name. "
     "Closest names: resnet3d_18"),
    ("nonsense", "ModelSpecError", "'nonsense' is neither an existing checkpoint file nor a known model name. Give a "),
    ("{folder}", "CheckpointError", "{folder} is a directory; pass the checkpoint file inside it"),
    ("{text}", "CheckpointError", "{text} is not a model checkpoint (it is a text file): give a checkpoint"),
    ("{folder}/missing.pth", "ModelSpecError", "model file {folder}/missing.pth does not exist"),
    (["int", 5], "ModelSpecError", "model spec 5 (type int) is not a model: give the path of a checkpoint"),
    (["list", ["a"]], "ModelSpecError", "model spec ['a'] (type list) is not a model: give the path of a checkpoint"),
]


def _fill(spec, files):
    return spec.format(**files) if isinstance(spec, str) else spec


@pytest.mark.runtime
def test_a_spec_that_names_nothing_says_so_without_torch(files):
    got = _recognize([_fill(spec, files) for spec, _, _ in REFUSED], torch=False)
    for (spec, kind, start), (got_kind, message) in zip(REFUSED, got):
        assert (got_kind, message[: len(_fill(start, files))]) == (kind, _fill(start, files)), (spec, message)
        assert "needs torch" not in message and "\n" not in message


def test_the_same_spec_gives_the_same_message_with_torch(files):
    pytest.importorskip("torch")
    specs = [_fill(spec, files) for spec, _, _ in REFUSED]
    assert _recognize(specs, torch=True) == _recognize(specs, torch=False)


NEED_TORCH = ["tsm_mobilenetv2", "r3d_18", "tsm_mobilenetv2.jester_online", "{pickle}"]


@pytest.mark.runtime
def test_only_a_spec_that_needs_torch_says_it_needs_torch(files):
    for spec, (kind, message) in zip(NEED_TORCH, _recognize([_fill(s, files) for s in NEED_TORCH], torch=False)):
        assert kind == "BackendError" and "exporting it needs torch" in message, (spec, message)


def test_the_torch_free_architecture_list_is_the_registry():
    pytest.importorskip("torch")
    from streamtsm import list_models
    from streamtsm.resolve import ARCHITECTURES

    assert tuple(list_models()) == ARCHITECTURES


# -- an in-memory module in the log -------------------------------------------------------------


@pytest.fixture
def small_module():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from streamtsm.card import Preprocessing
    from streamtsm.models import create_model

    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.25, class_names=("left", "right", "idle"))
    model.card = model.card.replace(preprocessing=Preprocessing(crop_size=32, resize_short=36))
    return model.eval()


@pytest.mark.parametrize("backend, engine", [("auto", "torch-cpu"), ("torch", "torch-cpu"), ("onnxruntime", "onnxruntime-cpu")])
def test_an_in_memory_module_is_logged_in_one_short_line(small_module, backend, engine, caplog, tmp_path, monkeypatch):
    from streamtsm import Recognizer

    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path))  # the onnxruntime case exports into a cache of its own
    with caplog.at_level(logging.INFO, logger="streamtsm"):
        Recognizer(small_module, backend=backend).close()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("streamtsm")]
    engine_lines = [ln for ln in lines if ln.startswith("engine: ")]
    assert len(engine_lines) == 1 and engine_lines[0].startswith(f"engine: {engine} (tsm_mobilenetv2, online)"), lines
    assert all("\n" not in ln and len(ln) < 400 for ln in lines), lines
    if backend == "onnxruntime":
        assert "an in-memory MobileNetV2 (tsm_mobilenetv2) exported to the cache" in engine_lines[0]


# -- the demo refuses before it opens a camera --------------------------------------------------


@pytest.mark.runtime
@pytest.mark.parametrize("spec, start", [
    ("tsm_mobilenet", "error: 'tsm_mobilenet' is neither an existing checkpoint file nor a known model name. Closest names: "),
    ("{folder}", "error: {folder} is a directory; pass the checkpoint file inside it"),
    ("{text}", "error: {text} is not a model checkpoint (it is a text file)"),
])
def test_the_demo_refuses_a_bad_model_before_it_opens_the_camera(files, spec, start):
    code = "import sys\nsys.modules['torch'] = None\nfrom streamtsm.cli import main\nsys.exit(main(sys.argv[1:]))"
    # camera 99 does not exist: had the demo got as far as opening it, the error would be about the camera
    proc = subprocess.run([sys.executable, "-c", code, "demo", "--camera", "99", "--headless", "--model",
                           _fill(spec, files)], capture_output=True, text=True, timeout=150, env=ENV, cwd=REPO)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(errors) == 1 and errors[0].startswith(_fill(start, files)), proc.stderr


@pytest.mark.runtime
def test_the_check_passes_what_can_be_a_model(tmp_path, files):
    from streamtsm.resolve import DEFAULT_ONNX, check_model_spec

    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"\x08\x07 a protobuf")  # judged by ONNX Runtime when it opens, not here
    for spec in (None, "default", str(DEFAULT_ONNX), graph, str(graph), files["pickle"], "tsm_mobilenetv2",
                 "tsm_mobilenetv2.jester_online", "r2plus1d_18"):
        check_model_spec(spec)
