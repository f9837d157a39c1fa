"""After close(): every method of a Recognizer, MultiRecognizer or engine raises one clear error (#14 row 12).

On 68bf7a2 a closed ONNX Runtime Recognizer's ``push`` raised AttributeError on ``io_binding``
and a closed torch Recognizer went on predicting. Real engines on the embedded default model.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamtsm import MultiRecognizer, Recognizer
from streamtsm.backends import BackendError
from streamtsm.multi import MultiRecognizerError
from streamtsm.recognizer import RecognizerError
from streamtsm.resolve import open_engine

FRAME = np.full((120, 160, 3), 90, np.uint8)

BACKENDS = [
    pytest.param("onnxruntime", marks=pytest.mark.runtime),
    "torch",
]


def _backend(name: str) -> str:
    if name == "torch":
        pytest.importorskip("torch")
    return name


RECOGNIZER_CALLS = {
    "push": lambda r: r.push(FRAME, 0.0),
    "reset": lambda r: r.reset(),
    "run": lambda r: next(iter(r.run("synthetic"))),
    "iter_frames": lambda r: next(iter(r.iter_frames("synthetic"))),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("call", sorted(RECOGNIZER_CALLS))
def test_a_closed_recognizer_refuses_every_call_with_one_error(backend, call):
    rec = Recognizer(backend=_backend(backend))
    assert rec.push(FRAME, 0.0) is not None  # it worked before close
    rec.close()
    rec.close()  # twice is harmless
    with pytest.raises(RecognizerError, match="closed; create a new one"):
        RECOGNIZER_CALLS[call](rec)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_closed_engine_refuses_steps_and_its_owner_closes_it(backend):
    rec = Recognizer(backend=_backend(backend))
    engine = rec.engine
    state = engine.init_state()
    rec.close()
    assert engine.closed  # the Recognizer opened it, so it released it
    for call in (lambda: engine.init_state(), lambda: engine.step(np.zeros((1, 3, 80, 80), np.float32), state)):
        with pytest.raises(BackendError, match="is closed; open a new one"):
            call()
    engine.close()  # twice is harmless


@pytest.mark.runtime
def test_an_engine_the_caller_passed_in_stays_open_after_the_recognizer_closes():
    engine = open_engine(None, backend="onnxruntime")
    with Recognizer(engine) as rec:
        rec.push(FRAME, 0.0)
    assert not engine.closed
    with Recognizer(engine) as again:  # still usable by the next one
        assert again.push(FRAME, 0.0) is not None
    engine.close()


@pytest.mark.runtime
def test_a_closed_multirecognizer_refuses_every_call():
    multi = MultiRecognizer(max_streams=2, backend="onnxruntime")
    assert multi.push_many({"a": (FRAME, 0.0)})["a"] is not None
    multi.close()
    multi.close()
    for call in (lambda: multi.push("a", FRAME, 0.1), lambda: multi.push_many({"a": (FRAME, 0.1)}),
                 lambda: multi.add_stream("b"), lambda: multi.reset("a"),
                 lambda: next(iter(multi.run({"c": "synthetic"}))),
                 # the readers too (they answered after close: the audit of 5de4cc3)
                 lambda: multi.stream_ids, lambda: multi.current("a"), lambda: multi.rates("a"),
                 lambda: multi.state_rows("a"), lambda: multi.reset_counts("a"), lambda: multi.capture_stats("a"),
                 lambda: multi.remove_stream("a")):
        with pytest.raises(MultiRecognizerError, match="closed"):
            call()
    assert "MultiRecognizer(" in repr(multi)  # repr never raises
