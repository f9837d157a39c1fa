"""Weight files by name: find them in ``$STREAMTSM_HOME/weights``, download them once, check them every time.

The rules:

* A file is only ever placed by an atomic rename of a finished, checked download, so a reader never
  sees half a file. Partial downloads have names unique per process (``NAME.<pid>-<hex>.part``); a
  later download adopts the largest one left behind and resumes it.
* One process downloads an entry at a time: an ``fcntl`` lock on ``NAME.lock`` beside the file. A
  second process waits for it and then finds the finished file (one request in all).
* Integrity: a published or derivable SHA-256 (prefix) is checked at every load; where none is known,
  the first download that loads strictly into the entry's architecture records its SHA-256 beside it
  (``NAME.sha256``, ``sha256sum -c`` format) and later loads check that. A mismatch deletes the file
  and says so; the next online load downloads it again.
* ``STREAMTSM_OFFLINE=1`` never touches the network and says which file is missing and where to put it.

Torch-free, except that checking a file without a known checksum loads it (with torch) once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..digest import file_sha256
from .fetch import DownloadError, DownloadOptions, fetch, is_offline, mirrored, OFFLINE_ENV
from .home import weights_dir
from .registry import WeightEntry, WeightsError, get_weight

try:
    import fcntl
except ImportError:  # Windows: downloads are not locked against each other there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: how long a second process waits for another one's download of the same file
LOCK_WAIT_S = 30 * 60.0

#: checks that a file is an entry's weights by loading it; raises ValueError saying why not
Verifier = Callable[[WeightEntry, Path], None]


@dataclass(frozen=True)
class CachedWeight:
    """A checked file in the cache: its entry, path and full SHA-256 (``verified`` False only when no
    checksum is known and torch was missing to check it by loading)."""

    entry: WeightEntry
    path: Path
    sha256: str
    verified: bool = True


def weight_path(entry: WeightEntry) -> Path:
    """Where ``entry``'s file lives in the cache (it may not exist)."""
    root = weights_dir()
    path = root / entry.file_name
    if path.parent != root or Path(entry.file_name).name != entry.file_name:
        raise WeightsError(f"{entry.name}: file name {entry.file_name!r} would leave the weights folder")
    return path


def cached_file(name: str) -> Path | None:
    """The cached file of weight ``name`` if present (not checked: cheap, for listings)."""
    path = weight_path(get_weight(name))
    return path if path.is_file() else None


def weight_file(name: str, *, download: bool = True) -> Path:
    """The checked local file of weight ``name``, downloading it first when needed and allowed."""
    return ensure_weight(get_weight(name), download=download).path


def download(name: str, *, progress: bool | None = None, timeout: float | None = None, retries: int | None = None) -> Path:
    """Fetch weight ``name`` into the cache now (e.g. to prefetch for an offline device); returns its path."""
    options = DownloadOptions.from_env(progress=progress, timeout=timeout, retries=retries)
    return ensure_weight(get_weight(name), options=options).path


def ensure_weight(
    entry: WeightEntry, *, download: bool = True, options: DownloadOptions | None = None, verify: Verifier | None = None
) -> CachedWeight:
    """The checked cached file of ``entry``; downloads it under the lock if missing or failing its check.

    ``verify`` replaces the strict load that checks files without a known checksum (``load_model``
    passes one that keeps the model it loads, so a first download is not loaded twice).
    """
    path = weight_path(entry)
    if path.is_file():  # fast path: a placed file is complete; checking it needs no lock
        good = _check(entry, path, verify)
        if good is not None:
            return good
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        problem = ""
        if path.is_file():  # another process may have placed or replaced it meanwhile
            good = _check(entry, path, verify)
            if good is not None:
                return good
            problem = _discard(entry, path)
        if is_offline() or not download:
            raise WeightsError(_missing_message(entry, path, problem, offline=is_offline()))
        return _download(entry, path, options or DownloadOptions.from_env(), verify)


# -- checking ---------------------------------------------------------------------------------


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded(path: Path) -> str:
    """The SHA-256 recorded at the first verified download ("" when none or unreadable)."""
    try:
        digest = _record_path(path).read_text(encoding="utf-8").split()[0].lower()
    except (OSError, IndexError):
        return ""
    return digest if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) else ""


def _record(path: Path, digest: str) -> None:
    record = _record_path(path)
    tmp = record.with_name(f"{record.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    tmp.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    os.replace(tmp, record)


def _check(entry: WeightEntry, path: Path, verify: Verifier | None) -> CachedWeight | None:
    """The file as a CachedWeight if it passes its check, None if it fails (nothing is deleted here)."""
    digest = file_sha256(path)
    expected = entry.sha256 or _recorded(path)
    if expected:
        return CachedWeight(entry, path, digest) if digest.startswith(expected) else None
    verdict = _loads_strictly(entry, path, verify)
    if verdict is None:
        return CachedWeight(entry, path, digest, verified=False)
    if verdict:
        return None
    _record(path, digest)
    return CachedWeight(entry, path, digest)


def _discard(entry: WeightEntry, path: Path) -> str:
    """Delete a cached file that failed its check; returns the sentence saying so."""
    expected = entry.sha256 or _recorded(path)
    what = f"its SHA-256 does not start with {expected}" if expected else "it does not load into " + entry.arch
    path.unlink(missing_ok=True)
    _record_path(path).unlink(missing_ok=True)
    message = f"the cached file {path} of {entry.name} failed its check ({what}: corrupted or replaced?) and was deleted"
    log.warning("%s", message)
    return message


def _loads_strictly(entry: WeightEntry, path: Path, verify: Verifier | None) -> str | None:
    """"" if the file loads strictly as the entry says, the reason if not, None when torch is missing to tell."""
    if entry.is_backbone:
        return None  # every backbone entry has a published checksum; nothing to load it into by itself
    try:
        (verify or _load_and_check)(entry, path)
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            raise
        log.warning("%s: no published checksum and torch is not installed to check the file by loading it; "
                    "it will be checked on the first load with torch", entry.name)
        return None
    except ValueError as exc:
        return str(exc)
    return ""


def _load_and_check(entry: WeightEntry, path: Path) -> None:
    from ..checkpoints.loader import load_model  # needs torch: only files without a known checksum get here

    entry.check_card(load_model(path, expected_arch=entry.arch).card)


# -- downloading ------------------------------------------------------------------------------


def _download(entry: WeightEntry, path: Path, options: DownloadOptions, verify: Verifier | None) -> CachedWeight:
    part = _adopt_partial(path)
    errors = []
    for url in entry.urls:
        source = mirrored(url)
        log.info("downloading %s from %s", entry.name, source)
        try:
            fetch(source, part, options, label=entry.file_name)
            break
        except DownloadError as exc:
            errors.append(str(exc))
    else:
        raise DownloadError(
            f"{entry.name}: " + "; ".join(errors)
            + f". Check the network (or set STREAMTSM_MIRROR), or put {entry.file_name} at {path} by hand"
        )
    digest = file_sha256(part)
    if entry.sha256 and not digest.startswith(entry.sha256):
        part.unlink()
        raise WeightsError(
            f"{entry.name}: the downloaded file's SHA-256 {digest[:16]}… does not start with the published "
            f"{entry.sha256} ({entry.sha256_note}); deleted it. The server or mirror serves a different file."
        )
    if not entry.sha256:
        problem = _loads_strictly(entry, part, verify)
        if problem:
            part.unlink()
            raise WeightsError(f"{entry.name}: the downloaded file is not the entry's weights ({problem}); deleted it")
        os.replace(part, path)
        if problem is None:
            return CachedWeight(entry, path, digest, verified=False)
        _record(path, digest)
        return CachedWeight(entry, path, digest)
    os.replace(part, path)
    return CachedWeight(entry, path, digest)


def _adopt_partial(path: Path) -> Path:
    """This process's partial file, continuing the largest one an earlier download left (caller holds the lock)."""
    own = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    leftovers = sorted(path.parent.glob(f"{path.name}.*.part"), key=lambda p: p.stat().st_size, reverse=True)
    if leftovers:
        os.replace(leftovers[0], own)
        log.info("resuming %s from %d bytes left by an earlier download", path.name, own.stat().st_size)
        for stale in leftovers[1:]:
            stale.unlink(missing_ok=True)
    return own


@contextlib.contextmanager
def _locked(path: Path, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Exclusive lock on ``path.lock`` (released by the kernel if the holder dies)."""
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        if fcntl is None:
            yield
            return
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    log.info("waiting for another process that is downloading %s", path.name)
                    told = True
                if time.monotonic() > deadline:
                    raise WeightsError(
                        f"another process has been downloading {path.name} for over {wait_s / 60:.0f} min "
                        f"(lock {handle.name}); wait for it or stop it, then retry"
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _missing_message(entry: WeightEntry, path: Path, problem: str, *, offline: bool) -> str:
    why = f"{OFFLINE_ENV} is set and " if offline else ""
    lead = f"{problem}. " if problem else ""
    return (
        f"{lead}{why}{entry.name} is not in the cache: put {entry.file_name} (from {entry.urls[0]}) at {path}, "
        f"e.g. copied from a machine where `streamtsm download {entry.name}` ran"
        + ("" if offline else f", or run `streamtsm download {entry.name}`")
    )
