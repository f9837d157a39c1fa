"""ONNX export with state I/O and the ONNX Runtime backend, against the torch reference.

Models are small (MobileNetV2 x0.5 at 112 px, R3D-18 at 64 px x 4 frames) with weights
re-drawn at a scale that gives O(1) logits: freshly initialised classifiers output ~1e-3
logits, against which a 1e-4 tolerance would prove nothing.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from streamtsm.resolve import open_engine  # noqa: E402
from streamtsm.backends.base import BackendError  # noqa: E402
from streamtsm.backends.onnxruntime_backend import open_onnxruntime  # noqa: E402
from streamtsm.contract import CARD_METADATA_KEY  # noqa: E402
from streamtsm.backends.torch_backend import open_torch  # noqa: E402
from streamtsm.card import ModelCard  # noqa: E402
from streamtsm.export.onnx import ExportError, export_onnx  # noqa: E402
from streamtsm.models import create_model, list_models  # noqa: E402

TOL = 1e-4


def spread_weights(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-draw every weight so activations and logits are O(1) (BN variances positive)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:  # BN gamma
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75)
            else:
                fan_in = max(1, t[0].numel())
                t.copy_(torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5)
    return model.eval()


def small_tsm(arch: str = "tsm_mobilenetv2", crop: int = 112, **kw) -> torch.nn.Module:
    model = create_model(arch, num_classes=9, width_mult=0.5, **kw)
    pre = dataclasses.replace(model.card.preprocessing, crop_size=crop, resize_short=crop + crop // 7)
    model.card = model.card.replace(preprocessing=pre)
    return spread_weights(model)


@pytest.fixture(scope="module")
def online(tmp_path_factory):
    model = small_tsm()
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "tsm.onnx", check_steps=3)
    return model, path


def test_online_matches_torch_over_16_steps(online):
    model, path = online
    ort_b, torch_b = open_onnxruntime(path), open_torch(model)
    s_ort, s_torch = ort_b.init_state(1), torch_b.init_state(1)
    rng = np.random.default_rng(7)
    worst_logit = worst_state = 0.0
    biggest = 0.0
    for _ in range(16):
        frame = rng.standard_normal((1, 3, 112, 112), dtype=np.float32)
        l_ort, s_ort = ort_b.step(frame, s_ort)
        l_torch, s_torch = torch_b.step(frame, s_torch)
        worst_logit = max(worst_logit, float(np.abs(l_ort - l_torch).max()))
        a_ort, a_torch = ort_b.state_arrays(s_ort), torch_b.state_arrays(s_torch)
        assert [a.shape for a in a_ort] == [a.shape for a in a_torch]
        worst_state = max(worst_state, max(float(np.abs(a - b).max()) for a, b in zip(a_ort, a_torch)))
        biggest = max(biggest, float(np.abs(l_torch).max()))
    assert biggest > 0.5, "logits too small for the comparison to mean anything"
    assert worst_logit < TOL and worst_state < TOL, (worst_logit, worst_state)


def test_state_is_carried_not_ignored(online):
    """The same frame after different histories gives different logits (the state really flows)."""
    _, path = online
    b = open_onnxruntime(path)
    rng = np.random.default_rng(3)
    a, c = rng.standard_normal((2, 1, 3, 112, 112), dtype=np.float32)
    _, s1 = b.step(a, b.init_state())
    after_a, _ = b.step(c, s1)
    fresh, _ = b.step(c, b.init_state())
    assert float(np.abs(after_a - fresh).max()) > 1e-3


def test_card_and_io_in_the_file(online):
    model, path = online
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    card = ModelCard.from_json(meta[CARD_METADATA_KEY])
    assert card.arch == "tsm_mobilenetv2" and card.preprocessing.crop_size == 112
    assert [i.name for i in proto.graph.input] == ["frame"] + [s.name for s in card.state]
    assert [o.name for o in proto.graph.output] == ["logits"] + [f"state_out.{i}" for i in range(len(card.state))]
    from streamtsm.models import to_online

    assert [s.shape for s in card.state] == [tuple(s) for s in to_online(model).state_shapes(1, 112, 112)]
    assert not any(n.op_type in ("ScatterND", "ScatterElements") for n in proto.graph.node), "in-place slice assignment"


def test_stale_state_is_refused(online):
    _, path = online
    b = open_onnxruntime(path)
    x = np.zeros((1, 3, 112, 112), np.float32)
    s0 = b.init_state()
    _, s1 = b.step(x, s0)
    b.step(x, s0)  # s0 still valid: its successor s1 was not stepped yet (this overwrites s1's set)
    with pytest.raises(BackendError, match="stale state"):
        b.step(x, s1)
    with pytest.raises(BackendError, match="init_state"):
        open_onnxruntime(path).step(x, b.init_state())  # another backend's state


def test_dynamic_batch_runs_several_streams(tmp_path):
    model = small_tsm(crop=96)
    path = export_onnx(model, tmp_path / "dyn.onnx", dynamic_batch=True, check_steps=2)
    ort_b, torch_b = open_onnxruntime(path), open_torch(model)
    assert ort_b.dynamic_batch
    s_ort, s_torch = ort_b.init_state(3), torch_b.init_state(3)
    rng = np.random.default_rng(1)
    for _ in range(3):
        frames = rng.standard_normal((3, 3, 96, 96), dtype=np.float32)
        l_ort, s_ort = ort_b.step(frames, s_ort)
        l_torch, s_torch = torch_b.step(frames, s_torch)
        assert l_ort.shape == (3, 9)
        assert float(np.abs(l_ort - l_torch).max()) < TOL


def test_fixed_batch_refuses_other_batch(online):
    _, path = online
    with pytest.raises(BackendError, match="--dynamic-batch"):
        open_onnxruntime(path).init_state(2)


def _window_model():
    if "r3d_18" in list_models():
        model = create_model("r3d_18", num_classes=5)
        pre = dataclasses.replace(model.card.preprocessing, crop_size=64, resize_hw=(72, 96))
        temporal = dataclasses.replace(model.card.temporal, clip_len=4)
    else:  # 3D families absent from this checkout: a TSM run on clips
        model = create_model("tsm_mobilenetv2", num_classes=5, width_mult=0.5)
        pre = dataclasses.replace(model.card.preprocessing, crop_size=64, resize_short=72)
        temporal = dataclasses.replace(model.card.temporal, mode="window", clip_len=4, clip_layout="NTCHW")
    model.card = model.card.replace(preprocessing=pre, temporal=temporal)
    return spread_weights(model)


def test_window_model_matches_torch(tmp_path):
    model = _window_model()
    path = export_onnx(model, tmp_path / "window.onnx", check_steps=1)
    b = open_onnxruntime(path)
    assert [i.name for i in b.session.get_inputs()] == ["clip"]
    with pytest.raises(BackendError, match="window model"):
        b.init_state()
    rng = np.random.default_rng(2)
    shape = b.signature.inputs[0].shape
    for _ in range(2):
        clip = rng.standard_normal(shape, dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(clip)).numpy()
        assert np.abs(ref).max() > 0.1
        assert float(np.abs(b.run_clip(clip) - ref).max()) < TOL


# -- refusals ------------------------------------------------------------------------------------


def test_file_without_card_is_refused(online, tmp_path):
    _, path = online
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    bad = tmp_path / "nocard.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(BackendError, match="no streamtsm model card"):
        open_onnxruntime(bad)


def test_renamed_input_is_refused(online, tmp_path):
    _, path = online
    proto = onnx.load(str(path))
    old = proto.graph.input[1].name
    proto.graph.input[1].name = "hidden"
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = "hidden"
    bad = tmp_path / "renamed.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(BackendError, match=r"missing inputs \['state_in.0'\].*unexpected inputs \['hidden'\]"):
        open_onnxruntime(bad)


def test_card_state_shape_mismatch_is_refused(online, tmp_path):
    _, path = online
    proto = onnx.load(str(path))
    meta = next(p for p in proto.metadata_props if p.key == CARD_METADATA_KEY)
    card = json.loads(meta.value)
    card["state"][0]["shape"][1] += 1  # the card now claims a wider cached fold than the graph has
    meta.value = json.dumps(card)
    bad = tmp_path / "shape.onnx"
    onnx.save(proto, str(bad))
    with pytest.raises(BackendError, match=r"input 'state_in.0': expected shape \(1, \d+, 28, 28\).*found"):
        open_onnxruntime(bad)


def test_garbage_file_is_refused(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(BackendError, match="cannot load"):
        open_onnxruntime(bad)


def test_export_refuses_to_write_when_runtime_disagrees(tmp_path):
    """A zero tolerance cannot be met by float kernels: the real disagreement stops the write."""
    out = tmp_path / "never.onnx"
    with pytest.raises(ExportError, match="NOT written"):
        export_onnx(small_tsm(crop=64), out, check_steps=2, tolerance=0.0)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bidirectional_online_export_is_refused(tmp_path):
    model = small_tsm(crop=64, shift_mode="bi")
    with pytest.raises(ExportError, match="bidirectional"):
        export_onnx(model, tmp_path / "bi.onnx")


# -- factory and CLI -----------------------------------------------------------------------------


def test_open_backend_auto_picks_onnxruntime_for_onnx(online, caplog):
    _, path = online
    with caplog.at_level("INFO", logger="streamtsm.resolve"):
        b = open_engine(str(path))
    assert b.name.startswith("onnxruntime")
    assert "TensorRT" in caplog.text  # says why TensorRT was not used
    with pytest.raises(BackendError, match="torch needs the checkpoint"):
        open_engine(str(path), "torch")


def test_checkpoint_on_onnxruntime_uses_weight_keyed_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMTSM_CACHE", str(tmp_path / "cache"))
    model = small_tsm(crop=64)
    b = open_engine(model, "onnxruntime")
    cached = list((tmp_path / "cache" / "exports").glob("*.onnx"))
    assert len(cached) == 1 and b.path == cached[0]
    assert open_engine(model, "onnxruntime").path == cached[0]  # same weights: no second export
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64), dtype=np.float32)
    ref, _ = open_torch(model).step(x, open_torch(model).init_state())
    got, _ = b.step(x, b.init_state())
    assert float(np.abs(got - ref).max()) < TOL


def test_cli_export_checkpoint(tmp_path, capsys):
    from streamtsm.checkpoints import save_model
    from streamtsm.cli import main

    ckpt = save_model(small_tsm(crop=64), tmp_path / "mine.safetensors")
    out = tmp_path / "engines" / "mine.onnx"
    assert main(["export", str(ckpt), "-o", str(out), "--check-steps", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert open_onnxruntime(out).card.arch == "tsm_mobilenetv2"
    assert main(["export", "no_such_model", "-o", str(tmp_path / "x.onnx")]) == 1
    assert "neither an existing checkpoint" in capsys.readouterr().err


def test_an_exported_window_model_refuses_another_window_when_the_recognizer_is_built(tmp_path):
    """The graph's T is fixed: window=3 was accepted and then failed at every clip (audit of 5de4cc3)."""
    from streamtsm import Recognizer
    from streamtsm.session import SessionError

    model = _window_model()
    path = export_onnx(model, tmp_path / "window.onnx", check_steps=1)
    assert open_onnxruntime(path).fixed_clip_len == 4
    for window in (3, 5):
        with pytest.raises(SessionError, match="runs clips of exactly 4 frames"):
            Recognizer(path, window=window)
    frames = [np.full((72, 96, 3), 40 * i, np.uint8) for i in range(6)]
    with Recognizer(path, window=4, stride=1) as rec:  # its own length is fine
        assert sum(rec.push(f, 0.1 * i) is not None for i, f in enumerate(frames)) == 3
    with Recognizer(model, window=3, stride=1) as rec:  # on torch any window runs
        assert sum(rec.push(f, 0.1 * i) is not None for i, f in enumerate(frames)) == 4
