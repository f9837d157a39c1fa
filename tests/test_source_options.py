"""A misspelled source option is refused by ``open_source`` with the closest name and the options
that kind of source takes, instead of reaching the constructor as a bare TypeError
(``SyntheticSource.__init__() got an unexpected keyword argument 'max_frame'``).

Nothing is opened before the check: the camera and stream cases need no camera and no server.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from streamtsm.sources import (CameraSource, PerformerSource, SourceError, StreamSource, SyntheticSource,
                               VideoFileSource, open_source, source_options)

pytestmark = pytest.mark.runtime


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    for t in range(4):
        writer.write(np.full((24, 32, 3), 40 * t, np.uint8))
    writer.release()
    return str(path)


#: spec ({video}: the file above), options, the whole message
CASES = [
    ("{video}", {"realtim": True},
     "unknown source option 'realtim' for a file (did you mean 'realtime'?): a file takes realtime, loop"),
    ("{video}", {"loops": True}, "unknown source option 'loops' for a file (did you mean 'loop'?): a file takes realtime, loop"),
    ("{video}", {"fps": 5}, "unknown source option 'fps' for a file: a file takes realtime, loop"),
    ("{video}", {"path": "other.avi"},
     "source option 'path' does not apply to a file (the path is the spec itself): a file takes realtime, loop"),
    ("synthetic", {"max_frame": 3}, "unknown source option 'max_frame' for the synthetic source: the synthetic source takes "
     "duration_s, fps, size, realtime, split, labels"),
    ("synthetic:2", {"duration": 3}, "unknown source option 'duration' for the synthetic source (did you mean 'duration_s'?): "
     "the synthetic source takes duration_s, fps, size, realtime, split, labels"),
    ("synthetic", {"seed": 3}, "source option 'seed' does not apply to the synthetic source (the seed is part of the spec, "
     "as in 'synthetic:3'): the synthetic source takes duration_s, fps, size, realtime, split, labels"),
    ("synthetic:performer", {"realtme": False}, "unknown source option 'realtme' for the synthetic performer (did you mean "
     "'realtime'?): the synthetic performer takes fps, size, realtime, first_take"),
    ("synthetic:performer:test", {"split": "train"}, "source option 'split' does not apply to the synthetic performer (the "
     "split is part of the spec, as in 'synthetic:performer:test'): the synthetic performer takes fps, size, realtime, first_take"),
    ("0", {"widht": 640}, "unknown source option 'widht' for a camera (did you mean 'width'?): a camera takes width, height, "
     "fps, max_failed_reads"),
    (3, {"max_failed_read": 2}, "unknown source option 'max_failed_read' for a camera (did you mean 'max_failed_reads'?): a "
     "camera takes width, height, fps, max_failed_reads"),
    ("rtsp://127.0.0.1:1/cam", {"open_timeout": 2}, "unknown source option 'open_timeout' for a stream (did you mean "
     "'open_timeout_s'?): a stream takes backoff, open_timeout_s, read_timeout_s"),
    ("http://127.0.0.1:1/video.mjpg", {"realtime": True},
     "unknown source option 'realtime' for a stream: a stream takes backoff, open_timeout_s, read_timeout_s"),
]


@pytest.mark.parametrize("spec, options, message", CASES, ids=[f"{c[0]}-{next(iter(c[1]))}" for c in CASES])
def test_a_misspelled_source_option_names_the_closest_and_all_it_takes(video, spec, options, message):
    spec = spec.format(video=video) if isinstance(spec, str) else spec
    with pytest.raises(SourceError) as info:
        open_source(spec, **options)
    assert str(info.value) == message


@pytest.mark.parametrize("cls, names", [
    (VideoFileSource, ("realtime", "loop")),
    (SyntheticSource, ("duration_s", "fps", "size", "realtime", "split", "labels")),
    (PerformerSource, ("fps", "size", "realtime", "first_take")),
    (CameraSource, ("width", "height", "fps", "max_failed_reads")),
    (StreamSource, ("backoff", "open_timeout_s", "read_timeout_s")),
])
def test_source_options_are_the_constructor_keywords_the_spec_does_not_fill(cls, names):
    assert source_options(cls) == names


def test_right_options_still_reach_the_source(video):
    with open_source(video, realtime=False, loop=False) as source:
        assert source.read() is not None and not source.loop
    with open_source("synthetic:4", duration_s=1.0, fps=10.0, size=(48, 64), realtime=False) as source:
        frame = source.read()
        assert frame is not None and frame.image.shape == (48, 64, 3)


def test_the_recognizer_run_gives_the_same_message():
    from streamtsm import Recognizer

    with Recognizer() as rec:  # the embedded default model on ONNX Runtime: no torch
        with pytest.raises(SourceError, match=r"^unknown source option 'realtim' for the synthetic source \(did you mean "
                                              r"'realtime'\?\): the synthetic source takes duration_s"):
            next(rec.run("synthetic", realtim=False))
        assert next(rec.run("synthetic", realtime=False, duration_s=2.0), None) is not None  # still usable afterwards
