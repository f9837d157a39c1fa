"""Training data on disk: rendered clips as videos plus mmaction2-style annotation files.

Clip ``i`` of every class is rendered from one clip seed (same object and background), so only
the motion distinguishes the classes; ``manifest.csv`` records enough to re-render any clip.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from .clips import render_clip
from .motion import CLASSES
from .params import SPLIT_CODE, SyntheticError, check_fps, check_seed, check_size, check_split


def write_dataset(
    root: Path | str,
    *,
    clips_per_class: int,
    seed: int,
    split: str,
    size: tuple[int, int] = (120, 160),
    fps: float = 30.0,
    fourcc: str = "mp4v",
    lead_s: tuple[float, float] = (0.1, 0.5),
    progress: bool = True,
) -> Path:
    """Write ``clips_per_class`` videos per class and an mmaction2 VideoDataset annotation file.

    Layout: ``root/<class>/<class>_<i>.mp4``, ``root/annotations.txt`` with lines
    ``<class>/<class>_<i>.mp4 <label_index>``, ``root/classes.txt`` (one class per line, in
    label-index order) and ``root/manifest.csv`` (path, label, label_index, seed, split,
    lead_in_s, lead_out_s, num_frames: enough to re-render any clip with :func:`render_clip`).
    Each clip gets idle lead-in and lead-out lengths drawn from ``lead_s``. Returns the
    annotation file's path.
    """
    seed, split = check_seed(seed), check_split(split)
    h, w = check_size(size)
    fps = check_fps(fps)
    if isinstance(clips_per_class, bool) or not isinstance(clips_per_class, int) or clips_per_class < 1:
        raise SyntheticError(f"clips_per_class must be a positive integer, got {clips_per_class!r}")
    if not isinstance(fourcc, str) or len(fourcc) != 4:
        raise SyntheticError(f"fourcc must be a 4-character codec code such as 'mp4v', got {fourcc!r}")
    lo, hi = lead_s
    if not 0 <= lo <= hi <= 5:
        raise SyntheticError(f"lead_s must satisfy 0 <= min <= max <= 5 seconds, got {lead_s!r}")
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SyntheticError(f"cannot create dataset directory {root}: {exc}") from None
    code = cv2.VideoWriter_fourcc(*fourcc)
    clip_seeds = np.random.SeedSequence([seed, SPLIT_CODE[split]]).generate_state(clips_per_class, np.uint32)
    lines = []
    manifest = ["path,label,label_index,seed,split,lead_in_s,lead_out_s,num_frames"]
    for label_index, name in enumerate(CLASSES):
        (root / name).mkdir(exist_ok=True)
        for i, clip_seed in enumerate(clip_seeds):
            lead = np.random.default_rng([int(clip_seed), label_index, 99]).uniform(lo, hi, 2)
            frames = render_clip(name, int(clip_seed), size=(h, w), fps=fps, split=split,
                                 lead_in_s=float(lead[0]), lead_out_s=float(lead[1]))
            rel = f"{name}/{name}_{i:05d}.mp4"
            writer = cv2.VideoWriter(str(root / rel), code, fps, (w, h))
            if not writer.isOpened():
                raise SyntheticError(f"OpenCV cannot write {root / rel} with fourcc {fourcc!r}; "
                                     "try fourcc='mp4v' (always available) or check the directory is writable")
            try:
                for frame in frames:
                    writer.write(frame)
            finally:
                writer.release()
            lines.append(f"{rel} {label_index}")
            manifest.append(f"{rel},{name},{label_index},{int(clip_seed)},{split},{float(lead[0])!r},"
                            f"{float(lead[1])!r},{len(frames)}")
        if progress:
            print(f"[synthetic] {split}: {name} {clips_per_class} clips", file=sys.stderr, flush=True)
    (root / "manifest.csv").write_text("\n".join(manifest) + "\n")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    annotations = root / "annotations.txt"
    annotations.write_text("\n".join(lines) + "\n")
    return annotations
