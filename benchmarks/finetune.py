"""Your own gestures, end to end: record with the synthetic performer, fine-tune, score held-out and live.

    python benchmarks/finetune.py --out benchmarks/results   # deliberate full run (about 35 min, one core)
    python benchmarks/finetune.py --quick                    # smoke run into runs/bench/ (numbers meaningless)

What a user does with three commands, with the synthetic performer standing in for the camera:

1. ``streamtsm record --headless --source synthetic:performer:train:SEED --countdown 0`` records
   ``--takes`` takes of each new gesture (circle_cw, circle_ccw, wave, push: gestures the
   embedded default model has never seen) plus the rest clips between takes as ``no_action``;
   a second session on ``synthetic:performer:test:SEED`` records the held-out takes (shapes,
   textures and backgrounds of the test split, never used in training).
2. ``streamtsm train`` three ways, each with the same wall-clock budget on one core (the process
   is pinned to one CPU and runs one torch thread): ``--init default`` (everything fine-tuned),
   ``--init default --freeze-stages 9`` (the classifier only, on the default model's features)
   and random weights of the same architecture, input and frame rate.
3. ``streamtsm eval`` on the held-out takes (per-class accuracy), and each model through the
   public ``Recognizer`` over scripted streams of the new gestures (held-out split) scored by
   :mod:`streamtsm.bench.detection`: gestures detected, delay after the gesture ends, false starts.
   The fine-tuned and the classifier-only model are scored on the same streams again with each
   event rule of :data:`EVENT_RULES` (the Recognizer's ``start_steps`` / ``start_threshold``,
   the demo's ``--start-steps`` / ``--start-threshold``): one pass over the streams per rule.

Every command runs as a user runs it (a subprocess of the CLI, with a deadline). Writes
``finetune.json``, ``finetune.md`` and ``finetune.png`` (per-class held-out accuracy) to ``--out``
(default ``runs/bench/finetune-<time>``); the recordings and models stay in ``<out>/work`` unless
``--keep`` is not given, in which case they are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from streamtsm.bench.machine import environment, load_average  # noqa: E402
from streamtsm.bench.plots import pyplot  # noqa: E402
from streamtsm.bench.results import announce, markdown_table, output_dir, report_header, save_figure, write_results  # noqa: E402
from streamtsm.commands.helptext import DefaultsFormatter  # noqa: E402

NEW_GESTURES = ("circle_cw", "circle_ccw", "wave", "push")
BACKGROUND = "no_action"
DEFAULT_STAGES = 9  # stages of the default model (stem, 7 inverted-residual groups, last conv): all = classifier only


@dataclass(frozen=True)
class Variant:
    """One way of training the recorded gestures: a name and the ``streamtsm train`` arguments."""

    name: str
    what: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class EventRule:
    """One way of turning the smoothed probabilities into start events: Recognizer keywords and the demo option."""

    name: str
    options: tuple[tuple[str, Any], ...]
    demo: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)


EVENT_RULES = (
    EventRule("default (start_steps=1, start_threshold=0.6)", (), ""),
    EventRule("start_steps=2", (("start_steps", 2),), "--start-steps 2"),
    EventRule("start_steps=3", (("start_steps", 3),), "--start-steps 3"),
    EventRule("start_threshold=0.8", (("start_threshold", 0.8),), "--start-threshold 0.8"),
)
RULE_VARIANTS = ("fine-tune", "classifier only")  # the variants scored with every event rule

VARIANTS = (
    Variant("fine-tune", "--init default, all layers trained", ("--init", "default", "--lr", "0.0005")),
    Variant("classifier only", f"--init default --freeze-stages {DEFAULT_STAGES}",
            ("--init", "default", "--freeze-stages", str(DEFAULT_STAGES), "--lr", "0.005")),
    Variant("random init", "the default model's architecture, input and fps, random weights",
            ("--arch", "tsm_mobilenetv2", "--width-mult", "0.5", "--dropout", "0.2", "--input-size", "80",
             "--resize-short", "80", "--fps", "10", "--frames", "12", "--lr", "0.002")),
)


def cli(*args: str) -> list[str]:
    """The ``streamtsm`` command line as a user runs it, through this interpreter."""
    return [sys.executable, "-m", "streamtsm.cli", *args]


def run(argv: list[str], log: Path, deadline_s: float, *, cpu: int | None, env: dict[str, str],
        stdout: Path | None = None) -> float:
    """Run one command with its output in ``log`` (stdout in ``stdout`` if given); pinned to ``cpu``.

    Returns the wall seconds; exits with one line naming the command and its log on failure.
    """
    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    t0 = time.perf_counter()
    with log.open("w") as out, open(stdout or os.devnull, "w") as data:
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=data if stdout else out,
                                  stderr=out if stdout else subprocess.STDOUT,
                                  timeout=deadline_s, env=env, preexec_fn=pin, check=False)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"error: {' '.join(argv[2:4])} did not finish within {deadline_s:.0f} s (log: {log})") from None
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"error: {' '.join(argv[2:4])} exited {proc.returncode}: {tail[0]} (log: {log})")
    return time.perf_counter() - t0


def record(folder: Path, split: str, seed: int, takes: int, classes: tuple[str, ...], logs: Path, **kw: Any) -> dict[str, Any]:
    argv = cli("record", str(folder), "--classes", ",".join(classes), "--source", f"synthetic:performer:{split}:{seed}",
               "--takes", str(takes), "--seconds", "2", "--between", "1", "--countdown", "0",
               "--background", BACKGROUND, "--headless")
    seconds = run(argv, logs / f"record-{split}.log", 1800, **kw)
    manifest = json.loads((folder / "manifest.json").read_text())
    return {"seconds": round(seconds, 1), "clips": len(manifest["clips"]), "fps": manifest["sessions"][-1].get("fps"),
            "source": f"synthetic:performer:{split}:{seed}"}


def train(variant: Variant, data: Path, model: Path, budget_min: float, epochs: int, logs: Path, **kw: Any) -> dict[str, Any]:
    argv = cli("train", str(data), "--out", str(model), "--val-fraction", "0.2", "--max-minutes", f"{budget_min:g}",
               "--epochs", str(epochs), "--lr-steps", str(max(1, int(epochs * 0.75))), "--optimizer", "adamw",
               "--batch-size", "16", "--threads", "1", "--no-progress", "--seed", "0", *variant.args)
    log = logs / f"train-{variant.name.replace(' ', '-')}.log"
    seconds = run(argv, log, 60 * budget_min * 2 + 600, **kw)
    epochs_run = sum(1 for line in log.read_text().splitlines() if line.startswith("epoch "))
    shown = " ".join(argv[3:]).replace(str(data.parent), "WORK")  # no machine paths in the results
    return {"seconds": round(seconds, 1), "epochs_run": epochs_run, "command": "streamtsm " + shown}


def evaluate(model: Path, data: Path, logs: Path, name: str, **kw: Any) -> dict[str, Any]:
    stem = f"eval-{name.replace(' ', '-')}"
    result = logs / f"{stem}.json"
    run(cli("eval", str(model), str(data), "--json"), logs / f"{stem}.log", 900, stdout=result, **kw)
    return json.loads(result.read_text())


def live(model: Path, seeds: list[int], seconds: float, env: dict[str, str],
         rule: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model through the Recognizer (its card's smoothing and thresholds) over scripted new gestures.

    ``rule``: Recognizer keywords of an event rule (``start_steps``, ``start_threshold``); none = the defaults.
    """
    from streamtsm.bench.scripted import score_scripts

    before = os.environ.get("STREAMTSM_HOME")
    os.environ["STREAMTSM_HOME"] = env["STREAMTSM_HOME"]  # the export cache of this run, not the user's
    try:
        return score_scripts(str(model), seeds=seeds, seconds=seconds, labels=NEW_GESTURES,
                             options={"threads": 1, **(rule or {})})
    finally:  # main() also runs in-process (the smoke test): leave the caller's environment as it was
        if before is None:
            os.environ.pop("STREAMTSM_HOME", None)
        else:
            os.environ["STREAMTSM_HOME"] = before


def rule_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per event rule: detected, median delay and false starts of each variant scored with the rules."""
    scored = [v for v in payload["variants"] if "event_rules" in v]
    rows = []
    for i, rule in enumerate(EVENT_RULES):
        row: dict[str, Any] = {"event rule (Recognizer keywords)": rule.name, "demo option": rule.demo or "(none)"}
        for v in scored:
            r = v["event_rules"][i]
            assert r["rule"] == rule.name
            row[f"{v['name']}: detected"] = f"{r['detected']}/{r['gestures']}"
            row[f"{v['name']}: delay p50 s"] = _r(r.get("delay_median_s"))
            row[f"{v['name']}: false starts"] = r["false_starts"]
        rows.append(row)
    return rows


def markdown(payload: dict[str, Any], quick: bool) -> str:
    o = payload["options"]
    lines = report_header(
        "Your own gestures: record, fine-tune, run", payload,
        f"{o['takes']} takes per gesture recorded with the synthetic performer, training pinned to one CPU "
        f"with one torch thread and a {o['budget_min']:g}-minute budget per variant", quick=quick)
    rows = []
    for v in payload["variants"]:
        per_class = v["held_out"]["per_class_accuracy"]
        live_score = v["live"]
        rows.append({
            "training": v["name"], "what": v["what"], "epochs": v["train"]["epochs_run"],
            "train min": round(v["train"]["seconds"] / 60, 1),
            "held-out top-1": round(v["held_out"]["top1"], 3),
            "worst gesture": round(min(per_class[g] for g in o["gestures"]), 3),
            "detected": f"{live_score['detected']}/{live_score['gestures']}",
            "delay p50 s": _r(live_score.get("delay_median_s")),
            "false starts": live_score["false_starts"],
        })
    lines += ["## Held-out takes and scripted streams", "",
              f"Held-out: {payload['recordings']['test']['clips']} clips recorded on the test split "
              f"(unseen shapes, textures, backgrounds), scored by `streamtsm eval` (mean over the clip's frames). "
              f"Scripted: {len(o['script_seeds'])} stream(s) of {o['script_seconds']:g} s performing only the new "
              f"gestures, through the `Recognizer` with the card's smoothing; a gesture counts as detected by "
              f"its first correct start event up to 2 s after it ended.", "",
              markdown_table(rows), "", "## Per-class held-out accuracy", ""]
    classes = list(payload["variants"][0]["held_out"]["per_class_accuracy"])
    lines.append(markdown_table([{"training": v["name"], **{c: round(v["held_out"]["per_class_accuracy"][c], 3)
                                                            for c in classes}} for v in payload["variants"]]))
    if any("event_rules" in v for v in payload["variants"]):
        lines += ["", "## Event rules on the same scripted streams", "",
                  "The same streams and models through the `Recognizer` with each event rule (one pass over the "
                  "streams per rule; the default row is the pass of the table above). Delay = start event's "
                  "time minus the gesture's end plus the compute time of the step that emitted it (negative: "
                  "before the gesture ended); false starts = start events that match no gesture in the script.", "",
                  markdown_table(rule_rows(payload))]
    lines += ["", "Training commands (`WORK` is the run's scratch folder, `<out>/work` with `--keep`):", ""]
    lines += [f"- `{v['train']['command']}`" for v in payload["variants"]]
    return "\n".join(lines) + "\n"


def _rule_summary(scored: dict[str, Any]) -> dict[str, Any]:
    """What the event-rule table keeps of one scoring pass (the delays of every gesture included)."""
    keep = ("gestures", "detected", "detected_fraction", "false_starts", "start_events", "delay_median_s",
            "delay_p90_s", "delay_max_s", "per_label", "delays_s", "compute_ms")
    return {k: scored[k] for k in keep if k in scored}


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def figure(payload: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    classes = list(payload["variants"][0]["held_out"]["per_class_accuracy"])
    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(payload["variants"])
    for i, v in enumerate(payload["variants"]):
        acc = [v["held_out"]["per_class_accuracy"][c] for c in classes]
        ax.bar([k + i * width for k in range(len(classes))], acc, width, label=v["name"])
    ax.set_xticks([k + width * (len(payload["variants"]) - 1) / 2 for k in range(len(classes))], classes)
    ax.axhline(0.9, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("held-out accuracy")
    ax.set_title(f"Recorded gestures, {payload['options']['budget_min']:g} min of training on one core")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=DefaultsFormatter)
    parser.add_argument("--takes", type=int, default=20, help="takes per gesture in the training recording")
    parser.add_argument("--test-takes", type=int, default=10, help="takes per gesture in the held-out recording")
    parser.add_argument("--budget-min", type=float, default=10.0, help="wall-clock minutes of training per variant")
    parser.add_argument("--epochs", type=int, default=30, help="at most this many epochs (the budget usually ends first)")
    parser.add_argument("--script-seeds", type=int, nargs="+", default=[41, 42, 43], help="scripted streams")
    parser.add_argument("--script-seconds", type=float, default=60.0, help="length of each scripted stream")
    parser.add_argument("--cpu", type=int, default=0, help="CPU the commands are pinned to (-1: not pinned)")
    parser.add_argument("--keep", action="store_true", help="keep the recordings and models in <out>/work")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 gestures, 2 takes, fine-tune and classifier only, 0.1-min budget, 1 epoch, one 10 s scripted stream")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: runs/bench/finetune-<time>)")
    args = parser.parse_args(argv)
    gestures = NEW_GESTURES
    if args.quick:
        args.takes, args.test_takes, args.budget_min, args.epochs = 2, 1, 0.1, 1
        args.script_seeds, args.script_seconds, gestures = [41], 10.0, NEW_GESTURES[:2]
    if not (1 <= args.takes <= 1000 and 1 <= args.test_takes <= 1000 and 0 < args.budget_min <= 600
            and 1 <= args.epochs <= 1000 and 5 <= args.script_seconds <= 3600):
        parser.error("takes and test-takes must be 1..1000, budget-min 0..600, epochs 1..1000, script-seconds 5..3600")
    if args.cpu >= 0 and args.cpu not in os.sched_getaffinity(0):
        parser.error(f"--cpu {args.cpu} is not one of this process's CPUs {sorted(os.sched_getaffinity(0))}; use -1")
    out = output_dir(args.out, quick=args.quick)
    work = out / "work"
    if work.exists():
        parser.error(f"{work} exists (a previous run's recordings): remove it or choose another --out")
    logs = work / "logs"
    logs.mkdir(parents=True)
    env = {**os.environ, "STREAMTSM_HOME": str(work / "home")}
    kw = {"cpu": None if args.cpu < 0 else args.cpu, "env": env}
    payload: dict[str, Any] = {
        "command": "python benchmarks/finetune.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(), "options": {**{k: v for k, v in vars(args).items() if k != "out"},
                                                   "gestures": list(gestures), "background": BACKGROUND},
    }
    print(f"recording {args.takes} takes of {', '.join(gestures)} (+ {BACKGROUND}) ...", flush=True)
    payload["recordings"] = {
        "train": record(work / "train", "train", 1, args.takes, gestures, logs, **kw),
        "test": record(work / "test", "test", 2, args.test_takes, gestures, logs, **kw),
    }
    payload["variants"] = []
    for variant in VARIANTS[:2] if args.quick else VARIANTS:  # --quick: the two the event rules score
        model = work / f"{variant.name.replace(' ', '-')}.safetensors"
        print(f"training: {variant.name} ({args.budget_min:g} min budget) ...", flush=True)
        trained = train(variant, work / "train", model, args.budget_min, args.epochs, logs, **kw)
        held_out = evaluate(model, work / "test", logs, variant.name, **kw)
        print(f"  held-out top-1 {held_out['top1']:.3f} after {trained['epochs_run']} epochs; scripted streams ...", flush=True)
        scored = live(model, args.script_seeds, args.script_seconds, env)
        entry = {"name": variant.name, "what": variant.what, "train": trained, "held_out": held_out, "live": scored}
        if variant.name in RULE_VARIANTS:
            entry["event_rules"] = [{"rule": EVENT_RULES[0].name, "options": {}, "demo": "", **_rule_summary(scored)}]
            for rule in EVENT_RULES[1:]:
                print(f"  scripted streams with {rule.name} ...", flush=True)
                again = live(model, args.script_seeds, args.script_seconds, env, rule.kwargs)
                entry["event_rules"].append({"rule": rule.name, "options": rule.kwargs, "demo": rule.demo,
                                             **_rule_summary(again)})
        payload["variants"].append(entry)
    payload["load_average_end"] = load_average()
    paths = [*write_results("finetune", payload, markdown(payload, args.quick), out), figure(payload, out / "finetune.png")]
    if not args.keep:
        shutil.rmtree(work)
    print(markdown(payload, args.quick))
    announce(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
