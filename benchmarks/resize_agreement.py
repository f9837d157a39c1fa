"""The runtime's fast area resize vs one exact area resize: does the default model say the same?

``FramePreprocessor`` shrinks big frames with exact 2x area halvings before its last area
resize, and rounds a window that shrinks 4x or more by a factor that is not whole down to even
sizes (a shift of half a frame pixel). Both save time (1080p to 224 px: 5.9 -> 2.7 ms); this
script measures what they cost in the model's output. Every frame goes through the default
model as one batch of three with each row's state carried: row 0 prepared as the runtime
prepares it, row 1 by a single ``cv2.INTER_AREA`` resize of the exact centre window, row 2 the
same with the window moved by one frame pixel (a control: how much the model's output moves
when the camera does). Per input: patch difference (grey levels), top-1 agreement, largest
probability difference; for labelled synthetic streams also the frame-level top-1 accuracy of
rows 0 and 1 (the same lag for both).

Inputs: real videos (default: OpenCV's sample videos, Debian package ``opencv-doc``, where they
are installed) and held-out synthetic gesture streams at 1080p and 480p.

    python benchmarks/resize_agreement.py                               # results to runs/bench/ (printed)
    python benchmarks/resize_agreement.py --videos a.mp4 b.avi          # your own videos
    python benchmarks/resize_agreement.py --out benchmarks/results      # a deliberate full run
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamtsm.bench.machine import environment, load_average  # noqa: E402
from streamtsm.bench.results import announce, output_dir, report_header, write_results  # noqa: E402
from streamtsm.commands.helptext import DefaultsFormatter  # noqa: E402
from streamtsm.postprocess import softmax  # noqa: E402
from streamtsm.preprocess import FramePreprocessor, area_halvings  # noqa: E402
from streamtsm.resolve import open_engine  # noqa: E402
from streamtsm.sampling import FrameSampler  # noqa: E402
from streamtsm.sources import SourceError, SyntheticSource, VideoFileSource  # noqa: E402

SAMPLE_VIDEOS = Path("/usr/share/doc/opencv-doc/examples/data")  # Debian's opencv-doc
SAMPLE_NAMES = ("vtest.avi", "Megamind.avi", "tree.avi")


@dataclass
class Row:
    input: str
    frame_hw: tuple[int, int]
    window_fast: tuple[int, int]  # the runtime's area window (h, w) and its 2x halvings; (0, 0): bilinear, as exact
    halvings: int
    window_exact: tuple[int, int]
    steps: int
    patch_mean_diff: float  # grey levels, mean over steps of the mean |fast - exact| over the patch
    patch_max_diff: int
    top1_agreement: float
    max_prob_diff: float
    mean_prob_diff: float
    shift_top1_agreement: float  # the control: exact vs the exact window moved by one frame pixel
    shift_max_prob_diff: float
    accuracy_fast: float | None = None  # labelled inputs: frame-level top-1 against the label
    accuracy_exact: float | None = None


def exact_window(pre: FramePreprocessor, height: int, width: int) -> tuple[int, int, int, int]:
    """The centre window the crop covers, rounded to whole pixels only (no even rounding)."""
    p, crop = pre.preprocessing, pre.preprocessing.crop_size
    if p.resize_hw is not None:
        scale_y, scale_x = height / p.resize_hw[0], width / p.resize_hw[1]
    else:
        scale_y = scale_x = min(height, width) / p.resize_short
    h, w = min(height, round(crop * scale_y)), min(width, round(crop * scale_x))
    return (height - h) // 2, (width - w) // 2, h, w


def uses_area(pre: FramePreprocessor, height: int, width: int) -> bool:
    """False for frames the runtime barely shrinks: it resizes them bilinearly, with no area tricks to compare."""
    return pre.interpolation((height, width), pre.resized_hw(height, width)) == cv2.INTER_AREA


def exact_patch(pre: FramePreprocessor, image: np.ndarray, shift: int = 0) -> np.ndarray:
    """One area resize of the exact window, moved ``shift`` frame pixels sideways (towards the
    side that has room): the control row, a camera moved by a pixel."""
    if not uses_area(pre, *image.shape[:2]):
        return pre.geometry(image[:, shift:] if shift else image)
    y, x, h, w = exact_window(pre, *image.shape[:2])
    if shift:
        x = x + shift if x + shift + w <= image.shape[1] else x - shift
    crop = pre.preprocessing.crop_size
    return cv2.resize(image[y : y + h, x : x + w], (crop, crop), interpolation=cv2.INTER_AREA)


def fast_plan(pre: FramePreprocessor, height: int, width: int) -> tuple[tuple[int, int], int]:
    """The runtime's area window (h, w) and how many 2x halvings it runs first ((0, 0), 0: bilinear)."""
    if not uses_area(pre, height, width):
        return (0, 0), 0
    window = pre.area_window(height, width)[2:]
    crop = pre.preprocessing.crop_size
    return window, area_halvings(window, (crop, crop))


def compare(engine: Any, name: str, frames: Iterator[tuple[np.ndarray, str | None]]) -> Row | None:
    """Stream ``frames`` (image, label or None) through fast, exact and 1-px-shifted exact preparation,
    as one batch of three with each row's state carried."""
    pre = FramePreprocessor(engine.card.preprocessing)
    classes = list(engine.card.class_names)
    states = [np.zeros((3, *t.shape[1:]), np.float32) for t in engine.signature.inputs[1:]]
    batch = np.zeros((3, *pre.output_shape), np.float32)
    diffs, maxdiff, agree, pdiff, shift_agree, shift_pdiff, right = [], 0, [], [], [], [], [[], []]
    first = None
    for image, label in frames:
        fast, exact = pre.geometry(image), exact_patch(pre, image)
        if first is None:
            first = image.shape[:2]
        d = np.abs(fast.astype(np.int16) - exact.astype(np.int16))
        diffs.append(float(d.mean()))
        maxdiff = max(maxdiff, int(d.max()))
        for row, patch in enumerate((fast, exact, exact_patch(pre, image, shift=1))):
            pre.normalise(patch, batch[row])
        logits, states = engine.step_host(batch, states)
        probs = softmax(logits)
        top = probs.argmax(axis=1)
        agree.append(top[0] == top[1])
        pdiff.append(float(np.abs(probs[0] - probs[1]).max()))
        shift_agree.append(top[2] == top[1])
        shift_pdiff.append(float(np.abs(probs[2] - probs[1]).max()))
        if label is not None:
            for row in (0, 1):
                right[row].append(classes[top[row]] == label)
    if first is None:
        return None
    window, halvings = fast_plan(pre, *first)
    ex = exact_window(pre, *first) if uses_area(pre, *first) else (0, 0, 0, 0)
    acc = [round(float(np.mean(r)), 4) if r else None for r in right]
    return Row(name, tuple(first), window, halvings, tuple(ex[2:]), len(agree),
               round(float(np.mean(diffs)), 3), maxdiff, round(float(np.mean(agree)), 4), round(max(pdiff), 4),
               round(float(np.mean(pdiff)), 5), round(float(np.mean(shift_agree)), 4), round(max(shift_pdiff), 4),
               acc[0], acc[1])


def video_frames(path: Path, fps: float, limit: int | None) -> Iterator[tuple[np.ndarray, None]]:
    """A video's frames as the runtime takes them: decoded by ``VideoFileSource``, sampled to
    ``fps`` on the file's clock by ``FrameSampler`` (every frame if the file is slower)."""
    sampler = FrameSampler(fps, max_gap_s=3600.0)
    taken = 0
    with VideoFileSource(path) as source:
        for frame in source:
            decision = sampler.decide(frame.media_time_s, frame.source)
            sampler.commit(decision, frame.media_time_s, frame.source)
            if decision.keep:
                yield frame.image, None
                taken += 1
                if limit is not None and taken >= limit:
                    return


def synthetic_frames(seed: int, seconds: float, size: tuple[int, int], fps: float) -> Iterator[tuple[np.ndarray, str | None]]:
    with SyntheticSource(seed=seed, duration_s=seconds, fps=fps, size=size, realtime=False) as source:
        for frame in source:
            yield frame.image, frame.label


def markdown(rows: list[Row], payload: dict[str, Any], quick: bool) -> str:
    lines = report_header(
        "Fast area resize vs one exact area resize: the default model's output", payload,
        "ONNX Runtime, the embedded default model (80 px crop), three preparations of every frame in one batch of "
        "three (fast, exact, and as a control the exact one with the window moved by one frame pixel) "
        "with each row's state carried; patch difference in grey levels (0-255); real videos are sampled to the "
        "model's 10 fps on the file's clock (the runtime's sampler); synthetic streams are held-out gesture "
        "scripts rendered at 10 fps",
        quick=quick,
    )
    lines += [
        "| input | frame | window fast (halvings) / exact | steps | patch diff mean / max | top-1 agreement | "
        "max / mean prob diff | control, exact moved 1 px: agreement / max prob diff | top-1 accuracy fast / exact |",
        "|---|---|---|---:|---|---:|---|---|---|",
    ]
    for r in rows:
        acc = "-" if r.accuracy_fast is None else f"{r.accuracy_fast:.4f} / {r.accuracy_exact:.4f}"
        lines.append(
            f"| {r.input} | {r.frame_hw[1]}x{r.frame_hw[0]} | {r.window_fast[0]}x{r.window_fast[1]} ({r.halvings}) / "
            f"{r.window_exact[0]}x{r.window_exact[1]} | {r.steps} | {r.patch_mean_diff:.2f} / {r.patch_max_diff} | "
            f"{r.top1_agreement:.4f} | {r.max_prob_diff:.4f} / {r.mean_prob_diff:.5f} | "
            f"{r.shift_top1_agreement:.4f} / {r.shift_max_prob_diff:.4f} | {acc} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=DefaultsFormatter)
    parser.add_argument("--videos", nargs="*", type=Path,
                        help=f"video files (default: {', '.join(SAMPLE_NAMES)} from {SAMPLE_VIDEOS}, where installed)")
    parser.add_argument("--synthetic-seconds", type=float, default=120.0, help="length of each synthetic stream")
    parser.add_argument("--max-steps", type=int, help="at most this many model steps per video (default: the whole file)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 steps per video, 2 s synthetic streams")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/bench)")
    args = parser.parse_args(argv)
    if args.quick:
        args.synthetic_seconds, args.max_steps = 2.0, 40
    if not 1 <= args.synthetic_seconds <= 3600 or (args.max_steps is not None and args.max_steps < 1):
        parser.error(f"--synthetic-seconds must be 1..3600 and --max-steps at least 1 (got {args.synthetic_seconds}, {args.max_steps})")
    videos = args.videos if args.videos is not None else [SAMPLE_VIDEOS / n for n in SAMPLE_NAMES if (SAMPLE_VIDEOS / n).is_file()]
    missing = [str(v) for v in videos if not Path(v).is_file()]
    if missing:
        parser.error(f"no such video file: {', '.join(missing)}")
    if not videos:
        print(f"no sample videos in {SAMPLE_VIDEOS} (Debian: apt install opencv-doc); synthetic streams only", flush=True)
    out = output_dir(args.out, quick=args.quick)
    payload: dict[str, Any] = {"command": " ".join(["python", "benchmarks/resize_agreement.py", *(argv or sys.argv[1:])]),
                               "environment": environment()}
    rows: list[Row] = []
    with open_engine(None, threads=1) as engine:
        fps = engine.card.temporal.fps
        for path in videos:
            try:
                row = compare(engine, Path(path).name, video_frames(Path(path), fps, args.max_steps))
            except SourceError as exc:  # says what the file is and what to do
                print(f"error: {exc}", file=sys.stderr)
                return 1
            if row is None:
                print(f"{path}: no frames decoded; skipped", flush=True)
                continue
            rows.append(row)
            print(asdict(row), flush=True)
        for size, seed in (((1080, 1920), 7001), ((480, 640), 7002)):
            row = compare(engine, f"synthetic {size[1]}x{size[0]} (seed {seed}, {args.synthetic_seconds:g} s)",
                          synthetic_frames(seed, args.synthetic_seconds, size, fps))
            assert row is not None
            rows.append(row)
            print(asdict(row), flush=True)
    payload["load_average_end"] = load_average()
    payload["rows"] = [asdict(r) for r in rows]
    announce(list(write_results("resize_agreement", payload, markdown(rows, payload, args.quick), out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
