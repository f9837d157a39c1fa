"""How long the demo and a ``Recognizer.run`` script take to stop after SIGINT/SIGTERM, and to let go of the camera.

    python benchmarks/shutdown.py --out benchmarks/results   # deliberate full run: 3 cases x 2 signals x 10 runs, ~3 min
    python benchmarks/shutdown.py --cases demo-camera --repeats 20                    # into runs/bench/
    python benchmarks/shutdown.py --quick                    # smoke run: one run per case

The tests check that these processes stop and release the source at all (with margins that only
catch a hang); this measures how fast. Cases, each a real subprocess on the embedded default
model (``--model``) that has produced ``--predictions`` predictions when the signal comes:

* ``demo-synthetic`` - ``python demo.py --source synthetic --headless``; stopped = the process
  has exited (its summary printed, the source closed).
* ``demo-camera`` - the same on a network camera: a loopback MJPEG-over-HTTP server
  (``tests/mjpeg_server.py``); released = the server has seen the stream connection close.
* ``script-camera`` - a user script looping over ``Recognizer.run(StreamSource(url),
  stop_event=...)`` (SIGTERM sets the event, SIGINT raises KeyboardInterrupt in the loop);
  stopped = the script printed that the loop ended and the source is closed.

Per case and signal over ``--repeats`` runs: median, p90 and max of *stopped* (signal -> loop
ended), *released* (signal -> camera connection closed; the server learns it from a failed
write, which is usually the second frame it sends after the close, so this includes up to two
frame intervals, 67 ms at 30 fps) and *exited* (signal -> process gone). Results: ``shutdown.json`` and ``shutdown.md`` in ``--out`` (default ``runs/bench/``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
sys.path.insert(0, str(REPO / "tests"))  # the loopback camera and the deadline-bound pipe reader live with the tests

from mjpeg_server import MjpegServer  # noqa: E402
from procs import LineReader  # noqa: E402

from streamtsm.bench.machine import environment, load_average  # noqa: E402
from streamtsm.bench.arguments import comma_choices  # noqa: E402
from streamtsm.bench.results import DEFAULT_OUT, announce, markdown_table, output_dir, report_header, write_results  # noqa: E402
from streamtsm.bench.timing import Timing  # noqa: E402

CASES = ("demo-synthetic", "demo-camera", "script-camera")
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}
#: Longer than this, a stop is a hang: the run is recorded as failed and the process killed.
DEADLINE_S = 30.0
START_TIMEOUT_S = 120.0  # interpreter + engine start-up on a loaded machine

RUN_SCRIPT = textwrap.dedent(
    """
    import signal, sys, threading
    from streamtsm.sources import StreamSource
    from streamtsm.recognizer import Recognizer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # the documented way to end run() from outside
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C, even if the parent shell ignores SIGINT
    model = None if sys.argv[1] == "default" else sys.argv[1]
    recognizer, source = Recognizer(model), StreamSource(sys.argv[2])
    try:
        for prediction in recognizer.run(source, stop_event=stop):
            print("prediction", prediction.frame_index, flush=True)
    except KeyboardInterrupt:
        pass
    print("stopped", not source.is_open, flush=True)
    recognizer.close()
    """
)


@dataclass
class StopRun:
    """One signal delivered: seconds from the signal to each milestone (None: not reached or not applicable)."""

    case: str
    signal: str
    stopped_s: float | None
    released_s: float | None
    exited_s: float | None
    returncode: int | None
    error: str | None = None


def _command(case: str, model: str, url: str | None, script: Path) -> list[str]:
    model_args = [] if model == "default" else ["--model", model]
    if case == "demo-synthetic":
        return [sys.executable, str(REPO / "demo.py"), "--source", "synthetic", "--headless", *model_args]
    if case == "demo-camera":
        return [sys.executable, str(REPO / "demo.py"), "--source", str(url), "--headless", *model_args]
    return [sys.executable, str(script), model, str(url)]


def _is_prediction(line: str) -> bool:
    return line.startswith("prediction") or line.startswith('{"type": "prediction"')


def stop_once(case: str, sig_name: str, *, model: str, predictions: int, workdir: Path) -> StopRun:
    """Start one case, wait for ``predictions`` predictions, send the signal, time the milestones."""
    script = workdir / "run_script.py"
    script.write_text(RUN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    server = MjpegServer(fps=30, max_lifetime_s=DEADLINE_S + START_TIMEOUT_S + 30).start() if case.endswith("camera") else None
    stderr_path = workdir / "stderr.txt"
    try:
        with open(stderr_path, "w") as err:
            proc = subprocess.Popen(_command(case, model, server.url if server else None, script), stdout=subprocess.PIPE,
                                    stderr=err, stdin=subprocess.DEVNULL, text=True, cwd=workdir, env=env)
        try:
            reader = LineReader(proc.stdout)
            seen = 0
            while seen < predictions:
                line = reader.readline(timeout=START_TIMEOUT_S)
                if not line:
                    return StopRun(case, sig_name, None, None, None, proc.wait(10), _tail(stderr_path, "ended before predicting"))
                seen += _is_prediction(line)
            return _time_milestones(case, sig_name, proc, reader, server)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    except TimeoutError as exc:
        return StopRun(case, sig_name, None, None, None, None, f"{exc}; {_tail(stderr_path, '')}")
    finally:
        if server is not None:
            server.close()


def _time_milestones(case: str, sig_name: str, proc: subprocess.Popen, reader: LineReader, server: MjpegServer | None) -> StopRun:
    """Send the signal; poll (every 5 ms) for the script's ``stopped`` line, the camera's release and the exit."""
    says_stopped = case.startswith("script")  # a script reports the end of its loop; a demo's loop ends with its process
    output_done = not says_stopped
    stopped = released = exited = None
    error = None
    t0 = time.monotonic()
    proc.send_signal(SIGNALS[sig_name])
    while time.monotonic() - t0 < DEADLINE_S:
        now = time.monotonic() - t0
        if exited is None and proc.poll() is not None:
            exited = now
        if released is None and server is not None and server.open_connections == 0:
            released = now
        if output_done:
            time.sleep(0.005)
        else:
            try:
                line = reader.readline(timeout=0.005)
            except TimeoutError:
                line = None
            if line is not None and not _is_prediction(line):
                output_done = True
                if line.startswith("stopped"):
                    stopped = now
                    error = None if line.split()[1:] == ["True"] else "the loop ended with the source still open"
                else:
                    error = "the script ended without saying its loop had stopped"
        if not says_stopped:
            stopped = exited
        if exited is not None and output_done and (server is None or released is not None):
            break
    if exited is None:
        error = f"still running {DEADLINE_S:g} s after {sig_name}: killed"
    elif server is not None and released is None:
        error = f"the camera connection was still open {DEADLINE_S:g} s after {sig_name}"
    return StopRun(case, sig_name, stopped, released, exited, proc.poll(), error)


def _tail(path: Path, what: str) -> str:
    text = path.read_text(errors="replace").strip().splitlines()
    return (what + ": " if what else "") + " | ".join(text[-3:])


def summarise(runs: Sequence[StopRun]) -> list[dict[str, Any]]:
    """Median / p90 / max per (case, signal) of each milestone, over the runs that reached it."""
    rows = []
    for case in dict.fromkeys(r.case for r in runs):
        for sig in dict.fromkeys(r.signal for r in runs if r.case == case):
            mine = [r for r in runs if r.case == case and r.signal == sig]
            row: dict[str, Any] = {"case": case, "signal": sig, "runs": len(mine), "failed": sum(r.error is not None for r in mine)}
            for milestone in ("stopped", "released", "exited"):
                values = [getattr(r, f"{milestone}_s") for r in mine if getattr(r, f"{milestone}_s") is not None]
                row[milestone] = Timing.from_samples(milestone, values) if values else None
            rows.append(row)
    return rows


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value * 1e3:.0f} ms"


def _cell(t: Timing | None) -> str:
    return "—" if t is None else f"{t.median_ms:.0f} / {t.p90_ms:.0f} / {t.max_ms:.0f}"


def render_markdown(payload: dict[str, Any]) -> str:
    o = payload["options"]
    table = [{"case": r["case"], "signal": r["signal"], "runs (failed)": f"{r['runs']} ({r['failed']})",
              "stopped ms (median / p90 / max)": _cell(r["stopped"]), "released ms": _cell(r["released"]),
              "exited ms": _cell(r["exited"])} for r in payload["summary"]]
    lines = [
        *report_header("Shutdown: signal to stop, release and exit", payload,
                       f"model {o['model']}; signal after {o['predictions']} predictions", quick=o["quick"]),
        markdown_table(table),
        "",
        "*stopped*: the demo's process ended / the script's loop ended with the source closed; *released*: the loopback "
        "camera saw its stream connection close (noticed at a failed write: up to two frame intervals, 67 ms, late); *exited*: the process is gone.",
    ]
    errors = [f"- {r.case} {r.signal}: {r.error}" for r in payload["runs_detail"] if r.error]
    if errors:
        lines += ["", "Failed runs:", "", *errors]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/shutdown.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", type=comma_choices(CASES, "case"), default=CASES, help=f"comma-separated (default {','.join(CASES)})")
    p.add_argument("--signals", type=comma_choices(tuple(SIGNALS), "signal"), default=tuple(SIGNALS), help="comma-separated (default SIGINT,SIGTERM)")
    p.add_argument("--repeats", type=int, default=10, help="runs per case and signal (default %(default)s)")
    p.add_argument("--predictions", type=int, default=5, help="predictions to wait for before the signal (default %(default)s)")
    p.add_argument("--model", default="default", help="model spec for the processes (default: the embedded default model)")
    p.add_argument("--quick", action="store_true", help="smoke test: one run per case, signals alternating, 2 predictions")
    p.add_argument("--out", type=Path, default=None,
                   help=f"results folder (default {DEFAULT_OUT}/; only a deliberate full run passes benchmarks/results)")
    argv = list(sys.argv[1:] if argv is None else argv)
    a = p.parse_args(argv)
    if a.repeats < 1 or a.predictions < 1:
        p.error(f"--repeats and --predictions must be >= 1 (got {a.repeats}, {a.predictions})")
    try:
        out = output_dir(a.out, quick=a.quick)
    except ValueError as exc:
        p.error(str(exc))
    signals = list(a.signals)
    plan = ([(case, signals[i % len(signals)]) for i, case in enumerate(a.cases)] if a.quick
            else [(case, sig) for _ in range(a.repeats) for case in a.cases for sig in signals])  # interleaved: load hits all alike
    predictions = 2 if a.quick else a.predictions
    env = environment()
    runs = []
    for i, (case, sig) in enumerate(plan, start=1):
        with tempfile.TemporaryDirectory(prefix="streamtsm-shutdown-") as tmp:
            run = stop_once(case, sig, model=a.model, predictions=predictions, workdir=Path(tmp))
        runs.append(run)
        times = "  ".join(f"{m} {_seconds(getattr(run, m + '_s'))}" for m in ("stopped", "released", "exited"))
        print(f"[{i}/{len(plan)}] {case} {sig}: {times}" + (f"  ERROR {run.error}" if run.error else ""), file=sys.stderr, flush=True)
    payload = {
        "command": " ".join(["python", "benchmarks/shutdown.py", *map(shlex.quote, argv)]),
        "environment": env,
        "load_average_end": load_average(),
        "options": {"cases": list(a.cases), "signals": signals, "repeats": 1 if a.quick else a.repeats,
                    "predictions": predictions, "model": a.model, "quick": a.quick},
        "summary": summarise(runs),
        "runs_detail": runs,
    }
    md = render_markdown(payload)
    paths = write_results("shutdown", payload, md, out)
    print(md)
    announce(paths)
    return 0 if not any(r.error for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
