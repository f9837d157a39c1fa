"""Write tests/data/synthetic_fingerprints.npz from frames whose exact digests still match.

Run it only to add a clip to the golden table: it refuses unless this OpenCV is the one the digests
were taken with and every clip and script renders to its digest, so a fingerprint always describes
the frames the default model was trained on. ``python tests/make_synthetic_fingerprints.py``
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_synthetic_golden as golden  # noqa: E402
from synthetic_fingerprint import fingerprint  # noqa: E402

OUT = Path(__file__).resolve().parent / "data" / "synthetic_fingerprints.npz"


def main() -> int:
    if cv2.__version__ != golden.DIGEST_OPENCV:
        print(f"error: the digests were taken with OpenCV {golden.DIGEST_OPENCV}, this is {cv2.__version__}: "
              f"install opencv-python-headless=={golden.DIGEST_OPENCV}.* (e.g. into a --target folder on "
              f"PYTHONPATH) and run again", file=sys.stderr)
        return 2
    arrays: dict[str, np.ndarray] = {}
    for label, seed, split, options, frames_sha, truth_sha in golden.CLIPS:
        frames, truth = golden.render_clip(label, seed, split=split, return_truth=True, **options)
        if golden.digest(frames) != frames_sha or golden.digest(truth.poses, truth.object_alpha,
                                                                truth.marker_alpha, truth.plate) != truth_sha:
            print(f"error: {label} seed {seed} {split} no longer renders to its digest", file=sys.stderr)
            return 1
        key = golden.clip_key(label, seed, split)
        arrays[f"{key}/frames"] = fingerprint(frames)
        for name in ("object_alpha", "marker_alpha", "plate"):
            arrays[f"{key}/{name}"] = fingerprint(getattr(truth, name))
        arrays[f"{key}/poses"] = truth.poses
    for seed, split, duration_s, size, indices, frames_sha, _ in golden.SCRIPTS:
        frames, poses = golden.script_frames(seed, split, duration_s, size, indices)
        if golden.digest(frames, poses) != frames_sha:
            print(f"error: script {seed} {split} no longer renders to its digest", file=sys.stderr)
            return 1
        arrays[f"script/{seed}/{split}/frames"] = fingerprint(frames)
        arrays[f"script/{seed}/{split}/poses"] = poses
    frames, poses = golden.extra_script_frames()
    if golden.digest(frames, poses) != golden.EXTRA_SCRIPT_SHA256:
        print("error: the extra-gesture script no longer renders to its digest", file=sys.stderr)
        return 1
    arrays["extra_script/frames"] = fingerprint(frames)
    arrays["extra_script/poses"] = poses
    OUT.parent.mkdir(exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=OUT.parent, suffix=".npz")
    os.close(fd)
    # float32 keeps a cell mean to 1e-5 levels and a signed sum (|x| < 2e7) to ~1: well inside the tolerances.
    np.savez_compressed(tmp, **{k: v.astype(np.float32) if k.endswith(("frames", "alpha", "plate")) else v
                                for k, v in arrays.items()})
    os.chmod(tmp, 0o644)
    os.replace(tmp, OUT)
    print(f"wrote {len(arrays)} arrays to {OUT} ({OUT.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
