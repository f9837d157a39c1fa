"""Arguments of the embeddable API are checked where they are given, before they can touch a stream.

Each row was accepted by 5de4cc3 and failed later (at every push, at the first event, or after
the model step had changed the state: the audit of that commit). The engine is a numpy fake:
what is tested is the Recognizer's and MultiRecognizer's own checking, not a model.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from fakes import FakeOnlineEngine
from streamtsm import MultiRecognizer, Recognizer
from streamtsm.multi import MultiRecognizerError
from streamtsm.recognizer import RecognizerError
from streamtsm.session import SessionError

pytestmark = pytest.mark.runtime

FRAME = np.full((24, 32, 3), 120, np.uint8)

BAD_OPTIONS = {
    "top_k=2.5": (dict(top_k=2.5), ValueError, "top_k must be a whole number from 1 to 1000, got 2.5"),
    "top_k=0": (dict(top_k=0), ValueError, "top_k must be a whole number"),
    "smoothing=10**9": (dict(smoothing=10**9), ValueError, "smoothing must be a whole number from 1 to 1000"),
    "smoothing=True": (dict(smoothing=True), ValueError, "smoothing must be a whole number"),
    "start_steps=1.5": (dict(start_steps=1.5), ValueError, "start_steps must be a whole number"),
    "start_threshold=2": (dict(start_threshold=2), ValueError, "start_threshold must be a number from 0 to 1"),
    "end_threshold='0.4'": (dict(end_threshold="0.4"), ValueError, "end_threshold must be a number from 0 to 1"),
    "min_duration_s=nan": (dict(min_duration_s=math.nan), ValueError, "min_duration_s must be a number from 0"),
    "background=[1]": (dict(background=[1]), ValueError, "background must be a list of class names"),
    "fps='10'": (dict(fps="10"), ValueError, "sampling fps must be a positive number"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_recognizer_refuses_bad_options_when_built(case):
    options, error, message = BAD_OPTIONS[case]
    with pytest.raises(error, match=message.replace("(", r"\(").replace("*", r"\*")):
        Recognizer(FakeOnlineEngine(), **options)


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_multirecognizer_refuses_bad_options_when_built(case):
    options, error, message = BAD_OPTIONS[case]
    with pytest.raises(error, match=message.replace("(", r"\(").replace("*", r"\*")):
        MultiRecognizer(FakeOnlineEngine(), max_streams=2, **options)  # not at a stream's first push


@pytest.mark.parametrize("make", [
    lambda: Recognizer(FakeOnlineEngine(), on_event="print"),
    lambda: MultiRecognizer(FakeOnlineEngine(), max_streams=2, on_event=5),
    lambda: MultiRecognizer(FakeOnlineEngine(), max_streams=2, on_source_end="x"),
])
def test_a_callback_that_is_not_callable_is_refused(make):
    with pytest.raises((RecognizerError, MultiRecognizerError), match="must be a function"):
        make()


def test_background_may_name_one_class():
    rec = Recognizer(FakeOnlineEngine(), background="no_motion")  # was read as 9 one-letter classes
    assert rec.postprocessor.detector.background == ("no_motion",)


# push() arguments: refused before anything changes, so the next frames predict as if it never came
BAD_PUSHES = {
    "timestamp 'abc'": (dict(timestamp="abc"), "timestamp must be a finite number of seconds or None, got 'abc'"),
    "timestamp '1.0'": (dict(timestamp="1.0"), "timestamp must be a finite number of seconds or None"),
    "timestamp True": (dict(timestamp=True), "timestamp must be a finite number"),
    "timestamp 1j": (dict(timestamp=1j), "timestamp must be a finite number"),
    "timestamp array": (dict(timestamp=np.array([1.0])), "timestamp must be a finite number"),
    "timestamp nan": (dict(timestamp=math.nan), "timestamp must be a finite number of seconds, got nan"),
    "captured_at 'now'": (dict(captured_at="now"), "captured_at must be a finite number of seconds or None"),
    "captured_at nan": (dict(captured_at=math.nan), "captured_at must be a finite number of seconds, got nan"),
    "capture_wait_ms -1": (dict(capture_wait_ms=-1.0), "capture_wait_ms must be a number of milliseconds >= 0"),
    "frame_index 'x'": (dict(frame_index="x"), "frame_index must be a whole number, got 'x'"),
    "frame_index 2.7": (dict(frame_index=2.7), "frame_index must be a whole number, got 2.7"),
}


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    return [rng.integers(0, 255, FRAME.shape, dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("case", sorted(BAD_PUSHES))
def test_a_bad_push_argument_is_refused_before_the_state_changes(case):
    kwargs, message = dict(BAD_PUSHES[case][0]), BAD_PUSHES[case][1]
    frames = _frames(6)
    clean, dirty = Recognizer(FakeOnlineEngine()), Recognizer(FakeOnlineEngine())
    for i, f in enumerate(frames[:3]):
        clean.push(f, 0.1 * i)
        dirty.push(f, 0.1 * i)
    timestamp = kwargs.pop("timestamp", 0.3)
    with pytest.raises(SessionError, match=message.replace("(", r"\(").replace("[", r"\[")):
        dirty.push(frames[5], timestamp, **kwargs)
    for i, f in enumerate(frames[3:5], start=3):
        a, b = clean.push(f, 0.1 * i), dirty.push(f, 0.1 * i)
        np.testing.assert_array_equal(a.probabilities, b.probabilities)  # the refused frame left no trace
        assert a.reset is b.reset is None


@pytest.mark.parametrize("case", sorted(BAD_PUSHES))
def test_a_bad_push_many_argument_names_its_stream(case):
    kwargs, message = dict(BAD_PUSHES[case][0]), BAD_PUSHES[case][1]
    multi = MultiRecognizer(FakeOnlineEngine(), max_streams=2)
    multi.push("ok", FRAME, 0.0)
    timestamp = kwargs.pop("timestamp", 0.1)
    with pytest.raises(SessionError, match="stream 'cam': " + message.replace("(", r"\(").replace("[", r"\[")):
        multi.push_many({"ok": (FRAME, 0.1), "cam": (FRAME, timestamp)}, frame_info={"cam": kwargs})
    assert multi.stream_ids == ["ok"]


def test_unknown_frame_info_is_named_with_the_closest_name():
    multi = MultiRecognizer(FakeOnlineEngine(), max_streams=2)
    with pytest.raises(TypeError, match="stream 'a': unknown frame info 'captured' \\(did you mean 'captured_at'\\?\\)"):
        multi.push("a", FRAME, 0.0, captured=1.0)
    with pytest.raises(TypeError, match="unknown frame info 'bogus': a frame takes frame_index, source"):
        multi.push_many({"a": (FRAME, 0.0)}, frame_info={"a": {"bogus": 3}})


def test_clock_jitter_of_a_tenth_of_a_millisecond_keeps_the_state():
    rec = Recognizer(FakeOnlineEngine())
    rec.push(FRAME, 0.1)
    assert rec.push(FRAME, 0.0999) is None  # the same grid slot: skipped, not a TIME_REVERSAL reset
    assert rec.push(FRAME, 0.2).reset is None and sum(rec.reset_counts.values()) == 1  # only the stream start


class _GatedEngine(FakeOnlineEngine):
    """Blocks inside ``step`` until the test opens the gate (a push in flight on another thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.gate = threading.Event(), threading.Event()

    def step(self, frame, state):
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return super().step(frame, state)


def test_close_waits_for_a_push_in_flight_on_another_thread():
    """close() took no lock: a push running meanwhile met a closed engine (BackendError)."""
    engine = _GatedEngine()
    rec = Recognizer(engine)
    rec._owns_engine = True  # as for a model the Recognizer opened itself: close() releases the engine
    results: list[object] = []
    pusher = threading.Thread(target=lambda: results.append(rec.push(FRAME, 0.0)))
    pusher.start()
    assert engine.entered.wait(30)
    closer = threading.Thread(target=rec.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and not engine.closed  # close() waits for the push, it cannot have run
    engine.gate.set()
    pusher.join(30)
    closer.join(30)
    assert results and results[0] is not None and results[0].label  # the push completed with a prediction
    assert engine.closed
    with pytest.raises(RecognizerError, match="closed"):
        rec.push(FRAME, 0.1)


@pytest.mark.parametrize("threads", ["two", 0, -1, True, 257, 1.5])
def test_engine_threads_must_be_a_whole_number_in_range(threads):
    from streamtsm.backends import BackendError

    with pytest.raises(BackendError, match=f"threads must be a whole number from 1 to 256 .*got {threads!r}"):
        Recognizer(backend="onnxruntime", threads=threads)  # 0 and -1 quietly meant "the default"


@pytest.mark.parametrize("call, error, message", [
    (lambda: next(Recognizer(FakeOnlineEngine()).run("synthetic", max_frame=3)), RecognizerError,
     r"unknown option 'max_frame' \(did you mean 'max_frames'\?\)"),
    (lambda: next(Recognizer(FakeOnlineEngine()).iter_frames("synthetic", stop_evnt=None)), RecognizerError,
     r"unknown option 'stop_evnt' \(did you mean 'stop_event'\?\)"),
    (lambda: next(MultiRecognizer(FakeOnlineEngine(), max_streams=2).run({"a": "synthetic"}, max_frames=3)),
     MultiRecognizerError, "MultiRecognizer.run has no max_frames"),
    (lambda: next(MultiRecognizer(FakeOnlineEngine(), max_streams=2).run({"a": "synthetic"}, gather=0.01)),
     MultiRecognizerError, r"unknown option 'gather' \(did you mean 'gather_s'\?\)"),
])
def test_a_misspelled_loop_keyword_is_named_before_a_source_opens(call, error, message):
    with pytest.raises(error, match=message):
        call()
