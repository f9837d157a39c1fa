"""A small loopback MJPEG-over-HTTP server for fault-injection tests (not part of the package).

What a cheap IP camera does: ``GET /stream.mjpg`` answers ``200`` with
``Content-Type: multipart/x-mixed-replace;boundary=...`` and then sends one JPEG part after
another, each with its own ``Content-Type`` and ``Content-Length`` headers, until the client
goes away. FFmpeg reads this with its ``mpjpeg`` demuxer (picked from the content type), which
is what ``cv2.VideoCapture(url, cv2.CAP_FFMPEG)`` uses.

Why it exists: a stream outage must be tested for real (sockets closing under a running
FFmpeg read, a refused reconnect, the server coming back on the same port), not simulated by
a Python object. :meth:`MjpegServer.stop` closes the listening socket *and* every streaming
connection, like a camera losing power; :meth:`MjpegServer.start` after a stop binds the same
port again, like the camera coming back.

Bounded in time: every server shuts itself down after ``max_lifetime_s`` (a forgotten server
cannot keep a test run alive), binds 127.0.0.1 only, and uses daemon threads.

Each part carries its sequence number in big black/white blocks (:func:`encode_index`), which
survive JPEG compression, so a test can check which frames arrived.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "streamtsmframe"
PATH = "/stream.mjpg"

# -- frame content: 16 bits of index in 4x4 blocks -----------------------------------------------
HEIGHT, WIDTH, ROWS, COLS = 120, 160, 4, 4


def encode_index(i: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A BGR frame whose 4x4 blocks spell ``i`` (mod 65536) in binary (bright = 1)."""
    img = np.empty((height, width, 3), np.uint8)
    bh, bw = height // ROWS, width // COLS
    for bit in range(ROWS * COLS):
        r, c = divmod(bit, COLS)
        img[r * bh : (r + 1) * bh, c * bw : (c + 1) * bw] = 220 if (i >> bit) & 1 else 30
    img[..., 2] = np.uint8(120)  # a colour channel, so BGR order mistakes would show
    return img


def decode_index(img: np.ndarray) -> int:
    """Inverse of :func:`encode_index` (reads the block centres; robust to JPEG artefacts)."""
    height, width = img.shape[:2]
    bh, bw = height // ROWS, width // COLS
    value = 0
    for bit in range(ROWS * COLS):
        r, c = divmod(bit, COLS)
        block = img[r * bh + bh // 4 : (r + 1) * bh - bh // 4, c * bw + bw // 4 : (c + 1) * bw - bw // 4, 0]
        value |= int(block.mean() > 125) << bit
    return value


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.0"  # one response per connection, closed at the end (as cameras do)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output clean

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        owner = self.server.owner
        if self.path.split("?")[0] != PATH:
            self.send_error(404, f"only {PATH} is served")
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        owner._register(self.connection)
        try:
            period = 1.0 / owner.fps
            next_t = time.monotonic()
            while not self.server.stopping.is_set():
                jpeg = owner._next_jpeg()
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                ).encode("ascii")
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
                next_t += period
                delay = next_t - time.monotonic()
                if delay > 0:
                    self.server.stopping.wait(delay)
                else:
                    next_t = time.monotonic()
        except OSError:
            pass  # client went away, or stop() shut the socket under us
        finally:
            owner._unregister(self.connection)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # rebind the same port right after stop (TIME_WAIT)

    def __init__(self, address: tuple[str, int], owner: "MjpegServer") -> None:
        self.owner = owner
        self.stopping = threading.Event()
        super().__init__(address, _Handler)


class MjpegServer:
    """``multipart/x-mixed-replace`` JPEG stream on ``http://127.0.0.1:PORT/stream.mjpg``.

    ``frame_fn(i)`` makes the i-th frame (default :func:`encode_index`); ``i`` counts parts
    sent over the server's whole life (across restarts), so a reconnecting client sees larger
    indices. ``fps`` paces each connection. ``port=0`` picks a free port at the first start;
    later starts reuse it. The context manager starts and stops the server.
    """

    def __init__(
        self,
        frame_fn: Callable[[int], np.ndarray] = encode_index,
        *,
        fps: float = 30.0,
        port: int = 0,
        max_lifetime_s: float = 120.0,
        jpeg_quality: int = 90,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.frame_fn = frame_fn
        self.fps = float(fps)
        self.port = int(port)
        self.max_lifetime_s = float(max_lifetime_s)
        self.jpeg_quality = int(jpeg_quality)
        self.frames_sent = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._deadline: threading.Timer | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("server has no port yet: start() it first")
        return f"http://127.0.0.1:{self.port}{PATH}"

    @property
    def open_connections(self) -> int:
        """Streams being served now (a client that went away is noticed at the next part)."""
        with self._lock:
            return len(self._conns)

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> "MjpegServer":
        """Listen (again) on 127.0.0.1:port. Retries briefly if the port is still being released."""
        if self._httpd is not None:
            return self
        last_error: OSError | None = None
        for _ in range(50):
            try:
                self._httpd = _Server(("127.0.0.1", self.port), self)
                break
            except OSError as exc:  # EADDRINUSE right after a stop on some kernels
                last_error = exc
                time.sleep(0.05)
        else:
            raise RuntimeError(f"could not bind 127.0.0.1:{self.port}: {last_error}")
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        if self._deadline is None:  # one deadline for the object's whole life
            self._deadline = threading.Timer(self.max_lifetime_s, self.stop)
            self._deadline.daemon = True
            self._deadline.start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut every open stream now (a camera losing power)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.stopping.set()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(2.0)
            self._thread = None

    def close(self) -> None:
        """Stop for good (also cancels the lifetime deadline)."""
        self.stop()
        if self._deadline is not None:
            self._deadline.cancel()

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port."""
        self.stop()
        if down_s > 0:
            time.sleep(down_s)
        self.start()

    def __enter__(self) -> "MjpegServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by the handler ---------------------------------------------------------------
    def _next_jpeg(self) -> bytes:
        with self._lock:
            i = self.frames_sent
            self.frames_sent += 1
        ok, buf = cv2.imencode(".jpg", self.frame_fn(i), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError(f"JPEG encoding of frame {i} failed")
        return buf.tobytes()

    def _register(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.add(conn)
            self.connections += 1

    def _unregister(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)
