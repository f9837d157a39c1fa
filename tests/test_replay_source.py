"""The replay source: pre-rendered frames as a paced live camera (the multi-stream benchmark's input)."""

from __future__ import annotations

import numpy as np
import pytest

from streamtsm.sources import ReplaySource, SourceError

pytestmark = pytest.mark.runtime


def test_replay_source_loops_its_frames_paced_and_ends_after_its_duration():
    frames = [np.full((4, 6, 3), i, np.uint8) for i in range(3)]
    with ReplaySource(frames, fps=100.0, duration_s=0.07) as src:
        got = list(src)
    assert [int(f.image[0, 0, 0]) for f in got] == [0, 1, 2, 0, 1, 2, 0]
    assert [round(f.media_time_s, 2) for f in got] == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06]
    with pytest.raises(SourceError, match="at least one frame"):
        ReplaySource([])
    with pytest.raises(SourceError, match="fps > 0"):
        ReplaySource(frames, fps=0)
