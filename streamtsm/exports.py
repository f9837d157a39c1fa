"""The export cache: a checkpoint given to the runtime is exported to ONNX once, then reused.

``backend="auto"`` runs every checkpoint as an exported graph (ONNX Runtime is ~3x faster
than torch on a CPU and stays steady when the CPU is busy), so the first use of a checkpoint
exports it into ``$STREAMTSM_HOME/exports`` and later uses load that file. An entry is found
by a key over everything that changes the graph: the weights (the checkpoint file's bytes and
its card file, or a module's tensors and card), the streamtsm version and the opset. Finding
an entry for a file needs no torch, so a device can run a checkpoint whose export was made
once where torch was installed.

Each entry is ``<arch>-<key>.onnx`` plus a ``.json`` sidecar with the key and the ONNX file's
SHA-256; an entry whose file does not match its sidecar (truncated, edited) is rebuilt. Every
export is checked against torch before it is written (as ``streamtsm export`` does), goes to
a temporary name unique to the process, is read back from there with the runtime's own I/O
check (a file the runtime would refuse never becomes an entry) and is renamed into place under
a per-entry lock, so two processes exporting the same checkpoint at once both end with the
same valid file. The
cache is bounded (``STREAMTSM_EXPORTS_MAX_MB``, default 4096): least recently used entries go.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .card import card_path_for
from .digest import file_sha256
from .weights.home import exports_dir

try:
    import fcntl
except ImportError:  # Windows: concurrent exports are not locked against each other there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

OPSET = 17
#: revision of what an export holds, part of every key: raised when exports of one version differ
#: (2: window TSM/TSN graphs declare their class dimension; revision-1 entries of those were refused at run time)
EXPORT_REVISION = 2
MAX_MB_ENV = "STREAMTSM_EXPORTS_MAX_MB"
DEFAULT_MAX_MB = 4096
LOCK_WAIT_S = 600.0


class ExportCacheError(RuntimeError):
    """The export cache cannot be used (unwritable folder, a lock never released, …)."""


@dataclass(frozen=True)
class ExportKey:
    """What identifies an export: a digest of weights + card + version + opset, and the arch for the file name."""

    arch: str
    digest: str

    @property
    def stem(self) -> str:
        return f"{self.arch}-{self.digest[:20]}"


def _version() -> str:
    from . import __version__

    return __version__


def _finish(h: "hashlib._Hash", arch: str, opset: int) -> ExportKey:
    h.update(f"|streamtsm {_version()}|export {EXPORT_REVISION}|opset {opset}".encode())
    return ExportKey(arch, h.hexdigest())


def key_for_file(path: str | Path, arch: str, *, opset: int = OPSET, sha256: str | None = None) -> ExportKey:
    """The key of a checkpoint file (its bytes and, for safetensors, its card file). torch-free.

    ``sha256``: the file's digest when the caller has just computed it (a checked weight file), so a
    100 MB file is not hashed twice at every start.
    """
    path = Path(path)
    h = hashlib.sha256(b"file|" + (sha256 or file_sha256(path)).encode())
    card = card_path_for(path)
    if path.suffix == ".safetensors" and card.is_file():
        h.update(b"|card|" + file_sha256(card).encode())
    return _finish(h, arch, opset)


def key_for_module(net: Any, *, opset: int = OPSET) -> ExportKey:
    """The key of an in-memory torch model: its tensors and its card."""
    h = hashlib.sha256(b"module|" + net.card.to_json(indent=None).encode())
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return _finish(h, net.card.arch, opset)


def lookup(key: ExportKey, root: Path | None = None) -> Path | None:
    """The cached export for ``key`` if it is intact (its sidecar matches the file), else None."""
    root = exports_dir() if root is None else root
    onnx, side = root / f"{key.stem}.onnx", root / f"{key.stem}.json"
    if not onnx.is_file() or not side.is_file():
        return None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        intact = meta.get("digest") == key.digest and meta.get("size") == onnx.stat().st_size and meta.get("onnx_sha256") == file_sha256(onnx)
    except (OSError, ValueError) as exc:
        log.warning("export cache entry %s is unreadable (%s): rebuilding it", side, exc)
        return None
    if not intact:
        log.warning("export cache entry %s does not match its sidecar (truncated or edited): rebuilding it", onnx)
        return None
    with contextlib.suppress(OSError):
        os.utime(onnx)  # least recently used goes first
    return onnx


def cached_export(net: Any, key: ExportKey | None = None, *, source: str = "", root: Path | None = None) -> Path:
    """The cached export of ``net`` (exported now, checked against torch, if there is none)."""
    key = key_for_module(net) if key is None else key
    root = exports_dir() if root is None else root
    found = lookup(key, root)
    if found is not None:
        log.info("using the cached export %s", found)
        return found
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportCacheError(f"cannot create the export cache {root} ({exc}); set STREAMTSM_HOME to a writable folder") from None
    with _locked(root / f"{key.stem}.lock"):
        found = lookup(key, root)  # another process may have finished it while we waited
        if found is not None:
            return found
        return _export(net, key, source, root)


def _export(net: Any, key: ExportKey, source: str, root: Path) -> Path:
    from .export.onnx import export_onnx

    onnx = root / f"{key.stem}.onnx"
    tmp = root / f"{key.stem}.{os.getpid()}-{secrets.token_hex(4)}.part.onnx"
    log.info("exporting %s to %s (once; later runs reuse it)", net.card.arch, onnx)
    t0 = time.perf_counter()
    try:
        export_onnx(net, tmp, dynamic_batch=True, opset=OPSET)
        check_entry(tmp, onnx)
        meta = {"digest": key.digest, "arch": key.arch, "size": tmp.stat().st_size, "onnx_sha256": file_sha256(tmp),
                "source": source, "streamtsm": _version(), "opset": OPSET, "created": time.time()}
        side_tmp = tmp.with_suffix(".json")
        side_tmp.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, onnx)
        os.replace(side_tmp, root / f"{key.stem}.json")
    finally:
        for leftover in (tmp, tmp.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    log.info("exported in %.1f s", time.perf_counter() - t0)
    evict(root, keep=onnx)
    return onnx


def check_entry(path: Path, entry: Path) -> None:
    """Refuse (ExportCacheError) an export the runtime would refuse: its card, I/O and dynamic batch, read from disk."""
    from .contract import ContractError
    from .describe import describe_onnx

    try:
        batch = describe_onnx(path)["batch"]
    except (ContractError, OSError, ValueError) as exc:
        raise ExportCacheError(f"the export for {entry.name} fails the runtime's check, so it was not cached: {exc}") from None
    if batch != "dynamic":
        raise ExportCacheError(f"the export for {entry.name} has a fixed batch ({batch}), not the dynamic one the cache needs; not cached")


def evict(root: Path, *, keep: Path | None = None, max_mb: float | None = None) -> list[Path]:
    """Delete least recently used entries until the cache is under its size limit; returns what went."""
    if max_mb is None:
        try:
            max_mb = float(os.environ.get(MAX_MB_ENV, DEFAULT_MAX_MB))
        except ValueError:
            raise ExportCacheError(f"{MAX_MB_ENV}={os.environ[MAX_MB_ENV]!r} is not a number of megabytes") from None
    entries = sorted((p for p in root.glob("*.onnx") if not p.name.endswith(".part.onnx")), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in entries)
    removed = []
    for onnx in entries:
        if total <= max_mb * 1e6:
            break
        if keep is not None and onnx == keep:
            continue
        total -= onnx.stat().st_size
        for path in (onnx, onnx.with_suffix(".json")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        removed.append(onnx)
        log.info("export cache over %g MB: removed the least recently used %s", max_mb, onnx.name)
    return removed


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    with open(lock_path, "a+") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ExportCacheError(f"{lock_path} stayed locked for {LOCK_WAIT_S:.0f} s; delete it if no export runs") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
