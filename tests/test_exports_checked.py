"""The export cache keeps only exports the runtime accepts (audit: window TSM/TSN checkpoints).

``Recognizer('bi.safetensors')`` exports with a dynamic batch into the cache; that export had a
symbolic class dimension, was kept, and was refused at every later start. A cache entry is now
read back with the runtime's I/O check before it replaces anything, and entries of the previous
export revision are not reused.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from test_export_onnx import TOL  # noqa: E402
from test_export_window_batch import CLASSES, declared, window_model, worst_clip_diff  # noqa: E402

from streamtsm import Recognizer, exports  # noqa: E402
from streamtsm.checkpoints import save_model  # noqa: E402
from streamtsm.export import onnx as export_module  # noqa: E402


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STREAMTSM_CACHE", raising=False)
    return tmp_path / "home"


@pytest.mark.parametrize("kind", ["bi", "tsn"])
def test_a_checkpoint_runs_through_the_cache(home, tmp_path, kind):
    """Recognizer('bi.safetensors') / demo --model: the cache's dynamic-batch export opens and matches torch."""
    model = window_model(kind)
    ckpt = save_model(model, tmp_path / f"{kind}.safetensors")
    with Recognizer(str(ckpt)) as rec:
        assert rec.engine.name.startswith("onnxruntime")
        assert declared(rec.engine.path) == ["batch", CLASSES]
        for batch in (1, 3):
            assert worst_clip_diff(rec.engine, model, batch, seed=20 + batch) < TOL
    assert len(list((home / "exports").glob("*.onnx"))) == 1


def test_the_cache_keeps_no_export_the_runtime_would_refuse(home, tmp_path, monkeypatch):
    """An export damaged between the write and the rename (here: its class dimension made symbolic again)
    fails the cache's read-back check; no entry, sidecar or temporary file stays behind."""
    real = export_module.export_onnx

    def export_then_damage(net, path, **kw):
        out = real(net, path, **kw)
        proto = onnx.load(str(out))
        proto.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "classes"
        onnx.save(proto, str(out))
        return out

    monkeypatch.setattr(export_module, "export_onnx", export_then_damage)
    model = window_model("tsn")
    with pytest.raises(exports.ExportCacheError, match=r"not cached.*output 'logits'.*found \(-1, -1\)"):
        exports.cached_export(model)
    assert [p.suffix for p in (home / "exports").iterdir()] == [".lock"]
    monkeypatch.setattr(export_module, "export_onnx", real)
    entry = exports.cached_export(model)  # the next use exports again, and keeps the good file
    assert declared(entry) == ["batch", CLASSES] and exports.lookup(exports.key_for_module(model)) == entry


def test_entries_of_the_previous_export_revision_are_not_reused(monkeypatch):
    model = window_model("tsn")
    key = exports.key_for_module(model)
    monkeypatch.setattr(exports, "EXPORT_REVISION", exports.EXPORT_REVISION - 1)
    assert exports.key_for_module(model) != key
