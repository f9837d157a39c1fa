"""``streamtsm eval CHECKPOINT DATA``: top-1, top-5, mean class accuracy and the confusion matrix."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .helptext import DefaultsFormatter
from .ranges import check_range, number
from .train import FPS


def register(sub: argparse._SubParsersAction) -> None:
    from ..train.sampling import MAX_SAMPLE_FRAMES

    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint on an annotation list or class folders",
        formatter_class=DefaultsFormatter,
        description=(
            "Evaluate a checkpoint on labelled clips with centred sampling and the checkpoint's own preprocessing and "
            "frame rate (each clip is sampled at the stride that reaches the card's fps): top-1, top-5, mean class "
            "accuracy, per-class accuracy and the confusion matrix. --readout K scores the mean logits of the last K "
            "frames (what an online model reports live) instead of the mean over all frames."
        ),
    )
    p.add_argument("checkpoint", help="checkpoint file ('default' for the embedded model)")
    p.add_argument("data", type=Path, help="dataset folder (annotations.txt or class sub-folders) or annotation list file")
    p.add_argument("--data-prefix", metavar="DIR", type=Path, help="folder the annotation paths are relative to (default: the list's folder)")
    p.add_argument("--frames", "--num-segments", dest="frames", metavar="T", type=number(int, 1, MAX_SAMPLE_FRAMES),
                   help="frames per clip (default: the card's window or num_segments)")
    p.add_argument("--sampling", choices=("auto", "dense", "segments"), default="auto",
                   help="dense: consecutive frames; segments: TSN, one frame per segment; auto: dense for online and "
                        "3D models, segments for offline TSM/TSN")
    p.add_argument("--fps", metavar="FPS", type=FPS, help="frame rate to sample the clips at (default: the card's)")
    p.add_argument("--clip-fps", metavar="FPS", type=FPS, help="frame rate of clips whose files declare none (default: such clips are bad entries)")
    p.add_argument("--readout", default="mean", help="'mean' or a number K of last frames")
    p.add_argument("--batch-size", metavar="N", type=number(int, 1, 4096), default=8, help="clips per batch")
    p.add_argument("--skip-bad", action="store_true", help="report bad entries and evaluate the rest")
    p.add_argument("--decoder", choices=("opencv", "pyav"), default="opencv", help="video decoder")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.datasets import check_dataset_path, load_video_dataset  # torch-free

    check_dataset_path(args.data)  # before torch is imported: a typo costs a second, not three
    readout: str | int = args.readout
    if readout != "mean":
        try:
            readout = int(readout)
        except ValueError:
            raise ValueError(f"--readout must be 'mean' or a number of frames, got {args.readout!r}") from None
        check_range("--readout", readout, 1, None, note="the number of last frames, or 'mean'")
    from ..resolve import load_torch_model
    from ..train.evaluate import evaluate, print_result
    from ..train.families import default_frames, default_sampling
    from ..train.loop import CentredClips
    from ..train.sampling import clip_sampling

    model = _torch_model(args.checkpoint, load_torch_model)
    card = model.card
    mode = args.sampling if args.sampling != "auto" else default_sampling(card)
    sampling = clip_sampling(args.frames or default_frames(card), mode)
    # labels by class name: the clips' classes.txt (or folder names) against the checkpoint's classes
    data, bad = load_video_dataset(args.data, sampling=sampling, test_mode=True, target_classes=card.class_names,
                                   target_what=f"the classes of {args.checkpoint}", use="evaluate",
                                   data_prefix=args.data_prefix, skip_bad=args.skip_bad, backend=args.decoder,
                                   model_fps=args.fps or card.temporal.fps, clip_fps=args.clip_fps)
    result = evaluate(model, CentredClips(data, card.preprocessing), num_classes=card.num_classes,
                      readout=readout, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result.as_dict(card.class_names) | {"skipped": [str(b) for b in bad]}, indent=1))
    else:
        print_result(result, card.class_names)
    return 0


class EvalInputError(ValueError):
    """The checkpoint argument is a file eval cannot score with (an export, a resume state)."""


def _torch_model(spec: str, load_torch_model):
    """The torch model ``spec`` names; an exported graph or a training resume state is refused with
    a line that says which file to give instead."""
    from ..resolve import EXPORTED_SUFFIXES
    from ..train.outputs import RESUME_SUFFIX, SUFFIX, is_resume_state, resume_state_message

    path = Path(spec)
    if path.suffix.lower() in EXPORTED_SUFFIXES:
        # m1.int8.onnx, m1.onnx -> m1.safetensors, if it is there
        stem = path.name.split(".")[0]
        beside = [p for p in (path.with_name(path.stem + SUFFIX), path.with_name(stem + SUFFIX)) if p.is_file()]
        instead = f"give {beside[0]}" if beside else "give the .safetensors (or .pth) file it was exported from"
        raise EvalInputError(f"{spec} is an exported graph: eval scores clips with the torch model, so it needs the "
                             f"checkpoint the graph was exported from: {instead}")
    if path.name.endswith(RESUME_SUFFIX) and is_resume_state(path):
        raise EvalInputError(resume_state_message(path, "eval:"))
    try:
        return load_torch_model(spec)
    except ValueError:  # CheckpointError, ModelSpecError (FileNotFoundError) is left as it is
        if path.is_file() and is_resume_state(path):
            raise EvalInputError(resume_state_message(path, "eval:")) from None
        raise
