"""Smoke tests: the benchmark scripts run end to end on tiny inputs and write what they promise.

The real measurements are not part of the suite (minutes of CPU); these keep the scripts
from rotting: argument parsing, the interleaved timing, the Recognizer end-to-end loop on a
real capture thread, the JSON schema, and real PNG files.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the benchmarks build registry models and count FLOPs with torch

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _script(name: str):
    """Import a benchmarks/ script as a module (benchmarks/ is not a package)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_script_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the script look their module up here
    spec.loader.exec_module(module)
    return module


def _assert_png(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000, f"{path} is not a real PNG ({len(data)} bytes)"


@pytest.fixture(scope="module")
def latency_run(tmp_path_factory):
    """``streamtsm bench --quick`` as a user runs it in a checkout: no --out, from the checkout's folder."""
    from streamtsm.cli import main

    checkout = tmp_path_factory.mktemp("checkout")
    (checkout / "benchmarks" / "results").mkdir(parents=True)
    argv = ["bench", "--quick", "--models", "tsm_mobilenetv2,r2plus1d_18", "--backends", "torch", "--strides", "4",
            "--e2e-seconds", "1", "--no-progress"]
    stdout = io.StringIO()
    cwd = os.getcwd()
    os.chdir(checkout)
    try:
        with contextlib.redirect_stdout(stdout):
            assert main(argv) == 0
    finally:
        os.chdir(cwd)
    out = checkout / "runs" / "bench"
    return out, json.loads((out / "latency.json").read_text()), stdout.getvalue(), checkout


def test_quick_bench_writes_to_runs_bench_says_so_and_leaves_committed_results_alone(latency_run):
    out, _, printed, checkout = latency_run
    assert list((checkout / "benchmarks" / "results").iterdir()) == []
    last = printed.strip().splitlines()[-1]
    assert last.startswith("results written to runs/bench/") and "latency.json" in last and "latency_per_frame.png" in last
    assert {p.name for p in out.iterdir()} == {"latency.json", "latency.md", "latency_per_frame.png", "end_to_end.png"}


@pytest.mark.parametrize("script", ["latency", "roofline", "contention", "shutdown"])
def test_quick_run_refuses_to_write_into_benchmarks_results(script, tmp_path, capsys):
    committed = tmp_path / "benchmarks" / "results"
    with pytest.raises(SystemExit) as exc:
        _script(script).main(["--quick", "--out", str(committed)])
    assert exc.value.code == 2 and not committed.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert "--quick" in err[-1] and "benchmarks/results" in err[-1] and "Traceback" not in "".join(err)


def test_cli_bench_refuses_quick_into_benchmarks_results_with_one_line(tmp_path, capsys):
    from streamtsm.cli import main

    committed = tmp_path / "benchmarks" / "results"
    assert main(["bench", "--quick", "--out", str(committed)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --quick") and "runs/bench" in err[0]
    assert not committed.exists()


def test_committed_results_folder_is_recognised_wherever_the_checkout_is(tmp_path):
    from streamtsm.bench.results import is_committed_results, output_dir

    assert is_committed_results(ROOT / "benchmarks" / "results")
    assert is_committed_results(Path("benchmarks/results")) and is_committed_results(tmp_path / "benchmarks" / "results" / "x")
    assert not is_committed_results(Path("runs/bench")) and not is_committed_results(tmp_path / "benchmarks")
    assert output_dir(None, quick=True) == Path("runs/bench")
    assert output_dir(ROOT / "benchmarks" / "results", quick=False) == ROOT / "benchmarks" / "results"  # a full run may


def test_latency_json_fields(latency_run):
    out, payload, _, _ = latency_run
    assert {"command", "environment", "options", "results", "ratios", "end_to_end", "memory_method"} <= set(payload)
    env = payload["environment"]
    for key in ("processor", "cpu_count", "torch", "torch_threads", "precision", "load_average_1min"):
        assert key in env, key
    by_model = {r["model"]: r for r in payload["results"]}
    assert set(by_model) == {"tsm_mobilenetv2", "r2plus1d_18"}
    online, window = by_model["tsm_mobilenetv2"], by_model["r2plus1d_18"]
    assert online["mode"] == "online" and window["mode"] == "window"
    assert window["input_shape"] == [1, 3, 4, 32, 32] and online["input_shape"] == [1, 3, 64, 64]
    for r in (online, window):
        t = r["per_prediction"]
        assert t["n"] >= 1 and 0 < t["median_ms"] <= t["p99_ms"] * (1 + 1e-9)
        assert r["gflops"] == pytest.approx(2 * r["gmacs"]) and r["gflops"] > 0 and r["params_m"] > 1
    # amortisation: window cost divided by stride; online flat
    (w,) = window["per_frame"]
    assert w["stride"] == 4 and w["median_ms"] == pytest.approx(window["per_prediction"]["median_ms"] / 4)
    (o,) = online["per_frame"]
    assert o["median_ms"] == online["per_prediction"]["median_ms"]
    ratio = payload["ratios"]["torch"]
    assert ratio["window_over_online"] == pytest.approx(window["per_prediction"]["median_ms"] / online["per_prediction"]["median_ms"])
    # end to end went through a real capture thread and produced predictions
    e2e = payload["end_to_end"]
    assert {(r["model"], r["stride"]) for r in e2e} == {("tsm_mobilenetv2", None), ("r2plus1d_18", 4)}
    online_e2e = next(r for r in e2e if r["model"] == "tsm_mobilenetv2")
    assert online_e2e["frames_captured"] > 5 and online_e2e["predictions"] >= 1
    assert online_e2e["end_to_end"]["median_ms"] > 0
    assert (out / "latency.md").read_text().startswith("# Latency")


def test_latency_pngs(latency_run):
    out, *_ = latency_run
    _assert_png(out / "latency_per_frame.png")
    _assert_png(out / "end_to_end.png")


def test_plots_script_redraws_from_json(latency_run, tmp_path):
    out, *_ = latency_run
    assert _script("plots").main([str(out / "latency.json"), "--out", str(tmp_path)]) == 0
    _assert_png(tmp_path / "latency_per_frame.png")
    _assert_png(tmp_path / "end_to_end.png")


def test_plots_script_rejects_other_json(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(SystemExit):
        _script("plots").main([str(bad)])


def test_roofline_quick(tmp_path):
    argv = ["--quick", "--models", "tsm_mobilenetv2", "--backends", "torch", "--out", str(tmp_path)]
    assert _script("roofline").main(argv) == 0
    payload = json.loads((tmp_path / "roofline.json").read_text())
    gemm = payload["gemm"]
    assert gemm["n"] == 256 and gemm["peak_gflops_per_s"] == max(gemm["gflops_per_s"].values()) > 0
    (row,) = payload["models"]
    assert row["model"] == "tsm_mobilenetv2"
    assert row["fraction_of_peak"] == pytest.approx(row["achieved_gflops_per_s"] / gemm["peak_gflops_per_s"])
    assert row["achieved_gflops_per_s"] == pytest.approx(row["gflops_per_prediction"] / (row["median_ms"] / 1e3))


def test_flop_count_agrees_with_model_stats():
    """The engine counts MACs the same way as benchmarks/model_stats.py (published-figure checked)."""
    from streamtsm.bench.latency import build_model, count_macs, example_input

    model = build_model("r2plus1d_18", quick=True)
    macs = count_macs(model, example_input(model.card))
    _, gmacs = _script("model_stats").measure("r2plus1d_18", 27, 4, 32)
    assert macs / 1e9 == pytest.approx(gmacs, rel=1e-9)


def test_online_step_costs_one_frame_of_the_offline_network():
    """Regression: the state-spec dry run of to_online once ran inside the counter (2x MACs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from streamtsm.bench.latency import count_macs
    from streamtsm.models import create_model

    model = create_model("tsm_mobilenetv2", num_classes=27).eval()
    x = torch.zeros(1, 3, 64, 64)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.forward_frames(x, 1)
    model.card = model.card.replace(preprocessing=model.card.preprocessing.__class__(crop_size=64, resize_short=64))
    assert count_macs(model, x.numpy()) == pytest.approx(counter.get_total_flops() / 2, rel=1e-9)


def test_bad_options_are_refused():
    from streamtsm.bench.latency import BenchError, LatencyOptions

    with pytest.raises(BenchError, match="unknown model"):
        LatencyOptions(models=("resnet9000",))
    with pytest.raises(BenchError, match="unknown backend"):
        LatencyOptions(backends=("cuda",))
    with pytest.raises(BenchError, match="strides"):
        LatencyOptions(strides=(0,))


def test_cli_bench_refuses_unknown_model_with_one_line(capsys):
    from streamtsm.cli import main

    assert main(["bench", "--models", "resnet9000", "--out", "unused"]) == 1
    err = capsys.readouterr().err
    assert "unknown model" in err and "tsm_mobilenetv2" in err and "Traceback" not in err


def test_roofline_from_latency_json(latency_run, tmp_path):
    out, latency, *_ = latency_run
    argv = ["--quick", "--from-latency", str(out / "latency.json"), "--out", str(tmp_path)]
    assert _script("roofline").main(argv) == 0
    payload = json.loads((tmp_path / "roofline.json").read_text())
    assert [r["model"] for r in payload["models"]] == [r["model"] for r in latency["results"]]
    for row, src in zip(payload["models"], latency["results"]):
        assert row["median_ms"] == src["per_prediction"]["median_ms"]
        assert row["gflops_per_prediction"] == pytest.approx(src["gflops"])


def test_delay_benchmark_scores_both_recognizers_on_a_short_script(tmp_path):
    """benchmarks/delay.py end to end: the default TSM and a (random, tiny) 3D window baseline."""
    import torch

    from streamtsm.card import Preprocessing, Temporal
    from streamtsm.checkpoints import save_model
    from streamtsm.models import create_model
    from streamtsm.synthetic import CLASSES

    torch.manual_seed(0)
    baseline = create_model("r2plus1d_18", num_classes=len(CLASSES), class_names=CLASSES, width=2)
    baseline.card = baseline.card.replace(preprocessing=Preprocessing(crop_size=32, resize_short=36),
                                          temporal=Temporal(mode="window", fps=10.0, clip_len=4, clip_layout="NCTHW"),
                                          background_classes=("no_motion",))
    save_model(baseline.eval(), tmp_path / "r21d")
    out = tmp_path / "results"
    argv = ["--baseline", str(tmp_path / "r21d.safetensors"), "--backend", "torch", "--seconds", "6", "--seeds", "2026",
            "--strides", "2", "--e2e-seconds", "1", "--no-progress", "--out", str(out)]
    assert _script("delay").main(argv, prog="benchmarks/delay.py") == 0
    payload = json.loads((out / "delay.json").read_text())
    assert [r["kind"] for r in payload["results"]] == ["tsm", "r2plus1d"] and payload["results"][1]["stride"] == 2
    for r in payload["results"]:
        assert r["gestures"] >= 1 and len(r["delays_s"]) == r["gestures"] and 0.0 <= r["detected_fraction"] <= 1.0
        assert r["compute_ms"]["n"] > 10 and 0 < r["compute_ms"]["median"] <= r["compute_ms"]["p99"]
    # 6 s at 10 fps: the online model steps on every sampled frame, the window model every 2nd once its window is full
    assert payload["results"][0]["compute_ms"]["n"] > payload["results"][1]["compute_ms"]["n"]
    for r in payload["results"]:  # 1 s on a real-time source
        e = r["end_to_end"]
        assert e["predictions"] >= 1 and 0 < e["p50_ms"] <= e["p99_ms"] * (1 + 1e-9)
    assert "| online TSM (default model) |" in (out / "delay.md").read_text()
    _assert_png(out / "delay.png")


@pytest.mark.slow
def test_finetune_quick_records_trains_and_scores_every_event_rule(tmp_path):
    """benchmarks/finetune.py --quick end to end, with the event-rule table the README's figures come from."""
    module = _script("finetune")
    out = tmp_path / "finetune"
    home_before = os.environ.get("STREAMTSM_HOME")
    assert module.main(["--quick", "--out", str(out)]) == 0
    assert os.environ.get("STREAMTSM_HOME") == home_before  # it set it for its run and left it so: a later test's cache
    assert {p.name for p in out.iterdir()} == {"finetune.json", "finetune.md", "finetune.png"}  # work/ removed
    payload = json.loads((out / "finetune.json").read_text())
    assert [v["name"] for v in payload["variants"]] == ["fine-tune", "classifier only"]  # --quick leaves out random init
    rules = [r.name for r in module.EVENT_RULES]
    for v in payload["variants"]:
        if v["name"] not in module.RULE_VARIANTS:
            assert "event_rules" not in v
            continue
        assert [r["rule"] for r in v["event_rules"]] == rules
        assert [r["options"] for r in v["event_rules"]] == [{}, {"start_steps": 2}, {"start_steps": 3},
                                                           {"start_threshold": 0.8}]
        default = v["event_rules"][0]
        assert (default["detected"], default["false_starts"]) == (v["live"]["detected"], v["live"]["false_starts"])
        for r in v["event_rules"]:
            assert r["gestures"] == v["live"]["gestures"] >= 1 and 0 <= r["detected"] <= r["gestures"]
            assert len(r["delays_s"]) == r["gestures"] and r["false_starts"] >= 0
    md = (out / "finetune.md").read_text()
    assert "QUICK MODE" in md and "## Event rules on the same scripted streams" in md
    table = md.split("## Event rules on the same scripted streams", 1)[1]
    assert "| fine-tune: detected |" in table and "| classifier only: false starts |" in table
    for rule in module.EVENT_RULES:
        assert f"| {rule.name} | {rule.demo or '(none)'} |" in table
    _assert_png(out / "finetune.png")


def test_contention_quick_runs_the_recognizer_idle_and_under_a_busy_process(tmp_path):
    out = tmp_path / "contention"
    assert _script("contention").main(["--quick", "--no-progress", "--out", str(out)]) == 0
    payload = json.loads((out / "contention.json").read_text())
    rows = {(r["engine"], r["busy_processes"]): r for r in payload["rows"]}
    assert set(rows) == {("ort", 0), ("ort", 1), ("torch", 0), ("torch", 1)}
    for (engine, _), r in rows.items():
        assert r["model"] == "default" and r["card_fps"] == 10.0
        assert r["backend"].startswith("onnxruntime" if engine == "ort" else "torch")
        assert r["frames_captured"] > 10 and r["gap_resets"] == r["resets"].get("gap", 0)
    for busy in (0, 1):  # ONNX Runtime at 1 ms a step predicts even on a loaded box
        ort = rows[("ort", busy)]
        assert ort["predictions"] >= 3 and 0 < ort["end_to_end"]["median_ms"] <= ort["end_to_end"]["p99_ms"]
        assert ort["options"] == {}  # the runtime's defaults: resolve.ORT_DEFAULTS
    md = (out / "contention.md").read_text()
    assert md.startswith("# Contention") and "1 busy process" in md and "ONNX Runtime, 1 thread, no spin (default)" in md
    _assert_png(out / "contention.png")


def _cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process in clock ticks (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def test_busy_processes_burn_cpu_and_are_killed_even_when_the_block_fails():
    from streamtsm.bench.busy import busy_processes

    with pytest.raises(RuntimeError, match="inside"):
        with busy_processes(1, max_lifetime_s=60, settle_s=0.2) as procs:
            (proc,) = procs
            assert proc.poll() is None
            before = _cpu_ticks(proc.pid)
            deadline = time.monotonic() + 30
            while _cpu_ticks(proc.pid) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _cpu_ticks(proc.pid) > before, "the busy process did not run"
            raise RuntimeError("inside the block")
    assert proc.poll() is not None  # killed by the context manager, not left spinning


def test_busy_processes_end_by_themselves_after_their_lifetime():
    from streamtsm.bench.busy import busy_processes

    with busy_processes(1, max_lifetime_s=0.5, settle_s=0.0) as (proc,):
        assert proc.wait(timeout=60) == 0  # a killed benchmark cannot leave them spinning


def test_shutdown_quick_times_the_demo_and_a_script_on_a_camera(tmp_path):
    out = tmp_path / "shutdown"
    assert _script("shutdown").main(["--quick", "--cases", "demo-camera,script-camera", "--out", str(out)]) == 0
    payload = json.loads((out / "shutdown.json").read_text())
    rows = {(r["case"], r["signal"]): r for r in payload["summary"]}
    assert set(rows) == {("demo-camera", "SIGINT"), ("script-camera", "SIGTERM")}
    for r in rows.values():
        assert r["runs"] == 1 and r["failed"] == 0
        for milestone in ("stopped", "released", "exited"):
            assert r[milestone]["n"] == 1 and r[milestone]["median_ms"] > 0
    detail = {(r["case"], r["signal"]): r for r in payload["runs_detail"]}
    assert detail[("demo-camera", "SIGINT")]["returncode"] == 128 + 2  # the demo exits with 128 + signal
    assert detail[("script-camera", "SIGTERM")]["returncode"] == 0
    assert "| demo-camera | SIGINT |" in (out / "shutdown.md").read_text()


def test_multistream_quick_compares_batched_and_separate_streams(tmp_path):
    out = tmp_path / "multistream"
    assert _script("multistream").main(["--quick", "--seconds", "1", "--out", str(out)]) == 0
    payload = json.loads((out / "multistream.json").read_text())
    rows = {(r["mode"], r["streams"]): r for r in payload["rows"]}
    assert set(rows) == {("batched", 1), ("batched", 2), ("separate", 1), ("separate", 2)}
    for (mode, n), r in rows.items():
        assert r["model"] == "default" and r["seconds"] >= 0.9  # the warm-up is not part of the measured time
        assert r["predictions_per_stream_s"] > 0 and r["cpu_ms_per_prediction"] > 0
        assert (r["batches"] is None) == (mode == "separate")
        assert 0 <= r["steal_pct"] <= 100 and 0 <= r["idle_pct"] <= 100  # the machine's state while measured
    assert rows[("batched", 2)]["batches"] > 0
    assert "| batched |" in (md := (out / "multistream.md").read_text()) and "machine idle / steal %" in md
    _assert_png(out / "multistream.png")


def test_multistream_lanes_mode_steps_rounds_as_two_calls():
    bench = _script("multistream")
    from streamtsm.resolve import open_engine

    with open_engine(None, threads=1) as engine:
        row = bench.run_batched(engine, bench.frames_for(8, (120, 160)), 1.0, 10.0, "default", mode="batched-2l", lanes=2)
    assert row.mode == "batched-2l" and row.predictions_per_stream_s > 0 and row.batches > 0
    assert 0 < row.lane_batches <= row.batches  # rounds of 4+ due frames ran as two engine calls


def test_multistream_rows_are_medians_of_their_repeats():
    bench = _script("multistream")

    def run(cpu: float, p99: float, min_rate: float):
        return bench.Row("default", "batched", 4, 10.0, 10.0, min_rate, min_rate >= 9.5, 0, 5.0, p99, 0.1, cpu, 100)

    row = bench.median_row([run(2.0, 30.0, 10.0), run(9.0, 90.0, 9.0), run(3.0, 40.0, 9.9)])
    assert (row.repeats, row.cpu_ms_per_prediction, row.cpu_ms_range, row.e2e_p99_ms) == (3, 3.0, (2.0, 9.0), 40.0)
    assert row.min_stream_rate == 9.9 and row.kept_up  # one slow run out of three does not decide
    assert bench.median_row([run(2.0, 30.0, 9.0)]).repeats == 1



def test_resize_agreement_compares_the_two_preparations_of_the_same_frames(tmp_path):
    """A 320x240 video needs no halving (both preparations are one and the same resize: identical output);
    a 640x480 one is halved once by an exact 2x2 mean (patches within rounding of each other)."""
    import cv2
    import numpy as np

    videos = []
    for w, h in ((320, 240), (640, 480)):
        path = tmp_path / f"v{w}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
        rng = np.random.default_rng(w)
        for _ in range(12):
            writer.write(cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3))
        writer.release()
        videos.append(path)
    out = tmp_path / "ra"
    assert _script("resize_agreement").main(["--quick", "--videos", *map(str, videos), "--out", str(out)]) == 0
    rows = {r["input"]: r for r in json.loads((out / "resize_agreement.json").read_text())["rows"]}
    same, halved = rows["v320.avi"], rows["v640.avi"]
    assert same["steps"] == halved["steps"] == 12 and same["halvings"] == 0 and halved["halvings"] == 1
    assert same["patch_max_diff"] == 0 and same["top1_agreement"] == 1.0 and same["max_prob_diff"] == 0.0
    assert halved["patch_max_diff"] <= 1 and halved["window_fast"] == halved["window_exact"] == [480, 480]
    assert all(0 <= r["shift_top1_agreement"] <= 1 and r["shift_max_prob_diff"] >= 0 for r in rows.values())  # the control
    synthetic = [r for name, r in rows.items() if name.startswith("synthetic")]
    assert len(synthetic) == 2 and all(0 <= r["accuracy_fast"] <= 1 and 0 <= r["accuracy_exact"] <= 1 for r in synthetic)
    assert "| top-1 agreement |" in (out / "resize_agreement.md").read_text()



SCRIPTS = sorted(p.stem for p in (ROOT / "benchmarks").glob("*.py"))


class _Parsed(Exception):
    """Raised instead of parsing, carrying the parser a script built."""


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_shows_each_default_once_and_never_as_none(script, monkeypatch, capsys):
    import argparse

    from help_checks import help_problems, unsaid_defaults

    module = _script(script)
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "usage:" in text and help_problems(text) == []

    def hand_over(parser, *args, **kwargs):
        raise _Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", hand_over)
    with pytest.raises(_Parsed) as parsed:
        module.main([])
    assert unsaid_defaults(parsed.value.args[0]) == []


def test_multistream_cameras_out_of_phase_start_late_by_the_same_seeded_offsets():
    bench = _script("multistream")
    frames = [[bench.np.zeros((8, 8, 3), bench.np.uint8)]] * 4
    late, again = bench._sources(frames, 1.0, spread_s=0.1), bench._sources(frames, 1.0, spread_s=0.1)
    delays = [s.delay_s for s in late.values()]
    assert delays == [s.delay_s for s in again.values()] and all(0 <= d < 0.1 for d in delays)
    assert len(set(delays)) == 4  # not in phase
    assert [s.delay_s for s in bench._sources(frames, 1.0).values()] == [0.0] * 4
    source = late["s0"]
    with source:  # the delay comes before the first frame only; the media clock is unchanged
        first, second = source.read(), source.read()
    assert (first.media_time_s, second.media_time_s) == (0.0, 1 / 30)
    assert second.timestamp - first.timestamp > 0.5 / 30
