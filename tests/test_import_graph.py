"""The package's import graph (tools/import_graph.py) has no cycle, and the runtime side never
imports the torch side at module level."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.runtime

TOOL = Path(__file__).resolve().parents[1] / "tools" / "import_graph.py"
TORCH_SIDE = {"models", "checkpoints", "export", "train"}
RUNTIME = {"card", "contract", "preprocess", "postprocess", "sampling", "session", "recognizer", "resolve", "capture",
           "sources", "synthetic", "weights", "render", "recording"}


def _tool():
    spec = importlib.util.spec_from_file_location("import_graph", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cycle_between_packages():
    tool = _tool()
    top, _ = tool.graph()
    assert tool.find_cycle(top) is None
    assert tool.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]  # the check itself works


def test_runtime_never_imports_the_torch_side_at_module_level():
    top, _ = _tool().graph()
    bad = {src: sorted(dst & TORCH_SIDE) for src, dst in top.items() if src in RUNTIME and dst & TORCH_SIDE}
    assert not bad
