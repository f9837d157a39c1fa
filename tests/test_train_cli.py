"""`streamtsm train` / `eval` on clips the tests write: bad input refused up front (issue 14 rows 2, 3, 6, 7),
every architecture family trains, fine-tuning from the embedded model (issue 17)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamtsm.cli import main  # noqa: E402
from streamtsm.train.sampling import SampleFrames  # noqa: E402
from streamtsm.synthetic import render_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
GESTURES = {"left": "swipe_left", "no_action": "no_motion", "right": "swipe_right"}  # folder order = label order
CLIP_FPS = 20.0  # the embedded model runs at 10 fps: every 2nd frame


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_clip(path: Path, frames: np.ndarray, fps: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def gestures(tmp_path_factory) -> Path:
    """3 classes (a background one among them) x 4 clips of about 1 s at 20 fps, one folder per class."""
    root = tmp_path_factory.mktemp("gestures")
    for name, gesture in GESTURES.items():
        for i in range(4):
            frames = render_clip(gesture, 60 + i, size=(48, 48), fps=CLIP_FPS, duration_s=0.8, lead_in_s=0.1, lead_out_s=0.1)
            write_clip(root / name / f"{i:04d}.mp4", frames, CLIP_FPS)
    return root


TINY = ["--input-size", "32", "--num-segments", "8", "--epochs", "1", "--batch-size", "4", "--no-progress", "--fps", "10"]


def _unwritable(folder: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            return False
    except OSError:
        return folder.is_dir()


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------- issue 14 row 2: class indices


def test_a_huge_label_is_a_bad_entry_not_a_class_list(gestures, tmp_path, capsys):
    ann = tmp_path / "ann.txt"
    ann.write_text(f"{gestures}/left/0000.mp4 0\n{gestures}/left/0001.mp4 99999999999999999999999\n")
    assert main(["train", str(ann), "--out", str(tmp_path / "m"), *TINY]) == 1
    err = capsys.readouterr().err
    assert "ann.txt:2" in err and "not a class index 0..9999" in err
    assert not (tmp_path / "m.safetensors").exists()


def test_a_gap_in_the_labels_is_an_error_listing_the_missing_indices(gestures, tmp_path):
    from streamtsm.train.datasets import load_video_dataset

    ann = tmp_path / "ann.txt"
    ann.write_text(f"{gestures}/left/0000.mp4 0\n{gestures}/right/0000.mp4 5\n")
    with pytest.raises(ValueError, match=r"no clip has label 1, 2, 3, 4\. .*classes\.txt"):
        load_video_dataset(ann, sampling=SampleFrames(num_clips=4))
    (tmp_path / "classes.txt").write_text("\n".join(f"c{i}" for i in range(6)) + "\n")  # named: six classes, on purpose
    data, _ = load_video_dataset(ann, sampling=SampleFrames(num_clips=4))
    assert len(data.class_names) == 6


# --------------------------------------------------------------------------- issue 14 row 3: sampling bounds


def test_eval_refuses_absurd_sampling_before_decoding(gestures, tmp_path, capsys):
    # a model of the folder's own classes, so nothing but the sampling can stop the run
    # (on 68bf7a2 this evaluation allocated 1.14 GiB per clip and went on growing)
    out = tmp_path / "m.safetensors"
    assert main(["train", str(gestures), "--out", str(out), *TINY, "--width-mult", "0.25"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["eval", str(out), str(gestures), "--num-segments", "100000"])
    assert info.value.code == 2 and "100000 is out of range: use a value from 1 to 1024" in capsys.readouterr().err
    # 200 frames per sample from ~1 s clips (10 frames at 10 fps): refused, bound named
    assert main(["eval", str(out), str(gestures), "--frames", "200"]) == 1
    assert "longest clip has 10 frames" in capsys.readouterr().err


# --------------------------------------------------------------------------- issue 14 row 6: every family trains


FAMILY_RUNS = {
    "TSM offline (bi)": ["--arch", "tsm_mobilenetv2", "--shift", "bi", "--width-mult", "0.25"],
    "TSM no shift": ["--arch", "tsm_mobilenetv2", "--shift", "none", "--width-mult", "0.25"],
    "TSN": ["--arch", "tsn_mobilenetv2", "--width-mult", "0.25"],
    "R(2+1)D": ["--arch", "r2plus1d_18", "--width", "4"],
    "R3D": ["--arch", "r3d_18", "--width", "4"],
    "I3D": ["--arch", "i3d_r50", "--width", "8"],
    "SlowOnly": ["--arch", "slowonly_r50", "--width", "8"],
    "SlowFast": ["--arch", "slowfast_r50", "--width", "8"],
}


@pytest.mark.parametrize("family", list(FAMILY_RUNS))
def test_every_family_trains_through_the_one_loop_and_reloads(family, gestures, tmp_path):
    out = tmp_path / "m.safetensors"
    assert main(["train", str(gestures), "--out", str(out), *TINY, *FAMILY_RUNS[family]]) == 0

    from streamtsm.checkpoints import load_model
    from streamtsm.train.evaluate import batch_logits, is_clip_model

    model = load_model(out)
    card = model.card
    assert card.class_names == tuple(GESTURES) and card.temporal.fps == 10.0 and card.preprocessing.crop_size == 32
    clip = is_clip_model(model)
    assert card.temporal.mode == "window" and card.temporal.clip_len == 8  # none of these runs online
    assert card.temporal.clip_layout == ("NCTHW" if clip else "NTCHW")
    with torch.no_grad():
        logits = batch_logits(model, torch.zeros(2, 8, 3, 32, 32))
    assert logits.shape == ((2, 1, 3) if clip else (2, 8, 3))


def test_arch_choices_are_exactly_the_trainable_registry_models(capsys):
    from streamtsm.models import list_models
    from streamtsm.train.families import TRAINABLE_ARCHS

    assert set(TRAINABLE_ARCHS) == set(list_models())  # a new registry model must get a family entry
    with pytest.raises(SystemExit):
        main(["train", "x", "--out", "y", "--arch", "resnet9000"])
    assert "invalid choice: 'resnet9000'" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--arch", "tsn_mobilenetv2", "--shift", "uni"], "tsm_\\* architecture for a shift"),
    (["--arch", "r2plus1d_18", "--dropout", "0.3"], "has no dropout layer"),
    (["--arch", "tsm_resnet18", "--width", "8"], "has no width option"),
    (["--arch", "slowfast_r50", "--frames", "4"], "at least 8 frames"),
])
def test_options_an_architecture_lacks_are_one_line_errors(args, message, gestures, tmp_path, capsys):
    assert main(["train", str(gestures), "--out", str(tmp_path / "m"), *TINY, *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and __import__("re").search(message, err), err


# --------------------------------------------------------------------------- issue 14 row 7: checked up front, nothing lost


def test_flip_pairs_outside_the_classes_are_refused_before_training(gestures, tmp_path, capsys):
    assert main(["train", str(gestures), "--out", str(tmp_path / "m"), *TINY, "--flip-pairs", "0:7"]) == 1
    assert "'7' in '0:7' is not a class: use an index 0..2" in capsys.readouterr().err
    assert _files(tmp_path) == set()
    assert main(["train", str(gestures), "--out", str(tmp_path / "m"), *TINY, "--width-mult", "0.25",
                 "--flip-pairs", "left:right"]) == 0


@pytest.mark.parametrize("args, message", [
    (["--fps", "nan"], "--fps: nan is out of range"),
    (["--fps", "0"], "--fps: 0 is out of range"),
    (["--lr", "inf"], "--lr: inf is out of range"),
    (["--epochs", "0"], "--epochs: 0 is out of range"),
    (["--val-fraction", "1.5"], "--val-fraction: 1.5 is out of range"),
])
def test_numbers_are_range_checked_when_parsed(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", str(tmp_path), "--out", str(tmp_path / "m"), *args])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_eval_batch_size_zero_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", "default", "x", "--batch-size", "0"])
    assert info.value.code == 2 and "--batch-size: 0 is out of range: use a value from 1 to 4096" in capsys.readouterr().err


def test_resume_with_other_settings_or_a_broken_file_is_refused_and_nothing_is_touched(gestures, tmp_path, capsys):
    out = tmp_path / "run.safetensors"
    args = ["train", str(gestures), "--out", str(out), *TINY, "--width-mult", "0.25"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert main([*args, "--epochs", "2", "--resume", "--input-size", "48"]) == 1
    err = capsys.readouterr().err
    assert "--resume continues the run in" in err and "--input-size 48 (the run has 32); drop --input-size" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    resume = tmp_path / "run.resume.pt"
    for broken in (b"", before["run.resume.pt"][: len(before["run.resume.pt"]) // 2]):
        resume.write_bytes(broken)
        assert main([*args, "--epochs", "2", "--resume"]) == 1
        err = capsys.readouterr().err
        assert "run.resume.pt is unreadable" in err and "Traceback" not in err
        assert resume.read_bytes() == broken and (tmp_path / "run.safetensors").read_bytes() == before["run.safetensors"]


def test_out_problems_are_found_before_the_dataset_is_read(tmp_path, capsys):
    missing_data = str(tmp_path / "no-such-dataset")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    (tmp_path / "model.safetensors").write_bytes(b"precious")
    cases = [(tmp_path / "adir", "is a directory"), (tmp_path / "afile" / "m.safetensors", "is a file, not a folder"),
             (tmp_path / "model.safetensors", "already exists; pass --resume"), (tmp_path / "m.pt", "is a .safetensors file")]
    if _unwritable(Path("/sys")):  # even root cannot create files there (Linux)
        cases.append((Path("/sys/m.safetensors"), "cannot write in /sys"))
    for out, message in cases:
        assert main(["train", missing_data, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert message in err and "no-such-dataset" not in err, (out, err)
    assert _files(tmp_path / "adir") == set() and not (tmp_path / "adir.safetensors").exists()
    assert (tmp_path / "model.safetensors").read_bytes() == b"precious"


def test_text_files_bom_encoding_and_empty_class_folders(gestures, tmp_path, capsys):
    lines = "".join(f"{gestures}/{name}/0000.mp4 {i}\n{gestures}/{name}/0001.mp4 {i}\n" for i, name in enumerate(GESTURES))
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbf" + lines.encode())
    assert main(["train", str(bom), "--out", str(tmp_path / "m"), *TINY, "--width-mult", "0.25"]) == 0
    latin = tmp_path / "latin.txt"
    latin.write_bytes(("# caf\u00e9 clips\n" + lines).encode("latin-1"))
    assert main(["train", str(latin), "--out", str(tmp_path / "m2"), *TINY]) == 1
    assert "annotation file" in (err := capsys.readouterr().err) and "latin.txt is not UTF-8 text (byte 0xe9 on line 1)" in err
    folders = tmp_path / "folders"
    for name in GESTURES:
        (folders / name).mkdir(parents=True)
    write_clip(folders / "left" / "a.mp4", render_clip("swipe_left", 1, size=(48, 48), fps=10.0), 10.0)
    assert main(["train", str(folders), "--out", str(tmp_path / "m3"), *TINY]) == 1
    assert "class folder(s) ['no_action', 'right'] hold no videos" in capsys.readouterr().err


def test_parsers_and_help_need_no_torch_and_show_defaults():
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None
        from streamtsm.cli import main
        for name in ("train", "eval"):
            try:
                main([name, "--help"])
            except SystemExit as exc:
                assert exc.code == 0, exc.code
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    for shown in ("(default: 50)", "(default: 0.01)", "(default: auto)", "(default: 8)", "(default: 'no_action' if such a class",
                  "(default: 0)", "(default: opencv)"):
        assert shown in text, shown


# --------------------------------------------------------------------------- issue 17: train DIR


def test_clip_frame_rate_comes_from_the_file_and_sets_the_stride(tmp_path):
    from streamtsm.train.datasets import load_video_dataset
    from streamtsm.train.sampling import clip_sampling

    # frame k shows brightness 10 k: what the loader returns says which frames it took
    frames = np.stack([np.full((32, 32, 3), 10 * k, np.uint8) for k in range(20)])
    write_clip(tmp_path / "only" / "ramp.mp4", frames, 20.0)
    data, _ = load_video_dataset(tmp_path, sampling=clip_sampling(5, "dense"), test_mode=True, model_fps=10.0)
    assert data.infos[0].fps == 20.0 and data.timeline_frames(0) == 10  # 20 frames at 20 fps = 10 at 10 fps
    got, _ = data.load(0)
    taken = np.round(got.reshape(5, -1).mean(1) / 10).astype(int).tolist()
    assert taken == [6, 8, 10, 12, 14]  # model steps 3..7 (the centred window of 5 of 10), every 2nd source frame
    with pytest.raises(Exception, match="slower than the model's 30 fps"):
        load_video_dataset(tmp_path, sampling=clip_sampling(5, "dense"), model_fps=30.0)


def test_without_fps_or_init_the_model_takes_the_clips_frame_rate(gestures, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    args = [a for a in TINY if a not in ("--fps", "10")]
    assert main(["train", str(gestures), "--out", str(out), *args, "--width-mult", "0.25"]) == 0
    assert json.loads((tmp_path / "m.card.json").read_text())["temporal"]["fps"] == CLIP_FPS
    mixed = tmp_path / "mixed"
    write_clip(mixed / "a" / "0.mp4", render_clip("swipe_left", 1, size=(48, 48), fps=10.0), 10.0)
    write_clip(mixed / "b" / "0.mp4", render_clip("swipe_right", 1, size=(48, 48), fps=25.0), 25.0)
    assert main(["train", str(mixed), "--out", str(tmp_path / "m2"), *args]) == 1
    assert "different frame rates (10, 25 fps): pass --fps" in capsys.readouterr().err


def test_annotations_txt_in_the_folder_wins_over_the_class_folders(gestures, tmp_path):
    from streamtsm.train.datasets import load_video_dataset

    root = tmp_path / "recorded"
    for name in GESTURES:
        (root / name).mkdir(parents=True)
        (root / name / "0.mp4").write_bytes((gestures / name / "0000.mp4").read_bytes())
    (root / "classes.txt").write_text("wave\nrest\n")
    (root / "annotations.txt").write_text("left/0.mp4 0\nno_action/0.mp4 1\n")
    data, _ = load_video_dataset(root, sampling=SampleFrames(num_clips=2))
    assert data.class_names == ("wave", "rest") and data.labels == [0, 1] and len(data) == 2


def test_the_split_is_stratified_seeded_and_refuses_classes_it_cannot_split():
    from streamtsm.train.split import SplitError, stratified_split

    labels = [0] * 10 + [1] * 20 + [2] * 5
    train, val = stratified_split(labels, 0.2, seed=3)
    assert sorted(train + val) == list(range(35)) and not set(train) & set(val)
    assert [sum(labels[i] == c for i in val) for c in range(3)] == [2, 4, 1]
    assert stratified_split(labels, 0.2, seed=3) == (train, val)
    assert stratified_split(labels, 0.2, seed=4) != (train, val)
    with pytest.raises(SplitError, match="'b' \\(1 clip\\)"):
        stratified_split([0, 0, 1], 0.5, class_names=["a", "b"])


def test_early_stopping_stops_and_keeps_the_best_weights(gestures, tmp_path, capsys, monkeypatch):
    from streamtsm.checkpoints import load_model
    from streamtsm.train import loop

    out = tmp_path / "m.safetensors"
    digests = []
    real_train = loop.train_model

    def spy(*a, on_epoch=None, **kw):  # record the saved model's bytes after every epoch
        def hook(e):
            digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
            on_epoch(e)
        return real_train(*a, on_epoch=hook, **kw)

    monkeypatch.setattr(loop, "train_model", spy)  # the command imports it from the loop module when it runs

    # a learning rate too small to change the validation score: no epoch after the first is better
    assert main(["train", str(gestures), "--out", str(out), *TINY, "--width-mult", "0.25", "--epochs", "10",
                 "--val-fraction", "0.25", "--patience", "2", "--lr", "1e-12"]) == 0
    text = capsys.readouterr().out
    assert "validating on 3" in text and "3 epochs run (early stop); best validation epoch 1" in text
    assert text.count("(best)") == 1
    assert digests[0] == digests[1] == digests[2]  # later, worse epochs never replaced the best weights
    state = torch.load(tmp_path / "m.resume.pt", weights_only=True)
    assert int(state["epoch"]) == 2 and state["best"].tolist()[0] == 0
    assert load_model(out).card.class_names == tuple(GESTURES)


def test_max_minutes_stops_before_an_epoch_that_would_end_past_the_budget(gestures, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    # a budget far below one epoch: the first epoch runs (nothing is known before it), no second starts
    assert main(["train", str(gestures), "--out", str(out), *TINY, "--width-mult", "0.25", "--epochs", "5",
                 "--max-minutes", "0.00001"]) == 0
    assert "1 epochs run (the 1e-05-minute budget)" in capsys.readouterr().out
    assert out.exists()


@pytest.mark.parametrize("elapsed_s, done, budget_min, stop", [
    (0.0, 0, 1.0, False),     # nothing run yet: the first epoch always starts
    (20.0, 1, 1.0, False),    # 20 s + a 20 s epoch = 40 s < 60 s
    (40.0, 2, 1.0, False),    # 40 + 20 = 60 s: ends exactly at the budget
    (45.0, 1, 1.0, True),     # 45 + 45 > 60
    (1e6, 10, 0.0, False),    # 0 = no budget
])
def test_budget_rule(elapsed_s, done, budget_min, stop):
    from streamtsm.train.loop import _over_budget

    assert _over_budget(budget_min, elapsed_s, done) is stop


def test_bad_budget_is_refused_with_one_line(gestures, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(gestures), "--out", str(tmp_path / "m"), *TINY, "--max-minutes", "-1"])
    assert exit_info.value.code == 2 and not (tmp_path / "m").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert "--max-minutes: -1 is out of range: use a value from 0 to 10080" in err[-1]


def test_patience_without_validation_is_refused(gestures, tmp_path, capsys):
    assert main(["train", str(gestures), "--out", str(tmp_path / "m"), *TINY, "--patience", "3"]) == 1
    assert "--patience needs validation clips" in capsys.readouterr().err


def test_fine_tune_from_the_default_model_keeps_its_backbone_and_writes_the_new_classes(gestures, tmp_path, capsys):
    from streamtsm.checkpoints import load_model
    from streamtsm.train.finetune import stages

    default = load_model()
    out = tmp_path / "mine.safetensors"
    assert main(["train", str(gestures), "--out", str(out), "--init", "default", "--freeze-stages", "3", "--epochs", "1",
                 "--batch-size", "4", "--lr", "0.01", "--no-progress"]) == 0
    assert "the embedded default model, new classifier" in capsys.readouterr().out
    tuned = load_model(out)
    card = tuned.card
    assert card.class_names == tuple(GESTURES) and card.background_classes == ("no_action",)
    assert card.temporal.fps == default.card.temporal.fps == 10.0  # the model's rate, not the clips' 20 fps
    assert card.preprocessing == default.card.preprocessing and card.temporal.num_segments == 12 and card.is_online
    assert card.arch_kwargs == {**default.card.arch_kwargs, "num_classes": 3}
    assert card.weights_sha256 == "" and card.weights_name == ""  # new weights: the default's provenance does not apply
    assert tuned.classifier.out_features == 3
    ref = default.state_dict()
    got = tuned.state_dict()
    frozen = {id(p) for stage in stages(tuned)[:3] for m in stage for p in m.parameters()}
    names = dict((id(p), n) for n, p in tuned.named_parameters())
    for pid in frozen:  # frozen stages: bit-identical to the embedded model (BatchNorm statistics too)
        assert torch.equal(got[names[pid]], ref[names[pid]]), names[pid]
    for n in [k for k in got if k.startswith(("features.0.", "features.1.")) and "running" in k]:
        assert torch.equal(got[n], ref[n]), n
    trained = [n for n, p in tuned.named_parameters() if id(p) not in frozen and not n.startswith("classifier")]
    changed = [n for n in trained if not torch.equal(got[n], ref[n])]
    assert changed, "the unfrozen backbone did not train"
    cos = [float(torch.nn.functional.cosine_similarity(got[n].flatten(), ref[n].flatten(), 0)) for n in changed
           if got[n].dim() > 1]
    assert min(cos) > 0.9, min(cos)  # fine-tuned from the embedded weights, not re-initialised (random: ~0)


def test_init_options_the_card_decides_are_refused(gestures, tmp_path, capsys):
    assert main(["train", str(gestures), "--out", str(tmp_path / "m"), "--init", "default", "--input-size", "64"]) == 1
    assert "drop --input-size" in capsys.readouterr().err
    assert main(["train", str(gestures), "--out", str(tmp_path / "m"), "--init", str(tmp_path / "nothing.pth")]) == 1
    assert "--init " in (err := capsys.readouterr().err) and "nothing.pth does not exist" in err
    assert main(["train", str(gestures), "--out", str(tmp_path / "m"), "--init", "tsm_mobilenetv2"]) == 1
    assert "is an architecture (random weights)" in capsys.readouterr().err


def test_imagenet_init_is_an_alias_that_loads_only_the_backbone(gestures, tmp_path, capsys):
    """A 1000-class classification file (here in the official TSM layout) initialises the backbone of --arch."""
    from streamtsm.checkpoints import load_model
    from streamtsm.models import create_model

    torch.manual_seed(1)
    imagenet = create_model("tsm_mobilenetv2", num_classes=1000, width_mult=0.25)
    sd = imagenet.state_dict()
    torch.save(sd, tmp_path / "imagenet.pth")
    out = tmp_path / "m.safetensors"
    assert main(["train", str(gestures), "--out", str(out), *TINY, "--width-mult", "0.25",
                 "--imagenet-init", str(tmp_path / "imagenet.pth"), "--freeze-stages", "9"]) == 0
    assert "ImageNet backbone imagenet.pth" in capsys.readouterr().out
    got = load_model(out).state_dict()
    backbone = [k for k in sd if not k.startswith("classifier")]
    assert all(torch.equal(got[k], sd[k]) for k in backbone if "num_batches" not in k)
    assert got["classifier.weight"].shape == (3, 1280)


# --------------------------------------------------------------------------- labels by class name (eval, --val)

PERFORMER = ["--source", "synthetic:performer:test:3", "--countdown", "0", "--headless", "--frame-size", "64x48"]


def _recorded(tmp_path: Path, name: str, *args: str) -> Path:
    """A folder `streamtsm record` writes with the synthetic performer (unpaced: a second or two)."""
    out = tmp_path / name
    assert main(["record", str(out), *args, *PERFORMER]) == 0
    return out


def _relabelled_copy(gestures: Path, folder: Path, order: Sequence[str], take: dict[str, int]) -> Path:
    """A recording-style folder (annotations.txt + classes.txt in ``order``) of ``take[c]`` clips per class."""
    folder.mkdir()
    (folder / "classes.txt").write_text("".join(f"{c}\n" for c in order))
    (folder / "annotations.txt").write_text("".join(f"{gestures / c / f'{i:04d}.mp4'} {order.index(c)}\n"
                                                    for c in order for i in range(take.get(c, 0))))
    return folder


def test_eval_labels_a_recording_by_its_classes_txt_not_by_the_model_order(tmp_path, capsys):
    # the auditor's case: classes.txt swipe_left, swipe_right, no_motion (label 2 = no_motion, but swipe_up in the
    # default model); eval used to count every no_motion clip as a swipe_up clip
    gs = _recorded(tmp_path, "gs", "--classes", "swipe_left,swipe_right", "--background", "no_motion", "--takes", "1")
    capsys.readouterr()
    assert (gs / "classes.txt").read_text().split() == ["swipe_left", "swipe_right", "no_motion"]
    assert main(["eval", "default", str(gs), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    default_names = list(result["per_class_accuracy"])  # the model's classes, in its order
    assert default_names.index("swipe_up") == 2 and "no_motion" in default_names
    rows = {n: sum(result["confusion"][i]) for i, n in enumerate(default_names)}
    assert rows == {**{n: 0 for n in default_names}, "swipe_left": 1, "swipe_right": 1, "no_motion": 2}


def test_a_dataset_class_the_model_lacks_is_refused_by_name(gestures, capsys):
    # folders left/no_action/right: none is a class of the default model
    assert main(["eval", "default", str(gestures)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "class 'left', 'no_action', 'right' of the clips is not among the classes of default" in err
    assert "matched by class name" in err and "Traceback" not in err


MAPPING_CASES = {
    # layout: what classes.txt says (None: a bare list), the target classes -> labels expected, in file order
    "classes.txt in another order": (("right", "left", "no_action"), ("left", "no_action", "right"), [2, 0, 1]),
    "classes.txt a subset": (("right",), ("left", "no_action", "right"), [2]),
    "bare list: the target's indices": (None, ("left", "no_action", "right"), [0, 1, 2]),
}


@pytest.mark.parametrize("own, target, expected", MAPPING_CASES.values(), ids=MAPPING_CASES.keys())
def test_dataset_labels_follow_the_target_classes_by_name(own, target, expected, gestures, tmp_path):
    from streamtsm.train.datasets import load_video_dataset

    order = own or ("left", "no_action", "right")
    folder = _relabelled_copy(gestures, tmp_path / "d", order, {c: 1 for c in order})
    if own is None:
        (folder / "classes.txt").unlink()
    data, _ = load_video_dataset(folder, sampling=SampleFrames(num_clips=4), target_classes=target)
    assert data.class_names == target and data.labels == expected
    assert [r.path.parent.name for r in data.records] == [target[i] for i in expected]


def test_train_val_labels_the_validation_folder_by_its_own_classes(gestures, tmp_path, capsys):
    # validation in another class order, with unequal counts so a swapped label shows in the row sums
    val = _relabelled_copy(gestures, tmp_path / "val", ("right", "left", "no_action"), {"left": 4, "no_action": 2})
    assert main(["train", str(gestures), "--val", str(val), "--out", str(tmp_path / "m"), *TINY, "--width-mult", "0.25"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): sum(int(x) for x in line.split("|")[2:-1])
            for line in out.splitlines() if line.startswith("| ") and not line.startswith("| true")}
    assert rows == {"left": 4, "no_action": 2, "right": 0}
    other = _relabelled_copy(gestures, tmp_path / "other", ("left", "wave"), {"left": 1})
    (other / "annotations.txt").write_text(f"{gestures / 'left' / '0000.mp4'} 1\n")  # a 'wave' clip
    assert main(["train", str(gestures), "--val", str(other), "--out", str(tmp_path / "m2"), *TINY]) == 1
    assert "class 'wave' of the clips is not among the training classes of" in capsys.readouterr().err
    assert not (tmp_path / "m2.safetensors").exists()


# --------------------------------------------------------------------------- one class, resume states, eval inputs


def test_one_class_is_refused_with_what_to_record(tmp_path, capsys):
    g1c = _recorded(tmp_path, "g1c", "--classes", "wave", "--between", "0", "--takes", "2")
    capsys.readouterr()
    assert main(["train", str(g1c), "--out", str(tmp_path / "m"), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has 1 class ('wave'): a classifier needs at least 2" in err
    assert f"streamtsm record {g1c} --classes wave --between 1 --background no_action" in err
    assert not list(tmp_path.glob("m*"))


@pytest.fixture(scope="module")
def trained_run(gestures, tmp_path_factory) -> Path:
    """A tiny 1-epoch run (model, card, resume state) under umask 022, to read, resume or export."""
    folder = tmp_path_factory.mktemp("run")
    before = os.umask(0o022)
    try:
        assert main(["train", str(gestures), "--out", str(folder / "m1"), *TINY, "--width-mult", "0.25"]) == 0
    finally:
        os.umask(before)
    return folder / "m1.safetensors"


def test_the_model_file_has_the_mode_of_the_card_and_the_umask(trained_run):
    mode = {p.name: p.stat().st_mode & 0o777 for p in trained_run.parent.iterdir()}
    assert mode == {"m1.safetensors": 0o644, "m1.card.json": 0o644, "m1.resume.pt": 0o644}


def test_a_resume_state_is_named_as_one_where_a_model_is_expected(trained_run, gestures, tmp_path, capsys):
    state = trained_run.with_name("m1.resume.pt")
    for argv, what in ((["eval", str(state), str(gestures)], "eval:"),
                       (["train", str(gestures), "--init", str(state), "--out", str(tmp_path / "x"), "--epochs", "1"],
                        "--init"),
                       (["info", str(state)], "info:")):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{what} {state} is the resume state of a training run" in err
        assert f"--out {trained_run} --resume" in err and f"give {trained_run} (the model written beside it)" in err
        assert "looks like format" not in err
    renamed = tmp_path / "state.pt"  # recognised by its keys, not by its name
    renamed.write_bytes(state.read_bytes())
    assert main(["eval", str(renamed), str(gestures)]) == 1
    assert "is the resume state of a training run" in capsys.readouterr().err


def test_eval_messages_speak_of_evaluating(trained_run, gestures, tmp_path, capsys):
    onnx = tmp_path / "m1.int8.onnx"
    assert main(["export", str(trained_run), "--output", str(onnx)]) == 0
    capsys.readouterr()
    beside = tmp_path / "m1.safetensors"
    beside.write_bytes(trained_run.read_bytes())
    (tmp_path / "m1.card.json").write_bytes(trained_run.with_name("m1.card.json").read_bytes())
    assert main(["eval", str(onnx), str(gestures)]) == 1
    err = capsys.readouterr().err
    assert "is an exported graph: eval scores clips with the torch model" in err and f"give {beside}" in err
    assert "trainable" not in err
    ann = tmp_path / "list.txt"
    ann.write_text(f"{gestures / 'left' / '0000.mp4'} 0\n{tmp_path / 'gone.mp4'} 1\n")
    assert main(["eval", str(trained_run), str(ann)]) == 1
    err = capsys.readouterr().err
    assert "gone.mp4: file does not exist" in err and "--skip-bad (skip_bad=True) to evaluate the rest" in err
    assert "train" not in err


# --------------------------------------------------------------------------- resuming, reordered classes, Ctrl-C


def test_resume_takes_the_runs_settings_from_its_resume_state(gestures, tmp_path, capsys):
    # clips at two frame rates: a first run needs --fps; resuming it used to fail on "different frame rates"
    mixed = tmp_path / "mixed"
    for name, gesture in GESTURES.items():
        write_clip(mixed / name / "a.mp4", render_clip(gesture, 7, size=(48, 48), fps=20.0, duration_s=0.8), 20.0)
        write_clip(mixed / name / "b.mp4", render_clip(gesture, 8, size=(48, 48), fps=30.0, duration_s=0.8), 30.0)
    out = tmp_path / "run.safetensors"
    first = ["train", str(mixed), "--out", str(out), *TINY, "--width-mult", "0.25"]
    assert main(first) == 0
    capsys.readouterr()
    assert main(["train", str(mixed), "--out", str(out), "--resume", "--epochs", "2", "--no-progress",
                 "--batch-size", "4"]) == 0
    text = capsys.readouterr().out
    assert "at 10 fps" in text and "resuming the run in run.resume.pt" in text and "epoch 2:" in text
    assert int(torch.load(tmp_path / "run.resume.pt", weights_only=True)["epoch"]) == 1
    assert json.loads((tmp_path / "run.card.json").read_text())["temporal"]["fps"] == 10.0
    assert main(["train", str(mixed), "--out", str(out), "--resume", "--epochs", "3", "--fps", "15"]) == 1
    err = capsys.readouterr().err
    assert "--fps 15 (the run has 10); drop --fps" in err


def test_the_same_classes_in_another_order_keep_the_trained_classifier(trained_run, gestures, tmp_path, capsys):
    from streamtsm.checkpoints import load_model
    from streamtsm.train.finetune import with_classes

    model = load_model(trained_run).eval()
    order = ("right", "left", "no_action")  # the run's order is left, no_action, right
    moved, new_head = with_classes(model, order, reorder=True)
    assert not new_head and moved.card.class_names == order
    x = torch.rand(1, 8, 3, 32, 32)
    with torch.no_grad():
        a, b = model(x), moved.eval()(x)
    assert torch.allclose(b, a[..., [2, 0, 1]])  # the same scores, in the dataset's order
    assert with_classes(model, order)[1]  # without reorder: a new classifier, as before
    data = _relabelled_copy(gestures, tmp_path / "g1f", order, {c: 2 for c in order})
    assert main(["train", str(data), "--init", str(trained_run), "--out", str(tmp_path / "f"), "--epochs", "1",
                 "--batch-size", "4", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "has the dataset's classes in another order (left, no_action, right)" in text
    assert "rows moved to the dataset's order (right, left, no_action)" in text and "same (reordered) classifier" in text
    assert main(["train", str(_relabelled_copy(gestures, tmp_path / "g2", ("left", "right"), {"left": 1, "right": 1})),
                 "--init", str(trained_run), "--out", str(tmp_path / "g"), "--epochs", "1", "--no-progress"]) == 0
    assert "new classifier (random weights): the dataset's classes differ" in capsys.readouterr().out


INTERRUPTS = {
    # wait for this stdout line, then Ctrl-C -> what stderr says (N: the epoch that was running)
    "in the first epoch": ("training ", r"interrupted during the first epoch: nothing was saved; run the command again"),
    "after an epoch": ("epoch 1:", r"interrupted in epoch (?P<n>\d+): \S+run\.safetensors holds the weights of epoch "
                                   r"(?P<k>\d+); \S+run\.resume\.pt holds epoch (?P=k)\. Run the same command with "
                                   r"--resume to continue from epoch (?P=n)"),
}


@pytest.mark.parametrize("after, expected", INTERRUPTS.values(), ids=INTERRUPTS.keys())
def test_ctrl_c_says_what_was_saved_and_how_to_continue(after, expected, gestures, tmp_path):
    import signal

    from procs import LineReader, finish

    out = tmp_path / "run.safetensors"
    proc = subprocess.Popen([sys.executable, "-m", "streamtsm.cli", "train", str(gestures), "--out", str(out),
                             *TINY, "--width-mult", "0.25", "--epochs", "500", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        lines = LineReader(proc.stdout)
        while not (line := lines.readline(timeout=120)).startswith(after):
            assert line, "train ended before the line to interrupt after"
        proc.send_signal(signal.SIGINT)
        finish(proc, timeout=60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err
    found = re.search(expected, err)
    assert found, err
    if "n" in found.groupdict():  # the epoch saved is the one before the interrupted one
        assert int(found["n"]) == int(found["k"]) + 1 >= 2
    assert "Traceback" not in err
    assert out.exists() == (after == "epoch 1:")
