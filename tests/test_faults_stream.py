"""Source faults, injected for real: a loopback MJPEG camera that loses power and comes back,
a video file cut in the middle, a camera index that does not exist.

The stream tests run OpenCV's FFmpeg backend against :mod:`tests.mjpeg_server` over real
sockets on 127.0.0.1; nothing is simulated in Python.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mjpeg_server import HEIGHT, WIDTH, MjpegServer, decode_index, encode_index  # noqa: E402
from zoo_server import SilentServer  # noqa: E402

from streamtsm.sources import (Backoff, CaptureThread, OpenStopped, SourceError, StreamSource, VideoFileSource,  # noqa: E402
                               open_source)
from streamtsm.sampling import ResetReason  # noqa: E402
from fakes import FakeOnlineEngine, fake_card  # noqa: E402

pytestmark = pytest.mark.runtime

FAST_BACKOFF = Backoff(initial_s=0.1, factor=2.0, max_s=0.4)


def stream_source(server: MjpegServer, backoff: Backoff = FAST_BACKOFF) -> StreamSource:
    return StreamSource(server.url, backoff=backoff, open_timeout_s=2.0, read_timeout_s=2.0)


def get_frames(capture: CaptureThread, n: int, timeout_s: float = 10.0) -> list:
    """n frames from the capture thread, waiting through outages (TimeoutError = nothing yet)."""
    frames, deadline = [], time.monotonic() + timeout_s
    while len(frames) < n:
        assert time.monotonic() < deadline, f"only {len(frames)}/{n} frames within {timeout_s} s"
        try:
            frame = capture.get(timeout=0.2)
        except TimeoutError:
            continue
        assert frame is not None, "the stream ended instead of reconnecting"
        frames.append(frame)
    return frames


# -- the test server itself ---------------------------------------------------------------------


def test_opencv_ffmpeg_reads_the_loopback_mjpeg_stream_frame_exact() -> None:
    with MjpegServer(fps=60) as server:
        cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000])
        try:
            assert cap.isOpened(), f"FFmpeg could not open {server.url}"
            assert cap.getBackendName() == "FFMPEG"
            images = [cap.read()[1] for _ in range(20)]
        finally:
            cap.release()
    assert all(img is not None and img.shape == (HEIGHT, WIDTH, 3) for img in images)
    indices = [decode_index(img) for img in images]
    assert indices == list(range(indices[0], indices[0] + 20)), indices  # in order, none lost
    # JPEG keeps the colour channel: B/G carry the bits, R is constant
    assert abs(float(images[0][..., 2].mean()) - 120) < 12


def test_server_restarts_on_the_same_port_and_refuses_while_down() -> None:
    with MjpegServer(fps=60) as server:
        port = server.port
        server.stop()
        cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 1000])
        assert not cap.isOpened()
        cap.release()
        server.start()
        assert server.port == port
        cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000])
        ok, _ = cap.read()
        cap.release()
        assert ok


# -- stream outage: the source reports it, backs off, reconnects ---------------------------------


def test_stream_source_reports_outage_backs_off_and_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamtsm.sources")
    with MjpegServer(fps=30) as server:
        source = stream_source(server)
        with CaptureThread(source) as capture:
            before = get_frames(capture, 15)
            server.stop()  # power cut: listening socket and the open stream close now
            t_down = time.monotonic()
            # while down: no frame, no error, the thread keeps trying
            with pytest.raises(TimeoutError):
                while True:
                    capture.get(timeout=1.5)  # may first return a frame buffered before the cut
            assert capture.stats.running and capture.stats.reconnects == 0
            assert source.outages == 1 and "could not open" in (capture.stats.last_error or "")
            sent_before_restart = server.frames_sent
            server.start()
            after = get_frames(capture, 15)
            t_back = after[0].timestamp
            stats = capture.stats

    assert stats.reconnects == 1 and source.outages == 1
    # frames before and after are in order; after the restart they are new parts, not replays
    idx_before = [decode_index(f.image) for f in before]
    idx_after = [decode_index(f.image) for f in after]
    assert idx_before == sorted(idx_before) and idx_after == sorted(idx_after)
    assert min(idx_after) >= sent_before_restart
    assert [f.index for f in before + after] == sorted(f.index for f in before + after)
    assert t_back - t_down >= 1.5
    # backoff: attempts were logged with growing delays, capped at max_s
    delays = [float(d) for d in re.findall(r"reconnect attempt \d+ in ([0-9.]+) s", caplog.text)]
    assert len(delays) >= 3, caplog.text
    assert delays[:3] == [0.1, 0.2, 0.4] and max(delays) <= 0.4
    assert "read failed" in caplog.text and "reconnected after" in caplog.text


def test_stream_down_for_good_raises_clear_error_to_the_consumer() -> None:
    with MjpegServer(fps=30) as server:
        source = stream_source(server, Backoff(initial_s=0.05, factor=2.0, max_s=0.1, max_attempts=3))
        with CaptureThread(source) as capture:
            get_frames(capture, 5)
            server.close()
            with pytest.raises(SourceError, match=r"is down: 3 reconnect attempts failed") as info:
                get_frames(capture, 1000, timeout_s=10)
            assert "127.0.0.1" in str(info.value)
            assert not capture.stats.running


def test_stop_during_reconnect_backoff_is_prompt() -> None:
    with MjpegServer(fps=30) as server:
        source = stream_source(server, Backoff(initial_s=5.0, factor=1.0, max_s=5.0))
        capture = CaptureThread(source).start()
        get_frames(capture, 3)
        server.stop()
        time.sleep(0.3)  # the thread is now waiting out a 5 s backoff
        t0 = time.monotonic()
        assert capture.stop(timeout=10.0)
        assert time.monotonic() - t0 < 4.0  # interrupted: it did not wait out the 5 s backoff
        assert not source.is_open  # released


# -- a host that accepts and never answers: FFmpeg's open blocks in C for open_timeout_s -------

NEVER_S = 20.0  # an open timeout no test waits out: stopping must end the wait long before it


def set_later(event, delay_s: float = 0.3) -> threading.Timer:
    timer = threading.Timer(delay_s, event.set)
    timer.start()
    return timer


def test_interrupt_cuts_short_an_open_that_gets_no_answer() -> None:
    with SilentServer() as silent:
        source = StreamSource(silent.url, open_timeout_s=NEVER_S)
        threading.Timer(0.3, source.interrupt).start()
        t0 = time.monotonic()
        with pytest.raises(OpenStopped, match="opening stream http://127.0.0.1:[0-9]+ was stopped"):
            source.open()
        assert time.monotonic() - t0 < NEVER_S / 2 and not source.is_open


def test_a_runs_stop_event_ends_it_while_a_stream_is_still_opening() -> None:
    """Before, run() sat in cv2.VideoCapture for the whole open timeout whatever its stop_event said
    (and a Ctrl-C waited for it too: Python runs signal handlers between bytecodes, not inside C)."""
    from streamtsm import MultiRecognizer
    from streamtsm.recognizer import Recognizer

    with SilentServer() as silent:
        for name, loop in [
            ("Recognizer", lambda stop: list(Recognizer(small_online_model()).iter_frames(
                StreamSource(silent.url, open_timeout_s=NEVER_S), stop_event=stop))),
            ("MultiRecognizer", lambda stop: list(MultiRecognizer(small_online_model(), max_streams=2).iter_frames(
                {"cam": StreamSource(silent.url, open_timeout_s=NEVER_S)}, stop_event=stop))),
        ]:
            stop = threading.Event()
            set_later(stop)
            t0 = time.monotonic()
            assert loop(stop) == [], name  # ends quietly: nothing failed, the caller stopped
            assert time.monotonic() - t0 < NEVER_S / 2, name


def test_a_host_that_never_answers_is_named_as_such() -> None:
    with SilentServer() as silent:
        t0 = time.monotonic()
        with pytest.raises(SourceError, match=r"did not answer within 1 s \(open_timeout_s\)"):
            StreamSource(silent.url, open_timeout_s=1.0).open()
        assert time.monotonic() - t0 >= 0.9  # it did wait for an answer


# -- the Recognizer over a stream that restarts ------------------------------------------------


def small_online_model(seed: int = 0) -> FakeOnlineEngine:
    """A numpy fake engine (tests/fakes.py) at 64 px and 30 fps whose logits depend on each frame
    and on the carried state, so a missed or spurious reset shows in the predictions."""
    return FakeOnlineEngine(fake_card(crop=64, resize=72, fps=30.0, classes=("a", "b", "c", "d", "e"), background=()),
                            seed=seed)


def test_recognizer_resets_state_on_reconnect_and_goes_on() -> None:
    from streamtsm.recognizer import Recognizer

    model = small_online_model()
    rec = Recognizer(model, smoothing=1)  # per-frame probabilities, so state effects show
    with MjpegServer(fps=30) as server:
        source = stream_source(server)
        seen: list = []  # (frame, prediction)
        cut_at = restart_timer = None
        for frame, prediction in rec.iter_frames(source, max_frames=60):
            seen.append((frame, prediction))
            if len(seen) == 20 and cut_at is None:
                cut_at = len(seen)
                resets_before = rec.reset_counts[ResetReason.RECONNECT]
                server.stop()
                restart_timer = threading.Timer(0.6, server.start)
                restart_timer.start()
        if restart_timer is not None:
            restart_timer.join()
    assert len(seen) == 60, "the Recognizer stopped instead of going on after the reconnect"
    stats = rec.capture_stats
    assert stats is not None and stats.reconnects == 1
    assert rec.reset_counts[ResetReason.RECONNECT] > resets_before  # the reconnect reset the stream state
    # The first prediction after the reconnect is computed from zero state: it equals what a
    # fresh Recognizer says about that frame alone.
    # (frames of the old connection read before it closed still come first: select by segment)
    old_segment = seen[cut_at - 1][0].segment
    first_after = next((f, p) for f, p in seen[cut_at:] if p is not None and f.segment > old_segment)
    fresh = Recognizer(model, smoothing=1)
    expected = fresh.push(first_after[0].image, 0.0)
    assert expected is not None
    np.testing.assert_allclose(first_after[1].probabilities, expected.probabilities, rtol=1e-4, atol=1e-6)
    # ...and the prediction just before the cut was not stateless (so the check above can fail)
    last_before = [p for _, p in seen[:cut_at] if p is not None][-1]
    fresh2 = Recognizer(model, smoothing=1)
    alone = fresh2.push(seen[cut_at - 1][0].image, 0.0)
    assert not np.allclose(last_before.probabilities, alone.probabilities, rtol=1e-4, atol=1e-6)
    assert not source.is_open  # released when the run ended


# -- truncated video file ---------------------------------------------------------------------


def write_indexed_video(path: Path, n: int, fourcc: str) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25.0, (WIDTH, HEIGHT))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
    for i in range(n):
        writer.write(encode_index(i))
    writer.release()
    return path


def truncate_half(path: Path) -> int:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return len(data)


def test_truncated_avi_delivers_the_decodable_prefix_then_ends(tmp_path: Path) -> None:
    path = write_indexed_video(tmp_path / "cut.avi", 100, "MJPG")
    truncate_half(path)
    with CaptureThread(VideoFileSource(path)) as capture:
        frames = list(capture)
        stats = capture.stats
    indices = [decode_index(f.image) for f in frames]
    assert 20 <= len(indices) < 100  # about half the file decodes
    assert indices == list(range(len(indices)))  # every decoded frame, in order, none invented
    assert stats.last_error is None and stats.delivered == len(frames)


def test_truncated_mp4_without_index_is_a_clear_error(tmp_path: Path) -> None:
    path = write_indexed_video(tmp_path / "cut.mp4", 100, "mp4v")  # moov atom at the end: cut off
    truncate_half(path)
    with pytest.raises(SourceError, match=r"could not be opened as a video.*re-encode"):
        open_source(str(path))


def test_truncated_file_through_the_recognizer_uses_every_decoded_frame(tmp_path: Path) -> None:
    from streamtsm.recognizer import Recognizer

    path = write_indexed_video(tmp_path / "cut.avi", 60, "MJPG")
    truncate_half(path)
    rec = Recognizer(small_online_model())
    pairs = list(rec.iter_frames(str(path)))
    assert 10 <= len(pairs) < 60
    assert [decode_index(f.image) for f, _ in pairs] == list(range(len(pairs)))
    # a 25 fps file sampled to the card's 30 fps: every frame is a model step
    assert all(p is not None for _, p in pairs)


# -- camera index that does not exist ---------------------------------------------------------


def test_missing_camera_index_lists_what_to_try() -> None:
    with pytest.raises(SourceError) as info:
        open_source("57")
    message = str(info.value)
    assert "camera index 57" in message
    assert "/dev/video" in message and "--source synthetic" in message and "another index" in message


def test_missing_camera_through_recognizer_run_is_the_same_clear_error() -> None:
    from streamtsm.recognizer import Recognizer

    rec = Recognizer(small_online_model())
    with pytest.raises(SourceError, match=r"could not open camera index 57.*--source synthetic"):
        next(iter(rec.run(57)))
    # the Recognizer is usable afterwards (the failed run released its claim)
    assert next(iter(rec.run("synthetic", realtime=False, max_frames=3)), None) is not None
