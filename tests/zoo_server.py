"""A loopback file server for weight-download tests (not part of the package).

It serves byte strings under URL paths, as a model-zoo host or a site mirror does, and can
misbehave the ways real servers do, per path:

* ``ok``: 200 with Content-Length, or 206 for ``Range: bytes=N-`` requests;
* ``truncate``: announces the full length, sends half, closes; ignores Range (always from byte 0);
* ``drop_once``: the first GET sends the first ``drop_at`` bytes then closes; later GETs behave as ``ok``;
* ``missing``: 404;
* ``slow``: like ``ok`` but in 20 pieces ``slow_s`` apart (so two clients overlap).

:attr:`ZooServer.requests` records (path, Range header) of every GET. :class:`SilentServer` is a
socket that accepts connections (the kernel completes the handshake) and never answers.
Both bind 127.0.0.1 only and use daemon threads.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ZooServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.drop_at = 1000
        self.slow_s = 0.1
        self._dropped: set[str] = set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server._serve(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def add(self, path: str, data: bytes, mode: str = "ok") -> None:
        self.files[path] = data
        self.modes[path] = mode

    def count(self, path: str) -> int:
        with self._lock:
            return sum(1 for p, _ in self.requests if p == path)

    def __enter__(self) -> "ZooServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        path, rng = h.path, h.headers.get("Range")
        with self._lock:
            self.requests.append((path, rng))
        data, mode = self.files.get(path), self.modes.get(path, "ok")
        if data is None or mode == "missing":
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        start = 0
        m = re.match(r"bytes=(\d+)-$", rng or "")
        if m and mode != "truncate":
            start = int(m[1])
        if start >= len(data) and start:
            h.send_response(416)
            h.send_header("Content-Range", f"bytes */{len(data)}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(data) - start))
        h.send_header("Connection", "close")
        h.end_headers()
        body = data[start:]
        if mode == "truncate":
            body = body[: len(body) // 2]
        elif mode == "drop_once" and path not in self._dropped:
            self._dropped.add(path)
            body = body[: self.drop_at]
        if mode == "slow":
            step = max(1, len(body) // 20)
            for i in range(0, len(body), step):
                h.wfile.write(body[i : i + step])
                h.wfile.flush()
                time.sleep(self.slow_s)
        else:
            h.wfile.write(body)
        h.wfile.flush()
        h.close_connection = True


class SilentServer:
    """Accepts TCP connections (they queue in the listen backlog) and never sends a byte."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> "SilentServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
