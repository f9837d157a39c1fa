"""Video datasets for fine-tuning on your own clips: an annotation list or a folder per class.

Sources
-------
* annotation list (mmaction2 ``VideoDataset``): one ``relative/path.mp4 label_index`` per line,
  paths relative to ``data_prefix`` (default: the list's folder); blank lines and ``#`` comments
  are skipped;
* a folder per class: ``root/<class_name>/*.mp4``; classes are the sub-folder names, sorted.

Bad data is reported, not discovered at epoch 7: :func:`check_videos` opens every entry once and
returns a :class:`BadEntry` for each missing file, label out of range, file that cannot be decoded
and video without frames. :func:`load_video_dataset` raises :class:`BadDataError` listing all of
them, or (``skip_bad=True``) drops them and keeps the report. Training never hits a bare OpenCV
error.

Decoding: OpenCV by default; ``backend="pyav"`` uses PyAV (import-checked). Only the frames a
sample needs are kept; the clips this is meant for are short.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .sampling import SampleFrames, sample_frame_indices

__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoRecord",
    "BadEntry",
    "BadDataError",
    "read_annotation_list",
    "folder_records",
    "decode_video",
    "check_videos",
    "VideoClipDataset",
    "load_video_dataset",
]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class VideoRecord:
    """One dataset entry. ``where`` says where it came from (``file:line``) for reports."""

    path: Path
    label: int
    where: str = ""


@dataclass(frozen=True)
class BadEntry:
    """An entry that cannot be trained on, and why."""

    where: str
    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.path}: {self.problem}"


class BadDataError(ValueError):
    """The dataset has bad entries. ``entries`` lists them; the message names each one."""

    def __init__(self, entries: Sequence[BadEntry], total: int) -> None:
        self.entries = tuple(entries)
        shown = "\n".join(f"  {e}" for e in self.entries[:50])
        more = f"\n  ... and {len(self.entries) - 50} more" if len(self.entries) > 50 else ""
        super().__init__(
            f"{len(self.entries)} of {total} dataset entries cannot be used:\n{shown}{more}\n"
            "Fix or remove them, or pass --skip-bad (skip_bad=True) to train on the rest."
        )


class DecodeError(ValueError):
    """A video could not be decoded."""


def read_annotation_list(ann_file: str | Path, data_prefix: str | Path | None = None) -> tuple[list[VideoRecord], list[BadEntry]]:
    """Parse an mmaction2 VideoDataset list. Returns (records, malformed lines as BadEntry)."""
    ann = Path(ann_file)
    if not ann.is_file():
        raise FileNotFoundError(f"annotation file {ann} does not exist (expected lines 'relative/path.mp4 label_index')")
    prefix = Path(data_prefix) if data_prefix is not None else ann.parent
    records: list[VideoRecord] = []
    bad: list[BadEntry] = []
    for number, raw in enumerate(ann.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{ann.name}:{number}"
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            bad.append(BadEntry(where, line, "malformed line: expected 'relative/path.mp4 label_index'"))
            continue
        try:
            label = int(parts[1])
        except ValueError:
            bad.append(BadEntry(where, parts[0], f"label {parts[1]!r} is not an integer class index"))
            continue
        records.append(VideoRecord(prefix / parts[0], label, where))
    return records, bad


def folder_records(root: str | Path) -> tuple[list[VideoRecord], tuple[str, ...]]:
    """``root/<class>/*.<video>``: records and the class names (sorted sub-folder names)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if not classes:
        raise ValueError(f"{root} has no class sub-folders; expected {root}/<class_name>/<video>.mp4")
    records = [
        VideoRecord(f, label, f"{name}/")
        for label, name in enumerate(classes)
        for f in sorted((root / name).iterdir())
        if f.suffix.lower() in VIDEO_EXTENSIONS
    ]
    return records, classes


def _decode_opencv(path: Path, keep: set[int] | None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DecodeError("OpenCV cannot open it (corrupt file or unsupported container/codec)")
    frames: list[np.ndarray] = []
    try:
        last = max(keep) if keep else None
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if keep is None or index in keep:
                frames.append(frame)
            else:
                frames.append(None)  # placeholder keeps positions; freed below
            if last is not None and index >= last:
                break
            index += 1
    finally:
        cap.release()
    return frames


def _decode_pyav(path: Path, keep: set[int] | None) -> list[np.ndarray]:
    try:
        import av
    except ImportError:
        raise DecodeError("backend='pyav' needs PyAV: pip install av") from None
    try:
        with av.open(str(path)) as container:
            frames = []
            for index, frame in enumerate(container.decode(video=0)):
                frames.append(frame.to_ndarray(format="bgr24") if keep is None or index in keep else None)
                if keep and index >= max(keep):
                    break
            return frames
    except (av.error.FFmpegError, av.error.InvalidDataError, IndexError, ValueError) as exc:  # type: ignore[attr-defined]
        raise DecodeError(f"PyAV cannot decode it ({exc})") from None


def count_frames(path: str | Path, backend: str = "opencv") -> int:
    """Number of decodable frames (decodes the whole file: container headers can lie)."""
    frames = _decode_opencv(Path(path), set()) if backend == "opencv" else _decode_pyav(Path(path), set())
    return len(frames)


def decode_video(path: str | Path, indices: Sequence[int] | None = None, backend: str = "opencv") -> np.ndarray:
    """Decode a video as ``(N, H, W, 3)`` uint8 BGR: all frames, or the given ``indices`` in order.

    Raises :class:`DecodeError` (with the reason) for unreadable files and videos with no frames.
    """
    path = Path(path)
    if not path.is_file():
        raise DecodeError("file does not exist")
    if path.stat().st_size == 0:
        raise DecodeError("file is empty (0 bytes)")
    if backend not in ("opencv", "pyav"):
        raise ValueError(f"decoding backend must be 'opencv' or 'pyav', got {backend!r}")
    keep = set(int(i) for i in indices) if indices is not None else None
    frames = (_decode_opencv if backend == "opencv" else _decode_pyav)(path, keep)
    if not frames:
        raise DecodeError("video has no decodable frames (empty or corrupt)")
    if indices is None:
        return np.stack(frames)
    n = len(frames)
    missing = [i for i in indices if not 0 <= i < n]
    if missing:
        raise DecodeError(f"frame indices {missing[:5]} are beyond the {n} decodable frames")
    return np.stack([frames[i] for i in indices])


def check_videos(records: Sequence[VideoRecord], num_classes: int, backend: str = "opencv") -> tuple[list[int], list[BadEntry]]:
    """Open every entry once: returns (frame counts of good entries, bad entries)."""
    counts: list[int] = []
    bad: list[BadEntry] = []
    for r in records:
        if not 0 <= r.label < num_classes:
            bad.append(BadEntry(r.where, str(r.path), f"label {r.label} out of range: there are {num_classes} classes (0..{num_classes - 1})"))
            continue
        if not r.path.exists():
            bad.append(BadEntry(r.where, str(r.path), "file does not exist"))
            continue
        try:
            if r.path.stat().st_size == 0:
                raise DecodeError("file is empty (0 bytes)")
            n = count_frames(r.path, backend)
            if n == 0:
                raise DecodeError("video has no decodable frames (empty or corrupt)")
        except DecodeError as exc:
            bad.append(BadEntry(r.where, str(r.path), str(exc)))
            continue
        counts.append(n)
    return counts, bad


class VideoClipDataset:
    """Checked records + TSN sampling: ``load(i, rng) -> (uint8 (T, H, W, 3) BGR, label)``.

    ``rng=None`` (or ``test_mode=True``) samples the centred test indices.
    """

    def __init__(self, records: Sequence[VideoRecord], frame_counts: Sequence[int], sampling: SampleFrames,
                 *, test_mode: bool = False, backend: str = "opencv", class_names: Sequence[str] = ()) -> None:
        if len(records) != len(frame_counts):
            raise ValueError("records and frame_counts differ in length")
        self.records, self.frame_counts = list(records), list(frame_counts)
        self.sampling, self.test_mode, self.backend = sampling, test_mode, backend
        self.class_names = tuple(class_names)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
        record = self.records[index]
        test = self.test_mode or rng is None
        inds = sample_frame_indices(self.frame_counts[index], self.sampling, test_mode=test, rng=rng)
        try:
            frames = decode_video(record.path, inds.tolist(), self.backend)
        except DecodeError as exc:  # changed on disk since the check
            raise BadDataError([BadEntry(record.where, str(record.path), str(exc))], len(self.records)) from None
        return frames, record.label


def load_video_dataset(
    source: str | Path,
    *,
    sampling: SampleFrames,
    test_mode: bool = False,
    class_names: Sequence[str] | None = None,
    data_prefix: str | Path | None = None,
    skip_bad: bool = False,
    backend: str = "opencv",
) -> tuple[VideoClipDataset, list[BadEntry]]:
    """An annotation list (file) or a folder per class (directory) -> checked dataset + report.

    For an annotation list the class count comes from ``class_names``, else from a
    ``classes.txt`` next to the list, else from the largest label. Raises :class:`BadDataError`
    if any entry is bad, unless ``skip_bad``.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"dataset {source} does not exist: pass an annotation list or a folder with one sub-folder per class")
    if source.is_dir():
        records, names = folder_records(source)
        bad: list[BadEntry] = []
        if class_names is not None and tuple(class_names) != names:
            raise ValueError(f"class folders {names} do not match the class names {tuple(class_names)}")
    else:
        records, bad = read_annotation_list(source, data_prefix)
        if class_names is not None:
            names = tuple(class_names)
        elif (source.parent / "classes.txt").is_file():
            names = tuple(x.strip() for x in (source.parent / "classes.txt").read_text().splitlines() if x.strip())
        else:
            top = max((r.label for r in records), default=-1)
            names = tuple(f"class_{i}" for i in range(top + 1))
    counts, bad_videos = check_videos(records, len(names), backend)
    bad += bad_videos
    bad_where = {(b.where, b.path) for b in bad}
    good = [r for r in records if (r.where, str(r.path)) not in bad_where]
    total = len(records) + len(bad) - len(bad_videos)  # malformed lines never became records
    if bad and not skip_bad:
        raise BadDataError(bad, total)
    if bad:
        log.warning("skipping %d bad entries:\n%s", len(bad), "\n".join(f"  {b}" for b in bad))
    if not good:
        raise BadDataError(bad, total) if bad else ValueError(f"{source}: no video entries found")
    return VideoClipDataset(good, counts, sampling, test_mode=test_mode, backend=backend, class_names=names), bad
