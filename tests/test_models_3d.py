"""3D-CNN families (R(2+1)D, R3D, seed R(2+1)D, mmaction2 ResNet3d/I3D/SlowOnly, SlowFast) and their checkpoint formats.

Reference key lists come from ../shared/checkpoint-keys (torchvision and seed layouts); the
mmaction2 keys are spot-checked against what its source builds (file named at each check).
Big models are built once per module; only the clips the issue names are run at full size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from streamtsm.card import IMAGENET_MEAN, KINETICS_MEAN, KINETICS_STD
from streamtsm.checkpoints import CheckpointError, load_model
from streamtsm.checkpoints.formats import key_shapes
from streamtsm.checkpoints.video3d import FORMATS
from streamtsm.models.r2plus1d import r2plus1d_18, r2plus1d_34, r3d_18
from streamtsm.models.r2plus1d_seed import r2plus1d_seed
from streamtsm.models.registry import create_model
from streamtsm.models.resnet3d import (
    i3d_r50,
    resnet3d_18,
    resnet3d_34,
    resnet3d_50,
    resnet3d_101,
    resnet3d_152,
    slowonly_r50,
)
from streamtsm.models.slowfast import every_nth_frame, slowfast_r50, slowfast_r101
from streamtsm.models.video import ClipShapeError

KEYS_DIR = Path(__file__).resolve().parents[2] / "shared" / "checkpoint-keys"
FMT = {f.name: f for f in FORMATS}


def reference_keys(name: str) -> dict[str, tuple[int, ...]]:
    path = KEYS_DIR / name
    if not path.is_file():
        pytest.skip(f"reference key list {path} not present (the shared/ directory beside the repo is missing)")
    return {k: tuple(v) for k, v in json.loads(path.read_text())["keys"].items()}


def fake_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the given key shapes (positive BN variances, integer batch counters)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, s in shapes.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(s, generator=g) + 0.5
        else:
            sd[k] = torch.randn(s, generator=g) * 0.05
    return sd


def meta_shapes(builder, **kw) -> dict[str, tuple[int, ...]]:
    """Key shapes of a model built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return key_shapes(builder(**kw).state_dict())


@pytest.fixture(scope="module")
def tv_r2plus1d():
    return r2plus1d_18(num_classes=400).eval()


@pytest.fixture(scope="module")
def tv_r3d():
    return r3d_18(num_classes=400).eval()


@pytest.fixture(scope="module")
def seed_model():
    torch.manual_seed(0)
    m = r2plus1d_seed(num_classes=101).eval()
    # non-trivial BN statistics so that eval-mode BN is not the identity
    g = torch.Generator().manual_seed(1)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm3d):
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
    return m


@pytest.fixture(scope="module")
def slowfast():
    return slowfast_r50(num_classes=400).eval()


@pytest.fixture(scope="module")
def i3d():
    return i3d_r50(num_classes=400).eval()


# -- key layouts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref, fixture",
    [("torchvision_r2plus1d_18.json", "tv_r2plus1d"), ("torchvision_r3d_18.json", "tv_r3d"), ("seed_r2plus1d_ucf101.json", "seed_model")],
)
def test_state_dict_equals_reference_key_list(ref, fixture, request):
    expected = reference_keys(ref)
    got = key_shapes(request.getfixturevalue(fixture).state_dict())
    assert set(got) == set(expected), (sorted(set(got) - set(expected))[:5], sorted(set(expected) - set(got))[:5])
    wrong = {k: (got[k], expected[k]) for k in expected if got[k] != expected[k]}
    assert not wrong
    assert list(got) == list(expected)  # same order too: the files were written from state_dict()


def test_torchvision_mid_channels_are_per_block():
    # torchvision computes mid channels from (inplanes, planes) once per block: 230 for both convs of
    # layer2.0 although the second conv is 128->128 (which the formula would give 288).
    shapes = meta_shapes(r2plus1d_18, num_classes=400)
    mids = [shapes[f"layer{i}.{j}.conv{c}.0.0.weight"][0] for i in range(1, 5) for j in range(2) for c in (1, 2)]
    assert mids == [144, 144, 144, 144, 230, 230, 288, 288, 460, 460, 576, 576, 921, 921, 1152, 1152]
    assert shapes["stem.0.weight"] == (45, 3, 1, 7, 7)
    per_conv = meta_shapes(r2plus1d_34, num_classes=400, mid_channels="per_conv")
    assert per_conv["layer2.0.conv1.0.0.weight"][0] == 230 and per_conv["layer2.0.conv2.0.0.weight"][0] == 288
    assert sum(1 for k in per_conv if k.endswith(".conv1.0.0.weight")) == 3 + 4 + 6 + 3


def test_mmaction2_resnet3d_key_layout(i3d):
    # Verified against mmaction2 mmaction/models/backbones/resnet3d.py (ConvModule children conv/bn,
    # Bottleneck3d 3x1x1 inflation, downsample ConvModule), heads/i3d_head.py (fc_cls) and
    # configs/_base_/models/i3d_r50.py (conv1 5x7x7, inflate ((1,1,1),(1,0,1,0),(1,0,1,0,1,0),(0,1,0))).
    s = key_shapes(i3d.state_dict())
    expected = {
        "backbone.conv1.conv.weight": (64, 3, 5, 7, 7),
        "backbone.conv1.bn.weight": (64,),
        "backbone.conv1.bn.running_var": (64,),
        "backbone.conv1.bn.num_batches_tracked": (),
        "backbone.layer1.0.conv1.conv.weight": (64, 64, 3, 1, 1),
        "backbone.layer1.0.conv2.conv.weight": (64, 64, 1, 3, 3),
        "backbone.layer1.0.conv3.conv.weight": (256, 64, 1, 1, 1),
        "backbone.layer1.0.conv3.bn.bias": (256,),
        "backbone.layer1.0.downsample.conv.weight": (256, 64, 1, 1, 1),
        "backbone.layer1.0.downsample.bn.running_mean": (256,),
        "backbone.layer2.0.conv1.conv.weight": (128, 256, 3, 1, 1),
        "backbone.layer2.1.conv1.conv.weight": (128, 512, 1, 1, 1),
        "backbone.layer3.5.conv1.conv.weight": (256, 1024, 1, 1, 1),
        "backbone.layer4.0.conv1.conv.weight": (512, 1024, 1, 1, 1),
        "backbone.layer4.1.conv1.conv.weight": (512, 2048, 3, 1, 1),
        "backbone.layer4.0.downsample.conv.weight": (2048, 1024, 1, 1, 1),
        "cls_head.fc_cls.weight": (400, 2048),
        "cls_head.fc_cls.bias": (400,),
    }
    assert {k: s.get(k) for k in expected} == expected
    assert all(k.startswith(("backbone.", "cls_head.fc_cls.")) for k in s)
    assert "backbone.layer4.2.conv1.conv.weight" in s and "backbone.layer4.3.conv1.conv.weight" not in s

    basic = meta_shapes(resnet3d_18, num_classes=10)  # BasicBlock3d: two 3x3x3 ConvModules, no conv3
    assert basic["backbone.layer1.0.conv1.conv.weight"] == (64, 64, 3, 3, 3)
    assert basic["backbone.layer1.0.conv2.conv.weight"] == (64, 64, 3, 3, 3)
    assert basic["backbone.layer2.0.downsample.conv.weight"] == (128, 64, 1, 1, 1)
    assert "backbone.layer1.0.downsample.conv.weight" not in basic and not any(".conv3." in k for k in basic)
    assert basic["cls_head.fc_cls.weight"] == (10, 512)

    style333 = meta_shapes(resnet3d_50, num_classes=10, inflate_style="3x3x3")  # inflates conv2 instead
    assert style333["backbone.layer1.0.conv1.conv.weight"] == (64, 64, 1, 1, 1)
    assert style333["backbone.layer1.0.conv2.conv.weight"] == (64, 64, 3, 3, 3)


def test_mmaction2_slowfast_key_layout(slowfast):
    # Verified against mmaction2 mmaction/models/backbones/resnet3d_slowfast.py (ResNet3dPathway laterals:
    # conv1_lateral / layerN_lateral ConvModules without norm, stride alpha, kernel fusion_kernel x1x1;
    # slow stages take 2*beta*C extra channels), heads/slowfast_head.py (fc_cls over 2048+256) and
    # configs/_base_/models/slowfast_r50.py (slow conv1 1x7x7 inflate (0,0,1,1); fast base 8, conv1 5x7x7).
    s = key_shapes(slowfast.state_dict())
    expected = {
        "backbone.slow_path.conv1.conv.weight": (64, 3, 1, 7, 7),
        "backbone.slow_path.conv1.bn.weight": (64,),
        "backbone.slow_path.conv1_lateral.conv.weight": (16, 8, 5, 1, 1),
        "backbone.slow_path.layer1_lateral.conv.weight": (64, 32, 5, 1, 1),
        "backbone.slow_path.layer2_lateral.conv.weight": (128, 64, 5, 1, 1),
        "backbone.slow_path.layer3_lateral.conv.weight": (256, 128, 5, 1, 1),
        "backbone.slow_path.layer1.0.conv1.conv.weight": (64, 80, 1, 1, 1),
        "backbone.slow_path.layer1.0.downsample.conv.weight": (256, 80, 1, 1, 1),
        "backbone.slow_path.layer2.0.conv1.conv.weight": (128, 320, 1, 1, 1),
        "backbone.slow_path.layer3.0.conv1.conv.weight": (256, 640, 3, 1, 1),
        "backbone.slow_path.layer4.0.conv1.conv.weight": (512, 1280, 3, 1, 1),
        "backbone.slow_path.layer4.2.conv3.conv.weight": (2048, 512, 1, 1, 1),
        "backbone.fast_path.conv1.conv.weight": (8, 3, 5, 7, 7),
        "backbone.fast_path.layer1.0.conv1.conv.weight": (8, 8, 3, 1, 1),
        "backbone.fast_path.layer1.0.conv2.conv.weight": (8, 8, 1, 3, 3),
        "backbone.fast_path.layer1.0.downsample.conv.weight": (32, 8, 1, 1, 1),
        "backbone.fast_path.layer4.0.downsample.conv.weight": (256, 128, 1, 1, 1),
        "cls_head.fc_cls.weight": (400, 2304),
    }
    assert {k: s.get(k) for k in expected} == expected
    assert not any("lateral.bn" in k or k.startswith("backbone.fast_path.") and "lateral" in k for k in s)
    assert "backbone.slow_path.layer4_lateral.conv.weight" not in s  # no fusion after the last stage


# -- computation ------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["tv_r2plus1d", "tv_r3d"])
def test_torchvision_layout_output_shape(fixture, request):
    with torch.no_grad():
        out = request.getfixturevalue(fixture)(torch.randn(2, 3, 16, 112, 112))
    assert out.shape == (2, 400) and torch.isfinite(out).all()


def test_seed_layout_shapes_match_the_seed(seed_model):
    # Seed 000's flowchart: (N,3,16,112,112) -> conv1 (N,64,16,56,56) -> conv2 same -> conv3 (N,128,8,28,28)
    # -> conv4 (N,256,4,14,14) -> conv5 (N,512,2,7,7) -> pool+view (N,512); the stem's first conv has 45 channels.
    seen = {}
    net = seed_model.res2plus1d
    hooks = [
        getattr(net, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, tuple(o.shape)))
        for name in ("conv1", "conv2", "conv3", "conv4", "conv5")
    ]
    hooks.append(net.conv1.spatial_conv.register_forward_hook(lambda m, i, o: seen.__setitem__("stem_mid", tuple(o.shape))))
    x = torch.randn(1, 3, 16, 112, 112)
    try:
        with torch.no_grad():
            feats = seed_model.features(x)
    finally:
        for h in hooks:
            h.remove()
    assert seen == {
        "stem_mid": (1, 45, 16, 56, 56),
        "conv1": (1, 64, 16, 56, 56),
        "conv2": (1, 64, 16, 56, 56),
        "conv3": (1, 128, 8, 28, 28),
        "conv4": (1, 256, 4, 14, 14),
        "conv5": (1, 512, 2, 7, 7),
    }
    assert feats.shape == (1, 512)
    small = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        assert torch.allclose(seed_model(small), seed_model.linear(seed_model.features(small)), atol=1e-5)
        assert seed_model(small).shape == (2, 101)


def test_seed_downsampling_block_computes_the_seed_equations(seed_model):
    """conv3.block1 recomputed with F.conv3d from the seed's hyper-parameters, using the module's weights."""
    blk = seed_model.res2plus1d.conv3.block1

    def bn(x, m):
        return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    def st_conv(x, m, stride, padding):
        # SpatioTemporalConv: spatial (1,k,k) conv stride (1,s,s) -> BN -> ReLU -> temporal (k,1,1) stride (s,1,1) -> BN -> ReLU
        x = F.relu(bn(F.conv3d(x, m.spatial_conv.weight, None, (1, stride, stride), (0, padding, padding)), m.bn1))
        return F.relu(bn(F.conv3d(x, m.temporal_conv.weight, None, (stride, 1, 1), (padding, 0, 0)), m.bn2))

    x = torch.randn(1, 64, 4, 14, 14)
    res = F.relu(bn(st_conv(x, blk.conv1, 2, 1), blk.bn1))
    res = bn(st_conv(res, blk.conv2, 1, 1), blk.bn2)
    identity = bn(st_conv(x, blk.downsampleconv, 2, 0), blk.downsamplebn)  # factorised 1x1x1, stride 2
    expected = F.relu(identity + res)
    with torch.no_grad():
        got = blk(x)
    assert got.shape == (1, 128, 2, 7, 7)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_slowfast_full_clip(slowfast):
    x = torch.randn(1, 3, 32, 224, 224)
    with torch.no_grad():
        slow, fast = slowfast.backbone(x)
        logits = slowfast.cls_head((slow, fast))
    assert slow.shape == (1, 2048, 4, 7, 7)  # tau=8: 4 of 32 frames
    assert fast.shape == (1, 256, 32, 7, 7)  # tau/alpha=1: all frames, 1/8 of the channels
    assert logits.shape == (1, 400) and torch.isfinite(logits).all()
    # the head concatenates [fast | slow] (mmaction2's SlowFastHead order)
    pooled = slowfast.cls_head.pool((slow, fast))
    torch.testing.assert_close(pooled[:, :256], fast.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(pooled[:, 256:], slow.mean(dim=(2, 3, 4)))


def test_slowfast_samples_frames_like_mmaction2_interpolate():
    x = torch.arange(2 * 3 * 37 * 2 * 2, dtype=torch.float32).reshape(2, 3, 37, 2, 2)
    for step in (1, 2, 4, 8):
        ref = F.interpolate(x, mode="nearest", scale_factor=(1.0 / step, 1.0, 1.0))
        assert torch.equal(every_nth_frame(x, step), ref)


def test_i3d_and_slowonly_temporal_downsampling(i3d):
    with torch.no_grad():
        feats = i3d.backbone(torch.randn(1, 3, 16, 64, 64))
        assert i3d(torch.randn(2, 3, 16, 64, 64)).shape == (2, 400)
    assert feats.shape == (1, 2048, 2, 2, 2)  # conv1 t-stride 2, pool1 t-stride 2, pool2: 16 -> 2
    with torch.device("meta"):
        so = slowonly_r50(num_classes=5)
        assert so.backbone(torch.empty(1, 3, 8, 224, 224)).shape == (1, 2048, 8, 7, 7)  # no temporal downsampling


def test_wrong_clip_layout_is_refused_with_a_clear_message(tv_r3d, slowfast):
    with pytest.raises(ClipShapeError, match=r"\(N, 3, T, H, W\).*permute"):
        tv_r3d(torch.randn(1, 16, 3, 112, 112))
    with pytest.raises(ClipShapeError, match="at least 8 frames"):
        slowfast(torch.randn(1, 3, 4, 64, 64))
    with pytest.raises(ValueError, match="multiple of speed_ratio"):
        slowfast_r50(num_classes=3, resample_rate=6, speed_ratio=4)
    with pytest.raises(TypeError, match="ResNet3d settings are"):
        resnet3d_50(num_classes=3, inflat=(1, 1, 1, 1))
    with pytest.raises(ValueError, match="inflate\\[1\\] has 2 entries"):
        resnet3d_50(num_classes=3, inflate=(1, (1, 0), 1, 1))


def test_registered_cards_carry_the_preprocessing_of_the_weights():
    r3d = create_model("r3d_18", num_classes=4).card
    assert (r3d.preprocessing.resize_hw, r3d.preprocessing.crop_size, r3d.preprocessing.mean) == ((128, 171), 112, KINETICS_MEAN)
    assert r3d.preprocessing.std == KINETICS_STD
    assert (r3d.temporal.mode, r3d.temporal.clip_len, r3d.temporal.fps, r3d.temporal.clip_layout) == ("window", 16, 15.0, "NCTHW")
    seed = create_model("r2plus1d_seed", num_classes=3).card
    assert seed.preprocessing.channel_order == "BGR" and seed.preprocessing.mean == (90.0, 98.0, 102.0)
    assert seed.preprocessing.std == (1.0, 1.0, 1.0) and seed.temporal.clip_len == 16
    with torch.device("meta"):
        sf = create_model("slowfast_r50", num_classes=3).card
        i3 = create_model("i3d_r50", num_classes=3).card
    assert sf.temporal.clip_len == 32 and sf.preprocessing.mean == IMAGENET_MEAN and sf.preprocessing.resize_short == 256
    assert i3.temporal.clip_len == 32 and i3.preprocessing.crop_size == 224


# -- checkpoint formats -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(i3d, slowfast):
    """One key set per format: reference lists for torchvision/seed, our mmaction2-layout models."""
    if not KEYS_DIR.is_dir():
        pytest.skip(f"{KEYS_DIR} not present")
    return {
        "torchvision_r2plus1d": reference_keys("torchvision_r2plus1d_18.json"),
        "torchvision_r3d": reference_keys("torchvision_r3d_18.json"),
        "seed_r2plus1d": reference_keys("seed_r2plus1d_ucf101.json"),
        "mmaction2_resnet3d": key_shapes(i3d.state_dict()),
        "mmaction2_slowfast": key_shapes(slowfast.state_dict()),
    }


def test_each_format_detects_only_its_own_keys(samples):
    assert set(samples) == set(FMT)
    for owner, keys in samples.items():
        hits = [name for name, f in FMT.items() if f.detect(keys)]
        assert hits == [owner], f"{owner} keys detected by {hits}"
    for name in ("torchvision_mobilenet_v2.json", "torchvision_resnet50.json", "tsm_official_offline_resnet50_kinetics.json"):
        if (KEYS_DIR / name).is_file():
            assert not [f.name for f in FORMATS if f.detect(reference_keys(name))], name


@pytest.mark.parametrize(
    "owner, arch, kwargs",
    [
        ("torchvision_r2plus1d", "r2plus1d_18", {"num_classes": 400}),
        ("torchvision_r3d", "r3d_18", {"num_classes": 400}),
        ("seed_r2plus1d", "r2plus1d_seed", {"num_classes": 101, "layer_sizes": (2, 2, 2, 2)}),
    ],
)
def test_reference_key_files_convert_and_load_strictly(samples, owner, arch, kwargs):
    sd = fake_state_dict(samples[owner])
    conv = FMT[owner].convert(sd)
    assert (conv.arch, conv.arch_kwargs) == (arch, kwargs)
    model = create_model(conv.arch, **conv.arch_kwargs)
    model.load_state_dict(conv.state_dict, strict=True)
    name = next(k for k in sd if k.endswith("weight") and sd[k].dim() == 5)
    assert torch.equal(model.state_dict()[name], sd[name])


@pytest.mark.parametrize("fixture, fmt, arch", [("i3d", "mmaction2_resnet3d", "i3d_r50"), ("slowfast", "mmaction2_slowfast", "slowfast_r50")])
def test_mmaction2_checkpoint_round_trip_gives_identical_outputs(fixture, fmt, arch, request):
    src = request.getfixturevalue(fixture)
    sd = fake_state_dict(key_shapes(src.state_dict()), seed=3)
    src_copy = create_model(arch, num_classes=400).eval()
    src_copy.load_state_dict(sd, strict=True)
    conv = FMT[fmt].convert(dict(sd))
    assert conv.arch == arch and conv.arch_kwargs["num_classes"] == 400
    rebuilt = create_model(conv.arch, **conv.arch_kwargs).eval()
    rebuilt.load_state_dict(conv.state_dict, strict=True)
    x = torch.randn(1, 3, 16, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), src_copy(x))


@pytest.mark.parametrize(
    "builder, kw, arch, expected_kwargs",
    [
        (r2plus1d_34, {}, "r2plus1d_34", {}),
        (r2plus1d_34, {"mid_channels": "per_conv"}, "r2plus1d_34", {"mid_channels": "per_conv"}),
        (r2plus1d_seed, {"layer_sizes": (3, 4, 6, 3)}, "r2plus1d_seed", {"layer_sizes": (3, 4, 6, 3)}),
        (resnet3d_18, {}, "resnet3d_18", {"conv1_kernel": (3, 7, 7), "inflate": ((1,) * 2,) * 4, "inflate_style": "3x1x1"}),
        (resnet3d_34, {}, "resnet3d_34", {"conv1_kernel": (3, 7, 7), "inflate": ((1,) * 3, (1,) * 4, (1,) * 6, (1,) * 3), "inflate_style": "3x1x1"}),
        (resnet3d_101, {"inflate_style": "3x3x3"}, "resnet3d_101", {"conv1_kernel": (3, 7, 7), "inflate": ((1,) * 3, (1,) * 4, (1,) * 23, (1,) * 3), "inflate_style": "3x3x3"}),
        (resnet3d_152, {"conv1_kernel": (5, 7, 7), "inflate": (0, 0, 1, 1)}, "resnet3d_152", {"conv1_kernel": (5, 7, 7), "inflate": ((0,) * 3, (0,) * 8, (1,) * 36, (1,) * 3), "inflate_style": "3x1x1"}),
        (slowonly_r50, {}, "slowonly_r50", {}),
        (slowfast_r101, {}, "slowfast_r101", {"resample_rate": 8, "speed_ratio": 8, "channel_ratio": 8, "fusion_kernel": 5, "slow_depth": 101, "fast_depth": 101}),
        (slowfast_r50, {"resample_rate": 4, "speed_ratio": 4, "fusion_kernel": 7}, "slowfast_r50", {"resample_rate": 4, "speed_ratio": 4, "channel_ratio": 8, "fusion_kernel": 7, "slow_depth": 50, "fast_depth": 50}),
    ],
)
def test_detection_recovers_depth_and_settings(builder, kw, arch, expected_kwargs):
    shapes = meta_shapes(builder, num_classes=7, **kw)
    owners = [f.name for f in FORMATS if f.detect(shapes)]
    assert len(owners) == 1
    with torch.device("meta"):
        sd = {k: torch.empty(s) for k, s in shapes.items()}
        conv = FMT[owners[0]].convert(sd)
        assert conv.arch == arch
        assert conv.arch_kwargs == {"num_classes": 7, **expected_kwargs}
        rebuilt = create_model(conv.arch, **conv.arch_kwargs)
    assert key_shapes(rebuilt.state_dict()) == key_shapes(conv.state_dict)


def test_unsupported_variants_are_refused_clearly(samples):
    mc3 = dict(samples["torchvision_r3d"])  # torchvision MC3: 1x3x3 convs after layer1
    for k, s in list(mc3.items()):
        if k.startswith(("layer2", "layer3", "layer4")) and len(s) == 5 and s[2:] == (3, 3, 3):
            mc3[k] = s[:2] + (1, 3, 3)
    assert not any(f.detect(mc3) for f in FORMATS)

    nl = fake_state_dict(samples["mmaction2_resnet3d"])
    nl["backbone.layer2.0.non_local_block.g.conv.weight"] = torch.zeros(256, 512, 1, 1, 1)
    with pytest.raises(CheckpointError, match="non-local"):
        FMT["mmaction2_resnet3d"].convert(nl)

    odd = {k: v for k, v in fake_state_dict(samples["torchvision_r2plus1d"]).items() if not k.startswith("layer4.1.")}
    with pytest.raises(CheckpointError, match=r"\(2, 2, 2, 1\)"):
        FMT["torchvision_r2plus1d"].convert(odd)


def test_load_model_reads_seed_training_checkpoint_and_mmaction2_file(seed_model, tmp_path):
    # seed training code: {"epoch", "state_dict", "opt_dict"}; saved from DataParallel here ("module." keys)
    sd = {f"module.{k}": v for k, v in seed_model.state_dict().items()}
    path = tmp_path / "seed.pth.tar"
    torch.save({"epoch": 12, "state_dict": sd, "opt_dict": {"lr": 1e-3}}, path)
    model = load_model(path)
    assert model.card.arch == "r2plus1d_seed" and model.card.source_format == "seed_r2plus1d"
    assert model.card.preprocessing.channel_order == "BGR" and model.card.num_classes == 101
    x = torch.randn(1, 3, 8, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x), seed_model(x))

    r3d18_mm = create_model("resnet3d_18", num_classes=5, conv1_kernel=(1, 7, 7), inflate=(0, 0, 1, 1))
    path = tmp_path / "mm.pth"
    torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": r3d18_mm.state_dict()}, path)
    loaded = load_model(path)
    assert loaded.card.arch == "resnet3d_18" and loaded.card.source_format == "mmaction2_resnet3d"
    assert loaded.card.arch_kwargs["inflate"] == ((0, 0), (0, 0), (1, 1), (1, 1))
    assert "temporal strides assumed" in loaded.card.description
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), r3d18_mm.eval()(x))


@pytest.mark.parametrize(
    "arch, clip, params_m, gflops",
    [
        ("r2plus1d_18", (16, 112), 31.5, 40.5),  # torchvision model table
        ("r3d_18", (16, 112), 33.4, 40.7),  # torchvision model table
        ("i3d_r50", (32, 256), 28.0, 43.5),  # mmaction2 configs/recognition/i3d/metafile.yml (256² test crop)
        ("slowfast_r50", (32, 256), 34.5, 36.3),  # mmaction2 configs/recognition/slowfast/metafile.yml, 4x16
    ],
)
def test_parameter_count_and_flops_match_published_figures(arch, clip, params_m, gflops):
    from torch.utils.flop_counter import FlopCounterMode

    frames, crop = clip
    with torch.device("meta"):
        model = create_model(arch, num_classes=400).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.empty(1, 3, frames, crop, crop))
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(params_m, abs=0.05)
    # published GFLOPs are multiply-accumulates; mmaction2's counter also counts BN/ReLU (< 1 %)
    assert counter.get_total_flops() / 2e9 == pytest.approx(gflops, rel=0.01)


def test_own_format_round_trip_rebuilds_from_json_card_kwargs(tmp_path):
    # nested tuples in arch_kwargs come back from the JSON card as lists; the builders must accept them
    from streamtsm.checkpoints import save_model

    model = create_model("resnet3d_18", num_classes=3, conv1_kernel=(1, 7, 7), inflate=((0, 0), (0, 0), (1, 1), (1, 1))).eval()
    loaded = load_model(save_model(model, tmp_path / "r3d.safetensors"))
    assert loaded.card.arch_kwargs["inflate"] == [[0, 0], [0, 0], [1, 1], [1, 1]]
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
