"""Detection delay: how long after a gesture ends does each recognizer say what it was?

    python benchmarks/delay.py --out benchmarks/results   # deliberate full run: default TSM vs the R(2+1)D baseline
    python benchmarks/delay.py --strides 1 2 4 --seeds 2026 2027 2028 --seconds 120   # into runs/bench/

Per-frame latency is only half of the story of online TSM against a 3D CNN. What a user feels
is the *detection delay*: from the moment the hand stops to the moment the label appears. A
sliding-window 3D CNN adds two terms to its compute time: it runs only every ``stride`` frames,
and it needs enough of the gesture inside its window to be confident. Online TSM runs every
frame and carries its history in the shift state.

Both models here were trained on the same synthetic gestures with the same recipe
(``python -m streamtsm.train.default_model --arch tsm|r2plus1d``): the embedded default model
(TSM-MobileNetV2 x0.5, unidirectional shift) and R(2+1)D-18 at width 8 (a 12-frame window at
10 fps; ``benchmarks/weights/r2plus1d_w8_gestures.safetensors``). Each runs through the public
``Recognizer`` with its card's settings (smoothing, thresholds) over scripted live sources of
``streamtsm.synthetic`` (held-out split, seeds never used in training) with a ground-truth
timeline. For every gesture, the delay is (timestamp of the first correct ``start`` event within
``--window-after-end`` s of the gesture's end) - (gesture end) + (compute time of the step that
emitted it): see :mod:`streamtsm.bench.detection`. The sources run faster than real time on
their own clock, so the stream-time part does not depend on the machine's load; the compute
part is measured.

Both models are named as a user names them (the default, a checkpoint path) and opened by
``streamtsm.resolve``: on ONNX Runtime the default runs its shipped ``default.onnx``, the
baseline its export from the cache. Writes ``delay.json``, ``delay.md`` and ``delay.png``
(delay distribution per model) to ``--out`` (default ``runs/bench/``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.live import live_run  # noqa: E402
from streamtsm.bench.machine import environment  # noqa: E402
from streamtsm.bench.plots import pyplot  # noqa: E402
from streamtsm.bench.results import DEFAULT_OUT, announce, output_dir, save_figure, write_results  # noqa: E402
from streamtsm.commands.helptext import RawDescriptionDefaultsFormatter  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_BASELINE = HERE / "weights" / "r2plus1d_w8_gestures.safetensors"
ACCURACY_FILES = {  # held-out accuracy of each model, written by the training recipe
    "tsm": RESULTS / "default_model_tsm.results.json",
    "r2plus1d": RESULTS / "default_model_r2plus1d.results.json",
}


def _recognizer_options(stride: int | None) -> dict[str, Any]:
    """One engine thread (what every figure here is measured with); a stride for window models."""
    return {"threads": 1, **({"stride": stride} if stride else {})}


def run_config(model: Any, backend: str, stride: int | None, seeds: Sequence[int], seconds: float,
               window_after_end_s: float, progress: bool, name: str) -> dict[str, Any]:
    """Run one recognizer over every script; score its events and collect per-step compute times."""
    from streamtsm.bench.scripted import score_scripts

    return score_scripts(model, seeds=seeds, seconds=seconds, backend=backend, window_after_end_s=window_after_end_s,
                         options=_recognizer_options(stride), progress=progress, name=name)


def run_realtime(model: Any, backend: str, stride: int | None, seconds: float) -> dict[str, Any]:
    """End-to-end latency (frame captured -> Prediction ready) on a real-time 30 fps synthetic source."""
    from streamtsm import Recognizer

    with Recognizer(model, backend=backend, **_recognizer_options(stride)) as rec:
        run = live_run(rec, seconds)
    if run.end_to_end is None:
        raise SystemExit(f"no prediction in {seconds:g} s on a live source: give --e2e-seconds more time")
    e = run.end_to_end
    return {"seconds": seconds, "predictions": run.predictions, "predictions_per_s": run.predictions_per_s,
            "p50_ms": e.median_ms, "p90_ms": e.p90_ms, "p99_ms": e.p99_ms}


def _display_path(path: Path) -> str:
    """A path as recorded in the results: relative to the checkout when inside it (no machine paths)."""
    try:
        return str(path.resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)


def held_out_accuracy(kind: str) -> dict[str, Any] | None:
    path = ACCURACY_FILES[kind]
    if not path.is_file():
        return None
    r = json.loads(path.read_text())["test_online_readout"]
    return {"top1": r["top1"], "mean_class_accuracy": r["mean_class_accuracy"], "source": path.name}


def markdown(payload: dict[str, Any]) -> str:
    o = payload["options"]
    lines = [
        "# Detection delay on scripted synthetic gestures",
        "",
        f"Command: `{payload['command']}`  ",
        f"Scripts: seeds {o['seeds']}, {o['seconds']:g} s each (held-out split), backend {o['backend']}, "
        f"a gesture counts when a correct start event comes within {o['window_after_end_s']:g} s of its end.  ",
        f"Machine: {payload['environment'].get('processor')}, {payload['environment'].get('cpu_count')} cores, "
        f"load {payload['environment'].get('load_average_1min') or 0:.2f}.",
        "",
        "| recognizer | held-out top-1 | gestures | detected | within 0.5 s | delay median | delay p90 | false starts | compute/step p50 / p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in payload["results"]:
        acc = f"{r['held_out']['top1']:.3f}" if r["held_out"] else "-"
        d = np.array([x for x in r["delays_s"] if x is not None])
        within = float((d <= 0.5).sum() / r["gestures"]) if r["gestures"] else float("nan")
        lines.append(
            f"| {r['name']} | {acc} | {r['gestures']} | {r['detected_fraction']:.1%} | {within:.1%} | "
            f"{r['delay_median_s']:.2f} s | {r['delay_p90_s']:.2f} s | {r['false_starts']} | "
            f"{r['compute_ms']['median']:.1f} / {r['compute_ms']['p99']:.1f} ms |"
        )
    if any("end_to_end" in r for r in payload["results"]):
        lines += ["", f"End to end on a real-time 30 fps synthetic source ({o['e2e_seconds']:g} s each; frame captured -> "
                  "Prediction ready, including the wait for the model):", "",
                  "| recognizer | predictions/s | p50 | p90 | p99 |", "|---|---:|---:|---:|---:|"]
        for r in payload["results"]:
            e = r.get("end_to_end")
            if e:
                lines.append(f"| {r['name']} | {e['predictions_per_s']:.1f} | {e['p50_ms']:.1f} ms | {e['p90_ms']:.1f} ms | "
                             f"{e['p99_ms']:.1f} ms |")
    lines += [
        "",
        "Delay = first correct start event - gesture end + compute time of that step (negative: the label",
        "came before the gesture finished). Percentiles are over detected gestures only; read them with the",
        "detected fraction. Held-out top-1 is the clip accuracy on the 900-clip synthetic test set",
        "(`benchmarks/results/default_model.md`).",
    ]
    return "\n".join(lines) + "\n"


def plot(payload: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in payload["results"]:
        d = np.sort([x for x in r["delays_s"] if x is not None])
        if d.size:
            frac = np.arange(1, d.size + 1) / r["gestures"]  # reaches the detected fraction, not 1
            ax.step(d, frac, where="post", label=f"{r['name']} ({r['detected_fraction']:.0%} detected)")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("delay after the gesture ends (s)")
    ax.set_ylabel("fraction of gestures detected")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Detection delay on scripted synthetic gestures")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[1] if __doc__ else None,
                                formatter_class=RawDescriptionDefaultsFormatter)
    p.add_argument("--tsm", default="default", help="online model: checkpoint, .onnx or 'default' (default: %(default)s)")
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="window model checkpoint (default: %(default)s)")
    p.add_argument("--backend", default="onnxruntime", choices=("torch", "onnxruntime"), help="engine of both recognizers")
    p.add_argument("--strides", type=int, nargs="+", default=[1, 4], help="window strides in sampled frames (default: 1 4)")
    p.add_argument("--seeds", type=int, nargs="+", default=[2026, 2027], help="script seeds (held-out split; default: 2026 2027)")
    p.add_argument("--seconds", type=float, default=120.0, help="length of each script (default: %(default)s)")
    p.add_argument("--window-after-end", type=float, default=1.0, dest="window_after_end_s",
                   help="latest accepted start event after a gesture ends, s (default: %(default)s)")
    p.add_argument("--e2e-seconds", type=float, default=30.0,
                   help="also run each recognizer this long on a real-time 30 fps source for end-to-end latency (0: skip; default: %(default)s)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"results folder (default {DEFAULT_OUT}/; the deliberate full run passes benchmarks/results)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    try:
        out = output_dir(a.out, quick=False)
    except ValueError as exc:
        p.error(str(exc))
    if not a.baseline.is_file():
        p.error(f"--baseline {a.baseline} does not exist; train it with "
                "`python -m streamtsm.train.default_model --arch r2plus1d --out <path>` or pass another checkpoint")
    if min(a.strides) < 1:
        p.error("--strides must be >= 1")

    import torch

    torch.set_num_threads(1)  # the torch engine's threads (process-global); ONNX Runtime gets threads=1 per engine
    from streamtsm.resolve import load_torch_model

    baseline = load_torch_model(a.baseline)  # for its card and parameter count; the runs open it by path
    configs: list[tuple[str, str, Any, int | None]] = [("online TSM (default model)", "tsm", a.tsm, None)]
    configs += [(f"{baseline.card.arch} w{baseline.card.arch_kwargs.get('width', 64)} window, stride {s}", "r2plus1d",
                 str(a.baseline), s) for s in a.strides]
    params_m = {spec: sum(t.numel() for t in net.parameters()) / 1e6
                for spec, net in ((a.tsm, load_torch_model(a.tsm)), (str(a.baseline), baseline))}
    results = []
    t0 = time.perf_counter()
    for name, kind, model, stride in configs:
        r = run_config(model, a.backend, stride, a.seeds, a.seconds, a.window_after_end_s, not a.no_progress, name)
        r.update(name=name, kind=kind, stride=stride, held_out=held_out_accuracy(kind),
                 params_m=params_m[model])
        if a.e2e_seconds > 0:
            r["end_to_end"] = run_realtime(model, a.backend, stride, a.e2e_seconds)
        results.append(r)
        print(f"{name}: detected {r['detected_fraction']:.1%} of {r['gestures']}, delay median {r['delay_median_s']:.2f} s "
              f"p90 {r['delay_p90_s']:.2f} s, false starts {r['false_starts']}, compute p50 {r['compute_ms']['median']:.1f} ms",
              flush=True)
    payload = {
        "command": "python benchmarks/delay.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "environment": environment(threads=1, precision="fp32"),
        "options": {k: (_display_path(v) if isinstance(v, Path) else v) for k, v in vars(a).items()},
        "seconds_total": time.perf_counter() - t0,
        "results": results,
    }
    announce([*write_results("delay", payload, markdown(payload), out), plot(payload, out / "delay.png")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
