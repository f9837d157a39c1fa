"""``streamtsm train DATA --out PATH``: train or fine-tune a model on your own clips.

DATA is a folder written by ``streamtsm record`` (``annotations.txt`` + ``classes.txt``, preferred
when present), a folder with one sub-folder per class, or an mmaction2 annotation list
(``relative/path.mp4 label_index`` per line). Every argument is checked, and the dataset scanned,
before the first epoch; errors are one line that says what to change.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

from .helptext import DefaultsFormatter
from .ranges import number

BACKGROUND_DEFAULT = "no_action"

positive_int = number(int, 1)
positive_float = number(float, 0, low_open=True)
FPS = number(float, 0, 1000, low_open=True, note="frames per second")


def register(sub: argparse._SubParsersAction) -> None:
    from ..train.families import TRAINABLE_ARCHS
    from ..train.sampling import MAX_SAMPLE_FRAMES

    p = sub.add_parser(
        "train",
        help="train or fine-tune a model on your own clips",
        formatter_class=DefaultsFormatter,
        description=(
            "Train on a folder recorded by `streamtsm record` (annotations.txt + classes.txt), a folder with one "
            "sub-folder per class, or an mmaction2 annotation list ('relative/path.mp4 label_index' per line). "
            "--init default fine-tunes the embedded model (input size, preprocessing and frame rate then come from "
            "its card). Each clip's frame rate is read from its file and frames are taken at the stride that gives "
            "the model's rate. Checkpoints (safetensors + model card) are written atomically after every epoch "
            "(with validation: the best epoch's weights); --resume continues an interrupted run."
        ),
    )
    p.add_argument("data", type=Path, help="dataset folder (annotations.txt or class sub-folders) or annotation list file")
    p.add_argument("--out", metavar="PATH", required=True, type=Path, help="model path (.safetensors; the card is written next to it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing model/run at --out")
    p.add_argument("--resume", action="store_true", help="continue the run at --out (<out>.resume.pt)")
    g = p.add_argument_group("data")
    val = g.add_mutually_exclusive_group()
    val.add_argument("--val", metavar="DATA", type=Path, help="validation dataset (folder or annotation list), scored after every epoch")
    val.add_argument("--val-fraction", metavar="F", type=number(float, 0, 0.9, low_open=True),
                     help="hold out this fraction of each class for validation (stratified, seeded by --seed), e.g. 0.2")
    g.add_argument("--classes", metavar="FILE", type=Path, help="class names file, one per line in label-index order (default: classes.txt "
                                                  "beside the annotation list)")
    g.add_argument("--data-prefix", metavar="DIR", type=Path, help="folder the annotation paths are relative to (default: the list's folder)")
    g.add_argument("--clip-fps", metavar="FPS", type=FPS, help="frame rate of clips whose files declare none (default: such clips are bad entries)")
    g.add_argument("--skip-bad", action="store_true", help="report bad entries and train on the rest (default: stop)")
    g.add_argument("--decoder", choices=("opencv", "pyav"), default="opencv", help="video decoder")
    g.add_argument("--background-class", action="append", default=[], metavar="NAME",
                   help=f"class meaning 'nothing happening', repeatable (default: {BACKGROUND_DEFAULT!r} if such a class exists)")
    m = p.add_argument_group("model")
    m.add_argument("--init", metavar="SPEC",
                   help="start from 'default' (the embedded model), a checkpoint of any format load_model reads (new "
                        "classifier when the classes differ), or a torchvision ImageNet MobileNetV2/ResNet file (backbone "
                        "only, into --arch) (default: random weights)")
    m.add_argument("--imagenet-init", dest="init", metavar="SPEC", help="alias of --init")
    m.add_argument("--freeze-stages", metavar="N", type=number(int, 0), default=0,
                   help="keep the first N stages fixed (1 = the stem; as many as the model has = train the classifier only)")
    m.add_argument("--arch", choices=TRAINABLE_ARCHS, metavar="ARCH",
                   help=f"architecture, one of: {', '.join(TRAINABLE_ARCHS)} (default: tsm_mobilenetv2; with --init: the init model's)")
    m.add_argument("--shift", choices=("uni", "bi", "none"),
                   help="TSM temporal shift: uni runs online, bi is offline only, none = TSN (default: uni for tsm_*)")
    m.add_argument("--width-mult", metavar="M", type=positive_float, help="MobileNetV2 width multiplier (default: 1.0)")
    m.add_argument("--width", metavar="C", type=positive_int, help="3D CNN base width in channels (default: the architecture's, 64)")
    m.add_argument("--dropout", metavar="P", type=number(float, 0, 0.99), help="dropout before the classifier "
                                                                                       "(default: the architecture's)")
    s = p.add_argument_group("sampling and input")
    s.add_argument("--frames", "--num-segments", dest="frames", metavar="T", type=number(int, 1, MAX_SAMPLE_FRAMES),
                   help="frames per training clip (default: 8 for TSM/TSN, the architecture's window for 3D CNNs, "
                        "the init card's with --init)")
    s.add_argument("--sampling", choices=("auto", "dense", "segments"), default="auto",
                   help="dense: consecutive frames at the model's fps (how online and window models see a stream); "
                        "segments: TSN, one frame from each of --frames segments; auto: dense, except segments for "
                        "offline TSM/TSN")
    s.add_argument("--input-size", metavar="PX", type=number(int, 16, 1024),
                   help="crop size in pixels (default: 224; with --init: the init card's)")
    s.add_argument("--resize-short", metavar="PX", type=number(int, 16, 4096),
                   help="short side before cropping (default: input size * 256/224)")
    s.add_argument("--fps", metavar="FPS", type=FPS, help="the model's frame rate (default: the clips' own, when they agree; with --init: "
                                             "the init card's)")
    s.add_argument("--flip-pairs", metavar="PAIRS", default="",
                   help="enable horizontal flip, swapping these label pairs (indices or names), e.g. '0:1' or "
                        "'swipe_left:swipe_right' (default: no flip; direction classes need the pairs)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", metavar="N", type=positive_int, default=50, help="epochs to train (at most; see --patience)")
    o.add_argument("--patience", metavar="N", type=number(int, 0), default=0,
                   help="stop after this many epochs without a better validation score (0 = never; needs validation)")
    o.add_argument("--max-minutes", metavar="M", type=number(float, 0, 7 * 24 * 60), default=0.0,
                   help="wall-clock budget: start no epoch that would end past it, judged by the mean epoch so far "
                        "(0 = no budget)")
    o.add_argument("--batch-size", metavar="N", type=number(int, 1, 4096), default=8, help="clips per batch")
    o.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd", help="sgd (seed 002's recipe) or adamw")
    o.add_argument("--lr", metavar="LR", type=number(float, 0, 10, low_open=True), default=0.01,
                   help="learning rate (for fine-tuning from --init, 0.001-0.01 with sgd)")
    o.add_argument("--lr-steps", metavar="EPOCH", type=number(int, 0), nargs="*", default=[20, 40],
                   help="epochs at which the learning rate drops 10x")
    o.add_argument("--weight-decay", metavar="WD", type=number(float, 0, 1), default=1e-4, help="weight decay")
    o.add_argument("--grad-clip", metavar="NORM", type=positive_float, default=40.0, help="gradient norm clipping")
    o.add_argument("--seed", metavar="N", type=number(int, 0, 2**32 - 1), default=0,
                   help="seed of the augmentation, the shuffling and the validation split")
    r = p.add_argument_group("run")
    r.add_argument("--workers", metavar="N", type=number(int, 0, 64), default=0, help="data loader worker processes")
    r.add_argument("--threads", metavar="N", type=number(int, 1, 256), help="torch CPU threads (default: torch's)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- checks on names and pairs


def parse_flip_pairs(text: str, class_names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """``'a:b,c:d'`` with label indices or class names -> index pairs, each within the classes and used once."""
    index = {name: i for i, name in enumerate(class_names)}
    pairs: list[tuple[int, int]] = []
    used: set[int] = set()
    for item in filter(None, (t.strip() for t in text.split(","))):
        parts = item.split(":")
        if len(parts) != 2:
            raise ValueError(f"--flip-pairs: {item!r} is not 'a:b' (two label indices or class names)")
        pair = []
        for part in parts:
            part = part.strip()
            if part in index:
                pair.append(index[part])
            elif part.lstrip("-").isdigit() and 0 <= int(part) < len(class_names):
                pair.append(int(part))
            else:
                raise ValueError(f"--flip-pairs: {part!r} in {item!r} is not a class: use an index 0..{len(class_names) - 1} "
                                 f"or one of {list(class_names)[:12]}")
        a, b = pair
        if a == b or a in used or b in used:
            raise ValueError(f"--flip-pairs: {item!r} pairs a class with itself or reuses one; each class may be in one pair")
        used |= {a, b}
        pairs.append((a, b))
    return tuple(pairs)


def background_classes(given: Sequence[str], class_names: Sequence[str]) -> tuple[str, ...]:
    unknown = [c for c in given if c not in class_names]
    if unknown:
        raise ValueError(f"--background-class {unknown} not among the classes {list(class_names)}")
    if given:
        return tuple(dict.fromkeys(given))
    return (BACKGROUND_DEFAULT,) if BACKGROUND_DEFAULT in class_names else ()


def _init_conflicts(args: argparse.Namespace, init_arch: str) -> None:
    """Options that a card init decides; giving them too would be silently ignored, so refuse them."""
    given = {"--input-size": args.input_size, "--resize-short": args.resize_short, "--fps": args.fps,
             "--shift": args.shift, "--width-mult": args.width_mult, "--width": args.width}
    named = [k for k, v in given.items() if v is not None]
    if args.arch is not None and args.arch != init_arch:
        named.insert(0, f"--arch {args.arch}")
    if named:
        raise ValueError(f"--init {args.init} is a {init_arch} whose card sets the architecture, input size and frame rate; "
                         f"drop {', '.join(named)} (or train without --init)")


def _resume_conflicts(args: argparse.Namespace, fields: dict, state: Path) -> None:
    """``--resume`` without ``--init`` takes the run's settings from its resume state; an option given
    with another value than the run's would be ignored, so it is refused (the same value is fine)."""
    from ..train.families import FAMILIES

    pre, temporal, kwargs = fields.get("preprocessing") or {}, fields.get("temporal") or {}, fields.get("arch_kwargs") or {}
    family = FAMILIES.get(fields.get("arch"))
    window = temporal.get("mode") == "window"
    run = {"--arch": fields.get("arch"), "--fps": temporal.get("fps"), "--input-size": pre.get("crop_size"),
           "--resize-short": pre.get("resize_short"), "--shift": fields.get("shift_mode"),
           "--frames": temporal.get("clip_len") if window else temporal.get("num_segments"),
           "--width-mult": kwargs.get("width_mult", 1.0) if family is not None and family.width == "width_mult" else None,
           "--width": kwargs.get(family.width) if family is not None and family.width not in (None, "width_mult") else None}
    given = {"--arch": args.arch, "--fps": args.fps, "--input-size": args.input_size, "--resize-short": args.resize_short,
             "--shift": args.shift, "--frames": args.frames, "--width-mult": args.width_mult, "--width": args.width}
    differ = [(k, v, run[k]) for k, v in given.items() if v is not None and run[k] is not None and v != run[k]]
    if differ:
        detail = ", ".join(f"{k} {v:g} (the run has {r:g})" if isinstance(v, float) else f"{k} {v} (the run has {r})"
                           for k, v, r in differ)
        raise ValueError(f"--resume continues the run in {state} with its own settings: {detail}; drop "
                         f"{', '.join(k for k, _, _ in differ)}, or start a new run with another --out")


def _common_fps(data, clip_fps: float | None) -> float:
    """The model fps when none is given: the clips' frame rate, which must be the same for all of them."""
    rates = sorted({round(i.fps, 2) for i in data.infos if math.isfinite(i.fps)})
    if not rates:
        if clip_fps is None:
            raise ValueError("no clip declares its frame rate: pass --fps (the model's) or --clip-fps (the clips')")
        return clip_fps
    if rates[-1] > rates[0] * 1.01:
        raise ValueError(f"the clips have different frame rates ({', '.join(f'{r:g}' for r in rates[:6])} fps): pass --fps "
                         "with the model's frame rate (each clip is then sampled at the stride that reaches it)")
    return rates[0]


def interrupted_message(out: Path, finished: Sequence, *, resumed: bool, validating: bool) -> str:
    """What a Ctrl-C during training leaves behind, and how to go on (``finished``: the epochs' logs)."""
    from ..train.outputs import resume_path_for

    state = resume_path_for(out)
    if not finished:
        if resumed:
            return (f"\ninterrupted before an epoch finished: {out} and {state} are as they were; run the same "
                    "command (with --resume) to continue")
        return "\ninterrupted during the first epoch: nothing was saved; run the command again to start over"
    last = finished[-1].epoch + 1
    best = [e.epoch + 1 for e in finished if e.best]
    if not validating:
        weights = f"{out} holds the weights of epoch {last}"
    elif best:
        weights = f"{out} holds the weights of epoch {best[-1]} (the best validation score so far)"
    else:
        weights = f"{out} holds the weights of the best epoch before this session"
    return (f"\ninterrupted in epoch {last + 1}: {weights}; {state} holds epoch {last}. Run the same command with "
            f"--resume to continue from epoch {last + 1}")


# --------------------------------------------------------------------------- the command


def preflight(args: argparse.Namespace) -> tuple[Path, tuple[str, ...] | None]:
    """The checks that need no torch, run before it is imported (a typo costs a second, not the
    three it takes to import torch): returns the model path ``--out`` names and the ``--classes``."""
    from ..resolve import ModelSpecError, check_model_file
    from ..train.datasets import check_dataset_path, read_class_names
    from ..train.outputs import check_output, resume_path_for

    out = check_output(args.out, resume=args.resume, overwrite=args.overwrite)
    if args.resume and not resume_path_for(out).is_file():
        raise ValueError(f"--resume: no resume state at {resume_path_for(out)}; start without --resume or point --out at the run to continue")
    check_dataset_path(args.data)
    if args.init is not None:
        try:
            check_model_file(args.init, instead="'default' or a weight name (`streamtsm models`)")
        except ModelSpecError as exc:
            raise ValueError(f"--init {args.init}: {exc}") from None
    if args.val is not None:
        check_dataset_path(args.val, "--val")
    names = read_class_names(args.classes) if args.classes is not None else None
    if args.patience and args.val is None and args.val_fraction is None:
        raise ValueError("--patience needs validation clips: add --val-fraction 0.2 (or --val DIR)")
    if args.resize_short is not None and args.input_size is not None and args.resize_short < args.input_size:
        raise ValueError(f"--resize-short {args.resize_short} is smaller than --input-size {args.input_size}: the crop must fit")
    if args.width_mult is not None and args.width is not None:
        raise ValueError("--width-mult (MobileNetV2) and --width (3D CNNs) belong to different architectures: give one")
    return out, names


def run(args: argparse.Namespace) -> int:
    out, names = preflight(args)
    import torch

    from ..card import Preprocessing
    from ..train.augment import AugmentConfig
    from ..train.datasets import load_video_dataset
    from ..train.evaluate import evaluate, print_result
    from ..train.families import default_frames, default_sampling, family_of, training_card
    from ..train.finetune import freeze_stages, with_classes
    from ..train.init import build_model, load_init_model, model_from_resume_card
    from ..train.outputs import is_resume_state, resume_path_for, resume_state_message
    from ..train.loop import CentredClips, TrainConfig, train_model
    from ..train.sampling import check_sampling_fits, clip_sampling
    from ..train.split import stratified_split

    if args.threads:
        torch.set_num_threads(args.threads)

    def build_arch(names: Sequence[str] = ("class_0",)):
        return build_model(args.arch or "tsm_mobilenetv2", names, shift=args.shift, width=args.width_mult or args.width,
                           dropout=args.dropout)

    # the model first (quick), so its card's frame rate can check the clips during the scan
    init = None
    resumed = args.resume and args.init is None
    if resumed:  # the run's own settings, from its resume state: nothing else is needed to continue it
        from ..train.outputs import read_resume_card

        fields = read_resume_card(resume_path_for(out))
        _resume_conflicts(args, fields, resume_path_for(out))
        base = model_from_resume_card(fields, str(resume_path_for(out)))
    elif args.init is not None:
        if is_resume_state(args.init):
            raise ValueError(resume_state_message(args.init, "--init"))
        init = load_init_model(args.init, None, build_arch=build_arch)
        if init.from_card:
            _init_conflicts(args, init.model.card.arch)
        base = init.model
    else:
        base = build_arch()
    from_card = resumed or (init is not None and init.from_card)
    if from_card and args.dropout is not None and not family_of(base.card.arch).dropout:
        raise ValueError(f"--dropout: {base.card.arch} has no dropout layer")
    fps = base.card.temporal.fps if from_card else args.fps
    family = family_of(base.card.arch)

    frames = args.frames or (default_frames(base.card) if from_card else 8 if not family.clip_model
                             else default_frames(base.card))
    if frames < family.min_frames:
        raise ValueError(f"--frames {frames}: {base.card.arch} needs at least {family.min_frames} frames per clip")
    mode = args.sampling if args.sampling != "auto" else default_sampling(base.card)
    sampling = clip_sampling(frames, mode)
    data, bad = load_video_dataset(args.data, sampling=sampling, class_names=names, data_prefix=args.data_prefix,
                                   skip_bad=args.skip_bad, backend=args.decoder, model_fps=fps, clip_fps=args.clip_fps)
    names = list(data.class_names)
    if len(names) < 2:
        shown = f" ({names[0]!r})" if names else ""
        raise ValueError(f"{args.data} has {len(names)} class{shown}: a classifier needs at least 2 to choose between. "
                         f"Record a background class beside it (`streamtsm record {args.data} --classes "
                         f"{names[0] if names else 'GESTURE'} --between 1 --background {BACKGROUND_DEFAULT}`) "
                         "or another gesture, then train again")
    if fps is None:
        fps = _common_fps(data, args.clip_fps)
        data.model_fps = fps
        check_sampling_fits(sampling, max(data.timeline_frames(i) for i in range(len(data))))
    if args.val is not None:
        # its labels by class name (its own classes.txt or folders), in the training set's order
        val_set, _ = load_video_dataset(args.val, sampling=sampling, test_mode=True, target_classes=names,
                                        target_what=f"the training classes of {args.data}",
                                        skip_bad=args.skip_bad, backend=args.decoder, model_fps=fps, clip_fps=args.clip_fps)
        train_set = data
    elif args.val_fraction is not None:
        train_idx, val_idx = stratified_split(data.labels, args.val_fraction, args.seed, names)
        train_set, val_set = data.subset(train_idx), data.subset(val_idx, test_mode=True)
    else:
        train_set, val_set = data, None
    empty = [n for i, n in enumerate(names) if i not in set(train_set.labels)]
    if empty:
        raise ValueError(f"class(es) {empty} have no training clips: add clips or remove them from the class names")
    flip_pairs = parse_flip_pairs(args.flip_pairs, names)
    background = background_classes(args.background_class, names)

    model, new_head = with_classes(base, names, dropout=args.dropout if from_card else None, reorder=True)
    head = "new" if new_head else "same"
    if init is not None and not new_head and tuple(base.card.class_names) != tuple(names):
        head = "same (reordered)"
        print(f"{init.source} has the dataset's classes in another order ({', '.join(base.card.class_names)}): "
              f"its trained classifier is kept, with its rows moved to the dataset's order ({', '.join(names)})",
              flush=True)
    elif init is not None and new_head and tuple(base.card.class_names) != tuple(names):
        gone = [c for c in base.card.class_names if c not in names][:6]
        added = [c for c in names if c not in base.card.class_names][:6]
        print(f"new classifier (random weights): the dataset's classes differ from {init.source}'s"
              + (f" (new: {', '.join(added)})" if added else "") + (f" (not in the data: {', '.join(gone)})" if gone else ""),
              flush=True)
    if from_card:
        pre = base.card.preprocessing
    else:
        size = args.input_size or 224
        defaults = base.card.preprocessing  # the registry's defaults: a freshly built model's card
        pre = Preprocessing(crop_size=size, resize_short=args.resize_short or max(size, int(round(size * 256 / 224))),
                            mean=defaults.mean, std=defaults.std, channel_order=defaults.channel_order)
    origin = f", fine-tuned from {init.source}" if init is not None else ""
    description = f"trained with `streamtsm train` on {Path(args.data).name}{origin}"
    if resumed:  # the run's card (written with its first epoch) knows where the run started
        from ..card import CardError, ModelCard, card_path_for

        try:
            description = ModelCard.load(card_path_for(out)).description or description
        except (CardError, OSError, ValueError):
            pass
    model.card = training_card(model.card, preprocessing=pre, fps=fps, frames=frames).replace(
        background_classes=background, description=description)
    frozen = freeze_stages(model, args.freeze_stages)
    model.train()
    split = f", validating on {len(val_set)}" if val_set is not None else ""
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         grad_clip=args.grad_clip, lr_steps=tuple(args.lr_steps), seed=args.seed, num_workers=args.workers,
                         optimizer=args.optimizer, patience=args.patience,
                         max_minutes=args.max_minutes)
    augment = AugmentConfig(flip_ratio=0.5 if flip_pairs else 0.0, flip_pairs=flip_pairs)

    finished: list = []  # epochs whose model and resume state are saved, as train_model reports them

    def report(e) -> None:
        finished.append(e)
        val = f" val top-1 {e.val['top1']:.3f} loss {e.val['loss']:.4f}" + (" (best)" if e.best else "") if e.val else ""
        print(f"epoch {e.epoch + 1}: loss {e.train_loss:.4f} lr {e.lr:.3g} ({e.clips_per_second:.1f} clips/s){val}", flush=True)

    try:  # from the line a user (or a test) reacts to on: a Ctrl-C after it is always explained
        print(f"training {model.card.arch} on {len(train_set)} clips, {len(names)} classes at {fps:g} fps, {frames} frames "
              f"({mode}){split}" + (f" ({len(bad)} bad entries skipped)" if bad else "")
              + (f"; {init.source}, {head} classifier" if init is not None else "")
              + (f"; resuming the run in {resume_path_for(out).name}" if resumed else "")
              + (f"; {frozen} parameters frozen" if frozen else ""), flush=True)
        history = train_model(model, train_set, config=config, out=out, augment=augment, val_clips=val_set,
                              resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress, on_epoch=report)
    except KeyboardInterrupt:
        print(interrupted_message(out, finished, resumed=args.resume, validating=val_set is not None),
              file=sys.stderr, flush=True)
        raise
    stopped = history and history[-1].epoch + 1 < args.epochs
    best = [h for h in history if h.best]
    why = {"patience": " (early stop)", "budget": f" (the {args.max_minutes:g}-minute budget)"}
    print(f"saved {out} (+ card {out.with_suffix('').name}.card.json); {len(history)} epochs run"
          + (why.get(history[-1].stopped_by, " (stopped early)") if stopped else "")
          + (f"; best validation epoch {best[-1].epoch + 1}" if best else ""))
    if val_set is not None:
        result = evaluate(model, CentredClips(val_set, model.card.preprocessing), num_classes=len(names),
                          batch_size=args.batch_size)
        print_result(result, names)
    return 0
