"""HTTP(S) download of one file into a partial file: mirror, timeouts, bounded retries, resume, progress.

Why not ``torch.hub``: this runs on devices without torch, must work behind an air-gapped mirror
(``STREAMTSM_MIRROR``), must never touch the network when told not to (``STREAMTSM_OFFLINE``), and
must survive a connection that drops half-way through a 100 MB file (it resumes with an HTTP Range
request, or restarts when the server ignores ranges). Placing the finished file, locking and
checksums are ``cache.py``'s job; this module only moves bytes.

Torch-free (standard library only).
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from .registry import WeightsError

log = logging.getLogger(__name__)

MIRROR_ENV = "STREAMTSM_MIRROR"
OFFLINE_ENV = "STREAMTSM_OFFLINE"
TIMEOUT_ENV = "STREAMTSM_DOWNLOAD_TIMEOUT"
RETRIES_ENV = "STREAMTSM_DOWNLOAD_RETRIES"

_CHUNK = 1 << 16
_USER_AGENT = f"streamtsm/{__version__}"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(WeightsError):
    """A file could not be fetched (network, server, or offline mode)."""


@dataclass(frozen=True)
class DownloadOptions:
    """How hard to try: ``timeout`` seconds for the connect and for each read (a server that accepts
    and never answers fails after it), ``retries`` further attempts after the first (with ``backoff``
    seconds doubling between them), ``progress`` a bar on stderr (None: only when stderr is a terminal).
    """

    timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    progress: bool | None = None

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise WeightsError(f"download timeout must be > 0 seconds, got {self.timeout}")
        if self.retries < 0:
            raise WeightsError(f"download retries must be >= 0, got {self.retries}")

    @classmethod
    def from_env(cls, **overrides: object) -> "DownloadOptions":
        """Defaults, then ``STREAMTSM_DOWNLOAD_TIMEOUT``/``_RETRIES``, then explicit non-None overrides."""
        opts = cls()
        for var, key, kind in ((TIMEOUT_ENV, "timeout", float), (RETRIES_ENV, "retries", int)):
            value = os.environ.get(var, "").strip()
            if value:
                try:
                    opts = replace(opts, **{key: kind(value)})
                except ValueError:
                    raise WeightsError(f"{var}={value!r} is not a valid {kind.__name__}") from None
        return replace(opts, **{k: v for k, v in overrides.items() if v is not None})


def is_offline() -> bool:
    """``STREAMTSM_OFFLINE`` set to anything but empty/0/false/no/off: never touch the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def mirrored(url: str) -> str:
    """``url`` with scheme and host replaced by ``$STREAMTSM_MIRROR`` and its path put after the mirror's prefix.

    ``STREAMTSM_MIRROR=http://10.0.0.5:8080/zoo`` turns ``https://download.pytorch.org/models/x.pth``
    into ``http://10.0.0.5:8080/zoo/models/x.pth``: the site mirrors the files under their own paths.
    """
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return url
    m = urlsplit(mirror)
    if m.scheme not in ("http", "https") or not m.netloc or m.query or m.fragment:
        raise WeightsError(f"{MIRROR_ENV}={mirror!r} must look like http://host:port[/prefix] (http or https, no query)")
    u = urlsplit(url)
    return urlunsplit((m.scheme, m.netloc, m.path.rstrip("/") + u.path, u.query, ""))


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) only (urllib's default also follows ftp://)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise DownloadError(f"{req.full_url} redirects to {newurl!r}, which is not http(s): refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects)


class _Retry(Exception):
    """A transfer failed in a way another attempt may fix (the message says how)."""


class ProgressBar:
    """``name  42% [########..........]  3.9/9.3 MB  2.1 MB/s`` on one line of ``stream``, redrawn ≤ 10×/s."""

    def __init__(self, name: str, total: int | None, done: int = 0, stream: IO[str] | None = None) -> None:
        self.name, self.total, self.done = name, total, done
        self.stream = stream or sys.stderr
        self._start, self._start_bytes, self._drawn = time.monotonic(), done, 0.0

    def update(self, done: int, *, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if not force and now - self._drawn < 0.1:
            return
        self._drawn = now
        rate = (done - self._start_bytes) / max(now - self._start, 1e-6) / 1e6
        if self.total:
            frac = min(done / self.total, 1.0)
            bar = "#" * int(frac * 20)
            text = f"{self.name}  {frac * 100:3.0f}% [{bar:.<20}]  {done / 1e6:.1f}/{self.total / 1e6:.1f} MB  {rate:.1f} MB/s"
        else:
            text = f"{self.name}  {done / 1e6:.1f} MB  {rate:.1f} MB/s"
        self.stream.write("\r" + text)
        self.stream.flush()

    def close(self) -> None:
        self.update(self.done, force=True)
        self.stream.write("\n")
        self.stream.flush()


def fetch(url: str, part: Path, options: DownloadOptions | None = None, *, label: str | None = None) -> None:
    """Download ``url`` into ``part``, resuming from the bytes already in it; raise DownloadError when it cannot.

    Up to ``1 + options.retries`` attempts. A dropped connection or a short body resumes with
    ``Range: bytes=N-``; a server that answers 200 to a range restarts the file. HTTP 4xx (other than
    408/429) fails at once: retrying a 404 cannot help.
    """
    options = options or DownloadOptions()
    if is_offline():
        raise DownloadError(f"{OFFLINE_ENV} is set: not downloading {url}")
    if urlsplit(url).scheme not in ("http", "https"):
        raise DownloadError(f"refusing to download {url!r}: only http and https URLs are fetched")
    show = options.progress if options.progress is not None else sys.stderr.isatty()
    name = label or Path(urlsplit(url).path).name
    attempts = options.retries + 1
    reason = ""
    for attempt in range(attempts):
        if attempt:
            delay = min(options.backoff * 2 ** (attempt - 1), 8.0)
            log.warning("download of %s failed (%s); retry %d of %d in %.1f s", name, reason, attempt, options.retries, delay)
            time.sleep(delay)
        try:
            _transfer(url, part, options.timeout, name if show else None)
            return
        except _Retry as exc:
            reason = str(exc)
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise DownloadError(f"HTTP {exc.code} {exc.reason} for {url}") from None
            reason = f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            reason = f"cannot connect: {exc.reason}"
        except TimeoutError:
            reason = f"no answer within {options.timeout:g} s"
        except (OSError, http.client.HTTPException) as exc:
            reason = f"connection lost ({type(exc).__name__}: {exc})"
    raise DownloadError(f"could not download {url}: {reason} (gave up after {attempts} attempts)")


def _transfer(url: str, part: Path, timeout: float, bar_name: str | None) -> None:
    """One attempt: request the missing bytes and append them to ``part``."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _OPENER.open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # our partial file is not a prefix of what the server has
            part.unlink()
            raise _Retry("server refused to resume the partial file; starting over") from None
        raise
    with response:
        try:
            total = _expected_total(response, have)
        except _Retry:
            part.unlink(missing_ok=True)
            raise
        if response.status != 206:
            have = 0  # a full body: start the file again
        bar = ProgressBar(bar_name, total, have) if bar_name else None
        with open(part, "ab" if have else "wb") as out:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                have += len(chunk)
                if bar:
                    bar.update(have)
        if bar:
            bar.close()
    if total is not None and have != total:
        if have > total:
            part.unlink()
            raise _Retry(f"server sent {have} bytes, more than the {total} it announced; starting over")
        raise _Retry(f"transfer ended after {have} of {total} bytes")


def _expected_total(response: http.client.HTTPResponse, have: int) -> int | None:
    """Size of the whole file from Content-Range (206) or Content-Length (200); None when not announced."""
    if response.status == 206:
        m = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
        if not m or int(m[1]) != have:
            raise _Retry(f"server answered the range request with Content-Range {response.headers.get('Content-Range')!r}")
        return int(m[3]) if m[3] != "*" else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None
