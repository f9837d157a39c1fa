"""The synthetic gesture generator: determinism, geometry of every class measured from the
rendered pixels, held-out split, live-script timeline, and real .mp4 files decoded by OpenCV."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamtsm.synthetic import (
    CLASSES,
    EXTRA_GESTURES,
    GESTURES,
    SHAPE_FAMILIES,
    TEXTURE_FAMILIES,
    GestureScript,
    SyntheticError,
    gesture_seconds,
    render_clip,
    write_dataset,
)

SIZE = (120, 160)
SEEDS = (0, 1, 2)


def centroid(mask: np.ndarray) -> np.ndarray:
    m = cv2.moments(mask.astype(np.float32))
    return np.array([m["m10"] / m["m00"], m["m01"] / m["m00"]])


def area(mask: np.ndarray) -> float:
    return float(mask.astype(np.float64).sum() / 255.0)


def marker_angles(truth) -> np.ndarray:
    """Screen angle (atan2 with y down: growing = clockwise) of marker centroid around object centroid."""
    out = []
    for obj, mark in zip(truth.object_alpha, truth.marker_alpha):
        d = centroid(mark) - centroid(obj)
        out.append(math.atan2(d[1], d[0]))
    return np.unwrap(np.array(out))


def test_class_order_is_the_documented_one():
    assert CLASSES == ("swipe_left", "swipe_right", "swipe_up", "swipe_down", "zoom_in", "zoom_out",
                       "rotate_cw", "rotate_ccw", "no_motion")


def test_same_seed_same_frames_other_seed_other_frames():
    a = render_clip("zoom_in", 7, lead_in_s=0.2)
    b = render_clip(4, 7, lead_in_s=0.2)  # label by index is the same clip
    c = render_clip("zoom_in", 8, lead_in_s=0.2)
    assert a.dtype == np.uint8 and a.ndim == 4 and a.shape[1:] == (*SIZE, 3)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or np.abs(a.astype(int) - c.astype(int)).mean() > 10


def test_frame_count_follows_duration_and_leads():
    frames = render_clip("swipe_up", 3, size=(64, 96), fps=20.0, duration_s=1.0, lead_in_s=0.5, lead_out_s=0.25)
    assert frames.shape == (round(1.0 * 20) + round(0.5 * 20) + round(0.25 * 20), 64, 96, 3)
    # Without a duration, the gesture lasts 0.5-1.5 s.
    for seed in SEEDS:
        n = len(render_clip("rotate_cw", seed, size=(48, 64)))
        assert 0.5 * 30 - 1 <= n <= 1.5 * 30 + 1


@pytest.mark.parametrize("seed", SEEDS)
def test_frames_show_the_object_where_the_truth_says(seed):
    """The truth masks are not just metadata: the frame equals the object-free plate away from the
    object, and differs from it on the object."""
    frames, truth = render_clip("rotate_ccw", seed, return_truth=True, lead_in_s=0.2)
    near = np.stack([cv2.dilate(a, np.ones((13, 13), np.uint8)) for a in truth.object_alpha]) > 0
    np.testing.assert_array_equal(frames[~near], truth.plate[~near])
    on = truth.object_alpha > 250
    diff = np.abs(frames.astype(int) - truth.plate.astype(int)).max(-1)
    assert on.sum() > 0 and diff[on].mean() > 8
    # Where the frame differs from the plate is where the object is: same centre to a pixel
    # (blur widens the footprint symmetrically, so it does not move the centre).
    for changed, alpha in zip(diff > 0, truth.object_alpha):
        offset = centroid(changed.astype(np.uint8)) - centroid((alpha > 0).astype(np.uint8))
        assert np.abs(offset).max() < 1.5, offset


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label,axis,sign,extent", [
    ("swipe_left", 0, -1, SIZE[1]), ("swipe_right", 0, +1, SIZE[1]),
    ("swipe_up", 1, -1, SIZE[0]), ("swipe_down", 1, +1, SIZE[0]),
])
def test_swipes_move_the_object_the_named_way(seed, label, axis, sign, extent):
    _, truth = render_clip(label, seed, return_truth=True)
    track = np.array([centroid(m) for m in truth.object_alpha])
    moved = track[-1, axis] - track[0, axis]
    across = abs(track[-1, 1 - axis] - track[0, 1 - axis])
    assert sign * moved > 0.2 * extent, (label, moved)
    assert abs(moved) > 2 * across
    # Travel of the pose centre (not clipped by the frame edges): 30-70 % of the frame, +- tremor/shake.
    travel = abs(truth.poses[-1, axis] - truth.poses[0, axis])
    assert 0.27 * extent <= travel <= 0.73 * extent
    # Mostly monotonic: strongly correlated with time.
    assert sign * np.corrcoef(np.arange(len(track)), track[:, axis])[0, 1] > 0.9


@pytest.mark.parametrize("seed", SEEDS)
def test_zooms_change_area_by_the_required_factor(seed):
    _, zin = render_clip("zoom_in", seed, return_truth=True)
    _, zout = render_clip("zoom_out", seed, return_truth=True)
    grow = area(zin.object_alpha[-1]) / area(zin.object_alpha[0])
    shrink = area(zout.object_alpha[-1]) / area(zout.object_alpha[0])
    assert grow >= 1.6 and shrink <= 1 / 1.6
    linear = zin.poses[-1, 2] / zin.poses[0, 2]
    assert 1.6 - 1e-6 <= linear <= 3.0 + 1e-6
    # The object stays roughly where it is while zooming.
    assert np.linalg.norm(centroid(zin.object_alpha[-1]) - centroid(zin.object_alpha[0])) < 0.25 * SIZE[1]


@pytest.mark.parametrize("seed", SEEDS + (3, 4))
def test_rotations_turn_clockwise_or_counter_clockwise_on_screen(seed):
    _, cw = render_clip("rotate_cw", seed, return_truth=True)
    _, ccw = render_clip("rotate_ccw", seed, return_truth=True)
    turn_cw = math.degrees(marker_angles(cw)[-1] - marker_angles(cw)[0])
    turn_ccw = math.degrees(marker_angles(ccw)[-1] - marker_angles(ccw)[0])
    assert 80 <= turn_cw <= 280, turn_cw
    assert -280 <= turn_ccw <= -80, turn_ccw


def test_the_extra_gestures_are_new_and_outside_the_default_classes():
    assert EXTRA_GESTURES == ("circle_cw", "circle_ccw", "wave", "push")
    assert not set(EXTRA_GESTURES) & set(CLASSES) and set(GESTURES) == set(CLASSES) | set(EXTRA_GESTURES)
    # A default script never plays them (the default model's test streams stay what they were) ...
    default = GestureScript(2, duration_s=60.0, size=(48, 64))
    assert {e.label for e in default.timeline} == set(CLASSES[:-1])
    # ... a script of them plays them, each as long as its own family's range says.
    script = GestureScript(2, duration_s=60.0, size=(48, 64), labels=EXTRA_GESTURES)
    assert {e.label for e in script.timeline} == set(EXTRA_GESTURES)
    for e in script.timeline:
        lo, hi = gesture_seconds(e.label)
        assert lo - 1e-9 <= e.end_s - e.start_s <= hi + 1e-9
    for label in EXTRA_GESTURES:
        lo, hi = gesture_seconds(label)
        for seed in SEEDS:
            assert round(lo * 30) <= len(render_clip(label, seed, size=(32, 32))) <= round(hi * 30)


def _track(truth) -> np.ndarray:
    return np.array([centroid(m) for m in truth.object_alpha])


@pytest.mark.parametrize("seed", SEEDS + (3, 4))
def test_circles_carry_the_object_round_a_loop_the_named_way_without_turning_it(seed):
    for label, sign in (("circle_cw", +1), ("circle_ccw", -1)):
        _, truth = render_clip(label, seed, return_truth=True)
        track = _track(truth)
        centre = (track.min(0) + track.max(0)) / 2
        d = track - centre
        turned = math.degrees(np.unwrap(np.arctan2(d[:, 1], d[:, 0]))[-1] - np.arctan2(d[0, 1], d[0, 0]))
        assert 270 <= sign * turned <= 430, (label, seed, turned)  # 300-400 degrees, +- tremor and clipping
        radius = np.hypot(*d.T)
        assert radius.min() > 0.3 * radius.max()  # a loop, not a line through the centre
        assert np.ptp(track, 0).min() > 0.2 * min(SIZE)
        own_turn = math.degrees(marker_angles(truth)[-1] - marker_angles(truth)[0])
        assert abs(own_turn) < 25, own_turn  # the object is carried, not rotated (that is rotate_cw)


@pytest.mark.parametrize("seed", SEEDS + (3, 4))
def test_a_wave_sways_side_to_side_and_comes_back(seed):
    frames, truth = render_clip("wave", seed, return_truth=True)
    x = _track(truth)[:, 0]
    rest = (x[0] + x[-1]) / 2
    assert abs(x[-1] - x[0]) < 0.03 * SIZE[1]  # ends where it started: no net swipe
    swing = x - rest
    big = swing[np.abs(swing) > 0.04 * SIZE[1]]
    reversals = int(np.sum(np.diff(np.sign(big)) != 0))
    assert reversals >= 2, reversals  # right-left-right (or left-right-left) at least
    assert np.ptp(x) > 0.12 * SIZE[1]
    # At most 2.5 swings per second, so a 10 fps model sees each one (>= 4 samples per swing).
    seconds = len(frames) / 30
    assert (reversals + 1) / 2 / seconds <= 2.5 + 1e-9
    tilt = np.degrees(marker_angles(truth) - marker_angles(truth)[0])
    assert np.ptp(tilt) > 15  # the object tilts with the sway, like a hand pivoting at the wrist


@pytest.mark.parametrize("seed", SEEDS + (3, 4))
def test_a_push_comes_towards_the_camera_and_back(seed):
    _, truth = render_clip("push", seed, return_truth=True)
    areas = np.array([area(m) for m in truth.object_alpha])
    peak = int(np.argmax(areas))
    assert 0.25 * len(areas) < peak < 0.75 * len(areas)
    assert areas[peak] >= 1.6**2 * 0.8 * areas[0] and abs(areas[-1] / areas[0] - 1) < 0.1
    assert np.linalg.norm(_track(truth)[peak] - _track(truth)[0]) < 0.15 * SIZE[1]  # roughly in place


def test_no_motion_clips_hold_the_object_still():
    behaviours = set()
    for seed in range(12):
        _, truth = render_clip("no_motion", seed, return_truth=True, size=(60, 80))
        behaviours.add(truth.behaviour)
        cover = truth.object_alpha.reshape(len(truth.object_alpha), -1).astype(float).sum(1)
        visible = cover > 0.5 * cover.max()
        track = [centroid(m) if v else None for m, v in zip(truth.object_alpha, visible)]
        for a, b in zip(track, track[1:]):
            if a is not None and b is not None:
                assert np.linalg.norm(b - a) < 0.03 * 80, (seed, truth.behaviour)
    assert len(behaviours) >= 4  # still / jitter / lighting / fades / replace all occur


@pytest.mark.parametrize("forward,backward", [("swipe_left", "swipe_right"), ("swipe_up", "swipe_down"),
                                              ("zoom_in", "zoom_out"), ("rotate_cw", "rotate_ccw"),
                                              ("circle_cw", "circle_ccw")])
def test_reverse_class_is_the_same_clip_played_backwards(forward, backward):
    fwd, tf = render_clip(forward, 5, return_truth=True)
    bwd, tb = render_clip(backward, 5, return_truth=True)
    assert fwd.shape == bwd.shape
    # Object coverage reversed matches up to tremor and shake (a pixel or two at the edges).
    assert np.abs(tf.object_alpha[::-1].astype(int) - tb.object_alpha.astype(int)).mean() < 2.0
    reversed_diff = np.abs(fwd[::-1].astype(int) - bwd.astype(int)).mean()
    unreversed_diff = np.abs(fwd.astype(int) - bwd.astype(int)).mean()
    other_seed = render_clip(backward, 6)
    n = min(len(other_seed), len(bwd))
    other_diff = np.abs(other_seed[:n].astype(int) - bwd[:n].astype(int)).mean()
    assert reversed_diff < 0.5 * unreversed_diff and reversed_diff < 0.2 * other_diff
    assert tf.shape == tb.shape and tf.texture == tb.texture


def test_train_and_test_use_disjoint_shape_and_texture_families():
    assert not set(SHAPE_FAMILIES["train"]) & set(SHAPE_FAMILIES["test"])
    assert not set(TEXTURE_FAMILIES["train"]) & set(TEXTURE_FAMILIES["test"])
    for split in ("train", "test"):
        shapes, textures = set(), set()
        for seed in range(40):
            _, truth = render_clip("rotate_cw", seed, split=split, size=(32, 32), duration_s=0.1, return_truth=True)
            shapes.add(truth.shape)
            textures.add(truth.texture)
        assert shapes == set(SHAPE_FAMILIES[split])
        assert textures == set(TEXTURE_FAMILIES[split])
    # Same integer seed, different split: unrelated clips.
    a = render_clip("swipe_left", 1, split="train", duration_s=0.5)
    b = render_clip("swipe_left", 1, split="test", duration_s=0.5)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10


def test_script_timeline_is_consistent():
    labels = CLASSES[:-1]
    script = GestureScript(11, duration_s=40.0, size=(60, 80), idle_s=(0.8, 2.0))
    events = script.timeline
    assert script.num_frames == 40 * 30
    assert len(events) >= 10
    assert all(isinstance(e.label, str) and e.label in labels for e in events)
    # A shuffle bag: the first round shows every label once.
    assert sorted(e.label for e in events[: len(labels)]) == sorted(labels)
    assert events[0].start_s >= 0.8
    for e in events:
        assert 0.5 <= e.end_s - e.start_s <= 1.5
        assert e.end_s <= script.duration_s
        mid = (e.start_s + e.end_s) / 2
        assert script.label_at(mid) == e.label and script.label_at(e.start_s) == e.label
        assert script.label_at(e.end_s) == "no_motion"
    for a, b in zip(events, events[1:]):
        assert 0.8 - 1e-9 <= b.start_s - a.end_s <= 2.0 + 1e-9
        assert script.label_at((a.end_s + b.start_s) / 2) == "no_motion"
    assert script.label_at(0.0) == "no_motion"


def test_script_moves_the_object_only_inside_the_timeline():
    script = GestureScript(4, duration_s=20.0, size=(120, 160))
    w = 160
    poses = np.array([script.object_pose_at(i) for i in range(script.num_frames)])
    in_gesture = np.array([script.label_at(i / script.fps) != "no_motion" for i in range(script.num_frames)])
    replaced = 0
    for i in range(1, len(poses)):
        step = np.hypot(*(poses[i, :2] - poses[i - 1, :2]))
        size_ratio = poses[i, 2] / poses[i - 1, 2]
        if in_gesture[i] or in_gesture[i - 1]:
            assert poses[i, 4] == pytest.approx(1.0)  # fully visible while gesturing
            continue
        if min(poses[i, 4], poses[i - 1, 4]) < 0.15:  # object swapped while (nearly) invisible
            replaced += step > 0.03 * w
            continue
        assert step < 0.03 * w and abs(size_ratio - 1) < 0.02, i
    assert replaced >= len(script.timeline) - 1 - 1  # every swap happens in a fade


def test_script_frames_are_deterministic_and_random_access():
    a = GestureScript(3, duration_s=6.0)
    b = GestureScript(3, duration_s=6.0)
    late = a.frame_at(150)
    assert late.shape == (240, 320, 3) and late.dtype == np.uint8
    for i in (0, 45, 149, 150, 179):
        np.testing.assert_array_equal(a.frame_at(i), b.frame_at(i))
    np.testing.assert_array_equal(a.frame_at(150), late)
    assert GestureScript(4, duration_s=6.0).timeline != a.timeline
    with pytest.raises(SyntheticError, match="frame index"):
        a.frame_at(a.num_frames)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(SyntheticError, match="unknown label 'moonwalk'"):
        render_clip("moonwalk", 0)
    with pytest.raises(SyntheticError, match="out of range"):
        render_clip(9, 0)
    with pytest.raises(SyntheticError, match="split"):
        render_clip("zoom_in", 0, split="val")
    with pytest.raises(SyntheticError, match="seed"):
        render_clip("zoom_in", -1)
    with pytest.raises(SyntheticError, match="size"):
        render_clip("zoom_in", 0, size=(10, 10))
    with pytest.raises(SyntheticError, match="no_motion"):
        GestureScript(0, duration_s=5, labels=("no_motion",))
    with pytest.raises(SyntheticError, match="idle_s"):
        GestureScript(0, duration_s=5, idle_s=(0.1, 0.2))
    with pytest.raises(SyntheticError, match="fourcc"):
        write_dataset(Path("/nonexistent-never"), clips_per_class=1, seed=0, split="train", fourcc="zz")


def test_write_dataset_writes_decodable_videos_and_annotations(tmp_path):
    size = (48, 64)
    ann = write_dataset(tmp_path / "ds", clips_per_class=2, seed=5, split="train", size=size, progress=False)
    root = tmp_path / "ds"
    assert ann == root / "annotations.txt"
    assert (root / "classes.txt").read_text().split() == list(CLASSES)
    lines = ann.read_text().splitlines()
    assert len(lines) == 2 * len(CLASSES)
    manifest = {row["path"]: row for row in csv.DictReader((root / "manifest.csv").open())}
    for line in lines:
        rel, index = line.split(" ")
        label = CLASSES[int(index)]
        assert rel.startswith(f"{label}/") and rel.endswith(".mp4")
        cap = cv2.VideoCapture(str(root / rel))
        assert cap.isOpened()
        decoded = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            decoded.append(frame)
        cap.release()
        row = manifest[rel]
        expected = render_clip(label, int(row["seed"]), size=size, split="train",
                               lead_in_s=float(row["lead_in_s"]), lead_out_s=float(row["lead_out_s"]))
        assert len(decoded) == len(expected) == int(row["num_frames"])
        assert decoded[0].shape == (*size, 3)
        # Lossy codec, same content.
        assert np.abs(np.stack(decoded).astype(int) - expected.astype(int)).mean() < 12
    # Clip i of every class shares its seed (appearance carries no label information).
    seeds = {row["seed"] for row in manifest.values() if row["path"].endswith("_00000.mp4")}
    assert len(seeds) == 1


def test_module_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from streamtsm.synthetic import render_clip\n"
            "assert render_clip('swipe_left', 0, size=(32, 32), duration_s=0.2).shape[1:] == (32, 32, 3)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
