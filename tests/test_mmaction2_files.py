"""Checkpoints as mmaction2 users have them: SlowOnly at every depth, and mmengine training checkpoints.

* A SlowOnly-R101 file (mmaction2's ResNet3dSlowOnly: 1x7x7 stem, stages 3-4 inflated, no pool2)
  must load as SlowOnly, not as a generic ResNet3d whose pool2 halves time after layer1.
* An mmengine runner checkpoint (``epoch_N.pth``) holds a message hub, optimizer state, numpy
  values and other objects beside ``state_dict``. Its tensors must load without any of those
  objects being built: the classes live in a throwaway ``mmengine`` package written by the test,
  removed from ``sys.modules`` before loading but left importable, whose import appends to a log
  and whose ``__reduce__`` target would create a marker file if called.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from conftest import random_state_dict  # noqa: E402
from streamtsm.checkpoints import load_model  # noqa: E402
from streamtsm.checkpoints.formats import key_shapes  # noqa: E402
from streamtsm.models import create_model  # noqa: E402


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """The model with random weights and BN statistics, so that layout mistakes change the logits."""
    model.load_state_dict(random_state_dict(key_shapes(model.state_dict()), seed))
    return model.eval()


# -- SlowOnly ---------------------------------------------------------------------------------


def test_slowonly_r101_checkpoint_loads_as_slowonly_without_pool2(tmp_path):
    # mmaction2's ResNet3dSlowOnly is ResNet3d with these settings at any depth
    reference = _randomised(
        create_model("resnet3d_101", num_classes=7, conv1_kernel=(1, 7, 7), inflate=(0, 0, 1, 1), with_pool2=False)
    )
    path = tmp_path / "slowonly_r101_8xb16-8x8x1-196e_kinetics400-rgb.pth"
    torch.save({"meta": {"mmaction_version": "1.2.0"}, "state_dict": reference.state_dict()}, path)

    model = load_model(path)
    assert model.card.arch == "slowonly_r101" and model.card.source_format == "mmaction2_resnet3d"
    assert model.settings.with_pool2 is False and model.settings.depth == 101
    assert (model.card.temporal.clip_len, model.card.temporal.fps) == (8, 3.75)  # the 8x8 recipe, not 32x2
    x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert model.forward_features(x).shape[2] == 8  # no temporal downsampling anywhere
        torch.testing.assert_close(model(x), reference(x))


def test_slowonly_is_recognised_at_every_bottleneck_depth():
    from streamtsm.checkpoints.video3d import FORMATS

    fmt = next(f for f in FORMATS if f.name == "mmaction2_resnet3d")
    for depth in (50, 101, 152):
        with torch.device("meta"):
            slowonly = create_model("resnet3d_50", num_classes=4, depth=depth, conv1_kernel=(1, 7, 7), inflate=(0, 0, 1, 1))
            converted = fmt.convert(dict(slowonly.state_dict()))
            assert converted.arch == f"slowonly_r{depth}"
            rebuilt = create_model(converted.arch, **converted.arch_kwargs)
        assert rebuilt.settings.with_pool2 is False
        assert key_shapes(rebuilt.state_dict()) == key_shapes(slowonly.state_dict())
