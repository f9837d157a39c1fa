"""Window (clip) exports of frame models: offline TSM (shift 'bi') and TSN, fixed and dynamic batch.

They average per-frame logits over the clip (``reshape(n, t, -1).mean(1)``); with a dynamic
batch the tracer left the class dimension of ``logits`` symbolic (``ReduceMeanlogits_dim_1``),
so the export was written and then refused by every runtime (audit: `--shift bi` and TSN
checkpoints, and every ``tsm_*.kinetics400`` weight name, ran only on torch). Tiny models:
MobileNetV2 x0.5 and ResNet-18 at 64 px, 4-frame clips.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from test_export_onnx import TOL, spread_weights  # noqa: E402

from streamtsm import Recognizer  # noqa: E402
from streamtsm.backends.base import BackendError  # noqa: E402
from streamtsm.backends.onnxruntime_backend import open_onnxruntime  # noqa: E402
from streamtsm.card import Temporal  # noqa: E402
from streamtsm.contract import graph_signature  # noqa: E402
from streamtsm.export import onnx as export_module  # noqa: E402
from streamtsm.export.onnx import ExportError, export_onnx, verify_against_torch  # noqa: E402
from streamtsm.models import create_model  # noqa: E402

CLASSES, CLIP, CROP = 4, 4, 64
MODELS = {
    "bi": ("tsm_mobilenetv2", {"width_mult": 0.5, "shift_mode": "bi"}),
    "tsn": ("tsn_mobilenetv2", {"width_mult": 0.5}),
    "bi_resnet": ("tsm_resnet18", {"shift_mode": "bi"}),
}


def window_model(kind: str) -> torch.nn.Module:
    arch, kw = MODELS[kind]
    model = create_model(arch, num_classes=CLASSES, **kw)
    pre = dataclasses.replace(model.card.preprocessing, crop_size=CROP, resize_short=CROP + 8)
    temporal = Temporal(mode="window", fps=15.0, num_segments=CLIP, clip_len=CLIP, clip_layout="NTCHW")
    model.card = model.card.replace(preprocessing=pre, temporal=temporal)
    return spread_weights(model)


def declared(path, name: str = "logits") -> list:
    graph = onnx.load(str(path)).graph
    (value,) = [v for v in (*graph.input, *graph.output) if v.name == name]
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def worst_clip_diff(engine, model, batch: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    worst = 0.0
    for _ in range(2):
        clip = rng.standard_normal((batch, CLIP, 3, CROP, CROP), dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(clip)).numpy()
        got = engine.run_clip(clip)
        assert got.shape == ref.shape == (batch, CLASSES)
        assert np.abs(ref).max() > 0.1  # O(1) logits: the tolerance means something
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    model = window_model(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    paths = {
        "dynamic": export_onnx(model, folder / "dyn.onnx", dynamic_batch=True, check_steps=1),
        1: export_onnx(model, folder / "b1.onnx", check_steps=1),
        3: export_onnx(model, folder / "b3.onnx", batch_size=3, check_steps=1),
    }
    return request.param, model, paths


def test_graphs_declare_the_class_dimension(exported):
    _, _, paths = exported
    assert declared(paths["dynamic"]) == ["batch", CLASSES]
    assert declared(paths["dynamic"], "clip") == ["batch", CLIP, 3, CROP, CROP]
    assert declared(paths[1]) == [1, CLASSES]
    assert declared(paths[3]) == [3, CLASSES]


def test_dynamic_batch_matches_torch_at_batch_1_and_3(exported):
    kind, model, paths = exported
    engine = open_onnxruntime(paths["dynamic"])
    assert engine.dynamic_batch
    for batch in (1, 3):
        diff = worst_clip_diff(engine, model, batch, seed=batch)
        print(f"\n{kind} dynamic batch {batch}: max |logits diff| {diff:.2g}")
        assert diff < TOL


@pytest.mark.parametrize("batch", [1, 3])
def test_fixed_batch_matches_torch(exported, batch):
    kind, model, paths = exported
    engine = open_onnxruntime(paths[batch])
    assert not engine.dynamic_batch
    diff = worst_clip_diff(engine, model, batch, seed=10 + batch)
    print(f"\n{kind} fixed batch {batch}: max |logits diff| {diff:.2g}")
    assert diff < TOL
    other = 3 if batch == 1 else 1
    with pytest.raises(BackendError, match=rf"model expects \({batch}, 4, 3, 64, 64\)"):
        engine.run_clip(np.zeros((other, CLIP, 3, CROP, CROP), np.float32))


def test_recognizer_runs_the_dynamic_export_like_torch(exported):
    _, model, paths = exported
    frames = [np.random.default_rng(i).integers(0, 255, (CROP + 8, CROP + 24, 3), dtype=np.uint8) for i in range(6)]
    with Recognizer(paths["dynamic"], window=CLIP, stride=1) as onnx_rec, Recognizer(model, backend="torch", window=CLIP, stride=1) as torch_rec:
        assert onnx_rec.engine.name.startswith("onnxruntime")
        assert worst_clip_diff(onnx_rec.engine, model, 3, seed=5) < TOL
        compared = 0
        for i, frame in enumerate(frames):
            a, b = onnx_rec.push(frame, i / 15.0), torch_rec.push(frame, i / 15.0)
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
                compared += 1
        assert compared == len(frames) - CLIP + 1


# -- the export's own check catches what the runtime refuses ------------------------------------------


def test_export_refuses_a_graph_with_a_symbolic_class_dimension(tmp_path, monkeypatch):
    """Without the fix the graph was written although ONNX Runtime's values matched torch: the check now
    reads the graph's I/O as the runtime does."""
    monkeypatch.setattr(export_module, "declare_static_dims", lambda proto, signature: None)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportError, match=r"output 'logits': expected shape \(1, 4\).*found \(-1, -1\).*nothing was written"):
        export_onnx(window_model("tsn"), out, dynamic_batch=True, check_steps=1)
    assert not list(tmp_path.iterdir())


def test_check_refuses_a_fixed_graph_where_a_dynamic_one_was_asked(exported):
    _, model, paths = exported
    data = paths[1].read_bytes()
    sig = graph_signature(open_onnxruntime(paths[1]).card, 1)
    verify_against_torch(model, data, sig, steps=1, dynamic_batch=False)
    with pytest.raises(ExportError, match="dynamic batch was asked for but the exported graph has a fixed one"):
        verify_against_torch(model, data, sig, steps=1, dynamic_batch=True)


def test_check_compares_output_shapes_not_just_values(exported):
    """(1, K) against (1, 1, K) broadcasts to a zero difference: a shape difference is its own refusal."""
    _, model, paths = exported

    class Unsqueezed(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, clip):
            return self.net(clip).unsqueeze(1)

    sig = graph_signature(open_onnxruntime(paths[1]).card, 1)
    with pytest.raises(ExportError, match=r"ONNX Runtime gives 'logits' of shape \(1, 4\), torch \(1, 1, 4\)"):
        verify_against_torch(Unsqueezed(model).eval(), paths[1].read_bytes(), sig, steps=1)
