"""Run the *windowed* demo under a private Xvfb display, screenshot its window, then quit it with keys.

Why this exists: the demo's default mode opens an OpenCV window (``cv2.imshow``), and the
project installs ``opencv-python-headless``, which has no window support. So neither the
test suite nor ``--screenshot`` (which saves the rendered canvas, not a window) shows that
the window really opens, draws the overlay and answers its keys. This script does, on a
machine without a screen:

1. starts ``Xvfb -screen 0 1280x800x24`` on a free display (``-displayfd``: Xvfb picks the number);
2. runs ``demo.py --source synthetic`` with ``DISPLAY`` set and ``OMP_NUM_THREADS=1``, using
   ``--python``, an interpreter whose OpenCV has a GUI backend (e.g. a venv made with
   ``--system-site-packages`` plus ``pip install opencv-python==<the headless version>``);
3. waits for the window (``xdotool search --name``), waits ``--seconds``, grabs the screen
   with Pillow (``ImageGrab.grab(xdisplay=...)``) and crops it to the window's geometry;
4. focuses the window and presses ``r`` (reset: the demo must log it and keep running), then
   ``q``, and measures how long the demo takes to exit after ``q``.

Xvfb and the demo are stopped on every path. Needs Debian's ``xvfb`` and ``xdotool``.

Example (from the repository root)::

    python tools/demo_window_screenshot.py --python GUIVENV/bin/python --out docs/demo_window.png --seconds 10
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
WINDOW_NAME = "streamtsm demo"  # a prefix of streamtsm.commands.demo.WINDOW_TITLE (xdotool takes a regex)


class ToolError(RuntimeError):
    """Something this script needs is missing or did not happen; the message says what."""


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise ToolError(f"{binary} not found: install it (Debian: apt-get install -y {package})")
    return path


def _opencv_gui_backend(python: str) -> str:
    """The GUI backend of the OpenCV that ``python`` imports ('QT5', 'GTK3', ...); ToolError if none."""
    code = (
        "import cv2\n"
        "lines = [l.split(':', 1)[1].strip() for l in cv2.getBuildInformation().splitlines() if l.strip().startswith('GUI:')]\n"
        "print(cv2.__version__, lines[0] if lines else 'NONE')\n"
    )
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    if proc.returncode != 0:
        raise ToolError(f"{python} cannot import cv2:\n{proc.stderr.strip()}")
    version, _, gui = proc.stdout.strip().partition(" ")
    if not gui or gui.upper() == "NONE":
        raise ToolError(
            f"the OpenCV {version} that {python} imports has no GUI backend (opencv-python-headless). Make an "
            "interpreter with one, e.g.: python -m venv --system-site-packages GUIVENV && GUIVENV/bin/pip install "
            f"opencv-python=={version}.* and pass --python GUIVENV/bin/python"
        )
    print(f"OpenCV {version} in {python}: GUI backend {gui}")
    return gui


def _start_xvfb(xvfb: str, screen: str, timeout: float, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start Xvfb on a display number it picks itself (its messages go to ``log``); return (process, ':N')."""
    read_fd, write_fd = os.pipe()
    try:
        with log.open("wb") as log_file:
            proc = subprocess.Popen(
                [xvfb, "-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp"],
                pass_fds=(write_fd,),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
            )
    finally:
        os.close(write_fd)
    try:
        data = b""
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_fd], [], [], max(0.0, left))
            chunk = os.read(read_fd, 64) if ready else b""
            if not chunk:
                break
            data += chunk
    finally:
        os.close(read_fd)
    if not data.strip().isdigit():
        _stop(proc, "Xvfb")
        raise ToolError(f"Xvfb did not report a display within {timeout:.0f} s:\n{_tail(log)}")
    return proc, f":{int(data.strip())}"


def _stop(proc: subprocess.Popen | None, name: str) -> None:
    """Terminate ``proc`` (then kill it) if it is still running."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        print(f"{name} ignored SIGTERM: killing it", file=sys.stderr)
        proc.kill()
        proc.wait(timeout=5)


def _xdotool(xdotool: str, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run([xdotool, *args], capture_output=True, text=True, env=env, timeout=30)
    if proc.returncode != 0 and args[0] != "search":  # search exits 1 when nothing matches yet
        raise ToolError(f"xdotool {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _geometry(xdotool: str, env: dict[str, str], window: str) -> dict[str, int]:
    out = _xdotool(xdotool, env, "getwindowgeometry", "--shell", window)
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return {k: int(values[k]) for k in ("X", "Y", "WIDTH", "HEIGHT")}


def _wait_for_window(
    xdotool: str, env: dict[str, str], demo: subprocess.Popen[bytes], timeout: float, log: Path
) -> tuple[str, dict[str, int]]:
    """Poll until a visible window named like the demo's exists; return (id, geometry) of the largest."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if demo.poll() is not None:
            raise ToolError(f"the demo exited with code {demo.returncode} before its window appeared:\n{_tail(log)}")
        ids = _xdotool(xdotool, env, "search", "--onlyvisible", "--name", WINDOW_NAME).split()
        if ids:
            found = [(w, _geometry(xdotool, env, w)) for w in ids]
            return max(found, key=lambda item: item[1]["WIDTH"] * item[1]["HEIGHT"])
        time.sleep(0.25)
    raise ToolError(f"no window named {WINDOW_NAME!r} within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no demo log)"


def _grab(display: str, geom: dict[str, int], out: Path) -> tuple[int, int]:
    """Screenshot ``display`` cropped to the window; return the saved (width, height)."""
    from PIL import ImageGrab

    screen = ImageGrab.grab(xdisplay=display)
    left, top = max(0, geom["X"]), max(0, geom["Y"])
    right = min(screen.width, geom["X"] + geom["WIDTH"])
    bottom = min(screen.height, geom["Y"] + geom["HEIGHT"])
    if right <= left or bottom <= top:
        raise ToolError(f"window geometry {geom} lies outside the {screen.width}x{screen.height} screen")
    shot = screen.crop((left, top, right, bottom))
    out.parent.mkdir(parents=True, exist_ok=True)
    shot.save(out)
    return shot.width, shot.height


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", default=sys.executable, help="interpreter whose OpenCV has a GUI backend (default: this one)")
    p.add_argument("--out", type=Path, default=Path("docs/demo_window.png"), help="PNG of the window (default docs/demo_window.png)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long the window runs before the screenshot (default 10)")
    p.add_argument("--reset-out", type=Path, help="also save a PNG taken shortly after pressing r")
    p.add_argument("--screen", default="1280x800x24", help="Xvfb screen WxHxDEPTH (default 1280x800x24)")
    p.add_argument("--window-timeout", type=float, default=120.0, help="seconds to wait for the window (model load; default 120)")
    p.add_argument("demo_args", nargs="*", help="extra demo.py arguments, after -- (e.g. -- --backend onnxruntime)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    try:
        xvfb = _require("Xvfb", "xvfb")
        xdotool = _require("xdotool", "xdotool")
        _opencv_gui_backend(args.python)
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    xvfb_proc: subprocess.Popen[bytes] | None = None
    demo: subprocess.Popen[bytes] | None = None
    with tempfile.TemporaryDirectory(prefix="demo_window_") as tmp:
        log = Path(tmp) / "demo.log"
        try:
            xvfb_proc, display = _start_xvfb(xvfb, args.screen, timeout=30, log=Path(tmp) / "xvfb.log")
            print(f"Xvfb on display {display} ({args.screen}), pid {xvfb_proc.pid}")
            env = {
                **os.environ,
                "DISPLAY": display,
                "OMP_NUM_THREADS": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            }
            env.pop("WAYLAND_DISPLAY", None)
            cmd = [args.python, str(REPO / "demo.py"), "--source", "synthetic", *args.demo_args]
            print("demo:", " ".join(cmd[1:]))
            with log.open("wb") as log_file:
                demo = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file)
            started = time.monotonic()
            window, geom = _wait_for_window(xdotool, env, demo, args.window_timeout, log)
            print(
                f"window {window} appeared after {time.monotonic() - started:.1f} s: "
                f"{geom['WIDTH']}x{geom['HEIGHT']} at +{geom['X']}+{geom['Y']}"
            )
            time.sleep(args.seconds)
            if demo.poll() is not None:
                raise ToolError(f"the demo exited with code {demo.returncode} while its window was up:\n{_tail(log)}")
            geom = _geometry(xdotool, env, window)  # the window may have been resized since it appeared
            width, height = _grab(display, geom, args.out)
            print(f"screenshot {width}x{height} after {args.seconds:g} s -> {args.out}")

            _xdotool(xdotool, env, "windowfocus", "--sync", window)
            _xdotool(xdotool, env, "key", "r")
            time.sleep(0.5)  # long enough to see the overlay say "reset", short enough that no new event replaces it
            if demo.poll() is not None:
                raise ToolError(f"the demo exited (code {demo.returncode}) on 'r', which should only reset:\n{_tail(log)}")
            reset_lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if "reset by the user" in ln]
            if not reset_lines:
                raise ToolError(f"the demo did not log a reset after 'r' (the key did not reach the window?):\n{_tail(log)}")
            print(f"pressed r: the demo is still running and logged: {reset_lines[-1]}")
            if args.reset_out is not None:
                width, height = _grab(display, _geometry(xdotool, env, window), args.reset_out)
                print(f"screenshot after r {width}x{height} -> {args.reset_out}")

            _xdotool(xdotool, env, "windowfocus", "--sync", window)
            _xdotool(xdotool, env, "key", "q")
            pressed = time.monotonic()
            try:
                code = demo.wait(timeout=30)
            except subprocess.TimeoutExpired:
                raise ToolError(f"the demo did not exit within 30 s of 'q':\n{_tail(log)}") from None
            exit_s = time.monotonic() - pressed
            print(f"pressed q: the demo exited with code {code} after {exit_s:.3f} s")
            summary = [ln for ln in log.read_text(errors="replace").splitlines() if "summary:" in ln]
            if summary:
                print("demo", summary[-1].strip())
            if code != 0:
                raise ToolError(f"the demo exited with code {code} after 'q':\n{_tail(log)}")
            return 0
        except ToolError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            _stop(demo, "the demo")
            _stop(xvfb_proc, "Xvfb")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks on SIGTERM too
    sys.exit(main())
