"""A real Triton server on 127.0.0.1 (the bundled CPU ``tritonserver`` with the python backend, as
set up by ``streamtsm triton-setup``) serving a repository written by ``streamtsm triton --backend
python``: sequences streamed through ``tritonclient.grpc`` must give the logits of the same ONNX
stepped locally with ONNX Runtime, and the client command the predictions of a local Recognizer.

Skips, naming the setup command, where the server was not set up or failed its self-check here.
Every wait has a deadline; the server is stopped in a finally (the fixture's context manager).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from streamtsm.triton.repository import TritonOptions, write_triton_repository
from streamtsm.triton.server import LocalServer, ServerInstall, TritonServerError

grpcclient = pytest.importorskip("tritonclient.grpc", reason="pip install 'tritonclient[grpc]' (dev extra)")
pytest.importorskip("torch")  # to export the model under test
ort = pytest.importorskip("onnxruntime")

from tritonclient.utils import InferenceServerException  # noqa: E402

IDLE_S = 1.0  # the idle-time model's max_sequence_idle


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory) -> Path:
    from triton_exports import exported_default

    return exported_default(tmp_path_factory.getbasetemp() / "triton-onnx", True)


@pytest.fixture(scope="module")
def install() -> ServerInstall:
    try:
        return ServerInstall.load()
    except TritonServerError as exc:
        pytest.skip(f"no local Triton server: {exc}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, install, onnx_path):  # install first: skip before the export
    repo = tmp_path_factory.mktemp("triton-repo")
    write_triton_repository(onnx_path, repo, name="gest", options=TritonOptions(backend="python", max_batch_size=4))
    write_triton_repository(onnx_path, repo, name="gest_idle", options=TritonOptions(
        backend="python", max_batch_size=4, max_sequence_idle_us=int(IDLE_S * 1e6)))
    t0 = time.monotonic()
    with LocalServer(install, repo, repo.parent / "server.log", ready_timeout_s=90) as running:
        print(f"tritonserver {install.server_version} ready in {running.startup_s:.2f} s "
              f"(fixture {time.monotonic() - t0:.2f} s) at {running.grpc_url}")
        yield running


@pytest.fixture
def own_server(tmp_path, install, onnx_path):
    """A server of this test's own, which the test may kill and restart (the module's server stays up)."""
    repo = tmp_path / "repo"
    write_triton_repository(onnx_path, repo, name="gest", options=TritonOptions(backend="python", max_batch_size=4))
    running = LocalServer(install, repo, tmp_path / "server.log", ready_timeout_s=90)
    try:
        yield running.start()
    finally:
        running.stop()


@pytest.fixture
def client(server):
    c = grpcclient.InferenceServerClient(server.grpc_url)
    yield c
    c.close()


class LocalReference:
    """The same ONNX stepped here with ONNX Runtime, one state per sequence id."""

    def __init__(self, path: Path) -> None:
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.state_inputs = [i for i in self.session.get_inputs() if i.name.startswith("state_in.")]
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.states: dict[int, list[np.ndarray]] = {}

    def step(self, seq: int, frame: np.ndarray, start: bool) -> np.ndarray:
        if start:
            self.states[seq] = [np.zeros((1, *i.shape[1:]), np.float32) for i in self.state_inputs]
        feeds = {"frame": frame, **{i.name: s for i, s in zip(self.state_inputs, self.states[seq])}}
        logits, *self.states[seq] = self.session.run(self.outputs, feeds)
        return logits


def infer(client, model: str, frame: np.ndarray, seq: int, start: bool = False, end: bool = False) -> np.ndarray:
    tensor = grpcclient.InferInput("frame", list(frame.shape), "FP32")
    tensor.set_data_from_numpy(frame)
    result = client.infer(model, [tensor], sequence_id=seq, sequence_start=start, sequence_end=end, client_timeout=30)
    return result.as_numpy("logits")


def test_interleaved_sequences_match_local_onnxruntime(server, client, onnx_path):
    """4 sequences, sent by 4 threads at once (so the server batches them): one plain, one that
    starts again (START on the same id), one that ends (END; a frame after it is refused), one
    that joins late. Every logit must equal the local ONNX Runtime step on the same frames."""
    rng = np.random.default_rng(7)
    plans = {  # sequence id -> list of (start, end) flags, one per frame
        11: [(k == 0, False) for k in range(8)],
        12: [(k in (0, 4), False) for k in range(9)],
        13: [(k == 0, k == 5) for k in range(6)],
        2**40 + 5: [(k == 0, False) for k in range(5)],
    }
    frames = {seq: rng.standard_normal((len(p), 1, 3, 80, 80)).astype(np.float32) for seq, p in plans.items()}
    got: dict[int, list[np.ndarray]] = {seq: [] for seq in plans}
    errors: list[BaseException] = []

    def stream(seq: int) -> None:
        own = grpcclient.InferenceServerClient(server.grpc_url)
        try:
            if seq == 2**40 + 5:
                time.sleep(0.05)  # joins while the others are running
            for k, (start, end) in enumerate(plans[seq]):
                got[seq].append(infer(own, "gest", frames[seq][k], seq, start, end))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=stream, args=(seq,), daemon=True) for seq in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a sequence did not finish within 60 s"
    assert not errors, errors
    reference = LocalReference(onnx_path)
    for seq, plan in plans.items():
        assert len(got[seq]) == len(plan)
        for k, (start, _end) in enumerate(plan):
            want = reference.step(seq, frames[seq][k], start)
            assert got[seq][k].shape == (1, 9)
            np.testing.assert_allclose(got[seq][k], want, atol=1e-4, err_msg=f"sequence {seq}, frame {k}")
    # the restart really reset: frame 4 of sequence 12 differs from what the carried state gives
    carried = LocalReference(onnx_path)
    for k in range(5):
        carried_logits = carried.step(12, frames[12][k], k == 0)
    assert np.abs(carried_logits - got[12][4]).max() > 1e-3
    with pytest.raises(InferenceServerException, match="START"):
        infer(client, "gest", frames[13][0], 13)  # sequence 13 ended
    stats = client.get_inference_statistics("gest", as_json=True)["model_stats"][0]
    print(f"gest: {stats['inference_count']} inferences in {stats['execution_count']} executions")


def test_idle_sequence_is_evicted_and_the_client_engine_says_so(server, client, onnx_path):
    """The model drops a sequence idle past max_sequence_idle (Triton never tells it); the client
    engine, refused for the lost state, raises SequenceLost (the caller's state untouched), and a
    new state from init_state() starts the sequence again from that frame."""
    from streamtsm.backends.triton_client import SequenceLost, TritonSequenceEngine

    rng = np.random.default_rng(3)
    frames = rng.standard_normal((4, 1, 3, 80, 80)).astype(np.float32)
    engine = TritonSequenceEngine(server.grpc_url, "gest_idle", sequence_id=21, timeout_s=30)
    try:
        state = engine.init_state()
        for k in range(2):
            _, state = engine.step(frames[k], state)
        time.sleep(IDLE_S * 1.6)
        infer(client, "gest_idle", frames[0], 22, start=True)  # an execution, which evicts sequence 21
        deadline = time.monotonic() + 15
        while "evicted 1 idle sequence(s)" not in server.log_path.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"no eviction logged:\n{server.log_tail()}"
            time.sleep(0.1)
        with pytest.raises(SequenceLost, match="lost sequence 21: .*START"):
            engine.step(frames[2], state)
        logits, state = engine.step(frames[2], engine.init_state())
        fresh = LocalReference(onnx_path)
        np.testing.assert_allclose(logits, fresh.step(21, frames[2], True), atol=1e-4)
        logits, state = engine.step(frames[3], state)
        np.testing.assert_allclose(logits, fresh.step(21, frames[3], False), atol=1e-4)
    finally:
        engine.close()
    with pytest.raises(InferenceServerException, match="START"):
        infer(client, "gest_idle", frames[0], 21)  # close() ended it


def _evict(server, client, model: str, other_sequence: int) -> None:
    """After the idle time: an execution of another sequence, which evicts the idle ones."""
    time.sleep(IDLE_S * 1.6)
    before = server.log_path.read_text(errors="replace").count("evicted")
    infer(client, model, np.zeros((1, 3, 80, 80), np.float32), other_sequence, start=True, end=True)
    deadline = time.monotonic() + 15
    while server.log_path.read_text(errors="replace").count("evicted") == before:
        assert time.monotonic() < deadline, f"no eviction logged:\n{server.log_tail()}"
        time.sleep(0.1)


def test_a_lost_sequence_resets_the_recognizer_too(server, client, onnx_path):
    """The README said a lost sequence is "a new sequence" for the recognizer, but only the
    server's shift state started again: smoothing went on and no Prediction said so. Now the
    frame after the loss is the first of a new stream (reset RECONNECT), and every prediction
    equals a local Recognizer reset at the same frame. A plain Recognizer does it (the session
    restarts the stream on StateLost); TritonStream counts it."""
    from streamtsm import Recognizer
    from streamtsm.backends.triton_client import TritonSequenceEngine
    from streamtsm.sampling import Reset, ResetReason
    from streamtsm.sources import open_source
    from streamtsm.triton.stream import TritonStream

    source = open_source("synthetic:5", realtime=False)
    frames = [source.read() for _ in range(30)]
    source.close()
    engine = TritonSequenceEngine(server.grpc_url, "gest_idle", sequence_id=23, timeout_s=30)
    remote, local = Recognizer(engine), Recognizer(str(onnx_path), "onnxruntime")
    stream = TritonStream(remote, engine)
    got, want = [], []
    try:
        for k, frame in enumerate(frames):
            if k == 12:  # the sequence goes idle on the server and is evicted; the stream's clock goes on
                _evict(server, client, "gest_idle", 24)
                local.session.reset(Reset(ResetReason.RECONNECT, "as the remote side"))
            got.append(remote.push(frame.image, frame.media_time_s, frame_index=frame.index))
            want.append(local.push(frame.image, frame.media_time_s, frame_index=frame.index))
        assert engine.sequences_lost == stream.restarts == 1 and stream.dropped == 0
        assert [g is None for g in got] == [w is None for w in want]
        pairs = [(g, w) for g, w in zip(got, want) if g is not None]
        assert len(pairs) == 10
        resets = [(g.frame_index, g.reset.reason) for g, _ in pairs if g.reset is not None]
        assert resets == [(0, ResetReason.STREAM_START), (12, ResetReason.RECONNECT)], resets
        assert "lost sequence 23" in next(g for g, _ in pairs if g.frame_index == 12).reset.message
        for g, w in pairs:
            assert (g.frame_index, g.label, g.current) == (w.frame_index, w.label, w.current)
            np.testing.assert_allclose(g.probabilities, w.probabilities, atol=1e-4, err_msg=f"frame {g.frame_index}")
        assert remote.postprocessor.smoother.steps_seen == 6  # frames 12, 15, ..., 27: smoothing started again at 12
        assert remote.reset_counts[ResetReason.RECONNECT] == 1
    finally:
        remote.close()
        local.close()
        engine.close()


def test_client_command_prints_the_predictions_of_a_local_recognizer(server, onnx_path, capsys):
    from streamtsm import Recognizer
    from streamtsm.sources import open_source
    from streamtsm.cli import main

    args = ["triton-client", "synthetic:5", "--url", server.grpc_url, "--model", "gest", "--sequence-id", "31",
            "--max-frames", "45", "--no-realtime"]
    assert main(args) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    remote = [d for d in lines if d["type"] == "prediction"]
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["frames"] == 45 and summary["server_restarts"] == 0
    assert summary["predictions"] == len(remote) > 10 and {d["sequence_id"] for d in remote} == {31}
    with Recognizer(str(onnx_path), "onnxruntime") as local:
        pairs = list(local.iter_frames(open_source("synthetic:5", realtime=False), max_frames=45))
    expected = [p.to_dict() for _, p in pairs if p is not None]
    assert len(expected) == len(remote)
    for r, e in zip(remote, expected):
        assert (r["frame_index"], r["label"], r["current"]) == (e["frame_index"], e["label"], e["current"])
        assert [lab for lab, _ in r["top_k"]] == [lab for lab, _ in e["top_k"]]
        np.testing.assert_allclose([s for _, s in r["top_k"]], [s for _, s in e["top_k"]], atol=1e-4)
        assert [(x["kind"], x["label"]) for x in r["events"]] == [(x["kind"], x["label"]) for x in e["events"]]
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        with pytest.raises(InferenceServerException, match="START"):
            infer(client, "gest", np.zeros((1, 3, 80, 80), np.float32), 31)  # the client ended its sequence
    finally:
        client.close()


def test_client_names_what_is_wrong(server, capsys):
    from streamtsm.cli import main

    assert main(["triton-client", "synthetic", "--url", server.grpc_url, "--model", "nope", "--max-frames", "2"]) == 1
    err = capsys.readouterr().err
    assert "model 'nope' is not ready" in err and "gest" in err


def test_client_without_a_model_name_needs_one_when_the_server_has_several(server, capsys):
    """The real repository index (two ready models here) is what the default reads."""
    from streamtsm.cli import main

    assert main(["triton-client", "synthetic", "--url", server.grpc_url, "--max-frames", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("serves 2 models (gest, gest_idle): name one with --model"), err


def test_setup_again_keeps_everything_and_checks_the_server(install, capsys):
    from streamtsm.cli import main

    assert main(["triton-setup", str(install.root)]) == 0
    out = capsys.readouterr().out
    for step in ("venv      kept", "packages  kept", "server    kept", "stub      kept", "launcher  kept"):
        assert step in out, out
    assert "the python model answered correctly" in out
    assert ServerInstall.load(install.root).verified


# -- the client across a server that goes away ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def start_client(url: str, *extra: str) -> subprocess.Popen:
    """`streamtsm triton-client synthetic:5` in real time (a live source: frames keep coming)."""
    return subprocess.Popen(
        [sys.executable, "-m", "streamtsm.cli", "triton-client", "synthetic:5", "--url", url, "--model", "gest",
         "--sequence-id", "51", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )


@contextlib.contextmanager
def running_client(url: str, *extra: str):
    """A started client and line readers of its stdout and stderr; killed at the end if still running."""
    from procs import LineReader

    proc = start_client(url, *extra)
    try:
        yield proc, LineReader(proc.stdout), LineReader(proc.stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def read_predictions(out, count: int, timeout: float = 60.0) -> list[dict]:
    lines = []
    while len(lines) < count:
        line = out.readline(timeout)
        assert line, "the client ended early"
        d = json.loads(line)
        if d["type"] == "prediction":
            lines.append(d)
    return lines


def test_client_waits_for_a_killed_server_and_starts_a_new_sequence(own_server):
    """The client ended at the first frame sent while the server was down ("error: ... UNAVAILABLE
    ... Connection refused", no summary). Now it waits: the server is SIGKILLed while the client
    streams, stays down for a while (frames keep coming and are dropped), comes back on the same
    ports, and the client goes on with a new sequence whose first Prediction says why."""
    from procs import finish

    with running_client(own_server.grpc_url, "--reconnect-s", "90") as (proc, out, err):
        before = read_predictions(out, 5)
        own_server.kill()
        time.sleep(1.5)  # ~45 camera frames arrive while no server answers
        own_server.restart()
        after = []
        while not any(d["reset"] and d["reset"]["reason"] == "reconnect" for d in after):
            after += read_predictions(out, 1, timeout=90)
        after += read_predictions(out, 3)
        proc.send_signal(signal.SIGINT)
        rest = [json.loads(line) for line in out.rest(30).splitlines()]
        finish(proc, 30)
    errors = err.rest(10)
    summary = rest[-1]
    assert proc.returncode == 128 + signal.SIGINT and summary["type"] == "summary", (proc.returncode, rest[-1:], errors)
    assert summary["server_restarts"] == 1 and summary["error"] is None, summary
    assert summary["frames_dropped_server_down"] > 10 and summary["server_down_s"] >= 1.0, summary
    print(f"down {summary['server_down_s']} s, {summary['frames_dropped_server_down']} frames dropped, "
          f"frame {before[-1]['frame_index']} -> {after[0]['frame_index']}")
    restart = next(d for d in after if d["reset"])
    assert restart["reset"]["reason"] == "reconnect" and "answers again after" in restart["reset"]["message"]
    assert [d for d in after if d["reset"]] == [restart]  # one new sequence
    indices = [d["frame_index"] for d in before + after]
    assert indices == sorted(indices) and {d["sequence_id"] for d in before + after} == {51}
    assert restart["frame_index"] - before[-1]["frame_index"] > 30  # the frames of the downtime were dropped
    assert "Traceback" not in errors and "waiting up to 90 s for the server" in errors, errors


def test_client_gives_up_after_reconnect_s_with_one_line_and_the_summary(own_server):
    from procs import finish

    with running_client(own_server.grpc_url, "--reconnect-s", "1.5") as (proc, out, err):
        read_predictions(out, 3)
        own_server.kill()
        rest = [json.loads(line) for line in out.rest(60).splitlines()]
        finish(proc, 30)
    errors = [line for line in err.rest(10).splitlines() if line.startswith("error:")]
    assert proc.returncode == 1
    assert len(errors) == 1 and errors[0].startswith(
        f"error: the Triton server at {own_server.grpc_url} did not answer for 1.5 s (--reconnect-s; last: "), errors
    assert errors[0].endswith("Check the server, then start the client again (or give --reconnect-s more time)")
    summary = rest[-1]
    assert summary["type"] == "summary" and summary["error"] == errors[0][len("error: "):]
    assert summary["frames_dropped_server_down"] > 0 and summary["server_restarts"] == 0
    assert summary["server_down_s"] >= 1.5  # it waited its window (no upper bound: the box is shared)


def test_client_pointed_at_the_http_port_is_told_to_use_the_grpc_port(server, capsys):
    from streamtsm.cli import main

    assert main(["triton-client", "synthetic", "--url", server.http_url, "--model", "gest", "--max-frames", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: no Triton server answers at {server.http_url} (gRPC)"), err
    assert err.endswith(f"{server.http_url} answers HTTP, so it is the server's HTTP port: the client needs its gRPC port "
                        "(tritonserver --grpc-port, default 8001)"), err
    assert main(["triton-client", "synthetic", "--url", f"grpc://{server.grpc_url}", "--model", "gest", "--max-frames", "4",
                 "--no-realtime"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["url"] == server.grpc_url and summary["frames"] == 4
