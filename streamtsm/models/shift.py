"""The temporal shift, offline (whole clip) and online (one frame plus cached fold).

Semantics (DESIGN.md, "The temporal shift"): frames are viewed as (N, T, C, H, W) and
``fold = C // shift_div``.

* bidirectional ("bi", offline TSM): channels [0, fold) take x[t+1], channels [fold, 2·fold)
  take x[t-1], the rest stay; zeros where t±1 is outside the clip.
* unidirectional ("uni", online TSM): channels [0, fold) take x[t-1] (zeros at t = 0).

Everything is written with slicing and ``torch.cat``: in-place slice assignment traces to
ONNX/TensorRT as a constant and silently gives wrong results.
"""

from __future__ import annotations

import torch
from torch import Tensor


def temporal_shift(x: Tensor, num_frames: int, shift_div: int = 8, mode: str = "uni") -> Tensor:
    """Shift 1/shift_div of the channels of a (N·T, C, H, W) batch along time.

    ``mode`` is ``"uni"`` or ``"bi"``; ``"none"`` returns ``x`` unchanged.
    """
    if mode == "none":
        return x
    nt, c, h, w = x.shape
    if nt % num_frames:
        raise ValueError(f"batch of {nt} frames is not a whole number of clips of {num_frames} frames")
    fold = c // shift_div
    x5 = x.reshape(nt // num_frames, num_frames, c, h, w)
    zeros = torch.zeros_like(x5[:, :1, :fold])
    if mode == "uni":
        from_past = torch.cat((zeros, x5[:, :-1, :fold]), dim=1)
        out = torch.cat((from_past, x5[:, :, fold:]), dim=2)
    elif mode == "bi":
        from_future = torch.cat((x5[:, 1:, :fold], zeros), dim=1)
        from_past = torch.cat((zeros, x5[:, :-1, fold : 2 * fold]), dim=1)
        out = torch.cat((from_future, from_past, x5[:, :, 2 * fold :]), dim=2)
    else:
        raise ValueError(f"shift mode must be 'uni', 'bi' or 'none', got {mode!r}")
    return out.reshape(nt, c, h, w)


def online_shift(x: Tensor, cached: Tensor, channels: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """One online step of the shift for a single frame batch x (N, C, H, W).

    ``channels = (start, stop)`` is the slice that comes from the previous frame; ``cached``
    holds that slice of the previous frame's x (zeros at stream start). Returns the shifted
    input and the new cache (this frame's slice). Nothing is mutated.
    """
    start, stop = channels
    # Python-level branch on static ints: an empty slice would export as a zero-size tensor,
    # which TensorRT rejects.
    parts = ([x[:, :start]] if start > 0 else []) + [cached, x[:, stop:]]
    return torch.cat(parts, dim=1), x[:, start:stop]
