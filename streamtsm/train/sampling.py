"""TSN segment sampling with the semantics of mmaction2's ``SampleFrames`` (seed 002), as a pure function.

A video of ``num_frames`` frames is cut into ``num_clips`` equal segments; from each segment one
clip of ``clip_len`` frames spaced ``frame_interval`` apart is taken. The rules, case by case
(``span = clip_len * frame_interval``):

training (random)
    * ``avg = (num_frames - span + 1) // num_clips > 0``: segment k starts at ``k * avg`` plus a
      random offset in ``[0, avg)``;
    * else, if ``num_frames > max(num_clips, span)``: ``num_clips`` random starts in
      ``[0, num_frames - span]``, sorted;
    * else, if ``avg == 0``: evenly spread starts ``round(k * (num_frames - span + 1) / num_clips)``
      (numpy's round-half-to-even, as ``np.around``);
    * else (the video is shorter than one clip): every start is 0.

test (deterministic, "centred")
    * ``num_frames > span - 1``: start of segment k is ``int(k * avg + avg / 2)`` with the float
      ``avg = (num_frames - span + 1) / num_clips``;
    * else every start is 0.

Frame k of a clip is ``start + k * frame_interval``; indices past the end wrap around
(``out_of_bound="loop"``, mmaction2's default) or repeat the last frame (``"repeat_last"``).
Short videos therefore loop instead of failing.

Why pure numpy with an explicit ``rng``: the sampling is tested case by case against these rules,
and a training run is reproducible (the generator is derived from seed, epoch and clip index).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SampleFrames", "sample_frame_indices", "SamplingError", "SAMPLING_MODES", "MAX_SAMPLE_FRAMES",
           "clip_sampling", "check_sampling_fits", "timeline_length", "source_indices"]

#: frames one sample may hold (and the span it may cover): a clip of this many 224-px float frames is
#: already 600 MB, so anything larger is a typo, not a recipe
MAX_SAMPLE_FRAMES = 1024
#: ``dense``: T consecutive frames (how a live window or an online model sees them); ``segments``:
#: TSN, the clip cut into T segments and one frame taken from each (seed 002's offline recipe)
SAMPLING_MODES = ("dense", "segments")


class SamplingError(ValueError):
    """Bad sampling parameters or a video with no frames."""


@dataclass(frozen=True)
class SampleFrames:
    """Sampling parameters (seed 002: ``clip_len=1, frame_interval=1, num_clips=8``)."""

    clip_len: int = 1
    frame_interval: int = 1
    num_clips: int = 8
    out_of_bound: str = "loop"

    def __post_init__(self) -> None:
        for name in ("clip_len", "frame_interval", "num_clips"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise SamplingError(f"SampleFrames.{name} must be a positive integer, got {value!r}")
        if self.frames_per_video > MAX_SAMPLE_FRAMES or self.clip_len * self.frame_interval > MAX_SAMPLE_FRAMES:
            raise SamplingError(
                f"a sample of {self.num_clips} x {self.clip_len} frames (interval {self.frame_interval}) is too long: "
                f"at most {MAX_SAMPLE_FRAMES} frames per sample; use fewer segments/frames"
            )
        if self.out_of_bound not in ("loop", "repeat_last"):
            raise SamplingError(f"out_of_bound must be 'loop' or 'repeat_last', got {self.out_of_bound!r}")

    @property
    def frames_per_video(self) -> int:
        """T of the sampled clip: num_clips * clip_len."""
        return self.num_clips * self.clip_len

    def __call__(self, num_frames: int, *, test_mode: bool, rng: np.random.Generator | None = None) -> np.ndarray:
        return sample_frame_indices(num_frames, self, test_mode=test_mode, rng=rng)


def _train_offsets(num_frames: int, s: SampleFrames, rng: np.random.Generator) -> np.ndarray:
    span = s.clip_len * s.frame_interval
    avg = (num_frames - span + 1) // s.num_clips
    if avg > 0:
        return np.arange(s.num_clips) * avg + rng.integers(0, avg, size=s.num_clips)
    if num_frames > max(s.num_clips, span):
        return np.sort(rng.integers(0, num_frames - span + 1, size=s.num_clips))
    if avg == 0:
        ratio = (num_frames - span + 1.0) / s.num_clips
        return np.around(np.arange(s.num_clips) * ratio).astype(np.int64)
    return np.zeros(s.num_clips, np.int64)


def _test_offsets(num_frames: int, s: SampleFrames) -> np.ndarray:
    span = s.clip_len * s.frame_interval
    if num_frames > span - 1:
        avg = (num_frames - span + 1) / float(s.num_clips)
        return (np.arange(s.num_clips) * avg + avg / 2.0).astype(np.int64)
    return np.zeros(s.num_clips, np.int64)


def sample_frame_indices(num_frames: int, sampling: SampleFrames, *, test_mode: bool,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """Frame indices ``(num_clips * clip_len,)`` into a video of ``num_frames`` frames (segment-major)."""
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise SamplingError(f"cannot sample from a video with {num_frames!r} frames: it must have at least one frame")
    if test_mode:
        offsets = _test_offsets(int(num_frames), sampling)
    else:
        if rng is None:
            raise SamplingError("training-mode sampling is random: pass rng=np.random.default_rng(...)")
        offsets = _train_offsets(int(num_frames), sampling, rng)
    inds = offsets[:, None] + np.arange(sampling.clip_len)[None, :] * sampling.frame_interval
    if sampling.out_of_bound == "loop":
        inds = np.mod(inds, num_frames)
    else:
        inds = np.minimum(inds, num_frames - 1)
    return inds.reshape(-1).astype(np.int64)


def clip_sampling(frames: int, mode: str) -> SampleFrames:
    """The SampleFrames of ``frames`` frames per sample in a :data:`SAMPLING_MODES` mode.

    Dense windows that run past a short clip repeat its last frame (a still scene) instead of
    looping back to its start, which would be a jump no camera shows.
    """
    if mode == "dense":
        return SampleFrames(clip_len=frames, frame_interval=1, num_clips=1, out_of_bound="repeat_last")
    if mode == "segments":
        return SampleFrames(clip_len=1, frame_interval=1, num_clips=frames)
    raise SamplingError(f"sampling mode must be one of {SAMPLING_MODES}, got {mode!r}")


def check_sampling_fits(sampling: SampleFrames, longest: int, *, what: str = "frames per sample (--frames)") -> None:
    """Refuse samples far longer than the clips: they only repeat frames and cost memory.

    Up to 64 frames are always allowed (a window a little longer than short clips is normal);
    beyond that a sample may not be longer than the longest clip.
    """
    need = max(sampling.frames_per_video, sampling.clip_len * sampling.frame_interval)
    if need > max(64, longest):
        raise SamplingError(
            f"{need} {what}, but the longest clip has {longest} frames at the model's frame rate: "
            f"at most max(64, {longest}); lower it"
        )


def timeline_length(num_frames: int, clip_fps: float, model_fps: float) -> int:
    """Frames of a ``num_frames``-frame clip at ``clip_fps`` when it is resampled to ``model_fps``."""
    ratio = clip_fps / model_fps
    return max(1, int((num_frames - 1) / ratio + 1e-9) + 1)


def source_indices(indices: np.ndarray, num_frames: int, clip_fps: float, model_fps: float) -> np.ndarray:
    """Indices on the model-rate timeline -> the nearest frames of the clip (frame stride clip_fps / model_fps)."""
    ratio = clip_fps / model_fps
    return np.minimum(np.floor(np.asarray(indices) * ratio + 0.5).astype(np.int64), num_frames - 1)
