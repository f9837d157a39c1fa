"""Capture sources and the capture thread, with real threads, real files and real decoding."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamtsm.sources import (
    Backoff,
    CaptureThread,
    Frame,
    Source,
    SourceError,
    StreamSource,
    SyntheticSource,
    VideoFileSource,
    open_source,
    redact_url,
)

REPO = Path(__file__).resolve().parents[1]
#: Generous: a stop that takes longer is a hang (on a loaded 2-core box threads wake late).
STOP_DEADLINE_S = 10.0

# -- an indexed test video: 8 big black/white blocks carry the frame index in binary -------------
H, W, ROWS, COLS = 96, 128, 2, 4


def encode_index(i: int) -> np.ndarray:
    img = np.empty((H, W, 3), np.uint8)
    bh, bw = H // ROWS, W // COLS
    for bit in range(ROWS * COLS):
        r, c = divmod(bit, COLS)
        img[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = 230 if (i >> bit) & 1 else 25
    return img


def decode_index(img: np.ndarray) -> int:
    bh, bw = H // ROWS, W // COLS
    value = 0
    for bit in range(ROWS * COLS):
        r, c = divmod(bit, COLS)
        block = img[r * bh + 8 : (r + 1) * bh - 8, c * bw + 8 : (c + 1) * bw - 8]
        value |= int(block.mean() > 128) << bit
    return value


def write_video(path: Path, n: int, fps: float = 25.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for i in range(n):
        writer.write(encode_index(i))
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "indexed.mp4", 60)


# -- test sources: real classes producing real frames on the capture thread --------------------


class FastLiveSource(Source):
    """A live source that produces a frame every ``interval_s`` (like a camera) up to ``count``."""

    is_live = True

    def __init__(self, count: int, interval_s: float = 0.001) -> None:
        super().__init__("fast-live")
        self.count, self.interval_s = count, interval_s
        self.produced = 0

    def _open(self) -> None:
        pass

    def _read(self) -> Frame | None:
        if self.produced >= self.count:
            return None
        time.sleep(self.interval_s)
        frame = self._make_frame(np.full((16, 16, 3), self.produced % 256, np.uint8))
        self.produced += 1
        return frame

    def _close(self) -> None:
        pass


class BlockingSource(Source):
    """A source whose read blocks, ignoring interrupt(), until ``release`` is set (a hung driver)."""

    is_live = True

    def __init__(self) -> None:
        super().__init__("blocking")
        self.release = threading.Event()
        self.closed = threading.Event()

    def _open(self) -> None:
        pass

    def _read(self) -> Frame | None:
        self.release.wait()
        return None

    def _close(self) -> None:
        self.closed.set()


class FailingSource(Source):
    """Delivers ``good`` frames, then raises the exception it holds."""

    def __init__(self, good: int) -> None:
        super().__init__("failing")
        self.good = good
        self.error = OSError("device reset at frame %d" % good)
        self._n = 0

    def _open(self) -> None:
        pass

    def _read(self) -> Frame | None:
        if self._n == self.good:
            raise self.error
        self._n += 1
        return self._make_frame(np.zeros((16, 16, 3), np.uint8), media_time_s=self._n / 30)

    def _close(self) -> None:
        pass


# -- files --------------------------------------------------------------------------------------


def test_video_file_is_read_frame_exact_through_capture_thread(video: Path) -> None:
    assert [decode_index(encode_index(i)) for i in range(256)] == list(range(256))
    frames = []
    with CaptureThread(VideoFileSource(video), queue_size=2) as capture:
        for k, frame in enumerate(capture):
            if k % 10 == 0:
                time.sleep(0.02)  # a consumer slower than the reader: must not lose frames
            frames.append(frame)
        stats = capture.stats
    assert [decode_index(f.image) for f in frames] == list(range(60))
    assert [f.index for f in frames] == list(range(60))
    assert [f.media_time_s for f in frames] == pytest.approx([i / 25 for i in range(60)])
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 and f.label is None for f in frames)
    ts = [f.timestamp for f in frames]
    assert ts == sorted(ts)
    assert (stats.frames_read, stats.delivered, stats.dropped, stats.buffered) == (60, 60, 0, 0)


def test_file_reader_blocks_when_consumer_does_not_read(video: Path) -> None:
    capture = CaptureThread(VideoFileSource(video), queue_size=3).start()
    try:
        time.sleep(0.3)
        stats = capture.stats
        assert stats.buffered == 3 and stats.dropped == 0
        assert stats.frames_read == 3  # the frame the blocked reader holds is not counted until handed on
        assert decode_index(capture.get(timeout=1).image) == 0
    finally:
        assert capture.stop(timeout=STOP_DEADLINE_S) is True


def test_looping_file_continues_indices_and_media_time(video: Path) -> None:
    source = VideoFileSource(video, loop=True).open()
    try:
        frames = [source.read() for _ in range(150)]
    finally:
        source.close()
    assert [decode_index(f.image) for f in frames] == [i % 60 for i in range(150)]
    assert [f.index for f in frames] == list(range(150))
    assert [f.media_time_s for f in frames] == pytest.approx([i / 25 for i in range(150)])


def test_realtime_file_is_paced_to_its_frame_rate(tmp_path: Path) -> None:
    path = write_video(tmp_path / "fast.mp4", 16, fps=50)
    t0 = time.monotonic()
    with CaptureThread(VideoFileSource(path, realtime=True)) as capture:
        frames = list(capture)
    elapsed = time.monotonic() - t0
    assert len(frames) == 16
    assert elapsed >= 0.9 * 15 / 50
    spans = frames[-1].timestamp - frames[0].timestamp
    assert spans == pytest.approx(15 / 50, abs=0.1)


# -- live sources -------------------------------------------------------------------------------


def test_slow_consumer_on_live_source_gets_latest_frames_and_drops_are_counted() -> None:
    source = FastLiveSource(count=400, interval_s=0.001)
    lags = []
    delivered = []
    with CaptureThread(source) as capture:
        while (frame := capture.get(timeout=2)) is not None:
            lags.append(source.produced - 1 - frame.index)
            delivered.append(frame.index)
            time.sleep(0.01)
        stats = capture.stats
    assert stats.frames_read == 400
    assert stats.dropped == stats.frames_read - stats.delivered
    assert stats.dropped > 100 and stats.delivered == len(delivered)
    assert delivered == sorted(delivered) and delivered[-1] == 399  # the last frame is never lost
    assert float(np.median(lags)) <= 1.0  # what we get is the newest frame, not a stale one


def test_skip_unprepared_hands_over_only_the_frames_prepare_keeps() -> None:
    # prepare() keeps every third frame, fails on frame 9 (a failure is handed over unprepared,
    # for the consumer to report) and returns None for the rest (skipped, counted, never handed over)
    def prepare(frame: Frame) -> np.ndarray | None:
        if frame.index == 9:
            raise ValueError("cannot prepare frame 9")
        return frame.image[:4, :4] if frame.index % 3 == 0 else None

    source = SyntheticSource(seed=2, duration_s=2.0, fps=15, size=(48, 64), realtime=False)
    with CaptureThread(source, prepare=prepare, skip_unprepared=True) as capture:
        frames = list(capture)
        stats = capture.stats
    assert [f.index for f in frames] == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]
    assert [f.prepared is None for f in frames] == [False] * 3 + [True] + [False] * 6
    assert (stats.frames_read, stats.delivered, stats.skipped, stats.dropped) == (30, 10, 20, 0)
    with pytest.raises(ValueError, match="needs prepare"):
        CaptureThread(source, skip_unprepared=True)


def test_without_skipping_unprepared_frames_are_handed_over_too() -> None:
    source = SyntheticSource(seed=2, duration_s=1.0, fps=15, size=(48, 64), realtime=False)
    with CaptureThread(source, prepare=lambda f: None) as capture:
        frames = list(capture)
    assert len(frames) == 15 and all(f.prepared is None for f in frames) and capture.stats.skipped == 0


def test_a_frame_read_while_stopping_is_not_counted_so_the_counters_balance() -> None:
    # A queue-fed reader is preparing frame 2 when stop() comes: that frame is never handed over,
    # so it must not count as read (frames_read == delivered + dropped + buffered + skipped).
    stopping = threading.Event()

    class Queued(FastLiveSource):
        is_live = False

        def interrupt(self) -> None:  # stop() interrupts the source: the test's signal
            stopping.set()
            super().interrupt()

    def prepare(frame: Frame) -> np.ndarray:
        if frame.index == 2:
            stopping.wait(STOP_DEADLINE_S)  # returns once stop() has begun
        return frame.image[:4, :4]

    capture = CaptureThread(Queued(count=10), prepare=prepare, queue_size=8).start()
    deadline = time.monotonic() + 10
    while capture.stats.buffered < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert capture.stop(timeout=STOP_DEADLINE_S) is True
    stats = capture.stats
    assert (stats.frames_read, stats.buffered, stats.delivered, stats.dropped, stats.skipped) == (2, 2, 0, 0, 0)


def test_synthetic_source_delivers_script_frames_and_labels() -> None:
    from streamtsm.synthetic import GestureScript

    script = GestureScript(3, duration_s=4.0, size=(96, 128), fps=15)
    source = SyntheticSource(seed=3, duration_s=4.0, fps=15, size=(96, 128), realtime=False)
    assert not source.is_live
    with CaptureThread(source) as capture:
        frames = list(capture)
    assert len(frames) == script.num_frames == 60
    for f in frames[::7]:
        np.testing.assert_array_equal(f.image, script.frame_at(f.index))
        assert f.label == script.label_at(f.index / 15)
        assert f.media_time_s == pytest.approx(f.index / 15)
    assert {f.label for f in frames} >= {"no_motion"}


def test_synthetic_realtime_source_is_live_and_drops_for_slow_consumer() -> None:
    source = open_source("synthetic:1", duration_s=1.0, fps=30, size=(96, 128))
    assert isinstance(source, SyntheticSource) and source.is_live and source.seed == 1
    t0 = time.monotonic()
    with CaptureThread(source) as capture:
        frames = []
        while (frame := capture.get(timeout=2)) is not None:
            frames.append(frame)
            time.sleep(0.1)
        stats = capture.stats
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.9  # paced in real time
    assert stats.frames_read == 30
    assert 5 <= stats.delivered <= 15
    assert stats.dropped == stats.frames_read - stats.delivered


# -- stopping -----------------------------------------------------------------------------------


def test_stop_is_prompt_when_consumer_does_not_read(video: Path) -> None:
    for source in (VideoFileSource(video), SyntheticSource(duration_s=30, size=(96, 128)), FastLiveSource(10**6)):
        capture = CaptureThread(source).start()
        time.sleep(0.15)
        assert capture.stop(timeout=STOP_DEADLINE_S) is True, source
        assert capture.get() is None  # after stop: end of stream, no hang
        assert not capture.stats.running


def test_stop_interrupts_a_slow_paced_source(tmp_path: Path) -> None:
    path = write_video(tmp_path / "slow.mp4", 4, fps=0.2)  # next frame due in 5 s
    source = VideoFileSource(path, realtime=True)
    capture = CaptureThread(source).start()
    assert capture.get(timeout=STOP_DEADLINE_S) is not None
    assert source.fps == pytest.approx(0.2)
    t0 = time.monotonic()
    assert capture.stop(timeout=STOP_DEADLINE_S) is True
    assert time.monotonic() - t0 < 4.0  # it did not wait out the 5 s until the next frame


def test_stop_returns_within_a_second_when_the_source_blocks() -> None:
    source = BlockingSource()
    capture = CaptureThread(source).start()
    with pytest.raises(TimeoutError):
        capture.get(timeout=0.1)
    t0 = time.monotonic()
    assert capture.stop(timeout=0.5) is False  # the read is stuck; stop() does not wait for it
    assert time.monotonic() - t0 < STOP_DEADLINE_S
    assert capture.get() is None
    source.release.set()  # the driver finally returns: the thread ends and closes the source
    assert source.closed.wait(2.0)


# -- errors -------------------------------------------------------------------------------------


def test_source_error_mid_stream_reaches_the_consumer_with_its_cause() -> None:
    source = FailingSource(good=5)
    with CaptureThread(source) as capture:
        got = [capture.get(timeout=2) for _ in range(5)]
        assert all(isinstance(f, Frame) for f in got)
        with pytest.raises(SourceError, match="device reset at frame 5") as info:
            capture.get(timeout=2)
        assert info.value.__cause__ is source.error
        with pytest.raises(SourceError):  # stays raised: cannot be mistaken for end of stream
            capture.get(timeout=2)
        assert "device reset" in capture.stats.last_error


def test_nonexistent_file(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_video.mp4"
    with pytest.raises(SourceError, match="no_such_video.mp4.*does not exist"):
        open_source(str(missing))
    with pytest.raises(SourceError, match="not a file"):
        open_source(str(tmp_path))


def test_file_that_is_not_a_video(tmp_path: Path) -> None:
    bogus = tmp_path / "x.mp4"
    bogus.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(SourceError, match=r"x\.mp4.*(could not be opened|no frame could be decoded)"):
        open_source(bogus)


def test_camera_that_cannot_be_opened() -> None:
    with pytest.raises(SourceError) as info:
        open_source(99)
    message = str(info.value)
    assert "camera index 99" in message and "/dev/video" in message and "synthetic" in message
    with pytest.raises(SourceError, match="camera index 98"):
        open_source("98")


def test_stream_url_that_fails_to_open_is_reported_with_password_redacted() -> None:
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        open_source("rtsp://admin:hunter2@127.0.0.1:1/stream", open_timeout_s=2)
    assert time.monotonic() - t0 < 5
    assert "hunter2" not in str(info.value) and "127.0.0.1:1" in str(info.value)
    assert redact_url("http://u:p@h/x") == "http://u:***@h/x" and redact_url("http://h/x") == "http://h/x"


def test_bad_synthetic_specs() -> None:
    with pytest.raises(SourceError, match="integer"):
        open_source("synthetic:abc")
    with pytest.raises(SourceError, match="synthetic"):
        open_source("synthetic", size=(2, 2))


# -- stream outage and reconnect ----------------------------------------------------------------


def test_stream_outage_reconnects_with_backoff_and_counts(video: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A file path given to the FFmpeg backend is a stream that ends: every end is an outage."""
    caplog.set_level(logging.INFO, logger="streamtsm.sources")
    source = StreamSource(str(video), backoff=Backoff(initial_s=0.01, max_s=0.05))
    with CaptureThread(source, latest_only=False) as capture:
        frames = [capture.get(timeout=5) for _ in range(150)]
        stats = capture.stats
    assert [decode_index(f.image) for f in frames] == [i % 60 for i in range(150)]
    assert [f.index for f in frames] == list(range(150))
    assert stats.reconnects == 2 and source.outages == 2
    assert "read failed" in caplog.text and "reconnected" in caplog.text


def test_stream_down_for_good_gives_up_after_max_attempts(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.mp4", 5)
    source = StreamSource(str(path), backoff=Backoff(initial_s=0.01, factor=2, max_s=0.05, max_attempts=3))
    with CaptureThread(source, latest_only=False) as capture:
        assert [decode_index(capture.get(timeout=5).image) for _ in range(5)] == list(range(5))
        path.unlink()  # the "server" is gone
        with pytest.raises(SourceError, match="3 reconnect attempts failed") as info:
            capture.get(timeout=5)
        assert isinstance(info.value.__cause__, SourceError)
        assert capture.stats.reconnects == 0 and "is down" in capture.stats.last_error


# -- dependency rule ----------------------------------------------------------------------------


def test_runtime_modules_work_without_torch(video: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        import numpy as np
        from streamtsm.card import Preprocessing
        from streamtsm.sources import CaptureThread, open_source
        from streamtsm.preprocess import FramePreprocessor
        from streamtsm.postprocess import PostProcessor
        pre = FramePreprocessor(Preprocessing(crop_size=64, resize_short=72))
        post = PostProcessor(["idle", "wave"], background=["idle"])
        n = 0
        for spec in ({str(video)!r}, "synthetic:0"):
            kw = {{}} if spec.endswith(".mp4") else dict(duration_s=1.0, size=(96, 128), realtime=False)
            with CaptureThread(open_source(spec, **kw)) as capture:
                for frame in capture:
                    x = pre(frame.image)
                    post.step(np.array([x.mean(), -x.mean()]), frame.timestamp, frame.index)
                    n += 1
        assert sys.modules["torch"] is None
        print("frames", n)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "frames 90" in result.stdout
