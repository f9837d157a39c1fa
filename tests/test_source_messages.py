"""Small source and demo messages said right: a ``file://`` URL is its path (not ``file:/…``, slashes
collapsed, "does not exist"), an unreadable file is unreadable (not "not a video file"), an empty
source is empty (not "'.' is not a file"), and ``python demo.py --bogus-flag`` shows the demo's
own usage line (not ``usage: streamtsm … COMMAND``). Files written by the test; the demo runs
as a real subprocess with a deadline.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamtsm.sources import SourceError, VideoFileSource, open_source, source_kind

pytestmark = pytest.mark.runtime

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _write_video(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    assert writer.isOpened()
    for t in range(3):
        writer.write(np.full((24, 32, 3), 50 * t, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return _write_video(tmp_path_factory.mktemp("video with space") / "clip #1.avi")


def _quoted(path: Path) -> str:
    return str(path).replace("%", "%25").replace(" ", "%20").replace("#", "%23")


@pytest.mark.parametrize("url", ["file://{path}", "file://localhost{path}", "FILE://{path}", "file://{quoted}", "file:{path}"])
def test_a_file_url_opens_its_path(video, url):
    spec = url.format(path=video, quoted=_quoted(video))
    assert source_kind(spec) == "file"
    with open_source(spec) as source:
        assert source.name == str(video) and source.read() is not None


@pytest.mark.parametrize("url, message", [
    ("file://server/share/clip.avi", "'file://server/share/clip.avi' is not a local file URL: give file:///absolute/path.mp4"),
    ("file:clip.avi", "'file:clip.avi' is not a local file URL"),
    ("file:///no/such/clip.avi", "video file '/no/such/clip.avi' does not exist"),
])
def test_a_file_url_that_names_no_local_file_says_so(url, message):
    with pytest.raises(SourceError, match="^" + re.escape(message)):
        open_source(url)


def test_a_file_really_called_file_colon_is_that_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_video(tmp_path / "file:clip.avi")
    with open_source("file:clip.avi") as source:
        assert source.name == "file:clip.avi"


@pytest.fixture
def unreadable(tmp_path) -> Path:
    path = _write_video(tmp_path / "locked.avi")
    path.chmod(0)
    if not os.access(path, os.R_OK):  # not root
        yield path
    else:
        proc_file = Path("/proc/sys/vm/compact_memory")  # write-only, even for root
        try:
            proc_file.open("rb").close()
        except PermissionError:
            yield proc_file
        except OSError:
            pytest.skip("no file here that this user cannot read")
        else:
            pytest.skip("no file here that this user cannot read")
    path.chmod(0o600)


def test_an_unreadable_file_says_it_cannot_be_read(unreadable):
    for make in (open_source, VideoFileSource):
        with pytest.raises(SourceError, match=rf"^video file '{unreadable}' cannot be read \(Permission denied\): "
                                              r"check its permissions"):
            make(str(unreadable))


@pytest.mark.parametrize("spec", ["", "   ", "\t"])
def test_an_empty_source_says_it_is_empty(spec):
    message = "^" + re.escape(f"the source is empty ({spec!r}): give a camera index such as 0")
    for make in (open_source, source_kind, VideoFileSource):
        with pytest.raises(SourceError, match=message):
            make(spec)


def _demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "demo.py"), *args], capture_output=True, text=True, timeout=120,
                          env=ENV, cwd=REPO)


@pytest.mark.parametrize("option", [["--source", ""], ["--video", ""], ["--source", " "]])
def test_the_demo_says_an_empty_source_is_empty_in_one_line(option):
    proc = _demo(*option, "--headless", "--max-frames", "2")
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(errors) == 1 and errors[0].startswith("error: the source is empty ("), proc.stderr


#: arguments, the error line argparse prints
BAD_ARGUMENTS = [
    (["--bogus-flag"], "demo.py: error: unrecognized arguments: --bogus-flag"),
    (["--headless", "extra"], "demo.py: error: unrecognized arguments: extra"),
    (["--camera", "abc"], "demo.py: error: argument --camera: invalid int value: 'abc'"),
    (["-v", "--max-frames"], "demo.py: error: argument --max-frames: expected one argument"),
]


@pytest.mark.parametrize("args, error", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_demo_py_argument_errors_show_its_own_usage(args, error):
    proc = _demo(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("usage: demo.py [-h] [--camera INDEX]") and proc.stderr.rstrip().endswith(error), proc.stderr
    assert "COMMAND" not in proc.stderr and "streamtsm" not in proc.stderr


def test_demo_py_help_is_the_demos_and_takes_verbose():
    proc = _demo("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: demo.py ") and "--verbose" in proc.stdout, proc.stdout


def test_the_streamtsm_command_names_the_subcommand_in_its_usage():
    proc = subprocess.run([sys.executable, "-m", "streamtsm.cli", "demo", "--bogus-flag"], capture_output=True, text=True,
                          timeout=120, env=ENV, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.startswith("usage: streamtsm demo [-h]"), proc.stderr
    assert proc.stderr.rstrip().endswith("streamtsm demo: error: unrecognized arguments: --bogus-flag")
