"""The command line as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import pytest

import json
import subprocess
import sys


torch = pytest.importorskip("torch")

from conftest import random_state_dict, reference_keys


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamtsm.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def test_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    assert "info" in out.stdout and "online" in out.stdout.lower()


def test_info_describes_a_checkpoint(tmp_path):
    path = tmp_path / "mobilenetv2_jester_online.pth.tar"
    torch.save(random_state_dict(reference_keys("tsm_official_online_mobilenetv2_jester")), path)
    out = run_cli("info", str(path), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["format"] == "tsm_official_online"
    assert info["arch"] == "tsm_mobilenetv2" and info["num_classes"] == 27
    assert info["shift_mode"] == "uni" and info["input_size"] == [224, 224]
    assert info["state_tensors"] == 10 and 2_000_000 < info["parameters"] < 2_500_000


def test_info_on_a_missing_file_is_one_clear_line(tmp_path):
    out = run_cli("info", str(tmp_path / "missing.pth"))
    assert out.returncode == 1
    assert "does not exist" in out.stderr and "Traceback" not in out.stderr


def test_info_default_names_the_embedded_model(capsys):
    """'default' means the embedded model in `info` as in `export` and the Recognizer."""
    from streamtsm.cli import main

    assert main(["info", "--json"]) == 0
    without = json.loads(capsys.readouterr().out)
    assert main(["info", "default", "--json"]) == 0
    named = json.loads(capsys.readouterr().out)
    assert named == without and named["arch"] == "tsm_mobilenetv2" and named["num_classes"] > 1
