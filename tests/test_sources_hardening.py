"""Bad camera indices are refused before OpenCV sees them; a file shorter than its header says so.

OpenCV 5 crashes the whole process on ``VideoCapture(-1)``, so everything that could reach it
runs in a subprocess with a deadline: a regression shows as rc 139, not as a dead test run.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamtsm.sources import MAX_CAMERA_INDEX, SourceError, VideoFileSource, open_source, source_kind

pytestmark = pytest.mark.runtime  # torch-free: part of the run with torch blocked

REPO = Path(__file__).resolve().parents[1]
SEGFAULT = (139, -11)  # shell-style and subprocess-style exit status of SIGSEGV


def _python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def _demo(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(REPO / "demo.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


# -- camera indices ------------------------------------------------------------------------------

BAD_INDICES = [-1, "-1", " -2 ", MAX_CAMERA_INDEX + 1, "100", 10**30, str(2**63)]


@pytest.mark.parametrize(
    "spec, kind",
    [(0, "camera"), ("3", "camera"), ("-1", "camera"), (" 12 ", "camera"), ("rtsp://h/x", "stream"),
     ("HTTP://h/x", "stream"), ("synthetic", "synthetic"), ("synthetic:4", "synthetic"), ("clip.mp4", "file"),
     ("-1.mp4", "file"), (Path("-1"), "file")],
)
def test_source_kind_reads_signed_integers_as_camera_indices(spec, kind):
    assert source_kind(spec) == kind


def test_bad_camera_indices_are_refused_before_opencv_sees_them():
    # In a subprocess: if a bad index reached cv2.VideoCapture, the crash must not take pytest down.
    proc = _python(f"""
        import json
        from streamtsm.sources import CameraSource, SourceError, open_source
        out = []
        for spec in {BAD_INDICES!r}:
            for make in (open_source, CameraSource):
                if make is CameraSource and isinstance(spec, str):
                    continue
                try:
                    make(spec)
                    out.append([repr(spec), "opened"])
                except SourceError as exc:
                    out.append([repr(spec), str(exc)])
        print(json.dumps(out))
    """)
    assert proc.returncode not in SEGFAULT, proc.stderr
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert len(results) >= len(BAD_INDICES)
    for spec, message in results:
        assert message != "opened", spec
        assert "camera index" in message and f"0 to {MAX_CAMERA_INDEX}" in message, message
        assert "\n" not in message


def test_open_source_refuses_a_bad_index_even_with_options_a_camera_does_not_take():
    with pytest.raises(SourceError, match=r"camera index -1 is not valid"):
        open_source("-1", realtime=True)


@pytest.mark.parametrize("option", [["--camera", "-1"], ["--source", "-1"], ["--camera", "100"],
                                    ["--source", "-1", "--realtime"]])
def test_demo_refuses_a_bad_camera_index_with_one_line(option):
    proc = _demo(*option, "--headless", "--max-frames", "3", timeout=120)
    assert proc.returncode not in SEGFAULT, proc.stderr
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert f"camera index {option[1]} is not valid" in errors[0] and f"0 to {MAX_CAMERA_INDEX}" in errors[0]
    assert "Traceback" not in proc.stderr


def test_recognizer_run_refuses_a_negative_camera_index():
    proc = _python("""
        from streamtsm import Recognizer, SourceError
        rec = Recognizer()
        try:
            for _ in rec.run(-1):
                raise SystemExit("run(-1) produced a frame")
        except SourceError as exc:
            print(exc)
        finally:
            rec.close()
    """, timeout=170)
    assert proc.returncode not in SEGFAULT, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert f"camera index -1 is not valid: use a whole number from 0 to {MAX_CAMERA_INDEX}" in proc.stdout


# -- a file whose header announces more frames than it holds ------------------------------------

REAL_FRAMES, ANNOUNCED = 12, 444


def _chunks(data: bytes, start: int, end: int):
    """(fourcc, data offset, size) of the RIFF chunks in data[start:end], descending into LISTs."""
    pos = start
    while pos + 8 <= end:
        fourcc, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if fourcc in (b"RIFF", b"LIST"):
            yield from _chunks(data, pos + 12, min(pos + 8 + size, end))
        else:
            yield fourcc, pos + 8, size
        pos += 8 + size + (size & 1)


def _write_avi(path: Path) -> None:
    """A valid MJPG AVI of REAL_FRAMES frames."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(REAL_FRAMES):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()


def _write_avi_with_inflated_header(path: Path) -> None:
    """A valid MJPG AVI of REAL_FRAMES frames whose headers (avih dwTotalFrames, strh dwLength) say ANNOUNCED."""
    _write_avi(path)
    data = bytearray(path.read_bytes())
    patched = set()
    for fourcc, offset, _size in _chunks(bytes(data), 0, len(data)):
        if fourcc == b"avih":  # MainAVIHeader: 4 DWORDs, then dwTotalFrames
            struct.pack_into("<I", data, offset + 16, ANNOUNCED)
            patched.add(fourcc)
        elif fourcc == b"strh" and data[offset:offset + 4] == b"vids":  # ... dwStart, then dwLength
            struct.pack_into("<I", data, offset + 32, ANNOUNCED)
            patched.add(fourcc)
        if fourcc == b"movi" or len(patched) == 2:
            break
    assert patched == {b"avih", b"strh"}, patched
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def short_avi(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("short") / "short.avi"
    _write_avi_with_inflated_header(path)
    cap = cv2.VideoCapture(str(path))
    announced = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    decoded = 0
    while cap.read()[0]:
        decoded += 1
    cap.release()
    if (announced, decoded) != (ANNOUNCED, REAL_FRAMES):  # what the source's check relies on
        pytest.skip(f"this OpenCV build reports {announced} frames and decodes {decoded} for the patched AVI")
    return path


def test_a_file_that_ends_before_its_announced_length_says_so(short_avi, caplog):
    caplog.set_level(logging.WARNING, logger="streamtsm.sources")
    source = VideoFileSource(short_avi)
    frames = list(source)
    source.close()
    assert len(frames) == REAL_FRAMES
    assert (source.frames_announced, source.frames_decoded, source.ended_early) == (ANNOUNCED, REAL_FRAMES, True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"ended after {REAL_FRAMES} of the {ANNOUNCED} frames its header announced" in warnings[0]
    assert "damaged or truncated" in warnings[0] and str(short_avi) in warnings[0]


def test_a_complete_file_does_not_warn(tmp_path, caplog):
    path = tmp_path / "complete.avi"
    _write_avi(path)
    caplog.set_level(logging.WARNING, logger="streamtsm.sources")
    with VideoFileSource(path) as source:
        assert len(list(source)) == REAL_FRAMES
    assert (source.frames_announced, source.frames_decoded, source.ended_early) == (REAL_FRAMES, REAL_FRAMES, False)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_file_stopped_before_its_end_is_not_called_damaged(short_avi):
    with VideoFileSource(short_avi) as source:
        for _ in range(3):
            source.read()
    assert source.frames_decoded == 3 and not source.ended_early


def test_the_demo_summary_reports_the_short_file(short_avi):
    proc = _demo("--video", str(short_avi), "--headless", timeout=170)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["type"] == "summary" and summary["frames"] == REAL_FRAMES
    assert summary["frames_announced"] == ANNOUNCED and summary["ended_early"] is True
    assert f"ended after {REAL_FRAMES} of the {ANNOUNCED} frames its header announced" in proc.stderr
