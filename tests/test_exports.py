"""The export cache behind ``backend="auto"``: export once, reuse, rebuild what is damaged, share safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from streamtsm import exports  # noqa: E402
from streamtsm.card import Preprocessing  # noqa: E402
from streamtsm.checkpoints import save_model  # noqa: E402
from streamtsm.models import create_model  # noqa: E402
from streamtsm.resolve import open_engine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("STREAMTSM_CACHE", raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("tsm_mobilenetv2", num_classes=4, width_mult=0.35)
    model.card = model.card.replace(preprocessing=Preprocessing(crop_size=48, resize_short=48))
    return save_model(model, tmp_path_factory.mktemp("ckpt") / "small.safetensors")


def _entries(home: Path) -> list[Path]:
    return sorted((home / "exports").glob("*.onnx"))


def test_first_use_exports_second_use_loads(home, checkpoint, caplog):
    t0 = time.perf_counter()
    with caplog.at_level("INFO", logger="streamtsm"):
        first = open_engine(str(checkpoint))
    export_s = time.perf_counter() - t0
    assert first.name.startswith("onnxruntime") and "exporting" in caplog.text
    assert first.card.weights_sha256 == exports.file_sha256(checkpoint)
    (entry,) = _entries(home)
    caplog.clear()
    t0 = time.perf_counter()
    with caplog.at_level("INFO", logger="streamtsm"):
        second = open_engine(str(checkpoint))
    load_s = time.perf_counter() - t0
    assert "exporting" not in caplog.text and "using the cached export" in caplog.text
    assert second.path == entry and _entries(home) == [entry]
    print(f"\nexport cache: first use {export_s:.2f} s (export + check), second use {load_s:.3f} s (load)")
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 48), dtype=np.float32)
    a, _ = first.step(x, first.init_state())
    b, _ = second.step(x, second.init_state())
    np.testing.assert_array_equal(a, b)


def test_a_cached_export_is_found_without_torch(home, checkpoint):
    open_engine(str(checkpoint))  # export once, here, with torch
    code = "import sys; sys.modules['torch'] = None; from streamtsm.resolve import open_engine; print(open_engine(sys.argv[1]).name)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code, str(checkpoint)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().startswith("onnxruntime")


@pytest.mark.parametrize("damage", ["truncate", "sidecar"])
def test_a_damaged_entry_is_rebuilt(home, checkpoint, damage):
    open_engine(str(checkpoint))
    (entry,) = _entries(home)
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:1000])
    else:
        entry.with_suffix(".json").write_text("{not json")
    engine = open_engine(str(checkpoint))
    assert engine.path == entry and exports.lookup(exports.key_for_file(checkpoint, "small"), home / "exports") == entry


def test_two_processes_exporting_at_once_both_succeed(home, checkpoint, tmp_path):
    code = textwrap.dedent(
        """
        import sys
        from streamtsm.resolve import open_engine
        engine = open_engine(sys.argv[1])
        print(engine.path)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "STREAMTSM_HOME": str(home)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(checkpoint)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=170)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err[-2000:]
        results.append(out.strip())
    (entry,) = _entries(home)
    assert results == [str(entry)] * 2
    assert not list((home / "exports").glob("*.part*"))  # no temp file left behind


def test_the_cache_is_bounded_least_recently_used_first(tmp_path):
    root = tmp_path / "exports"
    root.mkdir()
    for i, name in enumerate(("old", "mid", "new")):
        (root / f"{name}.onnx").write_bytes(b"x" * 600_000)
        (root / f"{name}.json").write_text(json.dumps({"name": name}))
        os.utime(root / f"{name}.onnx", (1000 + i, 1000 + i))
    removed = exports.evict(root, max_mb=1.3)
    assert [p.name for p in removed] == ["old.onnx"]
    assert sorted(p.name for p in root.iterdir()) == ["mid.json", "mid.onnx", "new.json", "new.onnx"]


def test_auto_keeps_an_in_memory_module_on_torch(home):
    model = create_model("tsm_mobilenetv2", num_classes=3, width_mult=0.35)
    assert open_engine(model).name.startswith("torch")
    assert not (home / "exports").exists()
