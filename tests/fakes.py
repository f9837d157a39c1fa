"""numpy fake engines for tests of the runtime's logic (sampling, resets, events, threads).

Not models: deterministic logits that depend on the input frame *and* the carried state, so
a test can tell whether the right frames went in, in the right order, from the right state.
They implement the same engine interfaces as ONNX Runtime/TensorRT/torch, and run in
microseconds without torch.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from streamtsm.backends.base import BackendError, ClipEngine, OnlineEngine, check_input
from streamtsm.card import ModelCard, Preprocessing, StateTensor, Temporal

CLASSES = ("swipe_left", "swipe_right", "zoom_in", "no_motion")


def fake_card(*, online: bool = True, crop: int = 16, resize: int | None = None, fps: float = 10.0, max_gap_s: float = 1.0, clip_len: int = 4,
              classes: tuple[str, ...] = CLASSES, background: tuple[str, ...] = ("no_motion",)) -> ModelCard:
    temporal = Temporal(mode="online" if online else "window", fps=fps, max_gap_s=max_gap_s,
                        clip_len=1 if online else clip_len)
    return ModelCard(
        arch="fake", arch_kwargs={"num_classes": len(classes)}, class_names=classes,
        preprocessing=Preprocessing(crop_size=crop, resize_short=resize or crop), temporal=temporal,
        shift_mode="uni" if online else "none", background_classes=background,
        state=(StateTensor("state_in.0", (1, 3, 1, 1)),) if online else (),
    )


class FakeOnlineEngine(OnlineEngine):
    """logits = mean colour of the frame @ W + state @ U; the new state is the frame's mean colour.

    ``bias`` adds a constant to one class (to make a class win). ``fail_on_step`` makes that
    step (0-based count of calls) raise, to test that failures change nothing. ``delay_s``
    sleeps inside ``step`` (concurrency tests). ``calls`` counts steps; ``max_concurrent``
    records how many steps ever overlapped; ``batch_sizes`` the rows of each step.
    ``concurrent``: its ``concurrent_step_host`` (steps are thread-safe either way).
    """

    name = "fake-online"

    def __init__(self, card: ModelCard | None = None, *, bias: dict[str, float] | None = None, seed: int = 0,
                 fail_on_step: int | None = None, delay_s: float = 0.0, concurrent: bool = True) -> None:
        self.card = card or fake_card()
        self.concurrent_step_host = concurrent
        self.batch_sizes: list[int] = []
        k = self.card.num_classes
        rng = np.random.default_rng(seed)
        self.w = rng.standard_normal((3, k)).astype(np.float32) * 3
        self.u = rng.standard_normal((3, k)).astype(np.float32) * 3
        self.b = np.zeros(k, np.float32)
        for label, value in (bias or {}).items():
            self.b[self.card.class_names.index(label)] = value
        self.fail_on_step, self.delay_s = fail_on_step, delay_s
        self.calls = 0
        self.max_concurrent = 0
        self._inside = 0
        self._lock = threading.Lock()
        crop = self.card.preprocessing.crop_size
        self._shape = (-1, 3, crop, crop)

    def init_state(self, batch_size: int = 1) -> tuple[np.ndarray]:
        self._check_open()
        return (np.zeros((batch_size, 3, 1, 1), np.float32),)

    def step(self, frame: np.ndarray, state: tuple[np.ndarray]) -> tuple[np.ndarray, tuple[np.ndarray]]:
        self._check_open()
        frame = check_input("frame", frame, self._shape)
        with self._lock:
            self._inside += 1
            self.max_concurrent = max(self.max_concurrent, self._inside)
            call, self.calls = self.calls, self.calls + 1
            self.batch_sizes.append(int(frame.shape[0]))
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if call == self.fail_on_step:
                raise BackendError(f"injected failure at step {call}")
            colour = frame.mean(axis=(2, 3))  # (N, 3)
            logits = colour @ self.w + state[0][:, :, 0, 0] @ self.u + self.b
            return logits.astype(np.float32), (colour[:, :, None, None].astype(np.float32),)
        finally:
            with self._lock:
                self._inside -= 1

    def state_arrays(self, state: tuple[np.ndarray]) -> list[np.ndarray]:
        return [s.copy() for s in state]

    def step_host(self, frame: np.ndarray, states) -> tuple[np.ndarray, list[np.ndarray]]:
        logits, new = self.step(frame, tuple(states))
        return logits, list(new)


class FakeClipEngine(ClipEngine):
    """logits = per-frame mean colours of the clip (T x 3, time order kept) @ W."""

    name = "fake-clip"

    def __init__(self, card: ModelCard | None = None, *, seed: int = 0, fail_on_call: int | None = None) -> None:
        self.card = card or fake_card(online=False)
        t, k = self.card.temporal.clip_len, self.card.num_classes
        self.w = np.random.default_rng(seed).standard_normal((t * 3, k)).astype(np.float32)
        self.fail_on_call = fail_on_call
        self.calls = 0

    def run_clip(self, clip: np.ndarray) -> np.ndarray:
        self._check_open()
        call, self.calls = self.calls, self.calls + 1
        if call == self.fail_on_call:
            raise BackendError(f"injected failure at clip {call}")
        per_frame = clip.mean(axis=(3, 4)) if self.card.temporal.clip_layout == "NTCHW" else clip.mean(axis=(3, 4)).transpose(0, 2, 1)
        return (per_frame.reshape(clip.shape[0], -1) @ self.w).astype(np.float32)
