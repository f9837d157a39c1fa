"""Output files: checked before the work starts, replaced atomically when it ends.

Two rules for every file a command writes (exports, videos, screenshots, checkpoints):

* :func:`check_output_path` runs before any long work, so a path that cannot be written fails
  in a second with one line instead of after a ten-second export or an hour of training: the
  folder must be creatable and writable (tested by creating a probe, because permission bits
  do not tell: root cannot create files in ``/sys`` either), the path must not be a folder or
  a special file, and it must not be one of the command's inputs (``os.path.samefile``, so a
  hard link or another spelling of the same path is caught too).
* :class:`PendingFile` writes to a temporary file in the same folder whose name is unique per
  process and per call, then ``os.replace``-s it onto the target: an existing file is either
  the old one or the complete new one, never a half-written mix, and two processes writing the
  same target never write into each other's temporary file. On failure the temporary is
  removed and the old file stays as it was.

torch-free and OpenCV-free (the runtime imports it).
"""

from __future__ import annotations

import os
import stat
import tempfile
import uuid
from pathlib import Path
from types import TracebackType
from typing import Iterable, Sequence

__all__ = ["OutputPathError", "PendingFile", "check_output_path", "write_bytes_atomic", "write_text_atomic"]


class OutputPathError(ValueError):
    """An output path cannot be written, or would overwrite an input."""


def check_output_path(
    path: str | os.PathLike[str],
    *,
    suffixes: Sequence[str] = (),
    inputs: Iterable[str | os.PathLike[str] | None] = (),
    what: str = "output",
) -> Path:
    """``path`` as a :class:`~pathlib.Path` if a file can be written there; else :class:`OutputPathError`.

    ``suffixes`` (lower case, with the dot) restricts the file type; ``inputs`` are the files the
    command reads (``None`` entries are skipped), none of which may be the output; ``what``
    names the option in the message (``--output``). Nothing is created: a missing folder is
    checked by probing its nearest existing parent, the writer creates it.
    """
    p = Path(path)
    shown = f"{what} {p}"
    if suffixes and p.suffix.lower() not in suffixes:
        raise OutputPathError(f"{shown}: use a file name ending in {' or '.join(suffixes)}")
    if p.name in ("", ".", ".."):
        raise OutputPathError(f"{shown}: give a file name, not a folder")
    if p.is_dir():
        raise OutputPathError(f"{shown} is an existing folder; give a file name (e.g. {p / ('out' + (suffixes[0] if suffixes else ''))})")
    if p.exists() and not stat.S_ISREG(p.stat().st_mode):
        raise OutputPathError(f"{shown} exists and is not a regular file (a device, pipe or socket); choose another name")
    for source in inputs:
        if source is not None and p.exists() and Path(source).exists() and os.path.samefile(p, source):
            raise OutputPathError(
                f"{shown} is the same file as the input {source}: writing it would destroy the input; "
                "choose another output name"
            )
    _check_folder_writable(p.parent, shown)
    return p


def _check_folder_writable(folder: Path, shown: str) -> None:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"{shown}: {existing} is a file, not a folder, so nothing can be created inside it")
    try:
        if existing == folder:
            fd, probe = tempfile.mkstemp(prefix=".streamtsm-probe-", dir=folder)
            os.close(fd)
            os.unlink(probe)
        else:  # the folder will be created: can its nearest existing parent take a new folder?
            os.rmdir(tempfile.mkdtemp(prefix=".streamtsm-probe-", dir=existing))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputPathError(f"{shown}: cannot create files in {existing} ({reason}); choose a writable folder") from None


def temp_path_for(path: Path) -> Path:
    """A temporary name beside ``path``, unique per process and call, keeping ``path``'s suffix.

    The suffix stays last because writers such as OpenCV choose the container or image format
    from it (``clip.mp4`` -> ``.clip.1234-9f3a….part.mp4``). The leading dot hides it from
    ``ls`` and shell globs while it is being written; ``.part`` before the suffix marks it
    unfinished for code that lists a folder (the export cache skips ``*.part.onnx``).
    """
    return path.with_name(f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:12]}.part{path.suffix}")


class PendingFile:
    """A file written under a temporary name and moved onto ``path`` only when complete.

    Use as a context manager (commit on success, discard on an exception) or call
    :meth:`commit` / :meth:`discard` yourself. Write to :attr:`temp`; the parent folder exists
    once the object is made. Committing without having written anything leaves ``path`` as it was.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.temp = temp_path_for(self.path)

    def commit(self) -> bool:
        """Move the temporary file onto ``path``; False if nothing was written."""
        if not os.path.lexists(self.temp):
            return False
        try:
            os.replace(self.temp, self.path)
        except BaseException:
            self.discard()
            raise
        return True

    def discard(self) -> None:
        """Remove the temporary file (if any); ``path`` keeps its previous content."""
        try:
            os.unlink(self.temp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "PendingFile":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a :class:`PendingFile` (flushed to disk before the rename)."""
    with PendingFile(path) as pending:
        with open(pending.temp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return pending.path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`write_bytes_atomic` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode("utf-8"))
