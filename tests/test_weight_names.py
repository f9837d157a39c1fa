"""Weight names work wherever a path does: Recognizer, the export cache, export/info commands, --init.

Files come from a loopback HTTP server (tests/zoo_server.py) under the entries' own URL paths
(``STREAMTSM_MIRROR``); they are built from the real Jester and torchvision key lists with random
weights (the real files cannot be fetched here).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import random_state_dict, reference_keys  # noqa: E402
from zoo_server import ZooServer  # noqa: E402

from streamtsm.weights import get_weight  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
JESTER = "tsm_mobilenetv2.jester_online"
_ENV = ("STREAMTSM_HOME", "STREAMTSM_CACHE", "STREAMTSM_OFFLINE", "STREAMTSM_MIRROR", "XDG_CACHE_HOME")


def _saved(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path / "home"))
    with ZooServer() as server:
        monkeypatch.setenv("STREAMTSM_MIRROR", server.url)
        server.add(urlsplit(get_weight(JESTER).urls[0]).path,
                   _saved(random_state_dict(reference_keys("tsm_official_online_mobilenetv2_jester"))))
        yield server


def test_recognizer_runs_a_weight_name_on_onnxruntime_and_a_device_finds_its_export_without_torch(zoo, tmp_path):
    from streamtsm import Recognizer
    from streamtsm.cli import main

    rec = Recognizer(JESTER)  # downloads, exports to the cache, runs ONNX Runtime
    assert rec.engine.name.startswith("onnxruntime") and rec.card.weights_name == JESTER
    assert rec.card.class_names[0] == "Doing other things" and len(rec.class_names) == 27
    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    expected = rec.push(frame, 0.0).probabilities
    requests = len(zoo.requests)
    assert main(["download", JESTER, "--onnx", "-q"]) == 0  # already cached: nothing fetched, nothing exported
    assert len(zoo.requests) == requests
    code = ("import sys, json, numpy as np; sys.modules['torch'] = None; import streamtsm; rec = streamtsm.Recognizer(sys.argv[1]); "
            "f = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8); "
            "print(json.dumps(rec.push(f, 0.0).probabilities.tolist()))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "STREAMTSM_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code, JESTER], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_allclose(np.array(last_json(proc.stdout)), expected, atol=1e-5)


def last_json(text: str) -> list[float]:
    import json

    return json.loads(text.strip().splitlines()[-1])


def test_without_torch_an_uncached_name_names_the_command_that_prepares_it(zoo):
    code = ("import sys; sys.modules['torch'] = None; import streamtsm\n"
            "try:\n    streamtsm.Recognizer(sys.argv[1])\nexcept Exception as exc:\n    print(exc)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, JESTER], capture_output=True, text=True, env=env, timeout=120)
    assert f"streamtsm download {JESTER} --onnx" in proc.stdout, proc.stdout + proc.stderr[-1000:]


def test_export_and_info_take_a_weight_name(zoo, tmp_path, capsys):
    from streamtsm.backends.onnxruntime_backend import open_onnxruntime
    from streamtsm.cli import main

    out = tmp_path / "jester.onnx"
    assert main(["export", JESTER, "-o", str(out), "--check-steps", "1"]) == 0
    assert open_onnxruntime(out).card.weights_name == JESTER
    capsys.readouterr()
    assert main(["info", JESTER]) == 0
    assert "tsm_mobilenetv2" in capsys.readouterr().out


def test_triton_takes_a_weight_name_and_serves_its_export(zoo, tmp_path, capsys):
    from streamtsm.backends.onnxruntime_backend import open_onnxruntime
    from streamtsm.cli import main

    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["triton", JESTER, "-o", str(afile / "repo")]) == 1  # refused before the download and export
    assert "which is a file" in capsys.readouterr().err and zoo.requests == [] and afile.read_text() == "keep me"
    for window_or_backbone in ("r2plus1d_18.kinetics400", "resnet50.imagenet"):  # refused before a download
        assert main(["triton", window_or_backbone, "-o", str(tmp_path / "repo")]) == 1
        err = capsys.readouterr().err
        assert f"online weights: {JESTER}" in err and zoo.requests == [], err
    repo = tmp_path / "repo"
    assert main(["triton", JESTER, "-o", str(repo), "--backend", "python"]) == 0
    model_dir = repo / JESTER  # the weight name is the model's name (dots are allowed)
    assert (model_dir / "config.pbtxt").read_text().startswith(f'name: "{JESTER}"')
    assert open_onnxruntime(model_dir / "1" / "model.onnx").card.weights_name == JESTER
    assert (model_dir / "labels.txt").read_text().splitlines()[0] == "Doing other things"


def test_a_misspelled_name_lists_the_closest(zoo):
    from streamtsm.resolve import ModelSpecError, load_torch_model

    with pytest.raises(Exception, match="tsm_mobilenetv2.jester_online") as info:
        load_torch_model("tsm_mobilenetv2.jester_onlin")
    assert isinstance(info.value, (ModelSpecError, ValueError))


def test_train_init_takes_an_imagenet_backbone_by_name(tmp_path, monkeypatch):
    from streamtsm.models import create_model
    from streamtsm.train.init import load_init_model

    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path / "home"))
    backbone = random_state_dict(reference_keys("torchvision_mobilenet_v2"))
    import dataclasses

    from streamtsm.weights import registry

    entry = get_weight("mobilenet_v2.imagenet")  # its published SHA-256 prefix cannot match random weights
    monkeypatch.setitem(registry._BY_NAME, entry.name, dataclasses.replace(entry, sha256=""))
    with ZooServer() as server:
        monkeypatch.setenv("STREAMTSM_MIRROR", server.url)
        server.add(urlsplit(get_weight("mobilenet_v2.imagenet").urls[0]).path, _saved(backbone))
        init = load_init_model("mobilenet_v2.imagenet", ("a", "b"), build_arch=lambda: create_model("tsm_mobilenetv2", num_classes=2))
    assert not init.from_card and init.new_head
    first_conv = next(k for k in backbone if k.endswith("weight") and backbone[k].dim() == 4)
    assert any(torch.equal(v, backbone[first_conv]) for v in init.model.state_dict().values())
