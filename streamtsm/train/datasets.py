"""Video datasets for fine-tuning on your own clips: an annotation list or a folder per class.

Sources
-------
* annotation list (mmaction2 ``VideoDataset``): one ``relative/path.mp4 label_index`` per line,
  paths relative to ``data_prefix`` (default: the list's folder); blank lines and ``#`` comments
  are skipped. Class names come from the caller, else a ``classes.txt`` beside the list (one
  name per line, in label order); without names the labels must be dense (0..K-1: a gap is an
  error listing the missing indices, because a typo in a label would otherwise add classes);
* a folder per class: ``root/<class_name>/*.mp4``; classes are the sub-folder names, sorted;
* a folder holding ``annotations.txt`` (what ``streamtsm record`` writes): that list, preferred
  over the sub-folders.

Text files are UTF-8 (a byte-order mark is dropped); any other encoding is an error naming the
file and line. Each clip's frame rate is read from its file: with ``model_fps`` a clip is seen on
the model's timeline (frame stride ``clip_fps / model_fps``), so clips recorded at 30 fps train a
10 fps model with the motion per step it will see live.

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
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from .sampling import SampleFrames, check_sampling_fits, sample_frame_indices, source_indices, timeline_length

__all__ = [
    "VIDEO_EXTENSIONS",
    "ANNOTATIONS_FILE",
    "CLASSES_FILE",
    "MAX_CLASSES",
    "VideoRecord",
    "VideoInfo",
    "DatasetError",
    "check_dataset_path",
    "read_text",
    "read_class_names",
    "dataset_layout",
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
ANNOTATIONS_FILE = "annotations.txt"
CLASSES_FILE = "classes.txt"
#: class indices are bounded: a label is an index into a list of names the card carries
MAX_CLASSES = 10_000
#: a container frame rate outside (0, MAX_FPS] is treated as unknown
MAX_FPS = 1000.0
#: a clip may be a little slower than the model (29.97 vs 30 fps), not more
FPS_TOLERANCE = 0.95


@dataclass(frozen=True)
class VideoRecord:
    """One dataset entry. ``where`` says where it came from (``file:line``) for reports."""

    path: Path
    label: int
    where: str = ""


@dataclass(frozen=True)
class VideoInfo:
    """What the check found in a file: decodable frames and its frame rate."""

    frames: int
    fps: float


class DatasetError(ValueError):
    """The dataset as a whole is unusable (unreadable list, label gaps, empty class folder)."""


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

    def __init__(self, entries: Sequence[BadEntry], total: int, use: str = "train on") -> None:
        self.entries = tuple(entries)
        shown = "\n".join(f"  {e}" for e in self.entries[:50])
        more = f"\n  ... and {len(self.entries) - 50} more" if len(self.entries) > 50 else ""
        super().__init__(
            f"{len(self.entries)} of {total} dataset entries cannot be used:\n{shown}{more}\n"
            f"Fix or remove them, or pass --skip-bad (skip_bad=True) to {use} the rest."
        )


class DecodeError(ValueError):
    """A video could not be decoded."""


def read_text(path: str | Path, what: str) -> str:
    """A UTF-8 text file (a byte-order mark is dropped); errors name the file, line and fix."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): save it as UTF-8"
        ) from None


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """One class name per line (blank lines skipped), in label-index order; names must be unique."""
    names = tuple(x.strip() for x in read_text(path, "class names file").splitlines() if x.strip())
    if not names:
        raise DatasetError(f"class names file {path} is empty: write one class name per line, in label order")
    seen: set[str] = set()
    twice = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if twice:
        raise DatasetError(f"class names file {path} names {sorted(set(twice))} more than once: class names must be unique")
    if len(names) > MAX_CLASSES:
        raise DatasetError(f"class names file {path} has {len(names)} names: at most {MAX_CLASSES} classes")
    return names


def read_annotation_list(ann_file: str | Path, data_prefix: str | Path | None = None) -> tuple[list[VideoRecord], list[BadEntry]]:
    """Parse an mmaction2 VideoDataset list. Returns (records, malformed lines as BadEntry)."""
    ann = Path(ann_file)
    if not ann.is_file():
        raise FileNotFoundError(f"annotation file {ann} does not exist (expected lines 'relative/path.mp4 label_index')")
    prefix = Path(data_prefix) if data_prefix is not None else ann.parent
    records: list[VideoRecord] = []
    bad: list[BadEntry] = []
    for number, raw in enumerate(read_text(ann, "annotation file").splitlines(), start=1):
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
        if not 0 <= label < MAX_CLASSES:
            shown = parts[1] if len(parts[1]) <= 24 else parts[1][:20] + "..."
            bad.append(BadEntry(where, parts[0], f"label {shown} is not a class index 0..{MAX_CLASSES - 1}"))
            continue
        records.append(VideoRecord(prefix / parts[0], label, where))
    return records, bad


def dense_class_names(records: Sequence[VideoRecord], source: Path) -> tuple[str, ...]:
    """``class_0 .. class_{K-1}`` for labels that are exactly 0..K-1; a gap is an error that lists it."""
    used = sorted({r.label for r in records})
    if not used:
        return ()
    missing = sorted(set(range(used[-1] + 1)) - set(used))
    if missing:
        shown = ", ".join(map(str, missing[:20])) + (f" ... ({len(missing)} in all)" if len(missing) > 20 else "")
        raise DatasetError(
            f"{source}: labels go up to {used[-1]} but no clip has label {shown}. Without class names the labels must "
            f"be 0..K-1 with no gap: renumber them, or name every class in {CLASSES_FILE} (one per line) or with --classes"
        )
    return tuple(f"class_{i}" for i in used)


def folder_records(root: str | Path) -> tuple[list[VideoRecord], tuple[str, ...]]:
    """``root/<class>/*.<video>``: records and the class names (sorted sub-folder names).

    A class folder without videos is an error: it would become a class the model never sees.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    classes = tuple(sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")))
    if not classes:
        raise DatasetError(f"{root} has no class sub-folders; expected {root}/<class_name>/<video>.mp4")
    if len(classes) > MAX_CLASSES:
        raise DatasetError(f"{root} has {len(classes)} class folders: at most {MAX_CLASSES} classes")
    videos = {name: sorted(f for f in (root / name).iterdir() if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file())
              for name in classes}
    empty = [name for name in classes if not videos[name]]
    if empty:
        raise DatasetError(
            f"{root}: class folder(s) {empty} hold no videos ({', '.join(VIDEO_EXTENSIONS)}): add clips or remove the folder"
        )
    records = [VideoRecord(f, label, f"{name}/") for label, name in enumerate(classes) for f in videos[name]]
    return records, classes


def dataset_layout(source: str | Path) -> tuple[str, Path]:
    """``("list", annotation file)`` or ``("folders", root)``: a folder with ``annotations.txt`` is a list."""
    source = Path(source)
    if source.is_dir():
        ann = source / ANNOTATIONS_FILE
        return ("list", ann) if ann.is_file() else ("folders", source)
    return "list", source


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


def container_fps(path: str | Path, backend: str = "opencv") -> float | None:
    """The frame rate the file declares, or None when it declares none (or nonsense)."""
    fps: float | None = None
    if backend == "opencv":
        cap = cv2.VideoCapture(str(path))
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else None
        finally:
            cap.release()
    else:
        try:
            import av

            with av.open(str(path)) as container:
                rate = container.streams.video[0].average_rate or container.streams.video[0].guessed_rate
                fps = float(rate) if rate else None
        except Exception:  # noqa: BLE001 - any failure means "unknown"; decoding reports the real problem
            fps = None
    if fps is None or not math.isfinite(fps) or not 0 < fps <= MAX_FPS:
        return None
    return fps


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


def check_videos(records: Sequence[VideoRecord], num_classes: int, backend: str = "opencv", *,
                 model_fps: float | None = None, clip_fps: float | None = None) -> tuple[list[VideoInfo], list[BadEntry]]:
    """Open every entry once: returns (frames and fps of good entries, bad entries).

    ``clip_fps`` is used for files that declare no frame rate (without it they are bad entries
    when ``model_fps`` needs one). A clip slower than ``model_fps`` is a bad entry: its frames
    would repeat and the model would learn motion at the wrong speed.
    """
    infos: list[VideoInfo] = []
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
        fps = container_fps(r.path, backend) or clip_fps
        if fps is None:
            if model_fps is not None:
                bad.append(BadEntry(r.where, str(r.path), "the file declares no frame rate: pass --clip-fps"))
                continue
            fps = float("nan")
        elif model_fps is not None and fps < model_fps * FPS_TOLERANCE:
            bad.append(BadEntry(r.where, str(r.path), f"recorded at {fps:g} fps, slower than the model's {model_fps:g} fps: "
                                                        "re-record faster or train a slower model (--fps)"))
            continue
        infos.append(VideoInfo(n, fps))
    return infos, bad


class VideoClipDataset:
    """Checked records + sampling: ``load(i, rng) -> (uint8 (T, H, W, 3) BGR, label)``.

    ``rng=None`` (or ``test_mode=True``) samples the centred test indices. With ``model_fps`` the
    indices are drawn on the model-rate timeline of each clip and mapped to its nearest frames.
    """

    def __init__(self, records: Sequence[VideoRecord], infos: Sequence[VideoInfo | int], sampling: SampleFrames,
                 *, test_mode: bool = False, backend: str = "opencv", class_names: Sequence[str] = (),
                 model_fps: float | None = None) -> None:
        if len(records) != len(infos):
            raise ValueError("records and infos differ in length")
        self.records = list(records)
        self.infos = [i if isinstance(i, VideoInfo) else VideoInfo(int(i), float("nan")) for i in infos]
        self.sampling, self.test_mode, self.backend = sampling, test_mode, backend
        self.class_names = tuple(class_names)
        self.model_fps = model_fps

    def __len__(self) -> int:
        return len(self.records)

    @property
    def frame_counts(self) -> list[int]:
        return [i.frames for i in self.infos]

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.records]

    def timeline_frames(self, index: int) -> int:
        """Frames of clip ``index`` at the model's frame rate (its own count without ``model_fps``)."""
        info = self.infos[index]
        return info.frames if self.model_fps is None else timeline_length(info.frames, info.fps, self.model_fps)

    def subset(self, indices: Sequence[int], *, test_mode: bool | None = None) -> "VideoClipDataset":
        """The same clips at ``indices`` (e.g. one side of a train/val split)."""
        return VideoClipDataset([self.records[i] for i in indices], [self.infos[i] for i in indices], self.sampling,
                                test_mode=self.test_mode if test_mode is None else test_mode, backend=self.backend,
                                class_names=self.class_names, model_fps=self.model_fps)

    def load(self, index: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
        record, info = self.records[index], self.infos[index]
        test = self.test_mode or rng is None
        inds = sample_frame_indices(self.timeline_frames(index), self.sampling, test_mode=test, rng=rng)
        if self.model_fps is not None:
            inds = source_indices(inds, info.frames, info.fps, self.model_fps)
        try:
            frames = decode_video(record.path, inds.tolist(), self.backend)
        except DecodeError as exc:  # changed on disk since the check
            raise BadDataError([BadEntry(record.where, str(record.path), str(exc))], len(self.records),
                               "train on" if not self.test_mode else "evaluate") from None
        return frames, record.label


def _class_mapping(records: Sequence[VideoRecord], names: tuple[str, ...], target: tuple[str, ...], source: Path,
                   target_what: str) -> dict[int, int]:
    """Dataset label -> index in ``target``, matched by class name; a :class:`DatasetError` naming
    each class that has clips but is not in ``target``. Labels outside ``names`` are left to
    ``check_videos`` (a bad entry each)."""
    index = {name: i for i, name in enumerate(target)}
    unknown = sorted({names[r.label] for r in records if r.label < len(names) and names[r.label] not in index},
                     key=names.index)
    if unknown:
        listed = ", ".join(repr(n) for n in unknown[:10]) + (f" ... ({len(unknown)} in all)" if len(unknown) > 10 else "")
        shown = list(target) if len(target) <= 12 else [*target[:12], "..."]
        raise DatasetError(
            f"{source}: class {listed} of the clips is not among {target_what} {shown}: labels are matched by class "
            "name, so use a model trained on these classes, or remove those clips from the dataset"
        )
    return {label: index[name] for label, name in enumerate(names) if name in index}

def check_dataset_path(source: str | Path, option: str = "dataset") -> Path:
    """``source`` as a Path if it exists; else the error ``load_video_dataset`` would raise, but
    cheaply (the CLI checks its dataset arguments before it imports torch)."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{option} {path} does not exist: pass an annotation list or a folder with one sub-folder per class")
    return path


def load_video_dataset(
    source: str | Path,
    *,
    sampling: SampleFrames,
    test_mode: bool = False,
    class_names: Sequence[str] | None = None,
    data_prefix: str | Path | None = None,
    skip_bad: bool = False,
    backend: str = "opencv",
    model_fps: float | None = None,
    clip_fps: float | None = None,
    target_classes: Sequence[str] | None = None,
    target_what: str = "the model's classes",
    use: str = "train on",
) -> tuple[VideoClipDataset, list[BadEntry]]:
    """An annotation list, a folder with ``annotations.txt``, or a folder per class -> checked dataset + report.

    For an annotation list the classes come from ``class_names``, else from a ``classes.txt``
    next to the list, else from the labels (which must then be dense). Raises
    :class:`BadDataError` if any entry is bad, unless ``skip_bad``; :class:`DatasetError` when
    the dataset as a whole is unusable.

    ``target_classes`` (a model's classes, or the training set's for a validation set) relabels
    the clips by class name: a dataset's own label ``i`` means its class ``i``, which becomes
    that name's index in ``target_classes``; a class with clips that is not among them is a
    :class:`DatasetError` naming it (``target_what`` says what the targets are). An annotation
    list with no class names at all (no ``class_names``, no ``classes.txt``) is taken to use
    the target indices. ``use`` ends the bad-entry message ("pass --skip-bad to USE the rest").
    """
    source = check_dataset_path(source)
    layout, where = dataset_layout(source)
    bad: list[BadEntry] = []
    named = True
    if layout == "folders":
        records, names = folder_records(where)
        if class_names is not None and tuple(class_names) != names:
            raise DatasetError(f"class folders {names} do not match the class names {tuple(class_names)}")
    else:
        records, bad = read_annotation_list(where, data_prefix)
        if class_names is not None:
            names = tuple(class_names)
        elif (where.parent / CLASSES_FILE).is_file():
            names = read_class_names(where.parent / CLASSES_FILE)
        elif target_classes is not None:
            names, named = tuple(target_classes), False  # bare indices: the target's
        else:
            names = dense_class_names(records, where)
    # before decoding: a class the target lacks fails in a second
    mapping = _class_mapping(records, names, tuple(target_classes), source, target_what) \
        if target_classes is not None and named else None
    infos, bad_videos = check_videos(records, len(names), backend, model_fps=model_fps, clip_fps=clip_fps)
    bad += bad_videos
    bad_where = {(b.where, b.path) for b in bad}
    good = [r for r in records if (r.where, str(r.path)) not in bad_where]
    total = len(records) + len(bad) - len(bad_videos)  # malformed lines never became records
    if bad and not skip_bad:
        raise BadDataError(bad, total, use)
    if bad:
        log.warning("skipping %d bad entries:\n%s", len(bad), "\n".join(f"  {b}" for b in bad))
    if not good:
        raise BadDataError(bad, total, use) if bad else DatasetError(f"{where}: no video entries found")
    if mapping is not None:
        good = [VideoRecord(r.path, mapping[r.label], r.where) for r in good]
        names = tuple(target_classes)  # type: ignore[arg-type]
    data = VideoClipDataset(good, infos, sampling, test_mode=test_mode, backend=backend, class_names=names,
                            model_fps=model_fps)
    check_sampling_fits(sampling, max(data.timeline_frames(i) for i in range(len(data))))
    return data, bad
