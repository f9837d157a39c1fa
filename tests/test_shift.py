"""The temporal shift against a direct reference formula (DESIGN.md, "The temporal shift")."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from streamtsm.models.shift import online_shift, temporal_shift


def reference_shift(x5: torch.Tensor, mode: str, div: int = 8) -> torch.Tensor:
    """Element by element: the definition, written as plainly as possible."""
    n, t, c, h, w = x5.shape
    fold = c // div
    out = torch.zeros_like(x5)
    for ti in range(t):
        for ci in range(c):
            if mode == "bi" and ci < fold:
                src = ti + 1
            elif mode == "bi" and ci < 2 * fold:
                src = ti - 1
            elif mode == "uni" and ci < fold:
                src = ti - 1
            else:
                src = ti
            if 0 <= src < t:
                out[:, ti, ci] = x5[:, src, ci]
    return out


@pytest.mark.parametrize("mode", ["uni", "bi"])
@pytest.mark.parametrize("n,t,c", [(1, 8, 16), (2, 3, 24), (1, 1, 8), (2, 5, 13)])
def test_shift_matches_reference(mode, n, t, c):
    x5 = torch.randn(n, t, c, 3, 4)
    got = temporal_shift(x5.reshape(n * t, c, 3, 4), t, 8, mode).reshape(n, t, c, 3, 4)
    assert torch.equal(got, reference_shift(x5, mode))


def test_shift_moves_data_and_keeps_rest():
    x5 = torch.arange(1 * 4 * 16, dtype=torch.float32).reshape(1, 4, 16, 1, 1)
    out = temporal_shift(x5.reshape(4, 16, 1, 1), 4, 8, "uni").reshape(1, 4, 16)
    assert torch.all(out[0, 0, :2] == 0)  # t = 0 gets zeros in the shifted fold
    assert torch.equal(out[0, 1:, :2], x5[0, :-1, :2, 0, 0])
    assert torch.equal(out[0, :, 2:], x5[0, :, 2:, 0, 0])


def test_online_shift_step_equals_offline_uni():
    x5 = torch.randn(2, 6, 16, 3, 3)
    offline = temporal_shift(x5.reshape(12, 16, 3, 3), 6, 8, "uni").reshape(2, 6, 16, 3, 3)
    cache = torch.zeros(2, 2, 3, 3)
    for t in range(6):
        shifted, cache = online_shift(x5[:, t], cache, (0, 2))
        assert torch.equal(shifted, offline[:, t])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="shift mode"):
        temporal_shift(torch.zeros(4, 8, 1, 1), 4, 8, "sideways")
    with pytest.raises(ValueError, match="whole number of clips"):
        temporal_shift(torch.zeros(6, 8, 1, 1), 4, 8, "uni")
