"""One camera as one Triton sequence that survives the server: lost sequences and restarts.

:class:`TritonStream` wraps a :class:`~streamtsm.Recognizer` whose engine is a
:class:`~streamtsm.backends.triton_client.TritonSequenceEngine` (what ``streamtsm
triton-client`` runs). Its ``push`` is the Recognizer's, which already survives a server that
**lost the sequence** (it restarted between two frames, the camera was idle past the batcher's
idle time, a load balancer moved it): the session starts the stream again from that frame, sent
as the START of a new sequence, and its Prediction carries a
:attr:`~streamtsm.sampling.ResetReason.RECONNECT` reset (smoothing starts again with the shift
state; an action that was active ends there). What this class adds:

* the server **does not answer** (down, restarting): the frame is dropped, and so is every
  frame pushed until the server answers again (a live camera must not queue), counted in
  ``dropped``. The server is asked again after 0.25, 0.5 and 1 s, then every 2 s
  (:data:`BACKOFF_S`); when it answers, the stream is reset as above and the next frame starts
  a new sequence. After ``reconnect_s`` seconds without an answer, :class:`ServerGone`.

``restarts`` counts the new sequences of both kinds. numpy + OpenCV (the Recognizer's); the
engine brings ``tritonclient``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..arguments import is_real_number
from ..backends.base import BackendError
from ..backends.triton_client import ServerUnavailable, TritonSequenceEngine
from ..sampling import Reset, ResetReason

if TYPE_CHECKING:  # the command's --help imports this module: no OpenCV for it
    from ..predictions import Prediction

log = logging.getLogger(__name__)

#: Seconds between attempts to reach a server that stopped answering (the last one repeats).
BACKOFF_S = (0.25, 0.5, 1.0, 2.0)
#: Default of ``reconnect_s`` (``triton-client --reconnect-s``): a restarted CPU server here was
#: ready in 2.4-4.7 s; a GPU server loading TensorRT engines can take tens of seconds.
DEFAULT_RECONNECT_S = 60.0


class ServerGone(BackendError):
    """The server did not answer for ``reconnect_s`` seconds; the message says what was tried."""


class TritonStream:
    """Frames of one camera to a Triton server through ``recognizer``, across lost sequences and restarts.

    ``recognizer``: a Recognizer over ``engine`` (not closed here). ``reconnect_s``: how long
    to wait for a server that stopped answering (0: give up at once). ``clock``: seconds,
    monotonic (tests). Not thread-safe: one consumer thread pushes.
    """

    def __init__(self, recognizer: Any, engine: TritonSequenceEngine, *, reconnect_s: float = DEFAULT_RECONNECT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not (is_real_number(reconnect_s) and reconnect_s >= 0):
            raise ValueError(f"reconnect_s must be a number of seconds >= 0, got {reconnect_s!r}")
        self.recognizer, self.engine = recognizer, engine
        self.reconnect_s = float(reconnect_s)
        self._clock = clock
        self._returns = 0  # the server answered again after it went away
        self.dropped = 0  #: frames dropped while the server did not answer
        self.down_s = 0.0  #: seconds without a server, over the stream
        self._down_since: float | None = None
        self._attempts = 0
        self._next_attempt = 0.0
        self._last_error = ""

    @property
    def restarts(self) -> int:
        """New sequences started because the server lost one (the session did it) or went away."""
        return self._returns + self.engine.sequences_lost

    @property
    def server_down(self) -> bool:
        """True from a failed frame until the server answers again."""
        return self._down_since is not None

    def push(self, image: Any, timestamp: float | None = None, **frame_info: Any) -> Prediction | None:
        """:meth:`Recognizer.push`, surviving the server (see the module). None also for a dropped frame.

        Raises :class:`ServerGone` once the server has not answered for ``reconnect_s`` seconds.
        """
        if self._down_since is not None and not self.poll():
            self.dropped += 1
            return None
        try:
            return self.recognizer.push(image, timestamp, **frame_info)  # a lost sequence starts again in there
        except ServerUnavailable as exc:
            self.dropped += 1
            self._went_down(str(exc))
            return None

    def poll(self) -> bool:
        """While the server does not answer: try it when the backoff allows. True once it answers
        (the stream is reset: the next frame starts a new sequence), False while it does not.
        Call it when no frame arrives, so a stalled source still gives up in time."""
        if self._down_since is None:
            return True
        now = self._clock()
        if now - self._down_since >= self.reconnect_s:
            self._give_up(now)
        if now < self._next_attempt:
            return False
        problem = self.engine.reconnect(timeout_s=min(self.engine.timeout_s, 2.0))
        now = self._clock()
        if problem is not None:
            self._last_error = problem
            self._attempts += 1
            self._next_attempt = now + BACKOFF_S[min(self._attempts, len(BACKOFF_S) - 1)]
            return False
        away = now - self._down_since
        self.down_s += away
        self._down_since = None
        self._returns += 1
        log.warning("the Triton server at %s answers again after %.1f s (%d frames dropped meanwhile); a new sequence starts",
                    self.engine.url, away, self.dropped)
        self._reset(f"the Triton server at {self.engine.url} answers again after {away:.1f} s without it; a new sequence started")
        return True

    def _went_down(self, error: str) -> None:
        now = self._clock()
        self._down_since, self._attempts, self._last_error = now, 0, error
        self._next_attempt = now + BACKOFF_S[0]
        log.warning("%s; waiting up to %g s for the server (frames are dropped meanwhile)", error, self.reconnect_s)
        if self.reconnect_s == 0:
            self._give_up(now)

    def _give_up(self, now: float) -> None:
        assert self._down_since is not None
        self.down_s += now - self._down_since
        self._down_since = None
        raise ServerGone(
            f"the Triton server at {self.engine.url} did not answer for {self.reconnect_s:g} s (--reconnect-s; "
            f"last: {self._last_error}); {self.dropped} frames dropped meanwhile. Check the server, then start the "
            "client again (or give --reconnect-s more time)"
        )

    def _reset(self, message: str) -> None:
        # the next Prediction carries it; smoothing and events start again there
        self.recognizer.restart(Reset(ResetReason.RECONNECT, message))
