"""MultiRecognizer: batched streams give exactly what separate Recognizers give, stream by stream."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fakes import FakeClipEngine, FakeOnlineEngine, fake_card
from streamtsm import MultiRecognizer, Recognizer
from streamtsm.backends.base import BackendError
from streamtsm.multi import MultiRecognizerError
from streamtsm.preprocess import FrameError
from streamtsm.sampling import ResetReason
from streamtsm.sources import Source, SourceError, SyntheticSource

pytestmark = pytest.mark.runtime


def _stream(seed: int, fps: float, seconds: float, start_s: float, gap_at: int | None = None, restart_at: int | None = None):
    """(timestamp, frame) of a synthetic camera: own seed and rate, starting at ``start_s`` on a
    shared clock; ``gap_at``: 2 s of frames missing from there; ``restart_at``: the camera's
    clock starts again from 0 there (time goes backwards)."""
    with SyntheticSource(seed=seed, duration_s=seconds + 1, fps=fps, size=(120, 160), realtime=False) as source:
        frames = [f.image for _, f in zip(range(int(seconds * fps)), source)]
    out, t = [], start_s
    for i, image in enumerate(frames):
        if i == gap_at:
            t += 2.0
        if i == restart_at:
            t = 0.0
        out.append((t, image))
        t += 1.0 / fps
    return out


STREAMS = {
    "front": dict(seed=11, fps=30.0, seconds=4.0, start_s=0.0),
    "left": dict(seed=12, fps=25.0, seconds=4.0, start_s=0.37, gap_at=40),
    "right": dict(seed=13, fps=15.0, seconds=4.0, start_s=1.1),
    "back": dict(seed=14, fps=20.0, seconds=4.0, start_s=0.05, restart_at=50),
}


def _ticks(streams: dict[str, list]) -> list[dict[str, tuple[np.ndarray, float]]]:
    """Interleave by arrival on the wall clock (not the cameras' own clocks, which jump), in 1/30 s
    ticks: the frames that arrive in one tick are due together."""
    ticks: dict[int, dict] = {}
    for sid, frames in streams.items():
        spec = STREAMS[sid]
        for i, (ts, img) in enumerate(frames):
            ticks.setdefault(int((spec["start_s"] + i / spec["fps"]) * 30), {})[sid] = (img, ts)
    return [ticks[k] for k in sorted(ticks)]


def _same(a, b) -> None:
    assert (a is None) == (b is None)
    if a is not None:
        assert (a.frame_index, a.timestamp, a.label, a.current) == (b.frame_index, b.timestamp, b.label, b.current)
        assert (a.reset and a.reset.reason) == (b.reset and b.reset.reason)
        assert [(e.kind, e.label) for e in a.events] == [(e.kind, e.label) for e in b.events]
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=0, atol=1e-4)


@pytest.mark.parametrize("state", ["pool", "arrays"])
def test_batched_streams_equal_separate_recognizers_frame_by_frame(state):
    streams = {sid: _stream(**spec) for sid, spec in STREAMS.items()}
    multi = MultiRecognizer(max_streams=4, state=state)  # the embedded default model on ONNX Runtime
    single = {sid: Recognizer(multi.engine) for sid in streams}
    compared = batched = 0
    for tick in _ticks(streams):
        got = multi.push_many(tick)
        for sid, (image, ts) in tick.items():
            expected = single[sid].push(image, ts)
            _same(got[sid], expected)
            compared += got[sid] is not None
        batched = max(batched, sum(p is not None for p in got.values()))
    assert compared > 120 and batched >= 2  # many predictions, and some really ran as one batch
    assert multi.batched_frames == compared and multi.batches < compared
    assert multi.reset_counts("left")[ResetReason.GAP] == 1
    assert multi.reset_counts("back")[ResetReason.TIME_REVERSAL] == 1
    assert all(multi.reset_counts(s)[ResetReason.GAP] == 0 for s in ("front", "right", "back"))


def _fake_multi(**kw) -> tuple[MultiRecognizer, FakeOnlineEngine]:
    engine = kw.pop("engine", None) or FakeOnlineEngine(fake_card(fps=10.0))
    return MultiRecognizer(engine, **kw), engine


def _img(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)


def test_push_is_the_one_entry_case_and_unknown_ids_are_added_until_max_streams():
    multi, engine = _fake_multi(max_streams=2)
    single = Recognizer(engine)
    _same(multi.push("a", _img(0), 0.0), single.push(_img(0), 0.0))
    multi.push("b", _img(1), 0.0)
    assert multi.stream_ids == ["a", "b"]
    with pytest.raises(MultiRecognizerError, match="max_streams=2"):
        multi.push("c", _img(2), 0.0)
    assert multi.stream_ids == ["a", "b"]  # the refused stream left nothing behind
    multi.remove_stream("a")
    multi.push("c", _img(2), 0.0)
    assert sorted(multi.stream_ids) == ["b", "c"]


def test_an_engine_failure_changes_no_stream():
    clean, _ = _fake_multi(max_streams=3)
    dirty, _ = _fake_multi(max_streams=3, engine=FakeOnlineEngine(fake_card(fps=10.0), fail_on_step=2))
    for t in range(5):
        tick = {sid: (_img(10 * t + k), t * 0.1) for k, sid in enumerate("xyz")}
        expected = clean.push_many(tick)
        if t == 2:
            with pytest.raises(BackendError, match="injected"):
                dirty.push_many(tick)
        got = dirty.push_many(tick)
        for sid in tick:
            _same(got[sid], expected[sid])


def test_a_bad_frame_names_its_stream():
    multi, _ = _fake_multi(max_streams=2)
    with pytest.raises(FrameError, match="stream 'cam-2'"):
        multi.push_many({"cam-1": (_img(0), 0.0), "cam-2": (None, 0.0)})


@pytest.mark.parametrize("call, message", [
    (lambda m: m.push_many([("cam-2", (_img(0), 0.0))]), r"push_many takes a mapping \{stream_id: \(frame, timestamp\)\}, got a list"),
    (lambda m: m.push_many({"cam-2": _img(0)}), r"stream 'cam-2': push_many takes \(frame, timestamp\) pairs, got a ndarray"),
    (lambda m: m.push_many({"cam-2": np.stack([_img(0), _img(1)])}), r"stream 'cam-2': .* pairs, got a ndarray; give \(frame, None\)"),
    (lambda m: m.push_many({"cam-2": None}), r"stream 'cam-2': .* pairs, got a NoneType"),
    (lambda m: m.push_many({"cam-2": (_img(0), 0.0, 1)}), r"stream 'cam-2': .* pairs, got a tuple"),
    (lambda m: m.push_many({"cam-1": (_img(0), 0.1), "cam-2": (_img(0),)}), r"stream 'cam-2': .* pairs, got a tuple"),
])
def test_a_malformed_push_many_says_what_it_takes_and_changes_no_stream(call, message):
    multi, _ = _fake_multi(max_streams=3)
    multi.push("cam-1", _img(0), 0.0)
    before = [r.copy() for r in multi.state_rows("cam-1")]
    with pytest.raises(TypeError, match=message):
        call(multi)
    assert multi.stream_ids == ["cam-1"]  # no stream added
    for a, b in zip(multi.state_rows("cam-1"), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make, options, message", [
    (Recognizer, {"smoothin": 3}, "unknown option 'smoothin' (did you mean 'smoothing'?)"),
    (Recognizer, {"thread": 1}, "unknown option 'thread' (did you mean 'threads'?)"),
    (Recognizer, {"zzz": 1}, "unknown option 'zzz': the options are smoothing, "),
    (lambda **kw: MultiRecognizer(max_streams=2, **kw), {"lane": 2}, "unknown option 'lane' (did you mean 'lanes'?)"),
    (lambda **kw: MultiRecognizer(max_streams=2, **kw), {"start_treshold": 0.5},
     "unknown option 'start_treshold' (did you mean 'start_threshold'?)"),
])
def test_a_misspelled_option_is_named_with_the_closest_one(make, options, message):
    """It used to reach the engine, which said it "does not apply to the auto backend"."""
    from streamtsm.multi import MultiRecognizerError
    from streamtsm.recognizer import RecognizerError

    with pytest.raises((RecognizerError, MultiRecognizerError)) as info:
        make(**options)
    assert str(info.value).startswith(message), info.value
    assert "providers" in str(info.value)  # the engine options are listed too


def test_every_constructor_keyword_and_engine_option_passes_the_check():
    from streamtsm.multi import _OWN_OPTIONS as MULTI
    from streamtsm.recognizer import _OWN_OPTIONS as SINGLE
    from streamtsm.resolve import ENGINE_OPTIONS, check_option_names

    assert "smoothing" in SINGLE and "on_event" in SINGLE and "lanes" in MULTI and "max_streams" in MULTI
    check_option_names({n: 1 for names in ENGINE_OPTIONS.values() for n in names}, SINGLE, ValueError)


def test_a_list_pair_is_a_pair_too():
    multi, engine = _fake_multi(max_streams=1)
    _same(multi.push_many({"a": [_img(0), 0.0]})["a"], Recognizer(engine).push(_img(0), 0.0))


def test_reset_and_events_are_per_stream():
    events = []
    engine = FakeOnlineEngine(fake_card(fps=10.0), bias={"zoom_in": 1000.0})
    multi, _ = _fake_multi(max_streams=2, engine=engine, on_event=lambda sid, e: events.append((sid, e.kind, e.label)))
    multi.push_many({"a": (_img(0), 0.0), "b": (_img(1), 0.0)})
    assert events == [("a", "start", "zoom_in"), ("b", "start", "zoom_in")]
    assert multi.reset("a") and events[-1] == ("a", "end", "zoom_in")
    got = multi.push_many({"a": (_img(2), 0.1), "b": (_img(3), 0.1)})
    assert got["a"].reset.reason is ResetReason.CALLER and got["b"].reset is None
    assert got["a"].stream_id == "a" and got["a"].to_dict()["stream_id"] == "a"
    fresh = Recognizer(engine).push(_img(2), 0.0)
    np.testing.assert_allclose(got["a"].probabilities, fresh.probabilities, atol=1e-6)  # "a" started over, alone


def test_window_models_and_bad_arguments_are_refused():
    with pytest.raises(MultiRecognizerError, match="window"):
        MultiRecognizer(FakeClipEngine(), max_streams=2)
    for bad in (0, -1, 10**6, 2.5, True):
        with pytest.raises(MultiRecognizerError, match="max_streams"):
            MultiRecognizer(FakeOnlineEngine(), max_streams=bad)
    with pytest.raises(MultiRecognizerError, match="state must be"):
        MultiRecognizer(FakeOnlineEngine(), max_streams=2, state="mmap")


def _write_clip(path, n: int, seed: int, fps: float = 15.0):
    import cv2

    rng = np.random.default_rng(seed)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for _ in range(n):
        writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    return path


def test_run_batches_several_files_and_each_stream_equals_its_own_recognizer(tmp_path):
    engine = FakeOnlineEngine(fake_card(fps=15.0))
    files = {f"cam{i}": _write_clip(tmp_path / f"c{i}.avi", n, seed=i) for i, n in enumerate((30, 45, 20))}
    ended = []
    multi = MultiRecognizer(engine, max_streams=3, on_source_end=lambda sid, err: ended.append((sid, err)))
    got: dict[str, list] = {sid: [] for sid in files}
    for sid, prediction in multi.run({sid: str(path) for sid, path in files.items()}):
        assert prediction.stream_id == sid
        got[sid].append(prediction)
    assert sorted(ended) == [(sid, None) for sid in sorted(files)] and multi.stream_ids == []
    for sid, path in files.items():
        expected = list(Recognizer(engine).run(str(path)))
        assert len(got[sid]) == len(expected) > 0
        for a, b in zip(got[sid], expected):
            _same(a, b)
    assert multi.batches < multi.batched_frames  # rounds really held several streams


def test_run_skips_on_the_capture_threads_and_equals_every_frame_through_the_batch(tmp_path):
    # run() drops the frames sampling skips on each capture thread; iter_frames() (default)
    # hands every frame to the batching loop: the same predictions either way
    engine = FakeOnlineEngine(fake_card(fps=10.0))
    files = {f"cam{i}": _write_clip(tmp_path / f"c{i}.avi", n, seed=i, fps=30) for i, n in enumerate((60, 45))}
    every = MultiRecognizer(engine, max_streams=2)
    expected: dict[str, list] = {sid: [] for sid in files}
    for sid, _, prediction in every.iter_frames({sid: str(path) for sid, path in files.items()}):
        if prediction is not None:
            expected[sid].append(prediction)
    skipping = MultiRecognizer(engine, max_streams=2)
    got: dict[str, list] = {sid: [] for sid in files}
    rates = {}
    for sid, prediction in skipping.run({sid: str(path) for sid, path in files.items()}):
        got[sid].append(prediction)
        if len(got[sid]) == 12:
            rates[sid] = skipping.rates(sid)
    for sid in files:
        assert len(got[sid]) == len(expected[sid]) == (60 if sid == "cam0" else 45) // 3
        for a, b in zip(got[sid], expected[sid]):
            _same(a, b)
        assert rates[sid][0] == pytest.approx(10.0) and rates[sid][1] == pytest.approx(30.0)  # model rate, capture rate


def test_rates_after_a_run_stopped_by_its_event_still_give_the_capture_rate(tmp_path):
    """The streams outlive a run ended by stop_event; their capture rate must not fall back to the
    kept frames' rate (the stream itself never saw the skipped frames)."""
    engine = FakeOnlineEngine(fake_card(fps=10.0))
    files = {f"cam{i}": _write_clip(tmp_path / f"c{i}.avi", 90, seed=i, fps=30) for i in range(2)}
    multi = MultiRecognizer(engine, max_streams=2)
    stop = threading.Event()
    count = 0
    for _ in multi.run({sid: str(path) for sid, path in files.items()}, stop_event=stop):
        count += 1
        if count == 24:
            stop.set()
    assert multi.stream_ids == sorted(files) and multi.capture_stats("cam0").skipped > 0
    for sid in files:
        model_fps, input_fps = multi.rates(sid)
        assert model_fps == pytest.approx(10.0) and input_fps == pytest.approx(30.0), (sid, model_fps, input_fps)


class _DiesAfter(Source):
    """Delivers ``frames`` frames, then (after ``quiet_s`` without a frame) fails as if unplugged."""

    def __init__(self, name: str, frames: int, quiet_s: float = 0.0):
        super().__init__(name)
        self.frames, self.quiet_s, self.n = frames, quiet_s, 0

    def _open(self):
        pass

    def _read(self):
        self.n += 1
        if self.n > self.frames:
            time.sleep(self.quiet_s)
            raise SourceError("unplugged")
        return self._make_frame(_img(self.n), media_time_s=self.n / 15.0)

    def _close(self):
        pass


class _TimedFrames(Source):
    """A file-like (queued) source whose frames carry the given media times."""

    def __init__(self, name: str, times: list[float]):
        super().__init__(name)
        self.times = list(times)

    def _open(self):
        pass

    def _read(self):
        if self._next_index >= len(self.times):
            return None
        return self._make_frame(_img(self._next_index), media_time_s=self.times[self._next_index])

    def _close(self):
        pass


def test_queued_streams_out_of_phase_still_step_their_kept_frames_together():
    """Stream b lacks the frame at 1/30 s, so a 10 fps model keeps its frames 0, 2, 5, 8, ... and a's
    0, 3, 6, 9, ...: one frame per stream per round never had both kept frames in one round (20
    engine calls for 21 kept frames). Now a round takes a's skipped frames up to its kept one."""
    engine = FakeOnlineEngine(fake_card(fps=10.0))
    multi = MultiRecognizer(engine, max_streams=2)
    a = [k / 30 for k in range(30)]
    b = [0.0] + [k / 30 for k in range(2, 31)]
    real_take = multi._take_round

    def take_once_both_delivered(gather_s):  # a stream that starts late is another case (gather_s bounds it)
        deadline = time.monotonic() + 30
        while any(not c.queued for c in multi._captures.values()) and time.monotonic() < deadline:
            time.sleep(0.001)
        multi._take_round = real_take
        return real_take(gather_s)

    multi._take_round = take_once_both_delivered
    seen: dict[str, list[int]] = {"a": [], "b": []}
    kept = 0
    for sid, frame, prediction in multi.iter_frames({"a": _TimedFrames("a", a), "b": _TimedFrames("b", b)},
                                                     gather_s=1.0):
        seen[sid].append(frame.index)
        kept += prediction is not None
    assert seen == {"a": list(range(30)), "b": list(range(30))}, repr(seen)  # every frame once, in order
    assert kept == multi.batched_frames == 21  # a: 0, 3, ..., 27; b: 0, 2, 5, ..., 29
    # 11 when every round pairs them; a round taken while b's queue was empty costs one more (the next
    # round re-aligns them), so allow a few. One frame per stream per round gave 20 here.
    assert multi.batches <= 14, multi.batches


class _PacedCamera(Source):
    """A live source: ``frames`` frames at ``fps`` in real time, its first one ``delay_s`` after the read starts."""

    is_live = True

    def __init__(self, name: str, frames: int, fps: float = 10.0, delay_s: float = 0.0):
        super().__init__(name)
        self.frames, self.fps, self.delay_s = frames, fps, delay_s

    def _open(self):
        pass

    def _read(self):
        if self._next_index == 0 and self.delay_s:
            self._interrupted.wait(self.delay_s)
        if self._next_index >= self.frames or self._interrupted.is_set():
            return None
        self._pace(self._next_index / self.fps)
        return self._make_frame(_img(self._next_index), media_time_s=self._next_index / self.fps)

    def _close(self):
        pass


@pytest.mark.parametrize(
    ("delay_s", "rounds", "most_timeouts"),
    [
        # half a period (125 ms) apart, more than gather_s: a round waits for the other stream only while
        # its interval is unknown (3 rounds); waiting for every stream timed out in all 16 rounds
        (0.125, (14, 16), 3),
        # in phase, 3 ms apart: one round per period; the 60 ms deadline allows for a loaded machine
        (0.003, (8, 12), 2),
    ],
)
def test_a_round_waits_only_for_the_streams_due_within_gather_s(delay_s, rounds, most_timeouts):
    """A stream is due when its next frame should be captured before the round's deadline: its last
    capture time plus the interval before it (unknown at first: then it is due)."""
    engine = FakeOnlineEngine(fake_card(fps=4.0))
    multi = MultiRecognizer(engine, max_streams=2)
    sources = {"a": _PacedCamera("a", 8, fps=4.0), "b": _PacedCamera("b", 8, fps=4.0, delay_s=delay_s)}
    got = [sid for sid, _ in multi.run(sources, gather_s=0.06)]
    assert sorted(got) == ["a"] * 8 + ["b"] * 8
    assert rounds[0] <= multi.batches <= rounds[1], multi.batches
    assert multi.gather_timeouts <= most_timeouts, multi.gather_timeouts


def test_a_failing_source_is_reported_and_removed_while_the_others_go_on(tmp_path):
    engine = FakeOnlineEngine(fake_card(fps=15.0))
    ended = []
    multi = MultiRecognizer(engine, max_streams=2, on_source_end=lambda sid, err: ended.append((sid, str(err))))
    seen = {"ok": 0, "bad": 0}
    for sid, _ in multi.run({"ok": str(_write_clip(tmp_path / "ok.avi", 40, seed=3)), "bad": _DiesAfter("dies", 5)}):
        seen[sid] += 1
    assert seen["ok"] == len(list(Recognizer(engine).run(str(tmp_path / "ok.avi"))))
    assert 0 < seen["bad"] <= 5
    assert ended[0][0] == "bad" and "unplugged" in ended[0][1] and ended[1] == ("ok", "None")


class _Counted(_DiesAfter):
    """A _DiesAfter that records whether it was ever opened."""

    opened: list[str] = []

    def _open(self):
        _Counted.opened.append(self.name)


def test_sources_that_cannot_run_are_refused_before_any_opens_and_leave_no_stream():
    multi, _ = _fake_multi(max_streams=3)
    multi.push("kept", _img(0), 0.0)
    before = [r.copy() for r in multi.state_rows("kept")]
    _Counted.opened.clear()
    with pytest.raises(TypeError, match=r"run takes a mapping \{stream_id: source\}, got a list"):
        list(multi.run([_Counted("a", 3)]))
    with pytest.raises(MultiRecognizerError, match="3 sources do not fit: 1 of max_streams=3 slots are in use"):
        list(multi.run({"a": _Counted("a", 3), "b": _Counted("b", 3), "c": _Counted("c", 3)}))
    assert _Counted.opened == []  # refused before a source was opened
    with pytest.raises(SourceError, match="does not exist"):
        list(multi.run({"a": _Counted("a", 3), "b": "no/such/clip.mp4"}))
    assert _Counted.opened == ["a"] and multi.stream_ids == ["kept"]  # "a", added by that run, is gone again
    for a, b in zip(multi.state_rows("kept"), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("run, message", [
    (lambda src: Recognizer(FakeOnlineEngine(fake_card())).run(src, max_frames=1.5), "max_frames must be a whole number >= 0 or None, got 1.5"),
    (lambda src: Recognizer(FakeOnlineEngine(fake_card())).run(src, max_frames=True), "got True"),
    (lambda src: Recognizer(FakeOnlineEngine(fake_card())).run(src, max_frames=-1), "got -1"),
    (lambda src: Recognizer(FakeOnlineEngine(fake_card())).run(src, stop_event=True), "stop_event must be a threading.Event (or None), got bool"),
    (lambda src: _fake_multi(max_streams=1)[0].run({"a": src}, stop_event="stop"), "stop_event must be a threading.Event (or None), got str"),
])
def test_loop_arguments_are_checked_before_a_source_opens(run, message):
    _Counted.opened.clear()
    with pytest.raises(RuntimeError) as info:
        list(run(_Counted("cam", 3)))
    assert message in str(info.value) and _Counted.opened == []  # was an AttributeError after the source opened


def test_a_stream_left_by_a_stopped_run_goes_on_with_the_next_runs_source():
    multi, _ = _fake_multi(max_streams=2)
    stop = threading.Event()
    for i, (sid, _) in enumerate(multi.run({"cam": _DiesAfter("cam", 50)}, stop_event=stop)):
        if i == 2:
            stop.set()
    assert multi.stream_ids == ["cam"]  # a stopped run leaves its streams (their rates and counters)
    resets = [p.reset for _, p in multi.run({"cam": _DiesAfter("cam", 4)})]  # it used to say "'cam' exists already"
    assert resets[0].reason is ResetReason.SOURCE_CHANGE and not any(resets[1:])
    assert multi.stream_ids == []  # that source ended: the stream was removed


def test_a_lone_source_that_fails_after_its_last_frame_ends_the_run():
    # the failure comes with no frame after it: the capture thread's end must still wake the
    # batching loop (a watchdog stops the run if it does not, and the test then fails)
    ended = []
    multi = MultiRecognizer(FakeOnlineEngine(fake_card(fps=15.0)), max_streams=1,
                            on_source_end=lambda sid, err: ended.append((sid, str(err))))
    watchdog = threading.Event()
    timer = threading.Timer(20.0, watchdog.set)
    timer.start()
    try:
        seen = [sid for sid, _ in multi.run({"cam": _DiesAfter("quiet", 3, quiet_s=0.3)}, stop_event=watchdog)]
    finally:
        timer.cancel()
    assert not watchdog.is_set() and seen == ["cam"] * 3
    assert len(ended) == 1 and ended[0][0] == "cam" and "unplugged" in ended[0][1]


def test_streams_can_be_added_and_removed_while_running(tmp_path):
    engine = FakeOnlineEngine(fake_card(fps=15.0))
    multi = MultiRecognizer(engine, max_streams=2)
    a, b = _write_clip(tmp_path / "a.avi", 60, seed=5), _write_clip(tmp_path / "b.avi", 20, seed=6)
    seen: dict[str, int] = {}
    for sid, _ in multi.run({"a": str(a)}):
        seen[sid] = seen.get(sid, 0) + 1
        if sid == "a" and seen["a"] == 3:
            multi.add_stream("b", str(b))
        if sid == "b" and seen["b"] == 4:
            multi.remove_stream("b")
    assert seen["b"] == 4 and seen["a"] == len(list(Recognizer(engine).run(str(a))))
    with pytest.raises(MultiRecognizerError, match="running run"):
        multi.add_stream("c", str(b))


def test_a_stream_removed_between_taking_a_round_and_stepping_it_stays_removed(tmp_path):
    """remove_stream() from another thread landed after a round was taken and before it was pushed:
    the push added the id again, a ghost that kept its slot and gave stream_start predictions (the
    audit of 5de4cc3, 8 of 8 runs on files). The interleaving is forced here, the threads are real."""
    engine = FakeOnlineEngine(fake_card(fps=15.0))
    multi = MultiRecognizer(engine, max_streams=3)
    clips = {sid: str(_write_clip(tmp_path / f"{sid}.avi", 30, seed=i)) for i, sid in enumerate("abc")}
    real_take, removed = multi._take_round, []

    def take_then_remove(gather_s):
        taken = real_take(gather_s)
        if any("b" in round_ for round_ in taken) and not removed:
            removed.append(multi.remove_stream("b"))  # what the other thread does in between
        return taken

    multi._take_round = take_then_remove
    after_removal = [sid for sid, _ in multi.run(clips) if removed and sid == "b"]
    assert removed and after_removal == []
    assert "b" not in multi.stream_ids and set(multi.stream_ids) <= {"a", "c"}
    assert multi.max_streams - len(multi.stream_ids) >= 1  # its slot came back


def test_one_source_object_under_two_ids_is_refused_before_it_is_read(tmp_path):
    """Two capture threads reading one decoder segfaulted in FFmpeg (the audit of 5de4cc3)."""
    from streamtsm.sources import open_source

    multi = MultiRecognizer(FakeOnlineEngine(fake_card(fps=15.0)), max_streams=4)
    source = open_source(str(_write_clip(tmp_path / "a.avi", 10, seed=1)))
    with pytest.raises(MultiRecognizerError, match="streams 'x' and 'y' were given the same VideoFileSource object"):
        next(iter(multi.run({"x": source, "y": source})))
    assert multi.stream_ids == []
    other = str(_write_clip(tmp_path / "b.avi", 40, seed=2))
    for sid, _ in multi.run({"x": source, "z": other}):  # one each is fine; a second id for it is not
        if sid == "z":
            with pytest.raises(MultiRecognizerError, match="streams 'x' and 'w' were given the same"):
                multi.add_stream("w", source)
            break
    assert "w" not in multi.stream_ids


# -- lanes: one round's batch stepped as several engine calls at once --------------------------

LANE_STREAMS = {
    f"cam{i}": dict(seed=40 + i, fps=30.0, seconds=2.0, start_s=0.0,
                    gap_at=25 if i == 2 else None, restart_at=30 if i == 5 else None)
    for i in range(9)
}


def test_lanes_give_what_separate_recognizers_give_on_the_real_model():
    streams = {sid: _stream(**spec) for sid, spec in LANE_STREAMS.items()}
    ticks: dict[int, dict] = {}
    for sid, frames in streams.items():
        for i, (ts, image) in enumerate(frames):
            ticks.setdefault(i, {})[sid] = (image, ts)  # every camera's i-th frame arrives in the same tick
    with MultiRecognizer(max_streams=9, lanes=2, threads=1) as multi:  # the default model on ONNX Runtime
        single = {sid: Recognizer(multi.engine) for sid in streams}
        compared = 0
        for tick in ticks.values():
            got = multi.push_many(tick)
            for sid, (image, ts) in tick.items():
                _same(got[sid], single[sid].push(image, ts))
                compared += got[sid] is not None
        assert compared > 150 and multi.lane_batches > 0  # rounds of 9 really ran as two calls (4 + 5 rows)
        assert multi.reset_counts("cam2")[ResetReason.GAP] == 1
        assert multi.reset_counts("cam5")[ResetReason.TIME_REVERSAL] == 1


@pytest.mark.parametrize("lanes, streams, calls", [
    (2, 8, [4, 4]),      # two lanes of four rows, at once
    (2, 7, [7]),         # 7 // 4 = 1: one call (a lane gets at least MIN_LANE_ROWS rows)
    (2, 9, [4, 5]),      # part sizes differ by at most one row
    (3, 12, [4, 4, 4]),
    (4, 10, [5, 5]),     # fewer parts than lanes when the batch is small
    (1, 12, [12]),
])
def test_lanes_split_a_round_into_contiguous_parts_stepped_at_once(lanes, streams, calls):
    engine = FakeOnlineEngine(fake_card(fps=10.0), delay_s=0.05 if len(calls) > 1 else 0.0)
    reference = FakeOnlineEngine(fake_card(fps=10.0))
    with MultiRecognizer(engine, max_streams=streams, lanes=lanes) as multi, \
            MultiRecognizer(reference, max_streams=streams) as plain:
        for t in range(3):
            tick = {f"s{k}": (_img(100 * t + k), t * 0.1) for k in range(streams)}
            got, expected = multi.push_many(tick), plain.push_many(tick)
            for sid in tick:
                _same(got[sid], expected[sid])
        assert sorted(engine.batch_sizes[: len(calls)]) == sorted(calls) and len(engine.batch_sizes) == 3 * len(calls)
        assert engine.max_concurrent == len(calls)  # the parts overlapped (each call sleeps 50 ms)
        assert multi.lane_batches == (3 if len(calls) > 1 else 0) and multi.batches == 3


def test_lanes_work_with_per_stream_state_arrays_too():
    with MultiRecognizer(FakeOnlineEngine(fake_card(fps=10.0)), max_streams=9, lanes=2, state="arrays") as multi, \
            MultiRecognizer(FakeOnlineEngine(fake_card(fps=10.0)), max_streams=9) as plain:
        for t in range(4):
            tick = {f"s{k}": (_img(50 * t + k), t * 0.1) for k in range(9 - t % 2)}  # 9, 8, 9, 8 streams due
            got, expected = multi.push_many(tick), plain.push_many(tick)
            for sid in tick:
                _same(got[sid], expected[sid])
        assert multi.lane_batches == 4


def test_a_failing_lane_changes_no_stream():
    clean, _ = _fake_multi(max_streams=8)
    dirty, _ = _fake_multi(max_streams=8, lanes=2, engine=FakeOnlineEngine(fake_card(fps=10.0), fail_on_step=3))
    for t in range(4):
        tick = {f"s{k}": (_img(10 * t + k), t * 0.1) for k in range(8)}
        expected = clean.push_many(tick)
        if t == 1:  # calls 2 and 3 are this round's two lanes; one of them fails
            with pytest.raises(BackendError, match="injected"):
                dirty.push_many(tick)
        got = dirty.push_many(tick)
        for sid in tick:
            _same(got[sid], expected[sid])
    dirty.close()


def test_lanes_are_checked_and_their_threads_end_with_close():
    for bad in (0, -1, 17, 2.0, True, "2"):
        with pytest.raises(MultiRecognizerError, match="lanes must be an integer from 1 to 16"):
            MultiRecognizer(FakeOnlineEngine(), max_streams=2, lanes=bad)
    with pytest.raises(MultiRecognizerError, match="lanes=2 needs an engine .* fake-online cannot"):
        MultiRecognizer(FakeOnlineEngine(concurrent=False), max_streams=2, lanes=2)
    multi = MultiRecognizer(FakeOnlineEngine(fake_card(fps=10.0)), max_streams=8, lanes=3)
    multi.push_many({f"s{k}": (_img(k), 0.0) for k in range(8)})
    assert any(t.name.startswith("streamtsm-lane") for t in threading.enumerate())
    assert "3 lanes" in repr(multi)
    multi.close()
    assert not any(t.name.startswith("streamtsm-lane") and t.is_alive() for t in threading.enumerate())
