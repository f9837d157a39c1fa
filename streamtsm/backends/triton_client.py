"""A Triton server as an online engine: one camera = one sequence of the server's sequence batcher.

The shift state never leaves the server: the "state" this engine hands the session is only
the sequence's handle (its correlation id and whether it has started). ``init_state`` is what
the session calls on a stream start or reset, so the next frame goes out with Triton's START
flag (a new sequence on the same id); ``close`` ends the sequence with END. The model card
(preprocessing, classes, rate) comes from the model's config (parameter ``streamtsm.card``,
written by ``streamtsm triton``), so a client needs no model file.

A server that lost the sequence (restarted, or the camera was idle past the batcher's idle
time, or a load balancer moved it) rejects a frame without START: ``step`` raises
:class:`SequenceLost`, a :class:`~streamtsm.backends.base.StateLost`, and the session starts
the stream again from that frame (the frame goes out again with START; its output carries a
``RECONNECT`` reset, so smoothing starts again too). A server that cannot be reached (down,
restarting, or silent past ``timeout_s``) makes ``step`` raise :class:`ServerUnavailable`: the
frame did not go through and the caller's state is untouched.
:class:`streamtsm.triton.stream.TritonStream` (what ``streamtsm triton-client`` runs) drops
frames meanwhile and waits for the server with :meth:`TritonSequenceEngine.reconnect`. This is
what scale-out means for state: a lost server resets its cameras.

torch-free: numpy and (imported by the engine) ``tritonclient[grpc]``; stdlib ``urllib`` for the
HTTP-port hint.
"""

from __future__ import annotations

import logging
import re
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..contract import CARD_METADATA_KEY, ContractError, read_card_from_onnx_metadata
from .base import BackendError, OnlineEngine, State, StateLost, check_input

log = logging.getLogger(__name__)


#: Triton's default gRPC port, named in every hint about --url.
DEFAULT_GRPC_PORT = 8001
#: gRPC status codes that mean "no server answered" (not "the server refused the request").
UNREACHABLE = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})")


class SequenceLost(StateLost):
    """The server no longer has this sequence (restarted, idle timeout, another server): start it again.

    A :class:`~streamtsm.backends.base.StateLost`: the session does that itself, resending the frame
    with START (``engine.sequences_lost`` counts them)."""


class ServerUnavailable(BackendError):
    """No answer from the server (down, restarting, or slower than the timeout); the frame was not stepped."""


def grpc_address(url: str) -> str:
    """``HOST:PORT`` of a server's gRPC endpoint from ``url`` (``grpc://`` is stripped; ``http://`` is
    refused, with the hint that the client speaks gRPC, default port 8001)."""
    text = str(url).strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        host = _HOST_PORT.match(rest)
        example = f"{host.group(1) if host else '127.0.0.1'}:{DEFAULT_GRPC_PORT}"
        if scheme.lower() in ("http", "https"):
            raise BackendError(
                f"--url {url}: the client speaks gRPC, not HTTP; give HOST:PORT of the server's gRPC endpoint "
                f"(tritonserver --grpc-port, default {DEFAULT_GRPC_PORT}), e.g. --url {example}"
            )
        if scheme.lower() != "grpc":
            raise BackendError(f"--url {url}: unknown scheme {scheme!r}; give HOST:PORT of the server's gRPC endpoint, "
                               f"e.g. --url {example}")
        text = rest
    match = _HOST_PORT.fullmatch(text)
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise BackendError(
            f"--url {url}: give HOST:PORT of the server's gRPC endpoint (tritonserver --grpc-port, default "
            f"{DEFAULT_GRPC_PORT}), e.g. --url 127.0.0.1:{DEFAULT_GRPC_PORT}"
        )
    return text


def _http_triton_answers(address: str) -> bool:
    """True when ``address`` is a Triton HTTP endpoint (the usual mistake: --url HOST:8000)."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/health/live", timeout=1.0) as response:
            return response.status == 200
    except urllib.error.HTTPError as exc:
        return exc.code in (400, 404)  # an HTTP server of some kind: worth the same hint
    except (urllib.error.URLError, OSError, ValueError):
        return False


def unreachable_hint(address: str) -> str:
    """What to check when no gRPC server answers at ``address``."""
    if _http_triton_answers(address):
        return (f"{address} answers HTTP, so it is the server's HTTP port: the client needs its gRPC port "
                f"(tritonserver --grpc-port, default {DEFAULT_GRPC_PORT})")
    return (f"is tritonserver running there? --url takes the gRPC port (tritonserver --grpc-port, default "
            f"{DEFAULT_GRPC_PORT}), not the HTTP port (default 8000)")


def only_ready_model(index: dict[str, Any], url: str) -> str:
    """The one ready model of a repository index (``get_model_repository_index(as_json=True)``);
    a client that names no model means that one, and must name one when there are several."""
    ready = sorted(m.get("name", "?") for m in index.get("models", []) if m.get("state") == "READY")
    if len(ready) == 1:
        return ready[0]
    if not ready:
        raise BackendError(f"the Triton server at {url} serves no ready model: check its log and --model-repository")
    raise BackendError(f"the Triton server at {url} serves {len(ready)} models ({', '.join(ready)}): name one with --model")


def _import_grpcclient():
    try:
        import tritonclient.grpc as grpcclient
    except ImportError:
        raise BackendError("the Triton client needs tritonclient: pip install 'tritonclient[grpc]'") from None
    return grpcclient


@dataclass(frozen=True)
class SequenceHandle:
    """A camera's sequence on the server: its correlation id, and whether START was sent."""

    sequence_id: int
    started: bool


class TritonSequenceEngine(OnlineEngine):
    """Steps frames of one stream through a model served by Triton (gRPC), as one sequence.

    ``url``: ``HOST:PORT`` of the server's gRPC endpoint (``grpc://HOST:PORT`` too). ``model``:
    its name in the server's repository (None: the server's only ready model). ``sequence_id``:
    the correlation id (default: a random one); two streams must never share one.
    ``timeout_s``: per request. ``step`` raises :class:`SequenceLost` or
    :class:`ServerUnavailable` (see the module's docstring); other server errors are a
    :class:`BackendError`.
    """

    name = "triton"

    def __init__(self, url: str, model: str | None = None, *, sequence_id: int | None = None, timeout_s: float = 10.0) -> None:
        grpcclient = _import_grpcclient()
        from tritonclient.utils import InferenceServerException

        self._grpc, self._error = grpcclient, InferenceServerException
        if sequence_id is not None and not 1 <= sequence_id < 2**64:
            raise BackendError(f"sequence id must be from 1 to 2**64-1, got {sequence_id}")
        url = grpc_address(url)
        self.url, self.model, self.timeout_s = url, model, float(timeout_s)
        self.sequence_id = sequence_id if sequence_id is not None else secrets.randbits(63) | 1
        self._last_frame: np.ndarray | None = None
        self._open = False
        self.sequences_lost = 0  #: times the server refused a started sequence (SequenceLost)
        try:
            self._client = grpcclient.InferenceServerClient(url)
            ready = self._client.is_server_ready(client_timeout=self.timeout_s)
        except (InferenceServerException, ValueError) as exc:
            raise BackendError(f"no Triton server answers at {url} (gRPC): {_first_line(exc)}; {unreachable_hint(url)}") from None
        if not ready:
            raise BackendError(f"the Triton server at {url} is not ready")
        if self.model is None:
            self.model = self._only_model()
        self.card = self._card_from_server()
        crop = self.card.preprocessing.crop_size
        self._frame_shape = (1, 3, crop, crop)

    def _only_model(self) -> str:
        try:
            index = self._client.get_model_repository_index(as_json=True, client_timeout=self.timeout_s)
        except self._error as exc:
            raise BackendError(f"{self.url}: cannot list the server's models: {_first_line(exc)}") from None
        return only_ready_model(index, self.url)

    def _card_from_server(self):
        try:
            if not self._client.is_model_ready(self.model, client_timeout=self.timeout_s):
                index = self._client.get_model_repository_index(as_json=True, client_timeout=self.timeout_s)
                names = sorted(m.get("name", "?") for m in index.get("models", []))
                raise BackendError(f"model {self.model!r} is not ready on {self.url}; the server has: {', '.join(names) or 'none'}")
            config = self._client.get_model_config(self.model, as_json=True, client_timeout=self.timeout_s)["config"]
        except self._error as exc:
            raise BackendError(f"{self.url}: cannot read the config of model {self.model!r}: {_first_line(exc)}") from None
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        what = f"Triton model {self.model!r} at {self.url}"
        if CARD_METADATA_KEY not in params:
            raise BackendError(
                f"{what} has no streamtsm card in its config (parameter {CARD_METADATA_KEY!r}); generate its "
                "repository with `streamtsm triton MODEL.onnx`"
            )
        try:
            card = read_card_from_onnx_metadata(params, what)
        except ContractError as exc:
            raise BackendError(str(exc)) from None
        if not card.is_online:
            raise BackendError(f"{what} is a window model; this client streams frames to online models only")
        return card

    # -- online -----------------------------------------------------------------------------
    def init_state(self, batch_size: int = 1) -> State:
        self._check_open()
        if batch_size != 1:
            raise BackendError(f"a Triton sequence carries one stream; got batch_size={batch_size} (use one engine per camera)")
        return SequenceHandle(self.sequence_id, started=False)

    def step(self, frame: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        self._check_open()
        if not isinstance(state, SequenceHandle) or state.sequence_id != self.sequence_id:
            raise BackendError("this state was not made by this engine's init_state()")
        frame = check_input("frame", frame, self._frame_shape)
        try:
            logits = self._infer(frame, start=not state.started)
        except self._error as exc:
            where = f"{self.url} model {self.model!r}"
            if exc.status() in UNREACHABLE:
                self._open = False  # whatever the server had of this sequence is gone or unknown
                raise ServerUnavailable(f"{where}: {_first_line(exc)}") from None
            if state.started and "START" in str(exc):
                self._open = False
                self.sequences_lost += 1
                raise SequenceLost(f"{where} lost sequence {self.sequence_id}: {_first_line(exc)}") from None
            raise BackendError(f"{where}: {_first_line(exc)}") from None
        self._last_frame, self._open = frame, True
        return logits, SequenceHandle(self.sequence_id, started=True)

    def reconnect(self, timeout_s: float | None = None) -> str | None:
        """Connect again (a new channel: gRPC's own reconnect backoff on the old one can be long) and
        check that the server and the model are ready. None when they are, else what is wrong.
        The card is kept: the client goes on preprocessing as the model it started with."""
        self._check_open()
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        old, self._client = self._client, self._grpc.InferenceServerClient(self.url)
        if old is not None:
            old.close()
        try:
            if not self._client.is_server_ready(client_timeout=timeout):
                return "the server is not ready"
            if not self._client.is_model_ready(self.model, client_timeout=timeout):
                return f"model {self.model!r} is not ready"
        except self._error as exc:
            return _first_line(exc)
        return None

    def _infer(self, frame: np.ndarray, *, start: bool = False, end: bool = False) -> np.ndarray:
        grpc = self._grpc
        tensor = grpc.InferInput("frame", list(frame.shape), "FP32")
        tensor.set_data_from_numpy(frame)
        result = self._client.infer(
            self.model, [tensor], outputs=[grpc.InferRequestedOutput("logits")], sequence_id=self.sequence_id,
            sequence_start=start, sequence_end=end, client_timeout=self.timeout_s,
        )
        logits = result.as_numpy("logits")
        if logits is None or logits.size != self.card.num_classes:
            raise BackendError(f"{self.url} model {self.model!r} returned logits of shape "
                               f"{None if logits is None else logits.shape}, expected ({self.card.num_classes},)")
        return logits.reshape(1, -1).astype(np.float32, copy=False)

    def _release(self) -> None:
        """End the sequence (the last frame is sent again with END) so the server frees its slot now."""
        client, self._client = getattr(self, "_client", None), None
        if client is None:
            return
        if self._open and self._last_frame is not None:
            try:
                self._client = client
                self._infer(self._last_frame, end=True)
            except (self._error, BackendError) as exc:
                log.info("sequence %d: END not delivered (%s); the server drops it after its idle time", self.sequence_id, _first_line(exc))
            finally:
                self._client, self._open = None, False
        client.close()

    def describe(self) -> str:
        return f"triton {self.model!r} at {self.url} (sequence {self.sequence_id}, {self.card.arch})"


def _first_line(exc: Any) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
