"""INT8 vs fp32 on the ONNX Runtime CPU path: per-step latency next to the bare backbones, and accuracy.

    python benchmarks/int8.py latency                       # results to runs/bench/ (printed)
    python benchmarks/int8.py latency --out benchmarks/results   # a deliberate full run
    nice python benchmarks/int8.py accuracy --cache /tmp/gestures --out benchmarks/results

**latency** -- one interleaved run (every round steps every graph once, in rotating order, so load
from other processes hits them all alike), batch 1, one ONNX Runtime thread per session, through
the ONNX Runtime online engine's ``step`` (ping-pong state, as the runtime runs it). For each online TSM (the
embedded default model; TSM-MobileNetV2 and TSM-ResNet50 at 224x224 with random weights: latency
does not depend on their values) and for its *bare backbone* (the same weights with no shift:
``tsn_*``, a plain per-frame 2D graph without state), the fp32 export and its int8 QDQ
quantization (``streamtsm.export.int8``, calibrated on synthetic training-split frames) are
timed. The backbone's fp32/int8 ratio is what int8 can give a 2D CNN here; the question is
whether the shift state (its Slice/Concat and fp32 state I/O) spoils it. Goals: each TSM ratio
within 10 % of its backbone's, and >= 2x for ResNet-50. Writes ``int8_latency.{json,md,png}``.

**accuracy** -- the embedded default model quantized exactly as ``streamtsm export default
--int8 --calibrate synthetic`` does, against its fp32 export and the torch model: the held-out
synthetic test set (the training recipe's ``cached_set(..., "test")``, read out as the recipe
does, ``readout_scores`` + ``metrics_from_scores``), the scripted-gesture check of the recipe
(``script_check`` with the int8 graph as its engine), and top-1 agreement of int8 vs fp32 over a
long held-out stream, first vs last 1,000 steps (the state must not drift). Writes
``int8.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.machine import environment  # noqa: E402
from streamtsm.bench.machine import load_average  # noqa: E402
from streamtsm.bench.results import markdown_table, output_dir, save_figure, write_results  # noqa: E402
from streamtsm.bench.timing import time_interleaved, timing_value  # noqa: E402

#: model key -> (TSM registry name, backbone registry name, kwargs, crop size)
MODELS = {
    "default": ("default", "tsn_mobilenetv2", {}, None),
    "mobilenetv2": ("tsm_mobilenetv2", "tsn_mobilenetv2", {"num_classes": 400}, 224),
    "resnet50": ("tsm_resnet50", "tsn_resnet50", {"num_classes": 400}, 224),
}
#: steps per round: cheap graphs get more samples for their p99, every graph still runs every round
REPEATS = {"default": 8, "mobilenetv2": 3, "resnet50": 1}


def _command(argv: Sequence[str]) -> str:
    """The command line as recorded in results: folder arguments (--out, --cache) by name only, no machine paths."""
    shown, hide = [], False
    for arg in argv:
        shown.append("DIR" if hide else arg)
        hide = arg in ("--out", "--cache")
    return "python benchmarks/int8.py " + " ".join(shown)


def _out_dir(out: Path | None) -> Path:
    """``--out``, else ``runs/bench/`` like every benchmark (``benchmarks/results`` only when named)."""
    return output_dir(out, quick=False)


def _with_crop(model: Any, crop: int | None) -> Any:
    if crop is not None:
        pre = model.card.preprocessing
        model.card = model.card.replace(preprocessing=dataclasses.replace(pre, crop_size=crop, resize_short=max(crop, round(crop * 256 / 224))))
    return model


def build_pair(key: str, crop: int | None) -> tuple[Any, Any]:
    """The online TSM of ``key`` and its bare backbone with the same weights (no shift, no state)."""
    from streamtsm.models import create_model
    from streamtsm.resolve import load_torch_model

    import torch

    tsm_name, backbone_name, kwargs, default_crop = MODELS[key]
    crop = crop or default_crop
    torch.manual_seed(0)  # random weights, but the same ones every run
    if tsm_name == "default":
        tsm = load_torch_model(None)
        kw = {k: tsm.card.arch_kwargs[k] for k in ("width_mult", "dropout") if k in tsm.card.arch_kwargs}
        backbone = create_model(backbone_name, num_classes=tsm.card.num_classes, class_names=tsm.card.class_names, **kw)
        backbone.card = backbone.card.replace(preprocessing=tsm.card.preprocessing, temporal=tsm.card.temporal)
    else:
        tsm = load_torch_model(tsm_name, num_classes=kwargs["num_classes"])
        backbone = create_model(backbone_name, **kwargs)
    backbone.load_state_dict(tsm.state_dict(), strict=True)  # same weights: the shift is the only difference
    return _with_crop(tsm.eval(), crop), _with_crop(backbone.eval(), crop)


class Stepper:
    """Steps one backend on a fixed preprocessed frame, carrying the state like a session."""

    def __init__(self, backend: Any, frame: np.ndarray) -> None:
        self.backend, self.frame = backend, frame
        self.state = backend.init_state(1)

    def __call__(self) -> None:
        _, self.state = self.backend.step(self.frame, self.state)


def run_latency(a: argparse.Namespace) -> int:
    import torch

    from streamtsm.backends.onnxruntime_backend import open_onnxruntime
    from streamtsm.export.int8 import CalibrationSource, Int8Config, quantize_online
    from streamtsm.export.onnx import export_onnx
    from streamtsm.preprocess import FramePreprocessor
    from streamtsm.synthetic import GestureScript

    torch.set_num_threads(1)
    out = _out_dir(a.out)
    keys = a.models.split(",")
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; choose from {', '.join(MODELS)}")
    load_before = load_average()
    steppers: dict[str, Stepper] = {}
    repeats: dict[str, int] = {}
    checks: dict[str, Any] = {}
    shapes: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="streamtsm-int8-bench-graphs-") as tmp:
        for key in keys:
            pair = build_pair(key, a.size)
            for kind, model in zip(("TSM", "backbone"), pair):
                name = f"{key} {kind}"
                fp32 = export_onnx(model, Path(tmp) / f"{key}_{kind}.onnx", check_steps=1)
                config = Int8Config(calib_frames=a.calib_frames, check_frames=a.check_frames,
                                    min_agreement=0.0 if key != "default" else Int8Config().min_agreement)
                int8, check = quantize_online(fp32, Path(tmp) / f"{key}_{kind}.int8.onnx", CalibrationSource.parse("synthetic"), config)
                checks[name] = dataclasses.asdict(check)
                card = model.card
                frame = FramePreprocessor(card.preprocessing)(GestureScript(5, duration_s=1.0, split="train").frame_at(10))[None]
                shapes[name] = list(frame.shape)
                for precision, path in (("fp32", fp32), ("int8", int8)):
                    backend = open_onnxruntime(path, ["CPUExecutionProvider"], threads=1)
                    steppers[f"{name} {precision}"] = Stepper(backend, frame)
                    repeats[f"{name} {precision}"] = REPEATS[key]
                print(f"{name}: {check.summary()}", flush=True)
        timings = time_interleaved(steppers, rounds=a.rounds, warmup=a.warmup, repeats=repeats, progress=not a.no_progress)
    load_after = load_average()
    rows, ratios = [], {}
    for key in keys:
        for kind in ("TSM", "backbone"):
            name = f"{key} {kind}"
            f, q = timings[f"{name} fp32"], timings[f"{name} int8"]
            ratios[name] = {"median": f.median_ms / q.median_ms, "p90": f.p90_ms / q.p90_ms, "p99": f.p99_ms / q.p99_ms}
            for precision, t in (("fp32", f), ("int8", q)):
                rows.append({"graph": name, "input": "x".join(map(str, shapes[name][2:])), "precision": precision,
                             "median ms": t.median_ms, "p90 ms": t.p90_ms, "p99 ms": t.p99_ms, "n": t.n})
        tsm, bb = ratios[f"{key} TSM"]["median"], ratios[f"{key} backbone"]["median"]
        ratios[key] = {"tsm_over_backbone_ratio": tsm / bb, "within_10_percent": tsm >= 0.9 * bb,
                       **({"resnet50_at_least_2x": tsm >= 2.0} if key == "resnet50" else {})}
    env = environment(threads=1, load_avg_1min_before=load_before, load_avg_1min_after=load_after)
    payload = {"command": _command(a.argv), "rounds": a.rounds, "timings": timings,
               "ratios": ratios, "int8_checks": checks, "environment": env}
    md = latency_markdown(payload, rows, keys)
    js, mdp = write_results("int8_latency", payload, md, out)
    plot_latency(payload, keys, out / "int8_latency.png")
    print(md)
    print(f"\nwrote {js}, {mdp} and {out / 'int8_latency.png'}")
    return 0


def latency_markdown(payload: dict[str, Any], rows: list[dict[str, Any]], keys: Sequence[str]) -> str:
    env, ratios = payload["environment"], payload["ratios"]
    lines = ["# INT8 vs fp32 per-step latency (ONNX Runtime CPU, 1 thread, batch 1)", "",
             markdown_table(rows, ["graph", "input", "precision", "median ms", "p90 ms", "p99 ms", "n"]), "",
             "| model | TSM fp32/int8 (median) | backbone fp32/int8 (median) | TSM / backbone | goal |", "|---|---:|---:|---:|---|"]
    for key in keys:
        t, b, r = ratios[f"{key} TSM"], ratios[f"{key} backbone"], ratios[key]
        goal = ("within 10 %: " + ("yes" if r["within_10_percent"] else "NO"))
        if key == "resnet50":
            goal += ", >= 2x: " + ("yes" if r["resnet50_at_least_2x"] else "NO")
        lines.append(f"| {key} | {t['median']:.2f}x (p90 {t['p90']:.2f}x) | {b['median']:.2f}x (p90 {b['p90']:.2f}x) | "
                     f"{r['tsm_over_backbone_ratio']:.3f} | {goal} |")
    lines += ["", f"Interleaved, {payload['rounds']} rounds (cheap graphs stepped several times per round). CPU: "
              f"{env.get('processor')} ({env.get('cpu_flags')}), {env.get('cpu_count')} cores shared with other work: 1-min load "
              f"average {env['load_avg_1min_before']:.2f} before, {env['load_avg_1min_after']:.2f} after. onnxruntime "
              f"{env.get('onnxruntime')}. int8 = `streamtsm.export.int8` defaults (QDQ, per-channel 7-bit weights, uint8 "
              "activations, classifier fp32), calibrated on synthetic training-split frames. Backbone = the same weights "
              "without the shift (tsn_*), a plain 2D per-frame graph. 224x224 models have random weights."]
    return "\n".join(lines)


def plot_latency(payload: dict[str, Any], keys: Sequence[str], path: Path) -> None:
    from streamtsm.bench.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    names = [f"{k} {kind}" for k in keys for kind in ("TSM", "backbone")]
    x = np.arange(len(names))
    for offset, precision in ((-0.2, "fp32"), (0.2, "int8")):
        med = [timing_value(payload["timings"][f"{n} {precision}"], "median_ms") for n in names]
        p90 = [timing_value(payload["timings"][f"{n} {precision}"], "p90_ms") for n in names]
        ax.bar(x + offset, med, 0.4, label=f"{precision} median", yerr=[np.zeros(len(med)), np.subtract(p90, med)], capsize=2)
    for i, n in enumerate(names):
        ax.text(i, timing_value(payload["timings"][f"{n} fp32"], "median_ms") * 1.15, f"{payload['ratios'][n]['median']:.2f}x",
                ha="center", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylabel("per-step latency (ms, median; bar to p90)")
    env = payload["environment"]
    ax.set_title(f"INT8 vs fp32, ONNX Runtime CPU, 1 thread ({env.get('cpu_flags')}; load {env['load_avg_1min_before']:.1f})", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", linewidth=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


# --------------------------------------------------------------------------- accuracy


def online_clip_logits(engine: Any, clips: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame logits ``(N, T, C)`` of preprocessed clips, each stepped from zero state by an online engine.

    For a unidirectional TSM this is exactly ``train.evaluate.frame_logits`` of the torch model
    (the offline/online equivalence), so the recipe's readouts apply unchanged.
    """
    out, labels = [], []
    for i in range(len(clips)):
        frames, label = clips[i]
        state = engine.init_state(1)
        steps = []
        for frame in frames:
            logits, state = engine.step(np.ascontiguousarray(frame[None]), state)
            steps.append(logits[0])
        out.append(np.stack(steps))
        labels.append(int(label))
    return np.stack(out), np.asarray(labels, np.int64)


def run_accuracy(a: argparse.Namespace) -> int:
    import torch

    from streamtsm.backends.onnxruntime_backend import open_onnxruntime
    from streamtsm.checkpoints import load_model
    from streamtsm.export.int8 import CalibrationSource, Int8Config, OnlineGraph, StreamedFrames, quantize_online
    from streamtsm.export.onnx import export_onnx
    from streamtsm.preprocess import FramePreprocessor
    from streamtsm.train.augment import EvalTransform
    from streamtsm.train.default_model import Recipe, cached_set, script_check
    from streamtsm.train.evaluate import frame_logits, metrics_from_scores, readout_scores
    from streamtsm.train.loop import AugmentedClips
    from streamtsm.synthetic import CLASSES, GestureScript

    torch.set_num_threads(1)
    out = _out_dir(a.out)
    recipe = Recipe()
    model = load_model(None)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="streamtsm-int8-acc-") as tmp:
        fp32_path = export_onnx(model, Path(tmp) / "default.onnx")
        int8_path, check = quantize_online(fp32_path, Path(tmp) / "default.int8.onnx", CalibrationSource.parse("synthetic"),
                                           Int8Config(), progress=not a.no_progress)
        print(check.summary(), flush=True)
        engines = {"fp32 ONNX": open_onnxruntime(fp32_path, threads=1), "int8 ONNX": open_onnxruntime(int8_path, threads=1)}
        card = engines["int8 ONNX"].card
        test_clips = cached_set(recipe, "test", a.cache, progress=not a.no_progress)
        if a.test_clips:
            test_clips = _first_per_class(test_clips, a.test_clips)
        test = AugmentedClips(test_clips, EvalTransform(recipe.preprocessing))
        per_frame = {"torch": frame_logits(model, test, batch_size=16)}
        for name, engine in engines.items():
            per_frame[name] = online_clip_logits(engine, test)
            print(f"held-out test set stepped through {name}", flush=True)
        held_out = {}
        for name, (logits, labels) in per_frame.items():
            held_out[name] = {
                "online_readout": metrics_from_scores(readout_scores(logits, recipe.readout_frames), labels, len(CLASSES)).as_dict(CLASSES),
                "mean_readout": metrics_from_scores(readout_scores(logits, "mean"), labels, len(CLASSES)).as_dict(CLASSES),
            }
        scripts = {name: script_check(None, recipe, seconds=a.script_seconds, engine=engine) for name, engine in engines.items()}
        scripts["torch"] = script_check(model, recipe, seconds=a.script_seconds)
        print("script check done", flush=True)
        pre = FramePreprocessor(card.preprocessing)
        stream = GestureScript(a.stream_seed, duration_s=a.stream_frames / card.temporal.fps + 0.05, fps=card.temporal.fps, split="test")
        frames = [pre(stream.frame_at(i)) for i in range(a.stream_frames)]
        drift = long_stream_agreement(OnlineGraph(fp32_path), OnlineGraph(int8_path), StreamedFrames(frames, [0], ["test"]), a.window)
        print(f"long stream: {drift}", flush=True)
    payload = {
        "command": _command(a.argv),
        "seconds_total": time.perf_counter() - t0,
        "export_check": dataclasses.asdict(check),
        "calibration": card.calibration,
        "held_out": held_out,
        "script_check": {k: {kk: vv for kk, vv in v.items() if kk != "events"} for k, v in scripts.items()},
        "long_stream": drift,
        "environment": environment(threads=1),
    }
    md = accuracy_markdown(payload, recipe, CLASSES, a)
    js, mdp = write_results("int8", payload, md, out)
    print(md)
    print(f"\nwrote {js} and {mdp}")
    return 0


def _first_per_class(clips: Any, n: int) -> Any:
    """The first ``n`` clips of every class of a ``ClipArray`` (a quicker smoke run; say so when reporting)."""
    from streamtsm.train.default_model import ClipArray

    index = [i for c in np.unique(clips.labels) for i in np.flatnonzero(clips.labels == c)[:n]]
    return ClipArray(clips.frames[index], clips.labels[index])


def long_stream_agreement(fp32: Any, int8: Any, data: Any, window: int) -> dict[str, Any]:
    """Top-1 agreement of int8 vs fp32 over the first and the last ``window`` steps of one long stream."""
    from streamtsm.export.int8 import streamed_agreement

    agree, diff = streamed_agreement(fp32, int8, data)
    return {"steps": len(agree), "window": window, "first": float(agree[:window].mean()), "last": float(agree[-window:].mean()),
            "overall": float(agree.mean()), "max_prob_diff_first": float(diff[:window].max()),
            "max_prob_diff_last": float(diff[-window:].max()), "mean_prob_diff": float(diff.mean())}


def accuracy_markdown(payload: dict[str, Any], recipe: Any, classes: Sequence[str], a: argparse.Namespace) -> str:
    h, s, d, c = payload["held_out"], payload["script_check"], payload["long_stream"], payload["calibration"]
    names = ["torch", "fp32 ONNX", "int8 ONNX"]
    n_clips = h["torch"]["online_readout"]["num_clips"]
    lines = ["# INT8 default model: accuracy against fp32", "",
             "Generated by `python benchmarks/int8.py accuracy`. The embedded default model quantized as `streamtsm export "
             "default --int8 --calibrate synthetic` does (defaults of `streamtsm.export.int8`: "
             f"{c['frames']} calibration frames in {c['streams']} streams of the generator's *training* split, "
             f"{c['activation_type']} activations, {c['weight_type']} weights, classifier fp32).", "",
             f"Export check (int8 vs fp32, {payload['export_check']['steps']} held-out training-split steps): top-1 agreement "
             f"{payload['export_check']['top1_agreement']:.3f}, max abs. probability difference "
             f"{payload['export_check']['max_prob_diff']:.3f}.", "",
             f"## Held-out synthetic test set ({n_clips} clips, split `test`, seed {recipe.test_seed})", "",
             f"Read out as the training recipe does: online = mean logits of the last {recipe.readout_frames} frames, mean = all "
             "frames. The ONNX graphs are stepped frame by frame from zero state over each clip.", "",
             "| engine | top-1 (online) | top-5 | mean class acc. | top-1 (mean) |", "|---|---:|---:|---:|---:|"]
    for n in names:
        o, m = h[n]["online_readout"], h[n]["mean_readout"]
        lines.append(f"| {n} | {o['top1']:.3f} | {o['top5']:.3f} | {o['mean_class_accuracy']:.3f} | {m['top1']:.3f} |")
    gap = (h["int8 ONNX"]["online_readout"]["top1"] - h["fp32 ONNX"]["online_readout"]["top1"]) * 100
    lines += ["", f"int8 minus fp32 ONNX: {gap:+.1f} points top-1 (goal: within 1 point).", "",
              "| class | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for cls in classes:
        lines.append(f"| {cls} | " + " | ".join(f"{h[n]['online_readout']['per_class_accuracy'][cls]:.2f}" for n in names) + " |")
    lines += ["", f"## Scripted gestures (`script_check`: seeds {list(recipe.script_seeds)}, {a.script_seconds:g} s each, split `test`)", "",
              "| engine | gestures | recognised | steps correct after end | idle steps -> no_motion |", "|---|---:|---:|---:|---:|"]
    for n in names:
        r = s[n]
        lines.append(f"| {n} | {r['gestures']} | {r['gesture_accuracy']:.3f} | {r['step_accuracy_after_end']:.3f} | {r['idle_no_motion_rate']:.3f} |")
    lines += ["", "Per class (recognised): " + "; ".join(
        f"{cls} " + "/".join(_fraction(s[n]["per_class"].get(cls)) for n in names) for cls in classes[:-1]) + " (torch/fp32/int8)", "",
        "## Long stream: does the int8 state drift?", "",
        f"One held-out script (split `test`, seed {a.stream_seed}), {d['steps']} steps at the card's rate, fp32 and int8 "
        "graphs each carrying their own state from zero:", "",
        "| steps | top-1 agreement | max abs. probability difference |", "|---|---:|---:|",
        f"| first {d['window']} | {d['first']:.3f} | {d['max_prob_diff_first']:.3f} |",
        f"| last {d['window']} | {d['last']:.3f} | {d['max_prob_diff_last']:.3f} |",
        f"| all {d['steps']} | {d['overall']:.3f} | mean {d['mean_prob_diff']:.4f} |", "",
        f"Environment: {payload['environment'].get('processor')} ({payload['environment'].get('cpu_flags')}), onnxruntime "
        f"{payload['environment'].get('onnxruntime')}, 1 thread, 1-min load average "
        f"{payload['environment'].get('load_average_1min', float('nan')):.1f} (accuracy does not depend on it); "
        f"{payload['seconds_total'] / 60:.1f} min."]
    return "\n".join(lines)


def _fraction(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = p.add_subparsers(dest="part", required=True)
    lat = sub.add_parser("latency", help="fp32 vs int8 per-step latency, TSMs next to their bare backbones")
    lat.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)} (default: all)")
    lat.add_argument("--size", type=int, help="crop size for every model (default: 80 for the default model, 224 for the others)")
    lat.add_argument("--rounds", type=int, default=150, help="interleaved rounds (default 150)")
    lat.add_argument("--warmup", type=int, default=10, help="warm-up rounds (default 10)")
    lat.add_argument("--calib-frames", type=int, default=64, help="calibration frames per graph (default 64: latency does not depend on them)")
    lat.add_argument("--check-frames", type=int, default=32, help="int8 vs fp32 check frames per graph (default 32)")
    acc = sub.add_parser("accuracy", help="the default model quantized: held-out test set, scripted gestures, long-stream drift")
    acc.add_argument("--cache", type=Path, help="folder with the recipe's rendered clips (rendered there once if absent)")
    acc.add_argument("--test-clips", type=int, help="only the first N test clips per class (a smoke run)")
    acc.add_argument("--script-seconds", type=float, default=120.0, help="length of each scripted check (default 120, the recipe's)")
    acc.add_argument("--stream-frames", type=int, default=3000, help="steps of the long drift stream (default 3000 = 5 min at 10 fps)")
    acc.add_argument("--stream-seed", type=int, default=4242, help="seed of the long stream (split test; default 4242)")
    acc.add_argument("--window", type=int, default=1000, help="first/last steps compared (default 1000)")
    for q in (lat, acc):
        q.add_argument("--out", type=Path, help="results folder (default: runs/bench/, printed; benchmarks/results "
                       "only for a deliberate full run)")
        q.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    a.argv = argv
    if a.part == "latency":
        return run_latency(a)
    if a.stream_frames < a.window:
        p.error(f"--stream-frames {a.stream_frames} must be at least --window {a.window}")
    return run_accuracy(a)


if __name__ == "__main__":
    raise SystemExit(main())
