"""Every registered model answers timm's interface: forward = forward_head ∘ forward_features.

One row per registered name (the table is the registry itself, so a new family is covered the
day it registers). Inputs are small real clips: TSM models take (N, T, 3, H, W) and give per-frame
features (N, T, C, H', W'); 3D models take (N, 3, T, H, W) and give the unpooled backbone output
(a (slow, fast) pair for SlowFast), whose pooled vector is what the classifier sees.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from streamtsm.models import TemporalShiftNet, VideoClassifier, create_model, list_models  # noqa: E402

N, T, SIZE = 2, 8, 32


def _build(name: str) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, num_classes=5).eval()


def _clip(model: nn.Module) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if isinstance(model, TemporalShiftNet):
        return torch.randn(N, 3, 3, SIZE, SIZE, generator=g)  # (N, T, 3, H, W), T = 3
    return torch.randn(N, 3, T, SIZE, SIZE, generator=g)


def _maps(features) -> list[torch.Tensor]:
    return list(features) if isinstance(features, tuple) else [features]


def test_the_table_covers_every_family():
    names = list_models()
    assert len(names) >= 20
    for prefix in ("tsm_mobilenetv2", "tsm_resnet", "tsn_", "r2plus1d_18", "r2plus1d_seed", "r3d_", "resnet3d_", "i3d_", "slowonly_", "slowfast_"):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize("name", list_models())
def test_forward_is_head_of_features(name):
    model = _build(name)
    x = _clip(model)
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        assert torch.equal(model.forward_head(features), logits)
    assert logits.shape == (N, 5) and torch.isfinite(logits).all()
    if isinstance(model, TemporalShiftNet):
        # features are per frame; the head is the mean of the per-frame logits
        assert features.dim() == 5 and features.shape[:2] == x.shape[:2]
        with torch.no_grad():
            per_frame = torch.stack([model.forward_frame_head(features[:, t]) for t in range(x.shape[1])], dim=1)
            flat = model.forward_frames(x.reshape(-1, *x.shape[2:]), x.shape[1]).reshape(N, x.shape[1], -1)
        torch.testing.assert_close(per_frame, flat)
        torch.testing.assert_close(per_frame.mean(dim=1), logits)
    else:
        assert isinstance(model, VideoClassifier)
        assert all(m.dim() == 5 and m.shape[0] == N for m in _maps(features))  # unpooled (N, C, T', H', W')
        with torch.no_grad():
            pooled = model.forward_head(features, pre_logits=True)
            classifier = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
            assert pooled.shape == (N, classifier.in_features)
            torch.testing.assert_close(classifier(pooled), logits)
            assert torch.equal(model.features(x), pooled)
