"""Online = offline: stepping the per-frame form reproduces the clip model frame by frame."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from streamtsm.models import NotOnlineCapableError, create_model, to_online


def _calibrate_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give BN real statistics (a fresh network's activations shrink ~10x per stage, which would
    make any comparison of logits vacuous), plus random affine parameters."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
    model.train()
    with torch.no_grad():
        model(torch.randn(2, 4, 3, 96, 96, generator=g))
    model.eval()


@pytest.fixture(scope="module", params=["tsm_mobilenetv2", "tsm_resnet50"])
def uni_model(request):
    torch.manual_seed(0)
    model = create_model(request.param, num_classes=7).eval()
    _calibrate_batchnorm(model)
    return model


def _step(online, clip):
    n, t = clip.shape[:2]
    state = online.init_state(n, clip.shape[-2], clip.shape[-1])
    outs = []
    with torch.no_grad():
        for i in range(t):
            logits, *state = online(clip[:, i], *state)
            outs.append(logits)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("n,t", [(1, 8), (2, 8), (1, 1)])
def test_online_equals_offline(uni_model, n, t):
    clip = torch.randn(n, t, 3, 128, 128)
    online = to_online(uni_model)
    with torch.no_grad():
        per_frame = uni_model.forward_frames(clip.reshape(n * t, 3, 128, 128), t).reshape(n, t, -1)
        clip_out = uni_model(clip)
    stepped = _step(online, clip)
    assert (stepped - per_frame).abs().max().item() < 1e-4
    assert (stepped.mean(1) - clip_out).abs().max().item() < 1e-4


def test_shift_actually_carries_time(uni_model):
    """Guard against a vacuous equality: order of frames matters, and the state is not inert."""
    clip = torch.randn(1, 4, 3, 96, 96)
    online = to_online(uni_model)
    with_history = _step(online, clip)[:, -1]
    last_alone = _step(online, clip[:, -1:])[:, 0]
    rel = (with_history - last_alone).abs().max() / last_alone.abs().max()
    assert rel.item() > 1e-2, "history had no effect: the shift state is not used"


def test_state_shapes_match_official_demo():
    model = create_model("tsm_mobilenetv2", num_classes=27).eval()
    shapes = to_online(model).state_shapes(1, 224, 224)
    assert shapes == [
        (1, 3, 56, 56), (1, 4, 28, 28), (1, 4, 28, 28), (1, 8, 14, 14), (1, 8, 14, 14),
        (1, 8, 14, 14), (1, 12, 14, 14), (1, 12, 14, 14), (1, 20, 7, 7), (1, 20, 7, 7),
    ]


def test_online_module_is_pure():
    model = create_model("tsm_mobilenetv2", num_classes=3).eval()
    online = to_online(model)
    frame = torch.randn(1, 3, 96, 96)
    state = online.init_state(1, 96, 96)
    before = [s.clone() for s in state]
    with torch.no_grad():
        first = online(frame, *state)
        second = online(frame, *state)
    assert all(torch.equal(s, b) for s, b in zip(state, before)), "forward mutated its input state"
    assert all(torch.equal(x, y) for x, y in zip(first, second)), "same inputs gave different outputs"


def test_bidirectional_model_is_refused_or_approximated_loudly():
    model = create_model("tsm_mobilenetv2", num_classes=3, shift_mode="bi").eval()
    with pytest.raises(NotOnlineCapableError, match="bidirectional"):
        to_online(model)
    with pytest.warns(UserWarning, match="APPROXIMATION"):
        approx = to_online(model, approximate_bidirectional=True)
    state = approx.init_state(1, 96, 96)
    logits, *new_state = approx(torch.randn(1, 3, 96, 96), *state)
    assert logits.shape == (1, 3) and len(new_state) == len(state)


def test_resnet101_shifts_every_other_block():
    model = create_model("tsm_resnet101", num_classes=2)
    points = model.shift_points()
    assert len(points) == (2 + 2 + 12 + 2)  # ceil(3/2) + ceil(4/2) + ceil(23/2) + ceil(3/2)
    assert 0 in points and 1 not in points


def test_tsn_has_no_state():
    model = create_model("tsn_mobilenetv2", num_classes=2).eval()
    online = to_online(model)
    assert online.num_states == 0
    with torch.no_grad():
        clip = torch.randn(1, 3, 3, 64, 64)
        per_frame = model.forward_frames(clip.reshape(3, 3, 64, 64), 3)
        single = torch.stack([model.forward_frames(clip[:, i], 1)[0] for i in range(3)])
    assert torch.allclose(per_frame, single, atol=1e-5)


def test_deriving_state_shapes_leaves_the_model_untouched():
    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.5).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    to_online(model).state_shapes(1, 96, 96)
    assert model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
