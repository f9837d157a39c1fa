"""Shared test helpers. Tests run on CPU; torch uses 2 threads to keep the 2-core CI steady.

``STREAMTSM_BLOCK_TORCH=1`` makes ``import torch`` fail for the whole run, as on a device
without torch: tests that need it skip (``pytest.importorskip``), the runtime tests must pass.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if os.environ.get("STREAMTSM_BLOCK_TORCH") == "1":
    sys.modules["torch"] = None  # type: ignore[assignment]  # any `import torch` now raises ImportError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CHECKPOINT_KEYS = SHARED / "checkpoint-keys"


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(2)
    yield


@pytest.fixture
def one_torch_thread():
    """One torch thread for this test: on a shared 2-core box two threads of tiny convolutions mostly wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def reference_keys(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a real checkpoint format listed in ../shared/checkpoint-keys/."""
    import json

    path = CHECKPOINT_KEYS / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} not found: these tests need the shared/ directory beside the repo")
    return {k: tuple(v) for k, v in json.loads(path.read_text())["keys"].items()}


def random_state_dict(keys: dict[str, tuple[int, ...]], seed: int = 0):
    """Random tensors with the given shapes (BN variances positive, counters integer)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(0, dtype=torch.long)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.1
    return sd
