"""Rendered frames never change: the shipped default model was trained and tested on them.

Two checks per clip. A fingerprint (``synthetic_fingerprint.py``: grid means and signed pixel sums,
``data/synthetic_fingerprints.npz``) must match on every OpenCV: it lets a rasteriser's rounding move a
few pixels by a level (OpenCV 5.1 moved 0-19 pixels per clip against 5.0) and catches any change to the
generator. The exact SHA-256 digests, taken with opencv-python-headless 5.0.0 and numpy 2.4.6 before the
generator was split into modules, are checked too where that OpenCV is installed. A failure means some
change altered the pixels or the random draws for a seed: find it and undo it, do not update the
references. To add a clip, add its digests and run ``tests/make_synthetic_fingerprints.py`` under OpenCV
5.0.0: it refuses unless every digest still matches.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamtsm.synthetic import EXTRA_GESTURES, GestureScript, render_clip, write_dataset

from synthetic_fingerprint import fingerprint, mismatch

pytestmark = pytest.mark.runtime  # torch-free: part of the run with torch blocked


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


DIGEST_OPENCV = "5.0.0"
EXACT = cv2.__version__ == DIGEST_OPENCV
VERSIONS = f"(taken with OpenCV {DIGEST_OPENCV} / numpy 2.4.6; now OpenCV {cv2.__version__} / numpy {np.__version__})"
FINGERPRINTS = Path(__file__).resolve().parent / "data" / "synthetic_fingerprints.npz"
EXTRA_SCRIPT_SHA256 = "69e80e8d7aac9b6a135419046a34f41fc4ad47be44bb5165c4367c2b8d857512"
EXTRA_TIMELINE_SHA256 = "640ff9f47b40db555bf05881f09a0e34f4331913659d183b0af9d9bc198fa6b5"

# (label, seed, split, options, sha256 of the frames, sha256 of the ClipTruth arrays). The
# no_motion seeds 0, 1, 2, 3, 4, 7 are the six idle behaviours: still, jitter, replace,
# fade_out, fade_in, lighting.
CLIPS = [
    ('swipe_left', 0, 'train', {},
     "919025389f2627eadf05d696843ead52c9547efbecbea351b92e25b84c8aa185",
     "2d6749374d97ec018dbe140e3dd9978d4bf90d95889522fc0c7a87535d6101b9"),
    ('swipe_right', 0, 'train', {},
     "78221abf68fcc5078c26eeeb078828468661f29a2077352d26697e43f999196b",
     "d23db1716337bac4cbfb2b1b6e85143a296eef081a82aeb6d068613429783825"),
    ('swipe_up', 21, 'test', {'lead_in_s': 0.7, 'lead_out_s': 0.7},
     "c2aa5f7cb5b044f533798248a22ecb7b9028da87f78c9f575170f34e4c7eee45",
     "6120b960cef5a95bba94e51c56062ecd7ea32fcfd64dcfe8db6fdf84b48ca883"),
    ('swipe_down', 3, 'test', {'lead_in_s': 0.7, 'lead_out_s': 0.7},
     "78fa93011084771c21f1f8bd2a426cf322de2a520de1d6591cd43fd89da5a122",
     "ce2105af924c7617226061f23a2f34f636c987d2825b65d4a7ea002bf1261800"),
    ('zoom_in', 8, 'test', {},
     "1783e5a5a0d88438c949c17488e66196b0531a7f43c7124f3dea36c451732072",
     "8dba79d53beced494128c3ab452ea7ec26ba330e75fd4fc6d653aeab194c6692"),
    ('zoom_out', 11, 'train', {'lead_in_s': 0.2},
     "f6d99734cf6ee8aea878fe7d1f86d837b1b2bd526a1f31fc684ec4e153a3e6ad",
     "76f404457f6988f2b6ef1cd7055b0e5a3d374b148337cae6e4bef7e31d0084bc"),
    ('rotate_cw', 5, 'test', {},
     "2c6f40888f377500d6971eeb30c17af18749eb5264306d943e582845e3c5ec8d",
     "92d294fb46ea1314b212dc9904b37915b0b4c3db96efaa0870ee6f4a037c062c"),
    ('rotate_ccw', 1234567, 'train', {'size': (64, 96), 'fps': 15.0, 'duration_s': 1.0},
     "80f0ebcdbccfcd70d54f01c43a234a740f85fb11edbae7b5ef674307f21da7e8",
     "f054adcaf0c7f761292d21733126ccd0a2a9c68829cc004683b1c428724657bc"),
    ('no_motion', 0, 'train', {},
     "92aacf2a59f874690a6b279e7eeb39025410a8a69c47c9c3c04f1e5c99181a4e",
     "f6a0cad7d10cfa922e755616d81c6fc26b6422baf3779baa5df0d174602d5bb0"),
    ('no_motion', 1, 'train', {},
     "da5c6d4f502482d0be05a3922ce4bb5ad170740501739444240ba9962de1b57a",
     "24dea00fdc7245066cd2d2d48b9be5db412816f9ef003e08b418d3d98aa3595d"),
    ('no_motion', 2, 'train', {},
     "7f32df26a34c363ef09ad27eb3a45119bbe5f8075854230213d0b32d0aedb674",
     "1933676038f4ace9459a44b4b5965bc200457ced03dace1968efc6a23438d03f"),
    ('no_motion', 3, 'train', {},
     "2a644a837282fe427ac88c59e0dbc30086e4834b21836be326b8ba81e6f02ea6",
     "492da07a6971798e15b4658624edab8b44c6a4eb5f8ba064a19788a49c5af7a1"),
    ('no_motion', 4, 'train', {},
     "4f1b3efeaba5bcf3f90f7b2335e53b09727105c60dfa8587bcaf9f92862f59ec",
     "0847559ec43a2c5584ffb97f6ccab8aea0ac47ecec8e73941b2dcd0f6422d2f3"),
    ('no_motion', 7, 'train', {},
     "6c629b3e437c356ef2cfb25a55cd570ce93d375e77f5a5218de69daf1d404e9f",
     "4601d45f5276b13cc20300290d151b8cbbfd599a4e51908db7c60b9803ce9a53"),
    ('no_motion', 7, 'test', {},
     "ba65c3dfcd4b4212b804dfdaa45d34f7387320556dfee5169ba0e973491f69a0",
     "7ae64f4866770c6d58c7cfc0328b860a9d6c2136dbd8a30625140ce87c372607"),
    # The extra gestures (taken when they were added, same versions): recordings and fine-tuning
    # experiments made with the synthetic performer stay reproducible.
    ('circle_cw', 2, 'train', {},
     "b5e799e3f249969efd101a25cb7ae1ab89ba3fb85d5843526b17ea3dac591323",
     "67503c1c0a403593b74d69c07f4d967d96f90db6c63adb260b3b3d4ed576cdfa"),
    ('circle_ccw', 2, 'test', {},
     "f307a78d0a5a56ea19ca8c99f1c4a8b27fe532fa2b777b10d758c42643e7475e",
     "6b4d550e95ccdfb1e8bbf6deeb44f48988f22597798f834a4ce703c1a6b20025"),
    ('wave', 6, 'train', {'lead_in_s': 0.3},
     "c437b5ec432203e1d59139aa615b3685e02aab6b7d563dd858220d9c97980e26",
     "b2577606cf3322ff8f3432fe930f9d7b6df77132c86b68bd9c4904dfea47c709"),
    ('push', 9, 'test', {},
     "c0beb9ae7f27164bbc0ba603a8e7fc9585362ad74516e623ee933b87208e90c2",
     "a12b49860e7e881b6c3cbe866a52db61aa44f6a5f5bdeccf0f7dbeb2a6e847d5"),
]

# (seed, split, duration_s, size, frame indices, sha256 of those frames and poses, sha256 of the timeline)
SCRIPTS = [
    (0, 'test', 20.0, (240, 320), (0, 31, 95, 250, 599),
     "c547198e5eb2ae0b3b93fdbcc37c81dfb5ea6f75202b8cf88d5e600ea7921493",
     "4769712d3aaa4dcf2a918949317662496ce482b90e95acf97bbac064927b89fc"),
    (4, 'train', 12.0, (120, 160), (10, 200, 359),
     "f8db185b6bacd669ac2f96ce7c058da4d31f5e8894d1108617e04e432895318b",
     "ab981e9a4c3df056f9e2b5b7bdb4ccf14d10f2755b9dcd5de3f209c31b5c365e"),
    (9, 'test', 0.5, (240, 320), (0, 14),
     "a94ebbe39a7724f33c158d1b02d06ae099d676e0e0f3b64459edc4528a7d6580",
     "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"),
]

MANIFEST_SHA256 = "2b9d221bcc0a57a649828a29b2d99b3fc37f95bf80556fe51c6a79d7e0b5ee77"


def clip_key(label: str, seed: int, split: str) -> str:
    return f"clip/{label}/{seed}/{split}"


def script_frames(seed: int, split: str, duration_s: float, size: tuple[int, int], indices: tuple[int, ...],
                  labels: tuple[str, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    options = {} if labels is None else {"labels": labels}
    script = GestureScript(seed, duration_s=duration_s, split=split, size=size, **options)
    return (np.stack([script.frame_at(i) for i in indices]),
            np.array([script.object_pose_at(i) for i in indices]))


def extra_script_frames() -> tuple[np.ndarray, np.ndarray]:
    return script_frames(6, "test", 15.0, (120, 160), (0, 60, 200, 449), labels=EXTRA_GESTURES)


@pytest.fixture(scope="module")
def references() -> dict[str, np.ndarray]:
    with np.load(FINGERPRINTS) as data:
        return {k: data[k] for k in data.files}


def check_images(name: str, images: np.ndarray, references: dict[str, np.ndarray], key: str) -> None:
    problem = mismatch(fingerprint(images), references[key])
    assert problem is None, f"{name} changed: {problem} {VERSIONS}"


def check_poses(name: str, poses: np.ndarray, reference: np.ndarray) -> None:
    np.testing.assert_allclose(poses, reference, rtol=1e-9, atol=1e-9, err_msg=f"{name}: object poses changed")


@pytest.mark.parametrize("label, seed, split, options, frames_sha, truth_sha", CLIPS)
def test_render_clip_reproduces_the_frames_the_default_model_was_trained_on(label, seed, split, options,
                                                                            frames_sha, truth_sha, references):
    frames, truth = render_clip(label, seed, split=split, return_truth=True, **options)
    name, key = f"{label} seed {seed} {split}", clip_key(label, seed, split)
    check_images(f"frames of {name}", frames, references, f"{key}/frames")
    for part in ("object_alpha", "marker_alpha", "plate"):
        check_images(f"{part} of {name}", getattr(truth, part), references, f"{key}/{part}")
    check_poses(name, truth.poses, references[f"{key}/poses"])
    if EXACT:
        assert digest(frames) == frames_sha, f"frames of {name} changed {VERSIONS}"
        assert digest(truth.poses, truth.object_alpha, truth.marker_alpha, truth.plate) == truth_sha, VERSIONS


@pytest.mark.parametrize("seed, split, duration_s, size, indices, frames_sha, timeline_sha", SCRIPTS)
def test_gesture_script_reproduces_its_frames_and_timeline(seed, split, duration_s, size, indices, frames_sha,
                                                           timeline_sha, references):
    script = GestureScript(seed, duration_s=duration_s, split=split, size=size)
    timeline = repr([(e.label, e.start_s, e.end_s) for e in script.timeline])
    assert hashlib.sha256(timeline.encode()).hexdigest() == timeline_sha, f"timeline {timeline} changed"
    frames, poses = script_frames(seed, split, duration_s, size, indices)
    check_images(f"script {seed} {split}", frames, references, f"script/{seed}/{split}/frames")
    check_poses(f"script {seed} {split}", poses, references[f"script/{seed}/{split}/poses"])
    if EXACT:
        assert digest(frames, poses) == frames_sha, f"script {seed} {split} frames changed {VERSIONS}"


def test_a_script_of_the_extra_gestures_reproduces_its_frames_and_timeline(references):
    script = GestureScript(6, duration_s=15.0, split="test", size=(120, 160), labels=EXTRA_GESTURES)
    timeline = repr([(e.label, e.start_s, e.end_s) for e in script.timeline])
    assert hashlib.sha256(timeline.encode()).hexdigest() == EXTRA_TIMELINE_SHA256, f"timeline {timeline} changed"
    frames, poses = extra_script_frames()
    check_images("the extra-gesture script", frames, references, "extra_script/frames")
    check_poses("the extra-gesture script", poses, references["extra_script/poses"])
    if EXACT:
        assert digest(frames, poses) == EXTRA_SCRIPT_SHA256, VERSIONS


def test_the_fingerprint_passes_a_rasteriser_drift_and_catches_a_one_pixel_shift():
    """The tolerance in numbers: the 5.0 -> 5.1 drift was <= 19 pixels by one level per clip."""
    frames = render_clip("swipe_left", 0, split="train")
    drifted = frames.copy()
    drifted[::3, 40, 60:80] ^= 1  # 20 pixels of every third frame, one level each
    assert mismatch(fingerprint(drifted), fingerprint(frames)) is None
    moved = np.roll(frames, 1, axis=2)
    assert "frame" in (mismatch(fingerprint(moved), fingerprint(frames)) or "")
    renoised = np.clip(frames.astype(np.int16) + np.random.default_rng(0).integers(-2, 3, frames.shape), 0, 255)
    assert mismatch(fingerprint(renoised.astype(np.uint8)), fingerprint(frames)) is not None


def test_write_dataset_draws_the_same_clip_seeds_and_leads(tmp_path: Path):
    write_dataset(tmp_path, clips_per_class=2, seed=5, split="test", size=(32, 48), progress=False)
    manifest = (tmp_path / "manifest.csv").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == MANIFEST_SHA256, manifest.decode()
