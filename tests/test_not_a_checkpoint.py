"""A file that is not a checkpoint at all (an image, a text file, an HTML page) given as a model
is told so from its first bytes, not described as a dangerous pickle the restricted reader
refused; real pickles with forbidden globals are still refused as before
(tests/test_untrusted_files.py, tests/test_checkpoints.py).

Every file is written by the test. The byte checks are torch-free; ``load_model``, the
``Recognizer`` and ``streamtsm info`` (a real subprocess) are checked where torch is installed.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamtsm.describe import CheckpointError, checkpoint_container, check_checkpoint_file

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _image(ext: str) -> bytes:
    ok, data = cv2.imencode(ext, np.full((16, 16, 3), 128, np.uint8))
    assert ok
    return data.tobytes()


#: name, bytes, what the message says the file is
NOT_CHECKPOINTS = [
    ("photo.jpg", lambda: _image(".jpg"), "it is a JPEG image"),
    ("photo.pth", lambda: _image(".jpg"), "it is a JPEG image"),  # the suffix does not make it a checkpoint
    ("icon.png", lambda: _image(".png"), "it is a PNG image"),
    ("notes.txt", lambda: b"just some notes\n" * 50, "it is a text file"),
    ("model.pth", lambda: ("état " * 200).encode(), "it is a text file"),  # a character cut at byte 512
    ("error.pth.tar", lambda: b"<!DOCTYPE html><html><body>404 Not Found</body></html>", "it is an HTML page"),
    ("lfs.safetensors", lambda: b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "it is a Git LFS pointer"),
    ("empty.pth", lambda: b"", "the file is empty"),
    ("weights.pth.gz", lambda: b"\x1f\x8b\x08\x00" + bytes(40), "it is a gzip archive: unpack it first"),
    ("noise.ckpt", lambda: bytes(range(7, 200)), "it starts with the bytes 07 08 09 0a 0b 0c 0d 0e"),
    ("old.pth", lambda: pickle.dumps({"w": 1}, protocol=1), "it starts with the bytes"),  # torch never writes protocol 0/1
]


@pytest.mark.runtime
@pytest.mark.parametrize("name, make, what", NOT_CHECKPOINTS, ids=[c[0] + ":" + c[2][:20] for c in NOT_CHECKPOINTS])
def test_a_file_that_cannot_be_a_checkpoint_says_what_it_is(tmp_path, name, make, what):
    path = tmp_path / name
    path.write_bytes(make())
    with pytest.raises(CheckpointError) as info:
        check_checkpoint_file(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a model checkpoint ({what}"), message
    assert "give a checkpoint (.safetensors" in message and ".onnx" in message and "\n" not in message
    assert "unpickle" not in message and "arbitrary code" not in message


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({}, protocol=2))


def _tar(path: Path) -> None:
    member = path.with_name("member")
    member.write_bytes(b"x")
    with tarfile.open(path, "w") as t:
        t.add(member, arcname="pickle")


def _safetensors(path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(path))


def _write(data: bytes):
    return lambda path: path.write_bytes(data)


CONTAINERS = [
    ("zip", _zip),
    ("pickle", _write(pickle.dumps({"w": 1}, protocol=2))),
    ("pickle", _write(pickle.dumps({"w": 1}, protocol=3))),
    ("pickle", _write(pickle.dumps({"w": 1}, protocol=4))),
    ("pickle", _write(pickle.dumps({"w": 1}, protocol=5))),
    ("tar", _tar),
    ("safetensors", _safetensors),
]


@pytest.mark.runtime
@pytest.mark.parametrize("container, write", CONTAINERS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(CONTAINERS)])
def test_every_container_a_checkpoint_comes_in_passes(tmp_path, container, write):
    path = tmp_path / "model.bin"
    write(path)
    assert check_checkpoint_file(path) == container
    assert checkpoint_container(path.read_bytes()[:512]) == container


@pytest.mark.runtime
def test_an_unreadable_file_says_it_cannot_be_read(tmp_path):
    path = tmp_path / "locked.pth"
    path.write_bytes(pickle.dumps({}, protocol=2))
    path.chmod(0)
    try:
        readable = os.access(path, os.R_OK)  # root reads it anyway
        if readable:
            path = Path("/proc/sys/vm/compact_memory")  # write-only even for root
            try:
                path.open("rb").close()
            except PermissionError:
                pass
            else:
                pytest.skip("no file here that this user cannot read")
        with pytest.raises(CheckpointError, match=rf"^{path} cannot be read \(Permission denied\): check that"):
            check_checkpoint_file(path)
    finally:
        (tmp_path / "locked.pth").chmod(0o600)


@pytest.fixture
def jpeg(tmp_path) -> Path:
    path = tmp_path / "baboon.jpg"
    path.write_bytes(_image(".jpg"))
    return path


def test_load_model_and_the_recognizer_say_not_a_checkpoint(jpeg, tmp_path):
    pytest.importorskip("torch")
    from streamtsm import Recognizer, load_model

    text = tmp_path / "model.pth"
    text.write_text("hello\n")
    for path, what in ((jpeg, "a JPEG image"), (text, "a text file")):
        for load in (load_model, Recognizer):
            with pytest.raises(CheckpointError, match=rf"^{path} is not a model checkpoint \(it is {what}\)"):
                load(str(path))


@pytest.mark.parametrize("blocked", ["", "torch"])
def test_info_says_not_a_checkpoint_in_one_line(jpeg, blocked):
    if not blocked:
        pytest.importorskip("torch")
    code = "import sys\nif sys.argv[1]: sys.modules['torch'] = None\nfrom streamtsm.cli import main\nsys.exit(main(sys.argv[2:]))"
    result = subprocess.run([sys.executable, "-c", code, blocked, "info", str(jpeg)], capture_output=True, text=True,
                            timeout=150, env=ENV, cwd=REPO)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert errors == [f"error: {jpeg} is not a model checkpoint (it is a JPEG image): give a checkpoint (.safetensors with "
                      "its .card.json, .pth, .pth.tar, .pt, .ckpt), an exported .onnx or .plan, 'default' or a weight name "
                      "(`streamtsm models`)"], result.stderr


def test_info_without_torch_says_a_checkpoint_needs_torch(tmp_path):
    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps({"w": 1}, protocol=2))
    code = "import sys\nsys.modules['torch'] = None\nfrom streamtsm.cli import main\nsys.exit(main(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "info", str(path)], capture_output=True, text=True,
                            timeout=150, env=ENV, cwd=REPO)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"error: describing the checkpoint {path} needs torch: install streamtsm[torch]" in result.stderr
