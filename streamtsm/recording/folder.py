"""The recording folder on disk: what is in it, what may be added, and writing it so a crash loses nothing.

Layout (``streamtsm train DIR`` reads it): ``<class>/NNNN.mp4`` clips, ``annotations.txt``
(mmaction2's ``relative/path.mp4 label_index`` lines), ``classes.txt`` (one name per line, in
label-index order) and ``manifest.json`` (classes, background class, one entry per session and
per clip: source, fps, size, frames, times, streamtsm version).

Recording again into a folder appends: new clip numbers, new classes after the existing ones,
existing label indices never change. Everything is checked by :meth:`RecordingFolder.inspect`
before anything is written. A clip is written to ``.incomplete/`` and renamed into its class
folder only when complete; the annotation list and the manifest are then replaced atomically
(temporary file + ``os.replace``), so an annotation line never names a missing or half clip.
One session at a time writes a folder (an advisory lock, released by the OS if the process dies).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..outputs import write_text_atomic
from .names import ClassNameError, check_class_name, check_unique

try:
    import fcntl
except ImportError:  # Windows: no advisory lock (one session per folder is then the user's job)
    fcntl = None  # type: ignore[assignment]

MANIFEST = "manifest.json"
ANNOTATIONS = "annotations.txt"
CLASSES_FILE = "classes.txt"
INCOMPLETE = ".incomplete"
LOCK = ".record.lock"
FORMAT = "streamtsm-recording"
FORMAT_VERSION = 1
_OURS = {MANIFEST, ANNOTATIONS, CLASSES_FILE, INCOMPLETE, LOCK}
_CLIP_NAME = re.compile(r"(\d+)\.mp4")


class FolderError(ValueError):
    """The recording folder cannot be used as asked; the message says why and what to do."""


@dataclass
class FolderState:
    """What a recording folder holds (or will hold once the session starts)."""

    classes: list[str]
    background: str | None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    clips: list[dict[str, Any]] = field(default_factory=list)
    annotation_lines: list[str] = field(default_factory=list)
    new_classes: tuple[str, ...] = ()

    def manifest(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "classes": self.classes,
                "background_class": self.background, "sessions": self.sessions, "clips": self.clips}


def _read_existing(root: Path) -> FolderState | None:
    """The folder's recording, None for a folder that is new or empty; FolderError for anything else."""
    if root.exists() and not root.is_dir():
        raise FolderError(f"OUT_DIR {root} is a file, not a folder: give a new or existing recording folder")
    if not root.exists():
        return None
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        other = sorted(p.name for p in root.iterdir() if p.name not in (INCOMPLETE, LOCK))
        if other:
            shown = ", ".join(other[:5]) + (" ..." if len(other) > 5 else "")
            raise FolderError(f"OUT_DIR {root} is not empty ({shown}) and is not a recording (no {MANIFEST}): "
                              "record into a new or empty folder")
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FolderError(f"{manifest_path} cannot be read ({exc}); restore it or record into another folder") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FolderError(f"{manifest_path} is not a streamtsm recording manifest; record into another folder")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FolderError(f"{manifest_path} has format version {manifest.get('format_version')!r}; this streamtsm "
                          f"writes version {FORMAT_VERSION}: upgrade streamtsm or record into another folder")
    classes, background = manifest.get("classes"), manifest.get("background_class")
    sessions, clips = manifest.get("sessions"), manifest.get("clips")
    if (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)
            or not isinstance(sessions, list) or not isinstance(clips, list)
            or not (background is None or background in classes)):
        raise FolderError(f"{manifest_path} is damaged (classes, background_class, sessions or clips malformed); "
                          "restore it or record into another folder")
    try:
        for name in classes:
            check_class_name(name, f"class in {manifest_path}")
        check_unique(classes, str(manifest_path))
    except ClassNameError as exc:
        raise FolderError(str(exc)) from None
    listed = _read_lines(root / CLASSES_FILE)
    if [x.strip() for x in listed if x.strip()] != classes:
        raise FolderError(f"{root / CLASSES_FILE} does not match the classes of {manifest_path} ({classes}); "
                          "restore one from the other or record into another folder")
    lines = _read_lines(root / ANNOTATIONS) if (root / ANNOTATIONS).exists() else []
    for number, line in enumerate(lines, start=1):
        _check_annotation(line, len(classes), f"{root / ANNOTATIONS}:{number}")
    return FolderState(list(classes), background, list(sessions), list(clips), lines)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FolderError(f"{path} cannot be read ({exc}); restore it or record into another folder") from None


def _check_annotation(line: str, num_classes: int, where: str) -> None:
    text = line.strip()
    if not text or text.startswith("#"):
        return
    parts = text.rsplit(maxsplit=1)
    ok = len(parts) == 2 and parts[1].isdigit() and int(parts[1]) < num_classes
    if not ok or Path(parts[0]).is_absolute() or ".." in Path(parts[0]).parts:
        raise FolderError(f"{where}: {text!r} is not a 'relative/path.mp4 label_index' line of this folder's "
                          f"{num_classes} classes; fix or remove it")


def merge_classes(existing: Sequence[str], background_now: str | None, classes: Sequence[str],
                  background: str | None) -> tuple[list[str], str | None, tuple[str, ...]]:
    """The folder's classes after this session: (all, background, new ones), or FolderError.

    Existing label indices never change, so ``classes`` must name existing classes in their
    ``classes.txt`` order, then any new ones (which get the next indices).
    """
    if background is not None and background in classes:
        raise FolderError(f"--classes lists {background!r}, the background class: leave it out of --classes "
                          "(the clips between takes are recorded as it) or name another one with --background")
    known = [c for c in classes if c in existing]
    new = tuple(c for c in classes if c not in existing)
    labels = ", ".join(f"{c}={i}" for i, c in enumerate(existing))
    if known != [c for c in existing if c in known]:
        raise FolderError(f"--classes {','.join(classes)} would renumber this folder's labels ({labels}): name "
                          f"existing classes in that order, new classes after them")
    if new and known and classes.index(new[0]) < classes.index(known[-1]):
        raise FolderError(f"--classes {','.join(classes)}: new classes go after the existing ones ({labels}), "
                          f"e.g. --classes {','.join(known + list(new))}")
    merged = list(existing) + list(new)
    if background is None or background == background_now:
        return merged, background_now, new
    if background_now is not None:
        raise FolderError(f"this folder's background class is {background_now!r}: pass --background {background_now} "
                          "(or record into another folder)")
    if background in existing:
        raise FolderError(f"--background {background}: {background!r} is a gesture class of this folder ({labels}); "
                          "name another background class")
    return merged + [background], background, new + (background,)


class RecordingFolder:
    """One recording folder: inspect (read-only), then open for writing and commit clips to it."""

    def __init__(self, root: Path, state: FolderState, appending: bool) -> None:
        self.root, self.state, self.appending = root, state, appending
        self._lock_file: Any = None
        self._temp_count = 0
        self._snapshot: str | None = None

    @classmethod
    def inspect(cls, root: str | Path, classes: Sequence[str], background: str | None) -> "RecordingFolder":
        """Check the folder and the classes to record into it; nothing is written."""
        root = Path(root)
        existing = _read_existing(root)
        if existing is None:
            merged, bg, new = merge_classes([], None, classes, background)
            folder = cls(root, FolderState(merged, bg, new_classes=new), appending=False)
        else:
            merged, bg, new = merge_classes(existing.classes, existing.background, classes, background)
            existing.classes, existing.background, existing.new_classes = merged, bg, new
            folder = cls(root, existing, appending=True)
        folder._snapshot = folder._fingerprint()
        return folder

    def _fingerprint(self) -> str:
        return "\0".join((self.root / n).read_text(encoding="utf-8") if (self.root / n).is_file() else ""
                         for n in (MANIFEST, CLASSES_FILE, ANNOTATIONS))

    # -- writing ---------------------------------------------------------------------------
    def open_for_writing(self) -> None:
        """Create the folder, take the lock, check nobody changed it since :meth:`inspect`."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            (self.root / INCOMPLETE).mkdir(exist_ok=True)
            lock = open(self.root / LOCK, "a+")
        except OSError as exc:
            raise FolderError(f"cannot create the recording folder {self.root}: {exc}") from None
        if fcntl is not None:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock.close()
                raise FolderError(f"another `streamtsm record` is writing to {self.root}: wait for it to finish "
                                  "or record into another folder") from None
        self._lock_file = lock
        if fcntl is not None:  # we hold the lock, so whatever is in .incomplete/ was left by a session that died
            for stale in (self.root / INCOMPLETE).iterdir():
                stale.unlink(missing_ok=True)
        if self._fingerprint() != self._snapshot:
            self.close()
            raise FolderError(f"{self.root} changed while the session was starting; run the command again")
        for name in self.state.classes:
            (self.root / name).mkdir(exist_ok=True)
        write_text_atomic(self.root / CLASSES_FILE, "".join(f"{c}\n" for c in self.state.classes))
        self._write_annotations()
        self._write_manifest()

    def close(self) -> None:
        """Release the lock and remove this session's leftovers (an empty ``.incomplete/``)."""
        incomplete = self.root / INCOMPLETE
        for tmp in incomplete.glob(f"{os.getpid()}-*") if incomplete.is_dir() else ():
            tmp.unlink(missing_ok=True)
        try:
            incomplete.rmdir()
        except OSError:
            pass  # not empty (another process's leftovers) or already gone
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def label_of(self, name: str) -> int:
        return self.state.classes.index(name)

    def temp_path(self) -> Path:
        """A fresh path in ``.incomplete/`` (unique per process) for a clip being written."""
        self._temp_count += 1
        return self.root / INCOMPLETE / f"{os.getpid()}-{self._temp_count}.mp4"

    def next_path(self, name: str) -> str:
        """``<name>/NNNN.mp4`` with the next number after every clip on disk or in the manifest."""
        used = [0]
        folder = self.root / name
        for p in folder.iterdir() if folder.is_dir() else ():
            if m := _CLIP_NAME.fullmatch(p.name):
                used.append(int(m.group(1)))
        for clip in self.state.clips:
            head, _, tail = str(clip.get("path", "")).partition("/")
            if head == name and (m := _CLIP_NAME.fullmatch(tail)):
                used.append(int(m.group(1)))
        return f"{name}/{max(used) + 1:04d}.mp4"

    def commit(self, tmp: Path, entry: dict[str, Any]) -> str:
        """Move a finished clip into place and register it; returns its relative path."""
        rel = self.next_path(entry["class"])
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())  # the clip's bytes are on disk before any name points at it
        os.replace(tmp, self.root / rel)
        entry = {"path": rel, **entry}
        self.state.clips.append(entry)
        self.state.annotation_lines.append(f"{rel} {entry['label']}")
        self._write_annotations()
        self._write_manifest()
        return rel

    def withdraw(self, paths: Sequence[str]) -> None:
        """Unregister clips of this session (redo) and delete their files, annotations first."""
        gone = set(paths)
        self.state.annotation_lines = [ln for ln in self.state.annotation_lines if ln.rsplit(maxsplit=1)[0] not in gone]
        self.state.clips = [c for c in self.state.clips if c.get("path") not in gone]
        self._write_annotations()
        self._write_manifest()
        for rel in gone:
            (self.root / rel).unlink(missing_ok=True)

    def start_session(self, info: dict[str, Any]) -> int:
        self.state.sessions.append(info)
        self._write_manifest()
        return len(self.state.sessions) - 1

    def update_session(self, index: int, **fields: Any) -> None:
        self.state.sessions[index].update(fields)
        self._write_manifest()

    def _write_annotations(self) -> None:
        write_text_atomic(self.root / ANNOTATIONS, "".join(f"{ln}\n" for ln in self.state.annotation_lines))

    def _write_manifest(self) -> None:
        write_text_atomic(self.root / MANIFEST, json.dumps(self.state.manifest(), indent=1) + "\n")
