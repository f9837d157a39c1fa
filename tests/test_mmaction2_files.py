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

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import random_state_dict  # noqa: E402
from streamtsm.checkpoints import CheckpointError, load_model  # noqa: E402
from streamtsm.checkpoints.formats import key_shapes  # noqa: E402
from streamtsm.checkpoints.loader import read_state_dict  # noqa: E402
from streamtsm.models import create_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


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


# -- mmengine training checkpoints -------------------------------------------------------------

FAKE_MMENGINE = '''
"""A stand-in for mmengine: a test writes it, pickles its objects, then hides it from sys.modules."""
import os
from pathlib import Path

with open(os.environ["FAKE_MMENGINE_IMPORT_LOG"], "a") as log:
    log.write("imported\\n")


def restore_hub(marker, state):
    Path(marker).write_text("code from the checkpoint ran")
    return MessageHub()


class HistoryBuffer:
    def __init__(self, values):
        import numpy as np

        self._log_history = np.asarray(values, dtype=np.float64)
        self._count_history = np.ones(len(values))
        self.max_length = 1000000


class MessageHub:
    """Pickles itself through restore_hub, as a class with a custom __reduce__ does."""

    marker = None

    def __init__(self):
        self.log_scalars = {"train/loss": HistoryBuffer([2.1, 1.7, 1.2]), "train/lr": HistoryBuffer([0.1, 0.1, 0.01])}
        self.runtime_info = {"epoch": 3, "iter": 300, "max_epochs": 10}

    def __reduce__(self):
        return (restore_hub, (self.marker, self.__dict__))
'''


@pytest.fixture
def mmengine_checkpoint(tmp_path, monkeypatch):
    """An epoch_3.pth as mmengine's runner saves it, around a real mmaction2-layout state dict."""
    import numpy as np

    pkg = tmp_path / "site" / "mmengine" / "logging"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text(textwrap.dedent(FAKE_MMENGINE))
    import_log, marker = tmp_path / "imports.log", tmp_path / "pwned"
    monkeypatch.setenv("FAKE_MMENGINE_IMPORT_LOG", str(import_log))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    import mmengine.logging as fake  # noqa: PLC0415 (the throwaway module, written above)

    fake.MessageHub.marker = str(marker)
    model = _randomised(create_model("resnet3d_18", num_classes=5, conv1_kernel=(1, 7, 7), inflate=(0, 0, 1, 1),
                                      base_channels=8), seed=4)  # narrow: the file is about the pickle, not the size
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    model(torch.randn(2, 3, 4, 32, 32)).sum().backward()
    optimizer.step()
    model.eval()
    checkpoint = {
        "meta": {"epoch": 3, "iter": 300, "seed": np.int64(42), "mmengine_version": "0.10.4",
                 "dataset_meta": {"classes": ("a", "b", "c", "d", "e")}, "cfg": "model = dict(type='Recognizer3D')"},
        "state_dict": model.state_dict(),
        "message_hub": fake.MessageHub(),
        "optimizer": {"state": optimizer.state_dict()["state"], "param_groups": optimizer.state_dict()["param_groups"]},
        "param_schedulers": [{"base_lrs": [0.1], "last_step": 3, "history": fake.HistoryBuffer([0.1])}],
    }  # fmt: skip
    path = tmp_path / "epoch_3.pth"
    torch.save(checkpoint, path)
    for name in [m for m in sys.modules if m == "mmengine" or m.startswith("mmengine.")]:
        del sys.modules[name]  # still importable from sys.path: importing it would append to the log
    assert import_log.read_text().count("imported") == 1 and not marker.exists()
    yield path, model, marker, import_log
    for name in [m for m in sys.modules if m == "mmengine" or m.startswith("mmengine.")]:
        del sys.modules[name]


def test_weights_only_refuses_the_mmengine_checkpoint(mmengine_checkpoint):
    import pickle

    path, *_ = mmengine_checkpoint
    with pytest.raises(pickle.UnpicklingError):  # the reason this reader exists
        torch.load(path, weights_only=True)


def test_mmengine_checkpoint_tensors_load_and_nothing_runs(mmengine_checkpoint, caplog):
    path, model, marker, import_log = mmengine_checkpoint
    with caplog.at_level(logging.INFO, logger="streamtsm.checkpoints.loader"):
        loaded = load_model(path)
    assert not marker.exists(), "code from the checkpoint ran"
    assert import_log.read_text().count("imported") == 1 and "mmengine" not in sys.modules, "the named module was imported"
    assert loaded.card.arch == "resnet3d_18" and loaded.card.source_format == "mmaction2_resnet3d"
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    message = " ".join(r.getMessage() for r in caplog.records)
    assert "restricted unpickler" in message
    assert "mmengine.logging.restore_hub" in message and "mmengine.logging.HistoryBuffer" in message


def test_mmengine_checkpoint_through_the_cli_in_a_fresh_process(mmengine_checkpoint):
    path, _model, marker, import_log = mmengine_checkpoint
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(path.parent / "site")])}
    result = subprocess.run(
        [sys.executable, "-m", "streamtsm.cli", "info", str(path)],
        capture_output=True, text=True, timeout=240, cwd=REPO, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resnet3d_18" in result.stdout and "restricted unpickler" in result.stderr
    assert not marker.exists() and import_log.read_text().count("imported") == 1


def test_only_the_tensors_survive(mmengine_checkpoint):
    from streamtsm.checkpoints.restricted_pickle import Inert, read_checkpoint

    path, model, *_ = mmengine_checkpoint
    result = read_checkpoint(path)
    hub = result.obj["message_hub"]
    assert isinstance(hub, Inert) and hub.origin == "mmengine.logging.restore_hub"
    history = hub.args[1]["log_scalars"]["train/loss"]
    assert isinstance(history, Inert) and history.origin == "mmengine.logging.HistoryBuffer"
    assert isinstance(result.obj["meta"]["seed"], Inert)  # a numpy scalar: recorded, numpy never asked to build it
    momentum = result.obj["optimizer"]["state"][0]["momentum_buffer"]
    assert type(momentum) is torch.Tensor and not momentum.requires_grad
    assert set(read_state_dict(path)) == set(model.state_dict())


# -- what the restricted reader refuses ----------------------------------------------------------


class _CallsSystem:
    def __reduce__(self):
        return (os.system, ("touch /nonexistent/should-never-run",))


def _save(tmp_path: Path, payload) -> Path:
    path = tmp_path / "hostile.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": payload}, path)
    return path


@pytest.mark.parametrize("payload, named", [(_CallsSystem(), "system"), (type("E", (), {"__reduce__": lambda s: (eval, ("1",))})(), "eval")])
def test_a_file_that_calls_system_functions_is_refused_and_named(tmp_path, payload, named):
    with pytest.raises(CheckpointError, match=rf"refused to unpickle: it would call \S*{named}"):
        read_state_dict(_save(tmp_path, payload))


def test_a_tensor_larger_than_its_storage_is_refused(tmp_path):
    """The reader's storages are resizable, so torch would grow one to whatever the pickle claims: bounds are checked."""
    import zipfile

    path = tmp_path / "big.pth"
    torch.save({"meta": _CallsNothing(), "state_dict": {"w": torch.zeros(4)}}, path)  # weights_only stops at meta
    forged = tmp_path / "forged.pth"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(forged, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data.pkl"):
                # the size tuple (4,) of the one tensor (BININT1 4, TUPLE1) becomes (10**9,) (BININT 10**9, TUPLE1)
                assert data.count(b"K\x04\x85") == 1
                data = data.replace(b"K\x04\x85", b"J" + (10**9).to_bytes(4, "little") + b"\x85")
            dst.writestr(info, data)
    with pytest.raises(CheckpointError, match="reaches past its 16-byte storage"):
        read_state_dict(forged)


class _CallsNothing:
    """An unknown class (pickled by reference): makes weights_only refuse so the restricted reader runs."""
