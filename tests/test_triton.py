"""Triton model repositories without a server: configs checked against Triton's own schema
(``tritonclient``'s ``model_config_pb2`` with protobuf's strict ``text_format``), the files
written, the refusals of bad names/numbers/paths, and the python model's sequence store run
on a real ONNX Runtime session."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from streamtsm.card import ModelCard, StateTensor
from streamtsm.contract import CARD_METADATA_KEY
from streamtsm.triton.repository import (
    PYTHON_MODEL_TEMPLATE, TritonError, TritonOptions, check_class_names, check_model_name, triton_config, write_triton_repository,
)

text_format = pytest.importorskip("google.protobuf.text_format")
model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="pip install 'tritonclient[grpc]' (dev extra)")

ASSETS = Path(__file__).resolve().parents[1] / "streamtsm" / "assets"


@pytest.fixture(scope="module")
def card() -> ModelCard:
    """The embedded model's card with a state layout like its export's (no torch needed)."""
    base = ModelCard.from_json((ASSETS / "default.card.json").read_text())
    shapes = [(1, 2, 20, 20), (1, 2, 10, 10), (1, 4, 5, 5), (1, 10, 3, 3)]
    return base.replace(state=tuple(StateTensor(f"state_in.{i}", s) for i, s in enumerate(shapes)))


def parse(text: str):
    """Triton's ModelConfig from text; fails on unknown fields, wrong types, bad enum values."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def test_the_schema_check_is_strict():
    with pytest.raises(text_format.ParseError, match="no field named"):
        parse('name: "x"\nmax_batch: 4\n')
    with pytest.raises(text_format.ParseError):
        parse('name: "x"\ninstance_group [ { kind: KIND_TPU } ]\n')
    with pytest.raises(text_format.ParseError):
        parse('name: "x"\nsequence_batching { max_sequence_idle_microseconds: -5 }\n')


@pytest.mark.parametrize("backend", ["onnxruntime", "tensorrt"])
@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "fixed"])
def test_implicit_state_config_parses_with_tritons_schema(card, backend, dynamic):
    options = TritonOptions(backend=backend, max_batch_size=4, max_candidate_sequences=16, max_sequence_idle_us=3_000_000)
    cfg = parse(triton_config("tsm", card, dynamic_batch=dynamic, options=options))
    assert cfg.name == "tsm" and cfg.platform == {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}[backend]
    assert cfg.max_batch_size == (4 if dynamic else 0)
    batch = [] if dynamic else [1]  # Triton adds the batch dimension itself when it batches
    assert [(i.name, list(i.dims), i.data_type) for i in cfg.input] == [("frame", batch + [3, 80, 80], model_config_pb2.TYPE_FP32)]
    assert [(o.name, list(o.dims), o.label_filename) for o in cfg.output] == [("logits", batch + [9], "labels.txt")]
    seq = cfg.sequence_batching
    assert seq.max_sequence_idle_microseconds == 3_000_000
    assert seq.WhichOneof("strategy_choice") == ("oldest" if dynamic else "direct")
    if dynamic:
        assert seq.oldest.max_candidate_sequences == 16 and list(seq.oldest.preferred_batch_size) == [4]
    assert len(seq.state) == len(card.state) and not seq.control_input
    for i, (entry, spec) in enumerate(zip(seq.state, card.state)):
        dims = list(spec.shape[1:]) if dynamic else list(spec.shape)
        assert (entry.input_name, entry.output_name, list(entry.dims)) == (f"state_in.{i}", f"state_out.{i}", dims)
        assert entry.initial_state[0].zero_data and list(entry.initial_state[0].dims) == dims
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, 1)]
    assert ModelCard.from_json(cfg.parameters[CARD_METADATA_KEY].string_value) == card


def test_tensorrt_accelerator_and_cpu_instances_parse(card):
    cfg = parse(triton_config("tsm", card, dynamic_batch=True, options=TritonOptions(tensorrt_accelerator=True, instance_count=2)))
    accel = cfg.optimization.execution_accelerators.gpu_execution_accelerator
    assert [(a.name, dict(a.parameters)) for a in accel] == [("tensorrt", {"precision_mode": "FP16"})]
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_GPU, 2)]
    cfg = parse(triton_config("tsm", card, dynamic_batch=True, options=TritonOptions(instance_kind="KIND_CPU", instance_count=2)))
    assert not cfg.HasField("optimization")
    assert [(g.kind, g.count) for g in cfg.instance_group] == [(model_config_pb2.ModelInstanceGroup.KIND_CPU, 2)]


def test_the_tensorrt_accelerator_on_cpu_instances_is_refused():
    """KIND_CPU with a gpu_execution_accelerator was written before: a config that contradicts itself."""
    with pytest.raises(TritonError, match="TensorRT accelerator runs on a GPU, but --cpu"):
        TritonOptions(tensorrt_accelerator=True, instance_kind="KIND_CPU")


@pytest.mark.parametrize("threads, want", [(None, None), (4, "4")])
def test_threads_reach_the_onnxruntime_backend(card, threads, want):
    """--threads was ignored by the onnxruntime backend; it is Triton's intra_op_thread_count parameter
    there (the ONNX Runtime backend's model config option), unset by default (ONNX Runtime's own)."""
    cfg = parse(triton_config("tsm", card, dynamic_batch=True, options=TritonOptions(threads=threads)))
    got = cfg.parameters["intra_op_thread_count"].string_value if "intra_op_thread_count" in cfg.parameters else None
    assert got == want and "intra_op_num_threads" not in cfg.parameters


def test_threads_are_refused_for_a_tensorrt_plan():
    with pytest.raises(TritonError, match="--threads 2 sets ONNX Runtime's threads .backends onnxruntime and python"):
        TritonOptions(backend="tensorrt", threads=2)
    assert TritonOptions(backend="tensorrt").threads is None


@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "fixed"])
def test_python_backend_config_parses_with_tritons_schema(card, dynamic):
    cfg = parse(triton_config("tsm", card, dynamic_batch=dynamic, options=TritonOptions(backend="python", max_batch_size=4, threads=2)))
    assert cfg.backend == "python" and not cfg.platform
    assert cfg.max_batch_size == 4  # >= 1 always: with 0 the python backend rejected every request after the first
    assert list(cfg.input[0].dims) == [3, 80, 80]
    seq = cfg.sequence_batching
    assert not seq.state  # the python model keeps the state itself
    kinds = {c.name: (c.control[0].kind, c.control[0].data_type) for c in seq.control_input}
    K = model_config_pb2.ModelSequenceBatching.Control
    assert kinds == {
        "START": (K.CONTROL_SEQUENCE_START, model_config_pb2.TYPE_INVALID),
        "END": (K.CONTROL_SEQUENCE_END, model_config_pb2.TYPE_INVALID),
        "CORRID": (K.CONTROL_SEQUENCE_CORRID, model_config_pb2.TYPE_UINT64),
    }
    assert list(seq.control_input[0].control[0].fp32_false_true) == [0.0, 1.0]
    assert seq.WhichOneof("strategy_choice") == "oldest"
    assert [g.kind for g in cfg.instance_group] == [model_config_pb2.ModelInstanceGroup.KIND_CPU]
    assert cfg.parameters["intra_op_num_threads"].string_value == "2"


def test_window_models_and_fixed_batches_are_refused(card):
    import dataclasses

    window = card.replace(state=(), temporal=dataclasses.replace(card.temporal, mode="window"))
    with pytest.raises(TritonError, match="window model"):
        triton_config("w", window, dynamic_batch=True)
    with pytest.raises(TritonError, match="fixed batch of 4"):
        triton_config("w", card, dynamic_batch=False, fixed_batch=4)


@pytest.mark.parametrize("name", ["../../escaped", "a/b", 'a"b', "", ".hidden", "-x", "..", "a b", "x" * 129, "é"])
def test_bad_model_names_are_refused(name):
    with pytest.raises(TritonError, match="is not allowed"):
        check_model_name(name)


@pytest.mark.parametrize("name", ["gestures", "tsm_mbv2-80.v2", "1", "A" * 128])
def test_good_model_names_pass(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("field,value", [
    ("max_batch_size", 0), ("max_batch_size", 5000), ("max_candidate_sequences", 0), ("max_sequence_idle_us", -5000),
    ("max_sequence_idle_us", 10), ("max_queue_delay_us", -1), ("instance_count", 0), ("threads", 0), ("max_batch_size", 2.5),
    ("max_batch_size", True),
])
def test_numbers_are_range_checked(field, value):
    with pytest.raises(TritonError, match=f"{field} must be an integer from"):
        TritonOptions(**{field: value})


@pytest.mark.parametrize("names", [("a", "b\nc"), ("a\r", "b"), ("a", ""), ("x\u2028y",)])
def test_class_names_with_line_breaks_are_refused(names):
    with pytest.raises(TritonError, match="line break"):
        check_class_names(names, "m.onnx")


# -- repositories from an exported model --------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_dyn(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from triton_exports import exported_default

    return exported_default(tmp_path_factory.getbasetemp() / "triton-onnx", True)


@pytest.mark.parametrize("backend", ["onnxruntime", "python"])
def test_repository_from_exported_onnx(tmp_path, onnx_dyn, backend, capsys):
    from streamtsm.cli import main

    repo = tmp_path / "repo"
    assert main(["triton", str(onnx_dyn), "-o", str(repo), "--name", "gest", "--backend", backend, "--max-candidates", "12"]) == 0
    assert f"backend {backend}" in capsys.readouterr().out
    model_dir = repo / "gest"
    assert (model_dir / "1" / "model.onnx").read_bytes() == onnx_dyn.read_bytes()
    card = ModelCard.from_json((ASSETS / "default.card.json").read_text())
    assert (model_dir / "labels.txt").read_text().split("\n")[:-1] == list(card.class_names)
    cfg = parse((model_dir / "config.pbtxt").read_text())
    assert cfg.sequence_batching.oldest.max_candidate_sequences == 12
    assert (model_dir / "1" / "model.py").exists() == (backend == "python")
    if backend == "python":
        assert (model_dir / "1" / "model.py").read_bytes() == PYTHON_MODEL_TEMPLATE.read_bytes()
    else:
        assert len(cfg.sequence_batching.state) == 10
    assert sorted(p.name for p in model_dir.rglob("*")) == sorted(
        ["1", "config.pbtxt", "labels.txt", "model.onnx"] + (["model.py"] if backend == "python" else []))  # no temp files left


@pytest.mark.runtime
def test_default_names_the_embedded_model_as_everywhere_else(tmp_path, capsys):
    """``streamtsm triton default`` said "default does not exist": it takes 'default' as every command does."""
    from streamtsm.cli import main
    from streamtsm.resolve import DEFAULT_ONNX

    repo = tmp_path / "repo"
    assert main(["triton", "default", "-o", str(repo), "--backend", "python"]) == 0
    assert "wrote" in capsys.readouterr().out
    model_dir = repo / "default"
    assert (model_dir / "1" / "model.onnx").read_bytes() == DEFAULT_ONNX.read_bytes()
    cfg = parse((model_dir / "config.pbtxt").read_text())
    assert cfg.name == "default" and cfg.backend == "python" and cfg.max_batch_size == 8  # the embedded export batches
    assert main(["triton", "no_such_model", "-o", str(repo)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no_such_model does not exist" in err and "'default', or an online weight name" in err, err


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path, onnx_dyn, capsys):
    """Issue 14 rows 9 and 10: one line each, nothing written, the input untouched."""
    from streamtsm.cli import main

    afile = tmp_path / "afile"
    afile.write_text("keep me")
    existing = tmp_path / "repo" / "x" / "1" / "model.onnx"
    existing.parent.mkdir(parents=True)
    existing.write_bytes(onnx_dyn.read_bytes())
    cases = [
        (["--name", "../../escaped"], "model name '../../escaped' is not allowed"),
        (["--name", 'a"b'], """model name 'a"b' is not allowed"""),
        (["--idle-ms", "-5"], "--idle-ms -5 is out of range: use a value from 1 to 86400000"),
        (["--max-batch", "0"], "--max-batch 0 is out of range: use a value from 1 to 1024"),
        (["--instances", "100"], "--instances 100 is out of range: use a value from 1 to 64"),
        (["-o", str(afile)], f"repository {afile} is a file"),
        (["-o", str(afile / "repo")], f"is inside {afile}, which is a file"),
        (["--backend", "tensorrt"], "the tensorrt backend serves a .plan"),
        (["--backend", "python", "--trt-accelerator"], "TensorRT accelerator is an option of the onnxruntime backend only"),
        (["--cpu", "--trt-accelerator"], "the TensorRT accelerator runs on a GPU, but --cpu puts the instances on the CPU"),
        (["--threads", "0"], "--threads 0 is out of range: use a value from 1 to 256"),
    ]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for extra, message in cases:
        args = ["triton", str(onnx_dyn), "-o", str(tmp_path / "out" / "repo"), *extra]
        if "-o" in extra:
            args = ["triton", str(onnx_dyn), *extra]
        assert main(args) == 1, extra
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (extra, err)
    # /proc passes the permission check as root, and mkdir fails there ("[Errno 2] No such file or directory" before)
    assert main(["triton", str(onnx_dyn), "-o", "/proc/streamtsm-repo"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith("give -o a directory you can write to"), err
    assert ("writing /proc/streamtsm-repo failed (/proc exists but takes no new entries" in err if os.geteuid() == 0
            else "cannot write into /proc" in err), err
    # the model file inside the repository it would be written to (SameFileError before)
    assert main(["triton", str(existing), "-o", str(tmp_path / "repo"), "--name", "x"]) == 1
    assert "is the model file this would write" in capsys.readouterr().err
    assert existing.read_bytes() == onnx_dyn.read_bytes() and afile.read_text() == "keep me"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path.parent.parent / "escaped").exists()


def test_an_upper_case_suffix_is_the_same_file_type(tmp_path, onnx_dyn, capsys):
    """`triton G.ONNX` said "expected an exported .onnx or a TensorRT .plan" where `info` and
    `demo --model` take the file."""
    from streamtsm.cli import main
    from streamtsm.triton.repository import default_backend

    upper = tmp_path / "G.ONNX"
    upper.write_bytes(onnx_dyn.read_bytes())
    assert main(["triton", str(upper), "-o", str(tmp_path / "repo"), "--backend", "python"]) == 0
    assert "backend python" in capsys.readouterr().out
    assert (tmp_path / "repo" / "G" / "1" / "model.onnx").read_bytes() == onnx_dyn.read_bytes()
    assert main(["triton", str(upper), "-o", str(tmp_path / "repo2")]) == 0  # the default backend for an ONNX file
    assert "backend onnxruntime" in capsys.readouterr().out
    assert default_backend("engines/G.PLAN") == "tensorrt" and default_backend("G.Onnx") == "onnxruntime"
    assert main(["triton", str(upper), "-o", str(tmp_path / "repo3"), "--backend", "tensorrt"]) == 1
    assert "is an ONNX file: the tensorrt backend serves a .plan" in capsys.readouterr().err


def test_card_with_a_multiline_class_name_is_refused(tmp_path, onnx_dyn):
    onnx = pytest.importorskip("onnx")
    from streamtsm.backends.base import BackendError

    model = onnx.load(str(onnx_dyn))
    entry = next(p for p in model.metadata_props if p.key == CARD_METADATA_KEY)
    card = json.loads(entry.value)
    card["class_names"][3] = "swipe\ndown"
    entry.value = json.dumps(card)
    bad = tmp_path / "bad.onnx"
    onnx.save(model, str(bad))
    with pytest.raises((TritonError, BackendError), match="line break|class name"):
        write_triton_repository(bad, tmp_path / "repo", options=TritonOptions(backend="python"))
    assert not (tmp_path / "repo" / "bad" / "labels.txt").exists()


# -- the python model's sequence store, on a real ONNX Runtime session ------------------------------------


@pytest.fixture
def python_model(monkeypatch):
    """The template module, imported with a stand-in for the server-provided utils module
    (only SequenceStates and OnnxStepper are used here; they do not touch it)."""
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    spec = importlib.util.spec_from_file_location("streamtsm_triton_model", PYTHON_MODEL_TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_template_imports_only_numpy_onnxruntime_and_the_server_utils():
    import ast

    tree = ast.parse(PYTHON_MODEL_TEMPLATE.read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported == {"json", "os", "time", "numpy", "onnxruntime", "triton_python_backend_utils"}


def test_sequence_store_start_end_and_idle_eviction(python_model):
    now = [100.0]
    store = python_model.SequenceStates(lambda: [np.zeros((1, 2))], idle_s=5.0, clock=lambda: now[0])
    assert store.get(7, start=False) is None  # unknown without START: the model answers with an error
    state = store.get(7, start=True)
    assert np.array_equal(state[0], np.zeros((1, 2)))
    store.put(7, [np.ones((1, 2))], end=False)
    store.put(8, [np.full((1, 2), 8.0)], end=False)
    assert store.get(7, start=False)[0][0, 0] == 1.0
    assert store.get(7, start=True)[0][0, 0] == 0.0  # START again on the same id: zeros
    store.put(8, [np.full((1, 2), 9.0)], end=True)
    assert store.get(8, start=False) is None and len(store) == 1
    now[0] += 4.9
    assert store.evict_idle() == 0
    store.put(9, [np.zeros((1, 2))], end=False)
    now[0] += 0.2  # 7 idle 5.1 s, 9 idle 0.2 s
    assert store.evict_idle() == 1 and store.get(7, start=False) is None and store.get(9, start=False) is not None


def test_stepper_batches_sequences_like_separate_runs(python_model, onnx_dyn):
    import onnxruntime as ort

    stepper = python_model.OnnxStepper(str(onnx_dyn), threads=1)
    assert stepper.dynamic and len(stepper.state_names) == 10
    rng = np.random.default_rng(0)
    states = [stepper.zero_state() for _ in range(3)]
    for _ in range(3):
        frames = rng.standard_normal((3, 3, 80, 80)).astype(np.float32)
        logits, new_states = stepper.run(frames, states)
        session = ort.InferenceSession(str(onnx_dyn), providers=["CPUExecutionProvider"])
        for k in range(3):
            feeds = {"frame": frames[k : k + 1], **dict(zip(stepper.state_names, states[k]))}
            ref = session.run(stepper.output_names, feeds)
            np.testing.assert_allclose(logits[k : k + 1], ref[0], atol=1e-5)
            for got, want in zip(new_states[k], ref[1:]):
                np.testing.assert_allclose(got, want, atol=1e-5)
        states = new_states


# -- the server setup's refusals (no network, no server) ------------------------------------------------


def test_server_install_says_which_command_to_run(tmp_path):
    from streamtsm.triton.server import SETUP_FILE, ServerInstall, TritonServerError

    with pytest.raises(TritonServerError, match=f"run `streamtsm triton-setup {tmp_path}`"):
        ServerInstall.load(tmp_path)
    launcher = tmp_path / "tritonserver"
    launcher.write_text("#!/bin/sh\n")
    launcher.chmod(0o755)
    record = {"server_version": "2.51.0", "python_version": "3.11.7", "numpy_version": "1.26.4", "verified": False,
              "error": "self-check: tritonserver did not become ready"}
    (tmp_path / SETUP_FILE).write_text(json.dumps(record))
    with pytest.raises(TritonServerError, match="failed its self-check .self-check: tritonserver did not become ready"):
        ServerInstall.load(tmp_path)
    assert not ServerInstall.load(tmp_path, require_verified=False).verified
    (tmp_path / SETUP_FILE).write_text("{not json")
    with pytest.raises(TritonServerError, match="unreadable"):
        ServerInstall.load(tmp_path)


def test_setup_refuses_a_file_and_a_missing_interpreter(tmp_path, capsys):
    from streamtsm.cli import main

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["triton-setup", str(afile / "server")]) == 1
    assert "is a file" in capsys.readouterr().err
    assert main(["triton-setup", str(tmp_path / "srv"), "--python", str(tmp_path / "no-python")]) == 1
    assert "no such interpreter" in capsys.readouterr().err
    assert afile.read_text() == "x"


@pytest.mark.parametrize("extra, message", [
    (["--timeout", "0"], "--timeout 0 is out of range: use a value above 0 and at most 3600 (seconds)"),
    (["--timeout", "nan"], "--timeout nan is out of range"),
    (["--sequence-id", "0"], "--sequence-id 0 is out of range: use a value from 1 to 18446744073709551615"),
    (["--sequence-id", str(2**64)], f"--sequence-id {2**64} is out of range"),
    (["--max-frames", "0"], "--max-frames 0 is out of range: use a value of at least 1"),
])
def test_client_refuses_bad_numbers_before_it_connects(extra, message, capsys):
    """No server runs on port 1: a number the client checked first is the only way to this message."""
    from streamtsm.cli import main

    assert main(["triton-client", "synthetic", "--url", "127.0.0.1:1", "--model", "m", *extra]) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("url, message", [
    ("http://10.0.0.5:8000", ("--url http://10.0.0.5:8000: the client speaks gRPC, not HTTP; give HOST:PORT of the server's "
                              "gRPC endpoint (tritonserver --grpc-port, default 8001), e.g. --url 10.0.0.5:8001")),
    ("https://triton.example", "the client speaks gRPC, not HTTP"),
    ("tcp://10.0.0.5:8001", "--url tcp://10.0.0.5:8001: unknown scheme 'tcp'; give HOST:PORT"),
    ("10.0.0.5", "--url 10.0.0.5: give HOST:PORT of the server's gRPC endpoint (tritonserver --grpc-port, default 8001)"),
    ("10.0.0.5:99999", "--url 10.0.0.5:99999: give HOST:PORT"),
    ("10.0.0.5:8001/v2", "--url 10.0.0.5:8001/v2: give HOST:PORT"),
])
def test_client_refuses_a_url_that_is_not_host_port(url, message, capsys):
    """`--url http://host:port` gave gRPC's "Misformatted domain name"; nothing is contacted here."""
    from streamtsm.cli import main

    assert main(["triton-client", "synthetic", "--url", url, "--max-frames", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_grpc_scheme_and_ipv6_addresses_are_taken():
    from streamtsm.backends.triton_client import grpc_address

    assert grpc_address("grpc://10.0.0.5:8001") == "10.0.0.5:8001"
    assert grpc_address(" [::1]:8001 ") == "[::1]:8001" and grpc_address("triton-0.cams:8001") == "triton-0.cams:8001"


def test_no_server_at_the_url_names_the_grpc_port(capsys):
    from streamtsm.cli import main

    assert main(["triton-client", "synthetic", "--url", "127.0.0.1:1", "--max-frames", "1", "--timeout", "5"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no Triton server answers at 127.0.0.1:1 (gRPC)") and err.endswith(
        "is tritonserver running there? --url takes the gRPC port (tritonserver --grpc-port, default 8001), not the HTTP "
        "port (default 8000)"), err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("value", ["-1", "nan", "100000"])
def test_client_refuses_a_bad_reconnect_window(value, capsys):
    from streamtsm.cli import main

    assert main(["triton-client", "synthetic", "--url", "127.0.0.1:1", "--reconnect-s", value]) == 1
    assert f"--reconnect-s {value} is out of range: use a value from 0 to 86400 (seconds)" in capsys.readouterr().err


@pytest.mark.runtime
@pytest.mark.parametrize("models, answer", [
    ([{"name": "gest", "version": "1", "state": "READY"}], "gest"),
    ([{"name": "gest", "state": "READY"}, {"name": "old", "state": "UNAVAILABLE", "reason": "unloaded"}], "gest"),
    ([{"name": "b", "state": "READY"}, {"name": "a", "state": "READY"}], "serves 2 models (a, b): name one with --model"),
    ([{"name": "old", "state": "UNAVAILABLE"}], "serves no ready model"),
    ([], "serves no ready model"),
])
def test_a_client_without_a_model_name_takes_the_only_ready_one(models, answer):
    from streamtsm.backends.base import BackendError
    from streamtsm.backends.triton_client import only_ready_model

    index = {"models": models} if models else {}
    if answer.startswith("serves"):
        with pytest.raises(BackendError, match=re.escape(answer)):
            only_ready_model(index, "127.0.0.1:8001")
    else:
        assert only_ready_model(index, "127.0.0.1:8001") == answer


def test_the_servers_ports_are_three_different_ones():
    """Picked one at a time, the kernel handed out one port twice and tritonserver refused to start."""
    from streamtsm.triton.server import free_ports

    for _ in range(50):
        ports = free_ports(3)
        assert len(set(ports)) == 3, ports
