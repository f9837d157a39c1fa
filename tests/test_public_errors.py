"""The errors an application catches are reachable as ``streamtsm.<Name>``, and each is the very
class the code raises (``except streamtsm.SourceError`` catches what ``open_source`` raises).
Reaching them needs no torch: checked in a subprocess with ``sys.modules["torch"] = None``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import streamtsm

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[1]

ERRORS = ("RecognizerError", "MultiRecognizerError", "SessionError", "BackendError", "SourceError", "FrameError",
          "ModelSpecError", "CheckpointError", "CardError", "WeightsError", "DownloadError")


def _closed_recognizer_push():
    rec = streamtsm.Recognizer()
    rec.close()
    rec.push(np.zeros((64, 64, 3), np.uint8))


def _text_file_as_model(tmp_path):
    path = tmp_path / "model.pth"
    path.write_text("not a model\n")
    streamtsm.Recognizer(str(path))


def _offline_download(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path))
    monkeypatch.setenv("STREAMTSM_OFFLINE", "1")
    streamtsm.download("tsm_mobilenetv2.jester_online")


#: error name, what raises it (real calls, nothing faked)
RAISERS = [
    ("RecognizerError", lambda tmp_path, mp: _closed_recognizer_push()),
    ("MultiRecognizerError", lambda tmp_path, mp: streamtsm.MultiRecognizer(max_streams=0)),
    ("SessionError", lambda tmp_path, mp: streamtsm.Recognizer().push(np.zeros((64, 64, 3), np.uint8), timestamp=float("nan"))),
    ("FrameError", lambda tmp_path, mp: streamtsm.Recognizer().push(None)),
    ("BackendError", lambda tmp_path, mp: streamtsm.Recognizer(backend="cuda")),
    ("SourceError", lambda tmp_path, mp: streamtsm.open_source("synthetic:abc")),
    ("ModelSpecError", lambda tmp_path, mp: streamtsm.Recognizer("tsm_mobilenet")),
    ("CheckpointError", lambda tmp_path, mp: _text_file_as_model(tmp_path)),
    ("CardError", lambda tmp_path, mp: streamtsm.ModelCard.from_dict({})),
    ("WeightsError", lambda tmp_path, mp: _offline_download(tmp_path, mp)),
]


@pytest.mark.parametrize("name, raise_it", RAISERS, ids=[r[0] for r in RAISERS])
def test_each_public_error_is_the_class_the_code_raises(name, raise_it, tmp_path, monkeypatch):
    cls = getattr(streamtsm, name)
    assert isinstance(cls, type) and issubclass(cls, Exception) and name in streamtsm.__all__
    with pytest.raises(Exception) as info:
        raise_it(tmp_path, monkeypatch)
    assert isinstance(info.value, cls), (type(info.value), info.value)


def test_download_error_is_a_weights_error():
    assert issubclass(streamtsm.DownloadError, streamtsm.WeightsError)


def test_the_errors_are_reachable_without_torch():
    code = textwrap.dedent(
        """
        import json, sys
        sys.modules["torch"] = None
        import streamtsm
        classes = {name: getattr(streamtsm, name).__module__ for name in sys.argv[1].split(",")}
        from streamtsm.resolve import ModelSpecError
        assert streamtsm.ModelSpecError is ModelSpecError
        print(json.dumps({"classes": classes, "torch": sys.modules.get("torch") is not None}))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code, ",".join(ERRORS)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(out["classes"]) == sorted(ERRORS) and not out["torch"]
    assert all(module.startswith("streamtsm.") for module in out["classes"].values()), out


def test_import_streamtsm_alone_imports_no_engine_or_torch():
    code = ("import sys\nimport streamtsm\n"
            "print(sorted(m for m in ('torch', 'onnxruntime', 'cv2', 'streamtsm.recognizer') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", (proc.stdout, proc.stderr[-2000:])


def test_checkpoints_raise_the_same_checkpoint_error():
    pytest.importorskip("torch")
    from streamtsm.checkpoints import CheckpointError

    assert CheckpointError is streamtsm.CheckpointError
