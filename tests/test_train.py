"""Training: SampleFrames semantics, a real tiny run on mp4 files, resume, bad data, the default model."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamtsm.card import Preprocessing  # noqa: E402
from streamtsm.train.augment import AugmentConfig, TrainTransform, multiscale_crop_box  # noqa: E402
from streamtsm.train.evaluate import metrics_from_scores  # noqa: E402
from streamtsm.train.sampling import SampleFrames, SamplingError, sample_frame_indices  # noqa: E402
from streamtsm.synthetic import CLASSES, render_clip, write_dataset  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- sampling


def _train(n, **kw):
    return sample_frame_indices(n, SampleFrames(**kw), test_mode=False, rng=np.random.default_rng(0))


def test_test_mode_takes_the_centre_of_each_segment():
    # 80 frames, 8 segments of 10: centres 5, 15, ..., 75 (seed 002's val/test pipeline).
    inds = sample_frame_indices(80, SampleFrames(num_clips=8), test_mode=True)
    assert inds.tolist() == [5, 15, 25, 35, 45, 55, 65, 75]
    # Non-integer segment length: int(k * avg + avg / 2) with avg = 50/8 = 6.25.
    assert sample_frame_indices(50, SampleFrames(num_clips=8), test_mode=True).tolist() == [3, 9, 15, 21, 28, 34, 40, 46]


def test_train_mode_draws_one_random_offset_inside_each_segment():
    seen = set()
    for seed in range(40):
        inds = sample_frame_indices(80, SampleFrames(num_clips=8), test_mode=False, rng=np.random.default_rng(seed))
        assert all(10 * k <= i < 10 * (k + 1) for k, i in enumerate(inds)), inds
        seen.add(int(inds[0]))
    assert len(seen) > 5  # really random within the segment


def test_clip_len_and_interval_make_consecutive_strided_frames():
    s = SampleFrames(clip_len=4, frame_interval=2, num_clips=2)
    # span 8; avg = (40 - 8 + 1) // 2 = 16 -> starts in [0, 16) and [16, 32)
    inds = sample_frame_indices(40, s, test_mode=False, rng=np.random.default_rng(1)).reshape(2, 4)
    assert (np.diff(inds, axis=1) == 2).all()
    assert 0 <= inds[0, 0] < 16 <= inds[1, 0] < 32
    # test: avg = 33/2 = 16.5 -> starts int(8.25) = 8 and int(24.75) = 24
    assert sample_frame_indices(40, s, test_mode=True).tolist() == [8, 10, 12, 14, 24, 26, 28, 30]


def test_short_video_spreads_starts_evenly_with_numpy_rounding():
    # 5 frames, 8 segments: avg = 5 // 8 = 0 and 5 <= max(8, 1) -> round(k * 5/8), half to even.
    assert _train(5, num_clips=8).tolist() == [0, 1, 1, 2, 2, 3, 4, 4]
    assert sample_frame_indices(5, SampleFrames(num_clips=8), test_mode=True).tolist() == [0, 0, 1, 2, 2, 3, 4, 4]


def test_middle_case_sorted_random_starts():
    # 10 frames, 8 segments of clip_len 2: avg = 9 // 8 = 1 > 0 -> one per segment; with 9 segments of
    # clip_len 1 on 10 frames avg = 10 // 9 = 1 too. Use 12 frames, clip_len 3, 5 clips: avg = 10 // 5 = 2.
    # The sorted-random branch needs avg == 0 and num_frames > max(num_clips, span): 9 frames, 8 clips, span 3.
    s = SampleFrames(clip_len=3, num_clips=8)
    for seed in range(10):
        inds = sample_frame_indices(9, s, test_mode=False, rng=np.random.default_rng(seed)).reshape(8, 3)
        starts = inds[:, 0]
        assert (np.diff(starts) >= 0).all() and starts.min() >= 0 and starts.max() <= 9 - 3


def test_video_shorter_than_one_clip_loops():
    s = SampleFrames(clip_len=4, frame_interval=2, num_clips=1)
    # span 8 > 5 frames: start 0, frames 0, 2, 4, 6 -> 6 wraps to 1.
    assert sample_frame_indices(5, s, test_mode=True).tolist() == [0, 2, 4, 1]
    assert sample_frame_indices(5, s, test_mode=False, rng=np.random.default_rng(0)).tolist() == [0, 2, 4, 1]
    last = SampleFrames(clip_len=4, frame_interval=2, num_clips=1, out_of_bound="repeat_last")
    assert sample_frame_indices(5, last, test_mode=True).tolist() == [0, 2, 4, 4]


def test_sampling_errors_are_clear():
    with pytest.raises(SamplingError, match="at least one frame"):
        sample_frame_indices(0, SampleFrames(), test_mode=True)
    with pytest.raises(SamplingError, match="rng"):
        sample_frame_indices(10, SampleFrames(), test_mode=False)
    with pytest.raises(SamplingError, match="num_clips"):
        SampleFrames(num_clips=0)


# --------------------------------------------------------------------------- augmentation and metrics


def test_multiscale_crop_box_uses_the_scale_set_and_stays_inside():
    rng = np.random.default_rng(0)
    allowed = {int(96 * s) for s in (1, 0.875, 0.75, 0.66)}
    for _ in range(200):
        x, y, w, h = multiscale_crop_box((96, 128), rng)
        assert w in allowed and h in allowed
        assert 0 <= x and x + w <= 128 and 0 <= y and y + h <= 96


def test_train_transform_output_and_flip_needs_label_pairs():
    pre = Preprocessing(crop_size=32, resize_short=40)
    frames = render_clip("swipe_left", 3, size=(60, 80), fps=10)
    out, label = TrainTransform(pre)(frames, 0, np.random.default_rng(0))
    assert out.shape == (len(frames), 3, 32, 32) and out.dtype == np.float32 and label == 0
    with pytest.raises(ValueError, match="flip_pairs"):
        TrainTransform(pre, AugmentConfig(flip_ratio=0.5))
    flips = TrainTransform(pre, AugmentConfig(flip_ratio=1.0, flip_pairs=((0, 1),)))
    _, swapped = flips(frames, np.array([0, -100, 8]), np.random.default_rng(0))
    assert swapped.tolist() == [1, -100, 8]


def test_metrics_by_hand():
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.0, 0.3, 0.7]])
    labels = np.array([0, 1, 1, 1])
    r = metrics_from_scores(scores, labels, 3)
    assert r.top1 == pytest.approx(0.5)  # sample 2 predicted 0, sample 3 predicted 2
    assert r.per_class_accuracy[0] == 1.0 and r.per_class_accuracy[1] == pytest.approx(1 / 3)
    assert r.mean_class_accuracy == pytest.approx((1 + 1 / 3) / 2)  # class 2 absent: not averaged
    assert r.confusion.tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]


# --------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_gestures")
    return write_dataset(root, clips_per_class=1, seed=5, split="train", size=(48, 64), fps=10.0, lead_s=(0.0, 0.2),
                         progress=False)


TINY_ARGS = ["--arch", "tsm_mobilenetv2", "--width-mult", "0.25", "--input-size", "32", "--resize-short", "36",
             "--num-segments", "4", "--batch-size", "9", "--lr", "0.01", "--lr-steps", "--dropout", "0",
             "--fps", "10", "--background-class", "no_motion", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def memorise_dataset(tmp_path_factory) -> Path:
    """9 square clips, one per class, each with its own object and background (clip seed = class index).

    Unlike ``tiny_dataset`` (one shared scene, only the motion differs) these can be told apart by
    appearance, so a few dozen steps can fit them; with square frames and ``crop_size ==
    resize_short`` the crop is the whole frame, so the only randomness left is the segment offsets.
    """
    root = tmp_path_factory.mktemp("memorise")
    for label, name in enumerate(CLASSES):
        (root / name).mkdir()
        frames = render_clip(name, 100 + label, size=(40, 40), fps=10.0, duration_s=0.8)
        writer = cv2.VideoWriter(str(root / name / "0.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (40, 40))
        for frame in frames:
            writer.write(frame)
        writer.release()
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (root / "ann.txt").write_text("".join(f"{name}/0.mp4 {label}\n" for label, name in enumerate(CLASSES)))
    return root / "ann.txt"


MEMORISE_PRE = Preprocessing(crop_size=32, resize_short=32)


def _memorisation(model, data):
    """Eval-mode cross-entropy and top-1 on the training clips (centred sampling, runtime preprocessing)."""
    from streamtsm.train.evaluate import evaluate
    from streamtsm.train.loop import CentredClips

    result = evaluate(model, CentredClips(data, model.card.preprocessing), num_classes=len(CLASSES))
    return result.loss, result.top1


def _fits_its_training_clips(model, data, tmp_path, lr, epochs):
    """Train ``epochs`` AdamW steps on 9 clips; the *saved* model must then classify those clips (eval mode).

    Measured on the reloaded checkpoint in eval mode, not on the noisy train-mode loss of a batch:
    before, loss ~ln 9 = 2.2 and chance accuracy; after, loss 0.002-0.02 (TSM, 20 steps) and
    0.004-0.023 (R(2+1)D, 30 steps) with 9/9 right over seeds 0-4. Zero gradients or labels shuffled against their clips
    leave it at chance, so the bounds below cannot pass by luck.
    """
    from streamtsm.checkpoints import load_model
    from streamtsm.train.augment import AugmentConfig
    from streamtsm.train.loop import TrainConfig, train_model

    loss_before, _ = _memorisation(model, data)
    train_model(model, data, config=TrainConfig(epochs=epochs, batch_size=9, lr=lr, lr_steps=(), optimizer="adamw"),
                out=tmp_path / "m", augment=AugmentConfig(scales=(1.0,)), progress=False)
    loaded = load_model(tmp_path / "m.safetensors")
    loss_after, top1_after = _memorisation(loaded, data)
    assert loss_before > 2.0 and loss_after < 0.5 and top1_after >= 8 / 9, (loss_before, loss_after, top1_after)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    return loaded


def test_tiny_training_fits_its_clips_and_writes_a_loadable_checkpoint(memorise_dataset, tmp_path):
    from streamtsm.models import create_model
    from streamtsm.train.datasets import load_video_dataset

    data, bad = load_video_dataset(memorise_dataset, sampling=SampleFrames(num_clips=4))
    assert not bad and len(data) == 9 and data.class_names == CLASSES
    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=9, class_names=CLASSES, width_mult=0.25, dropout=0.0)
    model.card = model.card.replace(preprocessing=MEMORISE_PRE)
    loaded = _fits_its_training_clips(model, data, tmp_path, lr=0.003, epochs=20)
    assert loaded.card.class_names == CLASSES and loaded.card.preprocessing.crop_size == 32
    assert loaded.card.shift_mode == "uni"


def test_batchnorm_recalibration_sets_the_statistics_of_the_given_clips_and_spares_frozen_layers():
    """Short runs save running averages of earlier weights (eval loss 4.4 after fitting 9 clips); recalibration fixes that."""
    from streamtsm.models import create_model
    from streamtsm.train.batchnorm import recalibrate_batchnorm
    from streamtsm.train.evaluate import batch_logits

    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.25, dropout=0.0).train()
    frozen = model.features[0][1]
    frozen.eval()
    frozen_before = frozen.running_mean.clone()
    clips = [(np.random.default_rng(i).normal(size=(2, 3, 32, 32)).astype(np.float32), 0) for i in range(6)]
    seen = []
    probe = model.features[5].conv[1]  # a BatchNorm deep inside, after shifted blocks
    hook = probe.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach().clone()))  # returns None
    with torch.no_grad():
        batch_logits(model, torch.from_numpy(np.stack([c[0] for c in clips])))
    hook.remove()
    assert recalibrate_batchnorm(model, clips, batch_logits, batch_size=6) == 51  # every BatchNorm but the frozen one
    x = seen[0]
    assert torch.allclose(probe.running_mean, x.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(probe.running_var, x.var((0, 2, 3), unbiased=True), rtol=1e-4)
    assert probe.momentum == 0.1 and model.training and torch.equal(frozen.running_mean, frozen_before)


def test_clip_targets_take_the_last_labelled_frame():
    from streamtsm.train.loop import IGNORE, TrainError, clip_targets

    y = torch.tensor([[8, 8, IGNORE, 3, 3], [8, IGNORE, 2, IGNORE, IGNORE], [8, 8, 8, 8, 8]])
    assert clip_targets(y).tolist() == [3, 2, 8]
    with pytest.raises(TrainError, match="no labelled frame"):
        clip_targets(torch.tensor([[IGNORE, IGNORE]]))


def test_lr_schedule_restarts_every_cycle():
    from streamtsm.train.loop import TrainConfig

    cfg = TrainConfig(epochs=20, lr=1.0, lr_steps=(7, 9), lr_cycle_epochs=10, warmup_iters=0)
    lrs = [cfg.lr_at(e, 10_000) for e in range(20)]
    assert lrs[:10] == lrs[10:] and lrs[6] == 1.0 and lrs[7] == pytest.approx(0.1) and lrs[9] == pytest.approx(0.01)
    assert TrainConfig(epochs=20, lr=1.0, lr_steps=(7, 9)).lr_at(15, 0) == pytest.approx(0.01)  # no cycle: stays low


def test_a_3d_window_model_trains_on_the_same_clips_and_reloads(memorise_dataset, tmp_path):
    """The delay benchmark's R(2+1)D baseline goes through the same loop (clip logits, NCTHW)."""
    from streamtsm.card import Temporal
    from streamtsm.models import create_model
    from streamtsm.train.datasets import load_video_dataset
    from streamtsm.train.evaluate import frame_logits
    from streamtsm.train.loop import CentredClips

    data, bad = load_video_dataset(memorise_dataset, sampling=SampleFrames(num_clips=1, clip_len=4))
    assert not bad
    torch.manual_seed(0)
    model = create_model("r2plus1d_18", num_classes=9, class_names=CLASSES, width=4)
    model.card = model.card.replace(preprocessing=MEMORISE_PRE,
                                    temporal=Temporal(mode="window", fps=10.0, clip_len=4, clip_layout="NCTHW"))
    loaded = _fits_its_training_clips(model, data, tmp_path, lr=0.01, epochs=30)
    assert loaded.card.arch_kwargs["width"] == 4 and loaded.fc.in_features == 32 and loaded.card.temporal.mode == "window"
    logits, labels = frame_logits(loaded, CentredClips(data, loaded.card.preprocessing))
    assert logits.shape == (9, 1, 9) and labels.tolist() == list(range(9))


def test_cli_train_then_resume_continues_from_the_saved_epoch(tiny_dataset, tmp_path, capsys):
    from streamtsm.checkpoints import load_model
    from streamtsm.cli import main

    out = tmp_path / "run.safetensors"
    assert main(["train", str(tiny_dataset), "--out", str(out), "--epochs", "1", *TINY_ARGS]) == 0
    state = torch.load(tmp_path / "run.resume.pt", weights_only=True)
    assert int(state["epoch"]) == 0
    assert main(["train", str(tiny_dataset), "--out", str(out), "--epochs", "2", "--resume", *TINY_ARGS]) == 0
    text = capsys.readouterr().out
    assert "epoch 2:" in text and "1 epochs run" in text  # only the missing epoch ran
    assert int(torch.load(tmp_path / "run.resume.pt", weights_only=True)["epoch"]) == 1
    card = json.loads((tmp_path / "run.card.json").read_text())
    assert card["class_names"] == list(CLASSES) and card["temporal"]["fps"] == 10.0
    assert card["background_classes"] == ["no_motion"] and card["preprocessing"]["crop_size"] == 32
    assert load_model(out).card.temporal.mode == "online"
    # resume without a previous run is a clear error
    assert main(["train", str(tiny_dataset), "--out", str(tmp_path / "fresh"), "--epochs", "1", "--resume", *TINY_ARGS]) == 1
    assert "no resume state" in capsys.readouterr().err


def _write_frames(path: Path, n: int) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    for _ in range(n):
        writer.write(np.full((48, 64, 3), 120, np.uint8))
    writer.release()


def test_bad_entries_are_reported_by_name_and_skip_bad_goes_on(tiny_dataset, tmp_path, capsys):
    from streamtsm.cli import main
    from streamtsm.train.datasets import BadDataError, load_video_dataset

    good = [line for line in tiny_dataset.read_text().splitlines() if line.strip()]
    (tmp_path / "garbage.mp4").write_bytes(b"this is not a video" * 100)
    (tmp_path / "zero.mp4").write_bytes(b"")
    _write_frames(tmp_path / "noframes.mp4", 0)
    for line in good:
        rel, label = line.split()
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes((tiny_dataset.parent / rel).read_bytes())
    ann = tmp_path / "ann.txt"
    ann.write_text("\n".join(good + ["missing/clip.mp4 0", "garbage.mp4 1", "zero.mp4 2", "noframes.mp4 3",
                                     good[0].split()[0] + " 42", "no_label_here"]) + "\n")
    names = list(CLASSES)
    with pytest.raises(BadDataError) as info:
        load_video_dataset(ann, sampling=SampleFrames(num_clips=4), class_names=names)
    message = str(info.value)
    for name in ("missing/clip.mp4", "garbage.mp4", "zero.mp4", "noframes.mp4", "label 42 out of range", "no_label_here"):
        assert name in message, (name, message)
    assert "6 of 15" in message and "--skip-bad" in message
    data, bad = load_video_dataset(ann, sampling=SampleFrames(num_clips=4), class_names=names, skip_bad=True)
    assert len(data) == 9 and len(bad) == 6
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    assert main(["train", str(ann), "--out", str(tmp_path / "m"), "--epochs", "1", *TINY_ARGS]) == 1
    assert "garbage.mp4" in capsys.readouterr().err
    assert main(["train", str(ann), "--out", str(tmp_path / "m"), "--epochs", "1", "--skip-bad", *TINY_ARGS]) == 0
    assert "6 bad entries skipped" in capsys.readouterr().out
    assert (tmp_path / "m.safetensors").exists()


# --------------------------------------------------------------------------- the embedded default model


def test_default_model_loads_is_small_and_its_card_is_complete():
    from streamtsm.checkpoints import DEFAULT_MODEL, load_model

    assert DEFAULT_MODEL.stat().st_size < 10 * 1024 * 1024
    model = load_model()
    card = model.card
    assert card.class_names == CLASSES and card.background_classes == ("no_motion",)
    assert card.shift_mode == "uni" and card.is_online
    assert card.preprocessing.crop_size == 80 and card.preprocessing.resize_short == 80
    assert card.temporal.fps == 10.0


def test_default_model_tells_directions_apart_on_unseen_clips():
    """Held-out shapes/textures: the reversed pairs (same frames, opposite order) must both be right."""
    from streamtsm.checkpoints import load_model
    from streamtsm.preprocess import FramePreprocessor

    model = load_model()
    pre = FramePreprocessor(model.card.preprocessing)
    correct = 0
    cases = [(label, seed) for seed in (901, 902) for label in range(8)]
    with torch.no_grad():
        for label, seed in cases:
            frames = render_clip(label, seed, size=(120, 160), fps=10.0, duration_s=0.8, split="test",
                                 lead_in_s=0.5, lead_out_s=0.5)[-12:]
            x = torch.from_numpy(pre.preprocess_clip(frames))
            logits = model.forward_frames(x, len(x))[-6:].mean(0)  # = online outputs over the last 0.5 s
            correct += int(logits.argmax()) == label
    assert correct >= 13, f"{correct}/16 held-out gesture clips right"
