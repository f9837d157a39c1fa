"""Every supported TSM checkpoint format loads strictly, round-trips, and bad files fail clearly."""

from __future__ import annotations

import re

import pytest

torch = pytest.importorskip("torch")

from conftest import random_state_dict, reference_keys
from streamtsm import load_model, save_model
from streamtsm.checkpoints import CheckpointError
from streamtsm.models import create_model, to_online


def _outputs(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn(1, 3, 3, 96, 96, generator=g)
    with torch.no_grad():
        return model.eval()(clip)


def test_official_online_jester_file(tmp_path):
    keys = reference_keys("tsm_official_online_mobilenetv2_jester")
    path = tmp_path / "mobilenetv2_jester_online.pth.tar"
    torch.save(random_state_dict(keys), path)
    model = load_model(path)
    card = model.card
    assert card.arch == "tsm_mobilenetv2" and card.shift_mode == "uni" and card.is_online
    # a bare file of unknown origin: no labels or frame rate guessed from the class count
    assert card.num_classes == 27 and card.class_names[16] == "class_16" and card.background_classes == ()
    assert set(card.unverified) == {"class_names", "fps"} and card.weights_name == ""
    named = load_model(path, class_names=[f"g{i}" for i in range(27)])
    assert named.card.class_names[16] == "g16" and named.card.unverified == ("fps",)
    assert card.source_format == "tsm_official_online"
    assert [s.shape for s in card.state][:2] == [(1, 3, 56, 56), (1, 4, 28, 28)]
    # the tensors really went where the names say
    sd = torch.load(path, weights_only=True)
    assert torch.equal(model.features[3].conv[0].weight, sd["features.3.conv.0.weight"])
    assert torch.equal(model.classifier.bias, sd["classifier.bias"])


@pytest.mark.parametrize(
    "name,arch,fc",
    [
        ("tsm_official_offline_mobilenetv2_kinetics", "tsm_mobilenetv2", "classifier"),
        ("tsm_official_offline_resnet50_kinetics", "tsm_resnet50", "fc"),
    ],
)
def test_official_offline_files(tmp_path, name, arch, fc):
    keys = reference_keys(name)
    sd = random_state_dict(keys)
    path = tmp_path / f"{name}.pth"
    torch.save({"state_dict": sd, "epoch": 50}, path)
    model = load_model(path)
    assert model.card.arch == arch and model.card.shift_mode == "bi" and not model.card.is_online
    assert model.card.num_classes == 400
    assert torch.equal(getattr(model, fc).weight, sd["module.new_fc.weight"])
    first_shifted = next(k for k in keys if ".net." in k)
    ours = first_shifted.replace("module.base_model.", "").replace(".net.", ".")
    assert torch.equal(model.state_dict()[ours], sd[first_shifted])
    with pytest.raises(ValueError, match="bidirectional"):
        to_online(model)


def _to_mmaction2_resnet(sd):
    """Our torchvision-layout ResNet keys -> mmaction2 ResNetTSM keys (independent inverse map)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("fc."):
            out["cls_head.fc_cls." + k[3:]] = v
            continue
        k = re.sub(r"^conv1\.", "conv1.conv.", k)
        k = re.sub(r"^bn1\.", "conv1.bn.", k)
        k = re.sub(r"(layer\d\.\d+)\.conv1\.", r"\1.conv1.conv.net.", k)
        k = re.sub(r"(layer\d\.\d+)\.conv([23])\.", r"\1.conv\2.conv.", k)
        k = re.sub(r"(layer\d\.\d+)\.bn(\d)\.", r"\1.conv\2.bn.", k)
        k = k.replace("downsample.0.", "downsample.conv.").replace("downsample.1.", "downsample.bn.")
        out["backbone." + k] = v
    return out


def _to_mmaction2_mobilenetv2(sd):
    """Our flat MobileNetV2 keys -> mmaction2 MobileNetV2TSM keys (layerS.B.conv.U.{conv,bn})."""
    blocks_per_stage = (1, 2, 3, 4, 3, 3, 1)
    flat_to_stage = {}
    flat = 1
    for s, n in enumerate(blocks_per_stage, start=1):
        for b in range(n):
            flat_to_stage[flat] = (s, b)
            flat += 1
    out = {}
    for k, v in sd.items():
        if k.startswith("classifier."):
            out["cls_head.fc_cls." + k.split(".", 1)[1]] = v
            continue
        m = re.match(r"features\.(\d+)\.(?:conv\.)?(\d+)\.(.+)", k)
        i, j, rest = int(m[1]), int(m[2]), m[3]
        kind = "conv" if j % 3 == 0 else "bn"
        if i == 0:
            key = f"conv1.{kind}.{rest}"
        elif i == 18:
            key = f"conv2.{kind}.{rest}"
        else:
            s, b = flat_to_stage[i]
            shifted = j // 3 == 0 and i in (3, 5, 6, 8, 9, 10, 12, 13, 15, 16)
            key = f"layer{s}.{b}.conv.{j // 3}.{'net.' if shifted else ''}{kind}.{rest}"
        out["backbone." + key] = v
    return out


@pytest.mark.parametrize("arch,to_mm", [("tsm_resnet50", _to_mmaction2_resnet), ("tsm_mobilenetv2", _to_mmaction2_mobilenetv2)])
def test_mmaction2_tsm(tmp_path, arch, to_mm):
    src = create_model(arch, num_classes=5, shift_mode="bi")
    sd = {k: v + 0.01 * torch.randn_like(v.float()).to(v.dtype) for k, v in src.state_dict().items()}
    src.load_state_dict(sd)
    path = tmp_path / "tsm_mm.pth"
    torch.save({"meta": {"epoch": 3, "mmaction_version": "1.2.0"}, "state_dict": to_mm(sd)}, path)
    model = load_model(path)
    assert model.card.arch == arch and model.card.source_format == "mmaction2_tsm" and model.card.shift_mode == "bi"
    assert torch.allclose(_outputs(model), _outputs(src))


def test_own_format_round_trip(tmp_path):
    model = create_model("tsm_mobilenetv2", num_classes=4, class_names=("a", "b", "c", "d"), width_mult=0.5)
    path = save_model(model, tmp_path / "mine")
    assert path.suffix == ".safetensors" and (tmp_path / "mine.card.json").exists()
    again = load_model(path)
    assert again.card.class_names == ("a", "b", "c", "d")
    assert again.card.arch_kwargs["width_mult"] == 0.5
    assert torch.equal(_outputs(again), _outputs(model))
    # foreign formats round-trip through our format too
    jester = tmp_path / "j.pth"
    torch.save(random_state_dict(reference_keys("tsm_official_online_mobilenetv2_jester")), jester)
    first = load_model(jester)
    second = load_model(save_model(first, tmp_path / "j2"))
    assert second.card.class_names == first.card.class_names
    assert torch.equal(_outputs(second), _outputs(first))


def test_untrusted_pickle_does_not_run_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_model(path)
    assert not marker.exists()


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError, match=r"junk.pth is not a model checkpoint \(it is a text file\)"):
        load_model(junk)
    good = tmp_path / "good.pth"
    torch.save(random_state_dict(reference_keys("tsm_official_online_mobilenetv2_jester")), good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated.pth: not a readable"):
        load_model(truncated)
    unknown = tmp_path / "unknown.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, unknown)
    with pytest.raises(CheckpointError, match=r"unknown checkpoint format.*encoder\.weight"):
        load_model(unknown)
    with pytest.raises(CheckpointError, match="is a 'tsm_mobilenetv2' checkpoint"):
        load_model(good, expected_arch="tsm_resnet50")
    with pytest.raises(CheckpointError, match="27 classes but 3 class names"):
        load_model(good, class_names=["a", "b", "c"])


def test_layout_mismatch_names_the_keys(tmp_path):
    keys = reference_keys("tsm_official_offline_resnet50_kinetics")
    sd = random_state_dict(keys)
    sd["module.base_model.layer2.0.conv2.weight"] = torch.zeros(128, 128, 5, 5)  # wrong shape
    del sd["module.base_model.layer4.2.bn3.running_mean"]
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": sd}, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    msg = str(err.value)
    assert "broken.pth" in msg and "tsm_official_offline" in msg
    assert "layer2.0.conv2.weight" in msg and "layer4.2.bn3.running_mean" in msg


def test_own_format_with_wrong_class_count_is_refused(tmp_path):
    model = create_model("tsm_mobilenetv2", num_classes=4, width_mult=0.5)
    path = save_model(model, tmp_path / "m")
    card_file = tmp_path / "m.card.json"
    text = card_file.read_text().replace('"num_classes": 4', '"num_classes": 5').replace(
        '"class_3"', '"class_3", "class_4"'
    )
    card_file.write_text(text)
    with pytest.raises(CheckpointError, match=r"classifier\.weight: file \(4, 1280\) vs model \(5, 1280\)"):
        load_model(path)
    card_file.unlink()
    with pytest.raises(CheckpointError, match="model card is unusable"):
        load_model(path)
