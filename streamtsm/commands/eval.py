"""``streamtsm eval CHECKPOINT DATA``: top-1, top-5, mean class accuracy and the confusion matrix."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint on an annotation list or class folders",
        description=(
            "Evaluate a checkpoint on labelled clips with the centred test sampling and the checkpoint's own "
            "preprocessing: top-1, top-5, mean class accuracy, per-class accuracy and the confusion matrix. "
            "--readout K scores the mean logits of the last K frames (what an online model reports live) "
            "instead of the mean over all frames."
        ),
    )
    p.add_argument("checkpoint", help="checkpoint file ('default' for the embedded model)")
    p.add_argument("data", type=Path, help="annotation list file or folder of class folders")
    p.add_argument("--data-prefix", type=Path)
    p.add_argument("--num-segments", type=int, help="segments per video (default: the card's num_segments)")
    p.add_argument("--clip-len", type=int, default=1)
    p.add_argument("--frame-interval", type=int, default=1)
    p.add_argument("--readout", default="mean", help="'mean' or a number K of last frames")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--skip-bad", action="store_true")
    p.add_argument("--decoder", choices=("opencv", "pyav"), default="opencv")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..resolve import load_torch_model
    from ..train.augment import EvalTransform
    from ..train.datasets import load_video_dataset
    from ..train.evaluate import evaluate, print_result
    from ..train.loop import AugmentedClips
    from ..train.sampling import SampleFrames

    model = load_torch_model(args.checkpoint)
    card = model.card
    if not hasattr(model, "forward_frames"):
        raise ValueError(f"{args.checkpoint} is a {card.arch}; streamtsm eval handles TSM/TSN (2D) models")
    readout: str | int = args.readout
    if readout != "mean":
        try:
            readout = int(readout)
        except ValueError:
            raise ValueError(f"--readout must be 'mean' or a number of frames, got {args.readout!r}") from None
    sampling = SampleFrames(clip_len=args.clip_len, frame_interval=args.frame_interval,
                            num_clips=args.num_segments or card.temporal.num_segments)
    data, bad = load_video_dataset(args.data, sampling=sampling, test_mode=True, class_names=card.class_names,
                                   data_prefix=args.data_prefix, skip_bad=args.skip_bad, backend=args.decoder)
    result = evaluate(model, AugmentedClips(data, EvalTransform(card.preprocessing)), num_classes=card.num_classes,
                      readout=readout, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result.as_dict(card.class_names) | {"skipped": [str(b) for b in bad]}, indent=1))
    else:
        print_result(result, card.class_names)
    return 0
