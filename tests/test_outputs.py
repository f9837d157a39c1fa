"""Output paths are checked before the work starts, never overwrite an input, and are replaced atomically.

Each command is run as a user runs it (a subprocess, or ``cli.main`` in-process where torch is
already imported) on real files: an unwritable folder, a folder where a file name belongs, a
file where a folder belongs, the input video given as the output (also through a hard link),
a demo killed while writing its video, and an export racing another process's temporary file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamtsm.outputs import OutputPathError, PendingFile, check_output_path, write_bytes_atomic

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def run_cli(*args: str, timeout: float = 150, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamtsm.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV, cwd=cwd or REPO)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The command failed (rc 1) with exactly one ``error:`` line and no traceback; returns it."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0]


def write_video(path: Path, frames: int = 12, size: tuple[int, int] = (96, 72)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    assert writer.isOpened()
    for t in range(frames):
        img = np.full((size[1], size[0], 3), 40, np.uint8)
        img[20:50, 5 + 4 * t : 35 + 4 * t] = (200, 80 + 10 * t, 30)
        writer.write(img)
    writer.release()
    return path


def count_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture
def afile(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("I am a file, not a folder\n")
    return path


# -- export -o ---------------------------------------------------------------------------------


def test_export_into_an_unwritable_folder_fails_before_the_export() -> None:
    if not Path("/sys").is_dir():
        pytest.skip("no /sys here")
    line = one_line_error(run_cli("export", "tsm_mobilenetv2", "-o", "/sys/x.onnx"))
    assert "-o/--output /sys/x.onnx: cannot create files in /sys" in line
    assert not Path("/sys/x.onnx").exists()


def test_export_onto_an_existing_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "existingdir.onnx").mkdir()
    result = run_cli("export", "tsm_mobilenetv2", "-o", str(tmp_path / "existingdir.onnx"))
    assert "is an existing folder; give a file name" in one_line_error(result)
    assert "RANDOM weights" not in result.stderr  # refused before the model was even built


def test_export_below_a_file_is_refused(afile: Path) -> None:
    result = run_cli("export", "tsm_mobilenetv2", "-o", str(afile / "x.onnx"))
    assert f"{afile} is a file, not a folder" in one_line_error(result)
    assert "RANDOM weights" not in result.stderr and afile.read_text() == "I am a file, not a folder\n"


def test_export_does_not_touch_another_process_temporary_file(tmp_path: Path) -> None:
    """Two exports to one path: each writes its own temporary name. Before, both used
    ``x.onnx.part``, so one process overwrote (and renamed away) the other's half-written file."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import onnx

    from streamtsm.card import Preprocessing
    from streamtsm.export.onnx import export_onnx
    from streamtsm.models import create_model

    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.25)
    model.card = model.card.replace(preprocessing=Preprocessing(crop_size=32, resize_short=32))
    out = tmp_path / "x.onnx"
    other = tmp_path / "x.onnx.part"
    other.write_bytes(b"another export, half written")
    export_onnx(model, out, check_steps=1)
    assert other.read_bytes() == b"another export, half written"
    onnx.checker.check_model(onnx.load(str(out)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx", "x.onnx.part"]  # no temporary left behind


# -- demo --output / --screenshot ----------------------------------------------------------------


def test_demo_output_below_a_file_is_refused(afile: Path) -> None:
    result = run_cli("demo", "--source", "synthetic", "--headless", "--max-frames", "5", "--output", str(afile / "x.mp4"))
    assert f"--output {afile / 'x.mp4'}: {afile} is a file, not a folder" in one_line_error(result)


def test_demo_refuses_to_write_its_input_video(tmp_path: Path) -> None:
    clip = write_video(tmp_path / "clip0.avi")
    before = clip.read_bytes()
    line = one_line_error(run_cli("demo", "--video", str(clip), "--output", str(clip), "--headless"))
    assert "is the same file as the input" in line and "choose another output name" in line
    os.link(clip, tmp_path / "alias.avi")  # the same file under another name
    line = one_line_error(run_cli("demo", "--video", str(clip), "--headless", "--output", str(tmp_path / "alias.avi")))
    assert "is the same file as the input" in line
    line = one_line_error(run_cli("demo", "--source", str(clip), "--headless", "--output", "clip0.avi", cwd=tmp_path))
    assert "is the same file as the input" in line  # a relative spelling of the absolute input path
    assert clip.read_bytes() == before and count_frames(clip) == 12


def test_demo_killed_while_writing_keeps_the_previous_output(tmp_path: Path) -> None:
    """The annotated video goes to a temporary file until the end: a demo killed mid-run (SIGKILL,
    no cleanup possible) leaves the previous out.mp4 byte for byte. Before, out.mp4 was opened
    for writing at the first frame, so the old video was gone at once."""
    out = tmp_path / "out.mp4"
    out.write_bytes(b"the previous video")
    errors = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamtsm.cli", "demo", "--source", "synthetic", "--headless", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=errors, env=ENV, cwd=REPO,
    )
    temps: list[Path] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:  # until frames are being written
            temps = [p for p in tmp_path.glob(".out.*.part.mp4") if p.stat().st_size > 0]
            if temps or out.read_bytes() != b"the previous video":
                break
            time.sleep(0.2)
        still_running = proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        errors.close()
    assert still_running, (tmp_path / "stderr.txt").read_text()[-2000:]
    assert out.read_bytes() == b"the previous video"
    assert temps, "the demo never started writing its temporary video"


def test_demo_output_replaces_an_existing_file_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "out.avi"
    out.write_bytes(b"the previous video")
    clip = write_video(tmp_path / "clip.avi", frames=10)
    result = run_cli("demo", "--video", str(clip), "--headless", "--output", str(out), "--screenshot", str(tmp_path / "s.png"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert count_frames(out) == 10
    assert cv2.imread(str(tmp_path / "s.png")) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "out.avi", "s.png"]  # no temporaries left


# -- train --out -------------------------------------------------------------------------------


def test_train_out_below_a_file_fails_before_reading_the_data(afile: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    from streamtsm.cli import main

    data = tmp_path / "data"
    for label in ("left", "right"):
        (data / label).mkdir(parents=True)
        write_video(data / label / "c0.avi", frames=8)
    assert main(["train", str(data), "--out", str(afile / "m.safetensors"), "--epochs", "1", "--input-size", "32",
                 "--num-segments", "2", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert f"--out {afile / 'm.safetensors'}: {afile} is a file, not a folder" in captured.err
    assert "training on" not in captured.out  # nothing was loaded or trained


# -- the helper itself -----------------------------------------------------------------------------


@pytest.mark.runtime
def test_check_output_path_cases(tmp_path: Path, afile: Path) -> None:
    (tmp_path / "dir").mkdir()
    os.symlink(afile, tmp_path / "link")
    cases = [
        (dict(path=tmp_path / "x.txt", suffixes=(".onnx",)), "use a file name ending in .onnx"),
        (dict(path=tmp_path / "dir"), "is an existing folder"),
        (dict(path=afile / "deeper" / "x.onnx"), f"{afile} is a file, not a folder"),
        (dict(path=tmp_path / "link", inputs=(afile,)), f"is the same file as the input {afile}"),
        (dict(path="/dev/null"), "is not a regular file"),
    ]
    for kwargs, fragment in cases:
        with pytest.raises(OutputPathError) as info:
            check_output_path(**kwargs, what="--output")
        assert fragment in str(info.value) and str(info.value).startswith("--output "), (kwargs, str(info.value))
    # fine: a new file in a folder that does not exist yet (nothing is created by the check)
    assert check_output_path(tmp_path / "new" / "sub" / "x.onnx", suffixes=(".onnx",)) == tmp_path / "new" / "sub" / "x.onnx"
    assert not (tmp_path / "new").exists()
    assert not list(tmp_path.glob(".streamtsm-probe-*"))


@pytest.mark.runtime
def test_pending_file_is_unique_and_commits_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "v.mp4"
    target.write_bytes(b"old")
    a, b = PendingFile(target), PendingFile(target)
    assert a.temp != b.temp and a.temp.parent == tmp_path and a.temp.suffix == ".mp4" and str(os.getpid()) in a.temp.name
    with pytest.raises(RuntimeError):
        with PendingFile(target) as pending:
            pending.temp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old" and not pending.temp.exists()
    with PendingFile(target):
        pass  # nothing written: the old file stays
    assert target.read_bytes() == b"old"
    write_bytes_atomic(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]
