"""``streamtsm train DATA --out PATH``: fine-tune a TSM on your own clips (seed 002's recipe).

DATA is an mmaction2 annotation list (``relative/path.mp4 label_index`` per line; class names
from ``--classes`` or a ``classes.txt`` next to it) or a folder with one sub-folder per class.
The unidirectional shift is the default because the result is meant to run online.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train/fine-tune a TSM (or TSN) on your own clips",
        description=(
            "Train a TSM on an annotation list ('relative/path.mp4 label_index' per line, as mmaction2's VideoDataset) "
            "or a folder with one sub-folder per class. TSN segment sampling, MultiScaleCrop augmentation, SGD "
            "(momentum 0.9, weight decay 1e-4, gradient clipping 40, step LR). Checkpoints (safetensors + model card) "
            "are written after every epoch; --resume continues an interrupted run."
        ),
    )
    p.add_argument("data", type=Path, help="annotation list file or folder of class folders")
    p.add_argument("--out", required=True, type=Path, help="checkpoint path (.safetensors; the card is written next to it)")
    p.add_argument("--val", type=Path, help="validation annotation list or folder (evaluated after each epoch)")
    p.add_argument("--classes", type=Path, help="class names file, one per line in label-index order")
    p.add_argument("--data-prefix", type=Path, help="folder the annotation paths are relative to (default: the list's folder)")
    p.add_argument("--arch", default="tsm_mobilenetv2", help="registry model name (default tsm_mobilenetv2)")
    p.add_argument("--shift", choices=("uni", "bi", "none"), default="uni",
                   help="temporal shift: uni (default, runs online), bi (offline only), none (TSN)")
    p.add_argument("--width-mult", type=float, help="MobileNetV2 width multiplier")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--num-segments", type=int, default=8, help="segments per video (SampleFrames num_clips)")
    p.add_argument("--clip-len", type=int, default=1)
    p.add_argument("--frame-interval", type=int, default=1)
    p.add_argument("--input-size", type=int, default=224, help="crop size")
    p.add_argument("--resize-short", type=int, help="short side before cropping (default input-size * 256/224)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of your clips, recorded in the card for the online runtime")
    p.add_argument("--background-class", action="append", default=[], help="class that means 'nothing happening' (repeatable)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--lr-steps", type=int, nargs="*", default=[20, 40], help="epochs at which the LR drops 10x")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--grad-clip", type=float, default=40.0)
    p.add_argument("--flip-pairs", default="",
                   help="enable horizontal flip, swapping these label pairs, e.g. '0:1,6:7' (off by default: direction classes)")
    p.add_argument("--imagenet-init", type=Path, help="torchvision ImageNet MobileNetV2/ResNet state dict for the backbone")
    p.add_argument("--resume", action="store_true", help="continue from <out>.resume.pt")
    p.add_argument("--skip-bad", action="store_true", help="report bad entries and train on the rest (default: stop)")
    p.add_argument("--decoder", choices=("opencv", "pyav"), default="opencv")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _class_names(args: argparse.Namespace) -> list[str] | None:
    if args.classes is None:
        return None
    if not args.classes.is_file():
        raise FileNotFoundError(f"--classes {args.classes} does not exist (one class name per line)")
    return [x.strip() for x in args.classes.read_text().splitlines() if x.strip()]


def _flip_pairs(text: str) -> tuple[tuple[int, int], ...]:
    pairs = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        try:
            a, b = (int(v) for v in item.split(":"))
        except ValueError:
            raise ValueError(f"--flip-pairs: {item!r} is not 'a:b' with two label indices") from None
        pairs.append((a, b))
    return tuple(pairs)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..card import Temporal
    from ..checkpoints.formats import CheckpointError
    from ..checkpoints.loader import read_state_dict
    from ..checkpoints.tsm import imagenet_backbone_state_dict
    from ..models import create_model
    from ..train.augment import AugmentConfig
    from ..train.datasets import load_video_dataset
    from ..train.evaluate import print_result, evaluate
    from ..train.loop import AugmentedClips, TrainConfig, train_model
    from ..train.augment import EvalTransform
    from ..train.sampling import SampleFrames

    if args.threads:
        torch.set_num_threads(args.threads)
    sampling = SampleFrames(clip_len=args.clip_len, frame_interval=args.frame_interval, num_clips=args.num_segments)
    names = _class_names(args)
    train_set, bad = load_video_dataset(args.data, sampling=sampling, class_names=names, data_prefix=args.data_prefix,
                                        skip_bad=args.skip_bad, backend=args.decoder)
    names = list(train_set.class_names)
    val_set = None
    if args.val is not None:
        val_set, _ = load_video_dataset(args.val, sampling=sampling, test_mode=True, class_names=names,
                                        skip_bad=args.skip_bad, backend=args.decoder)
    print(f"training on {len(train_set)} videos, {len(names)} classes"
          + (f" ({len(bad)} bad entries skipped)" if bad else "") + (f", validating on {len(val_set)}" if val_set else ""))
    unknown = [c for c in args.background_class if c not in names]
    if unknown:
        raise ValueError(f"--background-class {unknown} not among the classes {names}")

    kwargs: dict = {"dropout": args.dropout}
    if args.width_mult is not None:
        kwargs["width_mult"] = args.width_mult
    if args.shift != "none":
        kwargs["shift_mode"] = args.shift
    arch = args.arch
    if args.shift == "none" and arch.startswith("tsm_"):
        kwargs["shift_mode"] = "none"
    model = create_model(arch, num_classes=len(names), class_names=names, **kwargs)
    pre = model.card.preprocessing
    resize_short = args.resize_short or max(args.input_size, int(round(args.input_size * 256 / 224)))
    model.card = model.card.replace(
        preprocessing=type(pre)(crop_size=args.input_size, resize_short=resize_short, mean=pre.mean, std=pre.std,
                                channel_order=pre.channel_order),
        temporal=Temporal(mode="online" if args.shift == "uni" else "window", fps=args.fps,
                          num_segments=args.num_segments * args.clip_len, clip_len=1, clip_layout="NTCHW"),
        background_classes=tuple(args.background_class),
        description=f"trained with `streamtsm train` on {args.data}",
    )
    if args.imagenet_init is not None and not args.resume:
        family, sd = imagenet_backbone_state_dict(read_state_dict(args.imagenet_init))
        missing, unexpected = model.load_state_dict(sd, strict=False)
        wrong = [k for k in unexpected]
        head = [k for k in missing if not k.startswith(("classifier.", "fc.", "new_fc."))]
        if wrong or head:
            raise CheckpointError(f"--imagenet-init {args.imagenet_init} ({family}) does not fit {arch}: "
                                  f"unexpected {wrong[:4]}, missing {head[:4]}")
        print(f"initialised the backbone from {args.imagenet_init} ({family})")
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         grad_clip=args.grad_clip, lr_steps=tuple(args.lr_steps), seed=args.seed, num_workers=args.workers)
    augment = AugmentConfig(flip_ratio=0.5 if args.flip_pairs else 0.0, flip_pairs=_flip_pairs(args.flip_pairs))
    history = train_model(model, train_set, config=config, out=args.out, augment=augment, val_clips=val_set,
                          resume=args.resume, progress=not args.no_progress,
                          on_epoch=lambda e: print(f"epoch {e.epoch + 1}: loss {e.train_loss:.4f} lr {e.lr:.3g} "
                                                   f"({e.clips_per_second:.1f} clips/s)" + (f" val {e.val}" if e.val else ""),
                                                   flush=True))
    out = args.out if args.out.suffix == ".safetensors" else args.out.with_suffix(".safetensors")
    print(f"saved {out} (+ card {out.with_suffix('').name}.card.json); {len(history)} epochs run")
    if val_set is not None:
        result = evaluate(model, AugmentedClips(val_set, EvalTransform(model.card.preprocessing)),
                          num_classes=len(names), batch_size=args.batch_size)
        print_result(result, names)
    return 0
