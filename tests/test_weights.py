"""Weights by name: the registry's entries and labels, and download/cache/integrity against a loopback server.

The network is a real HTTP server on 127.0.0.1 (tests/zoo_server.py) that the test starts;
``STREAMTSM_MIRROR`` points the downloads at it, so files are requested under the entries' own URL
paths. Served files are built from the real key lists in ../shared/checkpoint-keys (random weights)
or, for the mmaction2 formats, from our model code's layout (which tests/test_models_3d.py checks
against mmaction2's source). The real files could not be fetched here (no internet).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from conftest import random_state_dict, reference_keys
from zoo_server import SilentServer, ZooServer

from streamtsm.weights import (
    DownloadOptions,
    WeightsError,
    closest_names,
    download,
    ensure_weight,
    exports_dir,
    find_weight,
    get_weight,
    home_dir,
    list_weights,
    load_labels,
    mirrored,
    weight_path,
    weights_dir,
)

REPO = Path(__file__).resolve().parents[1]
JESTER = "tsm_mobilenetv2.jester_online"
FAST = DownloadOptions(timeout=2.0, retries=2, backoff=0.0, progress=False)
_ENV = ("STREAMTSM_HOME", "STREAMTSM_CACHE", "STREAMTSM_OFFLINE", "STREAMTSM_MIRROR",
        "STREAMTSM_DOWNLOAD_TIMEOUT", "STREAMTSM_DOWNLOAD_RETRIES", "XDG_CACHE_HOME")


def url_path(name: str) -> str:
    return urlsplit(get_weight(name).urls[0]).path


def saved(obj: object) -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture
def home(tmp_path, monkeypatch):
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STREAMTSM_DOWNLOAD_TIMEOUT", "5")
    return tmp_path / "home"


@pytest.fixture
def zoo(home, monkeypatch):
    with ZooServer() as server:
        monkeypatch.setenv("STREAMTSM_MIRROR", server.url)
        yield server


@pytest.fixture(scope="module")
def jester_bytes() -> bytes:
    return saved(random_state_dict(reference_keys("tsm_official_online_mobilenetv2_jester")))


@pytest.fixture(scope="module")
def payload() -> bytes:
    """3 MB of arbitrary bytes: what the transfer tests move (integrity checked by checksum, no torch)."""
    return np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()


def hashed(name: str, data: bytes):
    """The entry as if its source published the SHA-256 prefix of ``data``: the transfer tests then check
    integrity by checksum and need no torch to verify the file by loading it."""
    return dataclasses.replace(get_weight(name), sha256=hashlib.sha256(data).hexdigest()[:8])


# -- the registry -----------------------------------------------------------------------------


@pytest.mark.runtime
@pytest.mark.parametrize("labels, n", [("jester", 27), ("kinetics400", 400), ("sthv2", 174)])
def test_label_lists_have_their_published_lengths(labels, n):
    names = load_labels(labels)
    assert len(names) == n and len(set(names)) == n
    assert all(name == name.strip() and name and not name.startswith("#") for name in names)


@pytest.mark.runtime
def test_label_lists_keep_the_order_of_the_weights():
    # online_demo/main.py `catigories`: index 16 is "Swiping Left", 0 and 2 the no-gesture classes
    jester = load_labels("jester")
    assert (jester[0], jester[2], jester[16], jester[26]) == ("Doing other things", "No gesture", "Swiping Left", "Zooming Out With Two Fingers")
    assert load_labels("kinetics400")[:2] == ("abseiling", "air drumming") and load_labels("kinetics400")[-1] == "zumba"
    assert load_labels("sthv2")[0] == "Approaching something with your camera"


@pytest.mark.runtime
def test_the_issue_lists_entries_are_all_there():
    required = {
        "tsm_mobilenetv2.jester_online", "tsm_resnet50.kinetics400", "tsm_mobilenetv2.kinetics400", "tsm_resnet50.sthv2",
        "r2plus1d_18.kinetics400", "r3d_18.kinetics400", "slowfast_r50.kinetics400", "i3d_r50.kinetics400",
        "slowonly_r50.kinetics400", "mobilenet_v2.imagenet", "resnet50.imagenet",
    }
    assert required <= {e.name for e in list_weights()}


@pytest.mark.runtime
@pytest.mark.parametrize("entry", list_weights(), ids=lambda e: e.name)
def test_entry_fields_are_consistent(entry):
    if entry.is_backbone:
        assert entry.sha256 and entry.temporal is None
        with pytest.raises(WeightsError, match="backbone"):
            entry.card()
        return
    card = entry.card()  # the ModelCard validator: num_classes == len(class names), background among them
    assert card.weights_name == entry.name and card.num_classes == entry.num_classes
    assert card.is_online == (entry.shift_mode == "uni")
    assert card.temporal.clip_layout == ("NTCHW" if entry.arch.startswith("tsm_") else "NCTHW")
    # a file name carrying a hash prefix (torchvision, mmaction2) must match the recorded prefix
    tail = entry.file_name.rsplit("-", 1)[-1].split(".")[0]
    if len(tail) == 8 and all(c in "0123456789abcdef" for c in tail):
        assert entry.sha256 == tail
    else:
        assert entry.sha256 == "" and "recorded" in entry.sha256_note


#: (format, architecture) -> the real key list of that file layout in ../shared/checkpoint-keys
_KEY_LISTS = {
    ("tsm_official_online", "tsm_mobilenetv2"): "tsm_official_online_mobilenetv2_jester",
    ("tsm_official_offline", "tsm_mobilenetv2"): "tsm_official_offline_mobilenetv2_kinetics",
    ("tsm_official_offline", "tsm_resnet50"): "tsm_official_offline_resnet50_kinetics",
    ("torchvision_r2plus1d", "r2plus1d_18"): "torchvision_r2plus1d_18",
    ("torchvision_r3d", "r3d_18"): "torchvision_r3d_18",
    ("torchvision_imagenet", "tsm_mobilenetv2"): "torchvision_mobilenet_v2",
    ("torchvision_imagenet", "tsm_resnet50"): "torchvision_resnet50",
}
#: formats without a shared key list: built from our model code's layout (checked against mmaction2's source
#: in tests/test_models_3d.py), wrapped as mmengine saves them
_FROM_MODEL_CODE = ("mmaction2_resnet3d", "mmaction2_slowfast")


def _weights_file_for(entry) -> object:
    """A checkpoint in the entry's format, with the entry's class count and random weights."""
    torch = pytest.importorskip("torch")
    if entry.checkpoint_format in _FROM_MODEL_CODE:
        from streamtsm.checkpoints.formats import key_shapes
        from streamtsm.models import create_model

        with torch.device("meta"):
            keys = key_shapes(create_model(entry.arch, num_classes=entry.num_classes).state_dict())
        return {"meta": {"mmaction_version": "1.0.0"}, "state_dict": random_state_dict(keys)}
    keys = dict(reference_keys(_KEY_LISTS[entry.checkpoint_format, entry.arch]))
    if entry.checkpoint_format == "tsm_official_offline":  # the same layout with the entry's classifier size
        features = keys["module.new_fc.weight"][1]
        keys["module.new_fc.weight"], keys["module.new_fc.bias"] = (entry.num_classes, features), (entry.num_classes,)
        return {"state_dict": random_state_dict(keys), "epoch": 45}
    return random_state_dict(keys)


@pytest.mark.parametrize("entry", list_weights(), ids=lambda e: e.name)
def test_every_entry_loads_a_file_in_its_format(entry, tmp_path):
    torch = pytest.importorskip("torch")
    from streamtsm import load_model
    from streamtsm.checkpoints.tsm import imagenet_backbone_state_dict
    from streamtsm.models import create_model

    path = tmp_path / entry.file_name
    torch.save(_weights_file_for(entry), path)
    if entry.is_backbone:
        family, sd = imagenet_backbone_state_dict(torch.load(path, weights_only=True))
        assert entry.arch == f"tsm_{family}"
        missing, unexpected = create_model(entry.arch, num_classes=5).load_state_dict(sd, strict=False)
        assert not unexpected and all(k.startswith(("classifier.", "fc.")) for k in missing)
        return
    model = load_model(path, expected_arch=entry.arch)
    entry.check_card(model.card)  # architecture, format, class count and shift mode as the entry says
    merged = model.card.replace(**entry.card_overrides())
    assert merged.class_names == load_labels(entry.labels)


# -- cache root -------------------------------------------------------------------------------


@pytest.mark.runtime
def test_cache_root_follows_home_then_the_old_variable_then_xdg(tmp_path, monkeypatch):
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert home_dir() == tmp_path / "user" / ".cache" / "streamtsm"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert home_dir() == tmp_path / "xdg" / "streamtsm"
    monkeypatch.setenv("STREAMTSM_CACHE", str(tmp_path / "old"))
    assert home_dir() == tmp_path / "old"
    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path / "new"))
    assert (weights_dir(), exports_dir()) == (tmp_path / "new" / "weights", tmp_path / "new" / "exports")
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("STREAMTSM_HOME", str(tmp_path / "file"))
    with pytest.raises(ValueError, match="is a file"):
        home_dir()


@pytest.mark.runtime
def test_mirror_replaces_scheme_and_host_and_keeps_the_path(monkeypatch):
    url = "https://download.pytorch.org/models/r3d_18-b3b3357e.pth"
    monkeypatch.delenv("STREAMTSM_MIRROR", raising=False)
    assert mirrored(url) == url
    monkeypatch.setenv("STREAMTSM_MIRROR", "http://10.0.0.5:8080")
    assert mirrored(url) == "http://10.0.0.5:8080/models/r3d_18-b3b3357e.pth"
    monkeypatch.setenv("STREAMTSM_MIRROR", "https://mirror.example/zoo/")
    assert mirrored(url) == "https://mirror.example/zoo/models/r3d_18-b3b3357e.pth"
    for bad in ("ftp://host/x", "10.0.0.5:8080", "http://host/x?y=1"):
        monkeypatch.setenv("STREAMTSM_MIRROR", bad)
        with pytest.raises(WeightsError, match="STREAMTSM_MIRROR"):
            mirrored(url)


@pytest.mark.runtime
def test_entries_refuse_unsafe_file_names_and_non_http_urls():
    entry = get_weight(JESTER)
    for bad in ("../evil.pth", "sub/x.pth", "..", ".hidden"):
        with pytest.raises(WeightsError, match="file name"):
            dataclasses.replace(entry, file_name=bad)
    for bad in ("file:///etc/passwd", "ftp://host/x.pth", "//host/x"):
        with pytest.raises(WeightsError, match="not http"):
            dataclasses.replace(entry, urls=(bad,))


@pytest.mark.runtime
def test_misspelled_names_list_the_closest():
    assert find_weight("tsm_mobilenetv2.jester") is None
    assert closest_names("tsm_mobilenetv2.jester")[0] == JESTER
    with pytest.raises(WeightsError, match="Did you mean tsm_mobilenetv2.jester_online"):
        get_weight("tsm_mobilenetv2.jester")
    pytest.importorskip("torch")
    from streamtsm import load_model
    from streamtsm.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match="neither a file nor a weight name.*r3d_18.kinetics400"):
        load_model("r3d_18.kinetic400")
    with pytest.raises(CheckpointError, match="ImageNet backbone, not a video model.*streamtsm download resnet50.imagenet"):
        load_model("resnet50.imagenet")


# -- download, cache and integrity against the loopback server ----------------------------------


def test_first_load_downloads_and_second_load_makes_no_request(zoo, jester_bytes, capfd):
    torch = pytest.importorskip("torch")
    from streamtsm import load_model

    zoo.add(url_path(JESTER), jester_bytes)
    model = load_model(JESTER)
    assert zoo.requests == [(url_path(JESTER), None)]
    card = model.card
    assert card.weights_name == JESTER and card.source_format == "tsm_official_online"
    assert card.class_names == load_labels("jester") and card.background_classes == ("Doing other things", "No gesture")
    assert card.temporal.fps == 12.0 and card.is_online and card.shift_mode == "uni" and card.unverified == ()
    assert card.weights_sha256 == hashlib.sha256(jester_bytes).hexdigest() and len(card.state) == 10
    served = torch.load(io.BytesIO(jester_bytes), weights_only=True)
    assert torch.equal(model.classifier.weight, served["classifier.weight"])
    # no published checksum: the verified first download recorded one beside the file
    path = weight_path(get_weight(JESTER))
    assert path.with_name(path.name + ".sha256").read_text().split() == [card.weights_sha256, path.name]
    assert "%" not in capfd.readouterr().err  # no progress bar: stderr is not a terminal here

    again = load_model(JESTER)
    assert len(zoo.requests) == 1 and again.card == card


@pytest.mark.runtime
def test_progress_bar_goes_to_stderr_when_asked(zoo, payload, capfd):
    zoo.add(url_path(JESTER), payload)
    entry, shown = hashed(JESTER, payload), DownloadOptions(progress=True)
    path = ensure_weight(entry, options=shown).path
    out, err = capfd.readouterr()
    assert path.read_bytes() == payload and out == ""
    assert "mobilenetv2_jester_online.pth.tar" in err and "100% [####################]" in err and "MB/s" in err
    ensure_weight(entry, options=shown)
    assert zoo.count(url_path(JESTER)) == 1 and "%" not in capfd.readouterr().err  # cached: nothing fetched


@pytest.mark.runtime
def test_connection_dropped_mid_file_resumes_with_a_range_request(zoo, payload):
    zoo.add(url_path(JESTER), payload, mode="drop_once")
    zoo.drop_at = len(payload) // 3
    weight = ensure_weight(hashed(JESTER, payload), options=FAST)
    assert zoo.requests == [(url_path(JESTER), None), (url_path(JESTER), f"bytes={zoo.drop_at}-")]
    assert weight.path.read_bytes() == payload


@pytest.mark.runtime
def test_truncated_transfer_fails_after_bounded_retries_and_a_later_run_resumes(zoo, payload):
    zoo.add(url_path(JESTER), payload, mode="truncate")
    entry = hashed(JESTER, payload)
    with pytest.raises(WeightsError, match=r"ended after \d+ of \d+ bytes.*after 3 attempts"):
        ensure_weight(entry, options=FAST)
    assert zoo.count(url_path(JESTER)) == 3 and not weight_path(entry).exists()
    leftovers = list(weights_dir().glob("*.part"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == len(payload) // 2

    zoo.modes[url_path(JESTER)] = "ok"  # the server recovers; the next run continues the partial file
    weight = ensure_weight(entry, options=FAST)
    assert zoo.requests[-1] == (url_path(JESTER), f"bytes={len(payload) // 2}-")
    assert weight.path.read_bytes() == payload and not list(weights_dir().glob("*.part"))


@pytest.mark.runtime
def test_404_fails_at_once_and_says_where_to_put_the_file(zoo):
    zoo.add(url_path(JESTER), b"", mode="missing")
    entry = get_weight(JESTER)
    with pytest.raises(WeightsError, match=r"HTTP 404.*put mobilenetv2_jester_online\.pth\.tar at "):
        ensure_weight(entry, options=FAST)
    assert zoo.count(url_path(JESTER)) == 1  # no retries for a 404


@pytest.mark.runtime
def test_a_server_that_never_answers_times_out(home, monkeypatch):
    with SilentServer() as silent:
        monkeypatch.setenv("STREAMTSM_MIRROR", silent.url)
        start = time.monotonic()
        with pytest.raises(WeightsError, match=r"no answer within 0\.3 s.*after 2 attempts"):
            ensure_weight(get_weight(JESTER), options=DownloadOptions(timeout=0.3, retries=1, backoff=0.0))
        assert time.monotonic() - start < 20  # two 0.3 s timeouts, not a hang
    assert not weight_path(get_weight(JESTER)).exists()


@pytest.mark.runtime
def test_wrong_sha256_deletes_the_file_and_the_right_one_is_kept(zoo, payload):
    entry = get_weight("r3d_18.kinetics400")
    data = payload  # any file other than torchvision's: the published prefix must catch it
    zoo.add(url_path(entry.name), data)
    with pytest.raises(WeightsError, match="does not start with the published b3b3357e.*deleted"):
        ensure_weight(entry, options=FAST)
    assert not weight_path(entry).exists() and not list(weights_dir().glob("*.part"))

    # the same file under an entry that publishes its real prefix is accepted
    weight = ensure_weight(hashed(entry.name, data), options=FAST)
    assert weight.path.read_bytes() == data and weight.sha256 == hashlib.sha256(data).hexdigest()


_CONCURRENT_CHILD = textwrap.dedent(
    """
    import dataclasses, logging, sys, time
    from pathlib import Path
    sys.modules["torch"] = None  # the cache is torch-free; with the checksum given no load is needed
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from streamtsm.weights import ensure_weight, get_weight
    ready, go, name, prefix = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    entry = dataclasses.replace(get_weight(name), sha256=prefix)
    ready.touch()
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.01)
    print(ensure_weight(entry).sha256)
    """
)


@pytest.mark.runtime
def test_two_processes_loading_the_same_name_download_it_once(zoo, payload, tmp_path):
    zoo.add(url_path(JESTER), payload, mode="slow")  # 20 pieces, 0.1 s apart: the two loads overlap
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    go, digest = tmp_path / "go", hashlib.sha256(payload).hexdigest()
    children = [
        subprocess.Popen([sys.executable, "-c", _CONCURRENT_CHILD, str(tmp_path / f"ready{i}"), str(go), JESTER, digest[:8]],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(2)
    ]
    try:
        deadline = time.monotonic() + 90
        while not all((tmp_path / f"ready{i}").exists() for i in range(2)):
            assert time.monotonic() < deadline and all(c.poll() is None for c in children), "children did not start"
            time.sleep(0.02)
        go.touch()  # both start loading within milliseconds of each other
        results = [c.communicate(timeout=120) for c in children]
    finally:
        for c in children:
            c.kill()
    assert [c.returncode for c in children] == [0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == [digest, digest]
    assert zoo.count(url_path(JESTER)) == 1  # one download; the other process waited for it, then checked the file
    assert sum("waiting for another process" in err for _, err in results) == 1
    assert weight_path(get_weight(JESTER)).read_bytes() == payload and not list(weights_dir().glob("*.part"))


def test_offline_mode_never_touches_the_network(zoo, jester_bytes, monkeypatch):
    pytest.importorskip("torch")
    from streamtsm import load_model

    zoo.add(url_path(JESTER), jester_bytes)
    monkeypatch.setenv("STREAMTSM_OFFLINE", "1")
    entry = get_weight(JESTER)
    with pytest.raises(WeightsError) as err:
        load_model(JESTER)
    message = str(err.value)
    assert "STREAMTSM_OFFLINE" in message and entry.file_name in message and str(weight_path(entry)) in message
    assert entry.urls[0] in message and zoo.requests == []

    monkeypatch.delenv("STREAMTSM_OFFLINE")
    load_model(JESTER)  # online: downloads it
    monkeypatch.setenv("STREAMTSM_OFFLINE", "1")
    assert load_model(JESTER).card.weights_name == JESTER and zoo.count(url_path(JESTER)) == 1


def test_a_cache_file_corrupted_after_download_is_deleted_and_fetched_again(zoo, jester_bytes, monkeypatch, caplog):
    pytest.importorskip("torch")
    from streamtsm import load_model

    zoo.add(url_path(JESTER), jester_bytes)
    path = download(JESTER)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    path.write_bytes(bytes(data))
    model = load_model(JESTER)
    assert "failed its check" in caplog.text and zoo.count(url_path(JESTER)) == 2
    assert path.read_bytes() == jester_bytes and model.card.weights_sha256 == hashlib.sha256(jester_bytes).hexdigest()

    path.write_bytes(b"garbage")  # again, now offline: the file is deleted and the error says so
    monkeypatch.setenv("STREAMTSM_OFFLINE", "1")
    with pytest.raises(WeightsError, match="failed its check.*was deleted.*STREAMTSM_OFFLINE is set"):
        load_model(JESTER)
    assert not path.exists()


def test_a_served_file_that_is_not_the_entry_is_refused(zoo):
    pytest.importorskip("torch")
    # a 400-class offline file served under the Jester name: no checksum to catch it, the strict load does
    data = saved({"state_dict": random_state_dict(reference_keys("tsm_official_offline_mobilenetv2_kinetics"))})
    zoo.add(url_path(JESTER), data)
    with pytest.raises(WeightsError, match="not the entry's weights.*deleted"):
        ensure_weight(get_weight(JESTER), options=FAST)
    path = weight_path(get_weight(JESTER))
    assert not path.exists() and not path.with_name(path.name + ".sha256").exists()


# `streamtsm download` on a device without torch: `import torch` is made to fail first
_TORCH_FREE_CLI = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None
    from streamtsm.cli import main
    code = main(sys.argv[1:])
    assert not [m for m in sys.modules if m.startswith("torch") and sys.modules[m] is not None]
    sys.exit(code)
    """
)


def test_cli_download_without_torch_then_models_and_the_first_load_verifies(zoo, jester_bytes):
    pytest.importorskip("torch")
    from streamtsm import load_model

    zoo.add(url_path(JESTER), jester_bytes)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", _TORCH_FREE_CLI, *args], capture_output=True, text=True,
                              env=env, timeout=120)

    bad = cli("download", JESTER, "r3d_18.kinetic400")
    assert bad.returncode == 1 and "Did you mean r3d_18.kinetics400" in bad.stderr and zoo.requests == []
    done = cli("download", JESTER)
    assert done.returncode == 0, done.stderr
    path = weight_path(get_weight(JESTER))
    assert done.stdout.startswith(f"{JESTER}: {path} ") and path.read_bytes() == jester_bytes
    assert "%" not in done.stderr  # no progress bar: stderr is a pipe
    assert "torch is not installed to check" in done.stderr  # no checksum published and no torch to load it
    record = path.with_name(path.name + ".sha256")
    assert not record.exists()

    rows = {r["name"]: r for r in json.loads(cli("models", "--json").stdout)}
    assert set(rows) == {e.name for e in list_weights()}
    assert rows[JESTER]["cached"] == str(path) and rows["r3d_18.kinetics400"]["cached"] is None
    table = cli("models", "tsm_*").stdout.splitlines()
    assert table[0].split() == ["name", "task", "classes", "input", "fps", "size", "cached", "source"]
    jester_row = next(line for line in table if line.startswith(JESTER))
    assert " 27 " in jester_row and " yes " in jester_row and "TSM official" in jester_row

    # the first load with torch checks the file by loading it strictly and records its SHA-256
    assert load_model(JESTER).card.weights_name == JESTER
    assert record.read_text().split()[0] == hashlib.sha256(jester_bytes).hexdigest() and zoo.count(url_path(JESTER)) == 1
