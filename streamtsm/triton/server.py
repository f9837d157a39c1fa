"""A local Triton server from the ``nvidia-pytriton`` wheel, as set up by ``streamtsm triton-setup``.

The wheel bundles a ``tritonserver`` binary and the python backend. The server runs python
models with the interpreter of its own small venv (numpy < 2, onnxruntime: the python backend
returned empty outputs under numpy 2), never with the project's environment:

* the python backend finds ``triton_python_backend_stub`` (one per Python version in the
  wheel) in ``BACKENDS/python/``: the setup copies the venv's version there;
* the stub embeds ``libpythonX.Y.so.1.0`` and picks up the site-packages of the ``python3``
  first on ``PATH``: the launcher script puts the venv's ``bin`` first on ``PATH`` and the
  interpreter's library directory on ``LD_LIBRARY_PATH``, then runs the binary with
  ``--backend-directory``.

:class:`LocalServer` starts that launcher on free loopback ports, waits for readiness with a
deadline and stops it; tests and the setup's self-check use it. torch-free, stdlib only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

#: Written by ``streamtsm triton-setup`` into its directory.
SETUP_FILE = "triton-setup.json"
LAUNCHER = "tritonserver"
#: How to (re)create the server environment; named in every "not set up" message.
SETUP_COMMAND = "streamtsm triton-setup"


class TritonServerError(RuntimeError):
    """No usable local Triton server (the message says which command fixes it)."""


def default_server_dir() -> Path:
    """``$STREAMTSM_TRITON_SERVER``, else ``triton-server`` under the project's one cache root
    (:func:`streamtsm.weights.home.home_dir`: ``$STREAMTSM_HOME``, ``$STREAMTSM_CACHE``, ``$XDG_CACHE_HOME``)."""
    from ..weights.home import home_dir

    explicit = os.environ.get("STREAMTSM_TRITON_SERVER")
    if explicit:
        return Path(explicit).expanduser()
    return home_dir() / "triton-server"


@dataclass(frozen=True)
class ServerInstall:
    """What the setup recorded: the launcher script and the versions behind it."""

    root: Path
    launcher: Path
    server_version: str
    python_version: str
    numpy_version: str
    verified: bool
    error: str = ""

    @classmethod
    def load(cls, root: str | Path | None = None, *, require_verified: bool = True) -> "ServerInstall":
        """The install in ``root`` (default :func:`default_server_dir`); by default only one whose
        self-check passed: a server that cannot start here is reported as such, with the reason."""
        root = Path(root) if root is not None else default_server_dir()
        record = root / SETUP_FILE
        if not record.is_file():
            raise TritonServerError(f"no Triton server set up in {root}: run `{SETUP_COMMAND} {root}` (a few minutes, once)")
        try:
            d = json.loads(record.read_text(encoding="utf-8"))
            install = cls(root, root / LAUNCHER, str(d["server_version"]), str(d["python_version"]),
                          str(d["numpy_version"]), bool(d["verified"]), str(d.get("error", "")))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise TritonServerError(f"{record} is unreadable ({exc}): run `{SETUP_COMMAND} {root}` again") from None
        if not os.access(install.launcher, os.X_OK):
            raise TritonServerError(f"{install.launcher} is missing: run `{SETUP_COMMAND} {root}` again")
        if require_verified and not install.verified:
            raise TritonServerError(
                f"the Triton server in {root} failed its self-check ({install.error or 'not run'}); "
                f"run `{SETUP_COMMAND} {root}` again to see why"
            )
        return install


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the server binds it a moment later)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now.

    All sockets stay bound until every port is picked: one at a time, the kernel may hand the same
    port out twice, and tritonserver refuses gRPC and metrics on one port.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LocalServer:
    """``tritonserver`` on 127.0.0.1 with free HTTP/gRPC/metrics ports; use as a context manager.

    The server's output goes to ``log_path`` (never to a pipe that could fill up).
    ``start()`` returns once ``/v2/health/ready`` answers 200, or raises within
    ``ready_timeout_s`` with the end of the log. ``stop()`` terminates, then kills; ``kill()``
    ends it as a crash would (SIGKILL), and ``restart()`` starts it again on the same ports.
    """

    def __init__(self, install: ServerInstall, repository: str | Path, log_path: str | Path, *,
                 ready_timeout_s: float = 60.0, extra_args: tuple[str, ...] = ()) -> None:
        self.install = install
        self.repository = Path(repository).resolve()
        self.log_path = Path(log_path)
        self.ready_timeout_s = ready_timeout_s
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None
        self.http_port = self.grpc_port = self.metrics_port = 0
        self.startup_s: float | None = None

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> "LocalServer":
        for attempt in range(3):  # a port picked as free can be taken before the server binds it
            self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
            if self._start_once():
                return self
            if "already in use" not in self.log_tail(40) or attempt == 2:
                break
        raise TritonServerError(
            f"tritonserver did not become ready (log {self.log_path}):\n{self.log_tail()}\n"
            f"If the setup is broken, run `{SETUP_COMMAND} {self.install.root}` again."
        )

    def restart(self) -> "LocalServer":
        """Start again on the same ports, after :meth:`stop` or :meth:`kill` (clients keep their URL).
        The log goes on in the same file."""
        if self.process is not None and self.process.poll() is None:
            raise TritonServerError("the server is still running: stop() or kill() it before restart()")
        if not self.grpc_port:
            raise TritonServerError("the server never started: call start() first")
        for _ in range(10):  # the ports of a killed server can take a moment to be free again
            if self._start_once(append=True):
                return self
            if "already in use" not in self.log_tail(40):
                break
            time.sleep(0.5)
        raise TritonServerError(f"tritonserver did not become ready again on its ports (log {self.log_path}):\n{self.log_tail()}")

    def kill(self) -> None:
        """End the server at once with SIGKILL (no shutdown: what a crash or an OOM kill does)."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10.0)

    def _start_once(self, append: bool = False) -> bool:
        args = [
            str(self.install.launcher), f"--model-repository={self.repository}",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
            "--exit-timeout-secs=5", *self.extra_args,
        ]
        t0 = time.monotonic()
        with open(self.log_path, "ab" if append else "wb") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = t0 + self.ready_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            if self._ready():
                self.startup_s = time.monotonic() - t0
                return True
            time.sleep(0.1)
        self.stop()
        return False

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=1.0) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5.0)

    def __enter__(self) -> "LocalServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
