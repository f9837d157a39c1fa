"""``streamtsm triton-setup [DIR]``: a CPU Triton server with the python backend, in a venv of its own.

The ``nvidia-pytriton`` wheel bundles ``tritonserver`` and the python backend, but pins
``numpy<2``, which the project's OpenCV does not accept; and the python backend itself needs
numpy < 2 in the interpreter that runs the models. So the server gets its own venv (numpy < 2,
onnxruntime, the wheel installed without its dependencies) and the project's environment is
never touched. Every step has a time limit, is skipped when already done (run it again
freely), and says what it did; the last step starts the server on loopback ports with a tiny
python model and checks its answer.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ..outputs import PendingFile
from ..triton.repository import check_output_dir
from ..triton.server import (
    LAUNCHER, SETUP_COMMAND, SETUP_FILE, LocalServer, ServerInstall, TritonServerError, default_server_dir,
)

#: The server and python backend come from this wheel; the layout below is that of 0.7.x.
PYTRITON = "nvidia-pytriton==0.7.0"
SERVER_PACKAGES = ("numpy<2", "onnxruntime>=1.17")
VENV_TIMEOUT_S = 180
PIP_TIMEOUT_S = 900
CHECK_TIMEOUT_S = 60

_PROBE = """
import importlib.util, json, sys, sysconfig
found = {}
for name in ("numpy", "onnxruntime", "pytriton"):
    spec = importlib.util.find_spec(name)
    found[name] = list(spec.submodule_search_locations)[0] if spec and spec.submodule_search_locations else None
numpy_version = None
if found["numpy"]:
    import numpy
    numpy_version = numpy.__version__
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2], "full_version": sys.version.split()[0], "found": found,
    "numpy_version": numpy_version, "shared": bool(sysconfig.get_config_var("Py_ENABLE_SHARED")),
    "libdir": sysconfig.get_config_var("LIBDIR"), "ldlibrary": sysconfig.get_config_var("LDLIBRARY"),
}))
"""

_SELFCHECK_CONFIG = """name: "selfcheck"
backend: "python"
max_batch_size: 1
input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 3 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
"""

_SELFCHECK_MODEL = '''"""streamtsm triton-setup self-check: y = x + 1, refused under numpy >= 2."""
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        if int(np.__version__.split(".")[0]) >= 2:
            raise RuntimeError("numpy %s in the server venv: the python backend needs numpy < 2" % np.__version__)

    def execute(self, requests):
        return [
            pb_utils.InferenceResponse([pb_utils.Tensor("y", pb_utils.get_input_tensor_by_name(r, "x").as_numpy() + 1)])
            for r in requests
        ]
'''


class SetupError(RuntimeError):
    """The server environment could not be made (the message says why and what to try)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "triton-setup",
        help="set up a local CPU Triton server (python backend) in a venv of its own",
        description=(
            "Make DIR/venv (numpy<2, onnxruntime, nvidia-pytriton installed without its dependencies: it bundles "
            "tritonserver and the python backend), put the python backend stub for the venv's Python in place, "
            "write the launcher DIR/tritonserver, then start it once on 127.0.0.1 with a tiny model to check it "
            "answers. The project's own environment is never changed. Safe to run again: finished steps are skipped."
        ),
    )
    p.add_argument("dir", nargs="?", type=Path, default=default_server_dir(),
                   help="where the venv and launcher go (default: %(default)s; $STREAMTSM_TRITON_SERVER or $STREAMTSM_HOME change it)")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter to base the venv on: 3.8-3.13, built with --enable-shared or with libpythonX.Y installed (default: this one)")
    p.add_argument("--force", action="store_true", help="delete DIR/venv and make it again")
    p.set_defaults(func=run)


def _run(args: list[str], timeout_s: float, what: str) -> str:
    try:
        done = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SetupError(f"{what} took longer than {timeout_s:.0f} s and was stopped: check the network/registry and run again") from None
    except OSError as exc:
        raise SetupError(f"{what}: cannot run {args[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise SetupError(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout


def _probe(python: Path) -> dict:
    return json.loads(_run([str(python), "-c", _PROBE], 60, f"probing {python}").strip().splitlines()[-1])


def _say(step: str, message: str) -> None:
    print(f"{step:<9} {message}", flush=True)


def _write_text_atomically(path: Path, text: str, mode: int = 0o644) -> bool:
    """Returns whether the file changed."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    with PendingFile(path) as pending:
        pending.temp.write_text(text, encoding="utf-8")
        pending.temp.chmod(mode)
    return True


def _venv(root: Path, base_python: str, force: bool) -> tuple[Path, dict]:
    venv = root / "venv"
    python = venv / "bin" / "python"
    if force and venv.exists():
        shutil.rmtree(venv)
        _say("venv", f"removed {venv} (--force)")
    if python.exists():
        info = _probe(python)
        _say("venv", f"kept {venv} (Python {info['full_version']})")
        return python, info
    if shutil.which(base_python) is None and not Path(base_python).is_file():
        raise SetupError(f"--python {base_python}: no such interpreter")
    _run([base_python, "-m", "venv", str(venv)], VENV_TIMEOUT_S, f"creating the venv {venv}")
    info = _probe(python)
    _say("venv", f"created {venv} (Python {info['full_version']})")
    return python, info


def _packages(python: Path, info: dict) -> dict:
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    numpy_ok = info["numpy_version"] is not None and int(info["numpy_version"].split(".")[0]) < 2
    if numpy_ok and info["found"]["onnxruntime"]:
        _say("packages", f"kept numpy {info['numpy_version']}, onnxruntime")
    else:
        _run([*pip, *SERVER_PACKAGES], PIP_TIMEOUT_S, f"pip install {' '.join(SERVER_PACKAGES)} (server venv)")
        info = _probe(python)
        _say("packages", f"installed numpy {info['numpy_version']}, onnxruntime")
    if info["found"]["pytriton"] and (Path(info["found"]["pytriton"]) / "tritonserver" / "bin" / "tritonserver").is_file():
        _say("server", f"kept {PYTRITON} (tritonserver binary)")
    else:
        _run([*pip, "--no-deps", PYTRITON], PIP_TIMEOUT_S, f"pip install --no-deps {PYTRITON} (server venv)")
        info = _probe(python)
        if not info["found"]["pytriton"]:
            raise SetupError(f"{PYTRITON} installed but its package is not importable from {python}")
        _say("server", f"installed {PYTRITON} without its dependencies (tritonserver binary + python backend)")
    return info


def _stub(info: dict) -> tuple[Path, Path]:
    """Put the stub for the venv's Python into the python backend; returns (binary, backends dir)."""
    dist = Path(info["found"]["pytriton"]) / "tritonserver"
    binary, backends = dist / "bin" / "tritonserver", dist / "backends"
    source = dist / "python_backend_stubs" / info["version"] / "triton_python_backend_stub"
    if not source.is_file():
        have = sorted(p.name for p in (dist / "python_backend_stubs").iterdir())
        raise SetupError(
            f"the bundled python backend has no stub for Python {info['version']} (it has {', '.join(have)}): "
            "pass --python with one of those versions (and --force)"
        )
    target = backends / "python" / "triton_python_backend_stub"
    if target.is_file() and target.read_bytes() == source.read_bytes():
        _say("stub", f"kept the python backend stub for Python {info['version']}")
    else:
        shutil.copy2(source, target)
        target.chmod(0o755)
        _say("stub", f"put the python backend stub for Python {info['version']} into {target.parent}")
    return binary, backends


def _library_dirs(info: dict, stub: Path) -> list[str]:
    """Where the stub finds libpythonX.Y.so.1.0: the interpreter's own LIBDIR when it is a shared build."""
    dirs = [info["libdir"]] if info["shared"] and info["libdir"] else []
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(dirs + [os.environ.get("LD_LIBRARY_PATH", "")]).strip(":"))
    if shutil.which("ldd"):
        try:
            out = subprocess.run(["ldd", str(stub)], capture_output=True, text=True, timeout=30, env=env).stdout
        except subprocess.TimeoutExpired:
            out = ""
        missing = [ln.split()[0] for ln in out.splitlines() if "not found" in ln]
        if missing:
            raise SetupError(
                f"the python backend stub cannot load {', '.join(missing)}: base the venv on a Python built with "
                f"--enable-shared (--python PATH --force) or install the library (Debian: apt-get install "
                f"libpython{info['version']})"
            )
    return dirs


def _launcher(root: Path, python: Path, binary: Path, backends: Path, lib_dirs: list[str]) -> None:
    lib = ":".join(shlex.quote(d) for d in lib_dirs)
    script = "\n".join([
        "#!/bin/sh",
        f"# Written by `{SETUP_COMMAND}`: tritonserver with the python backend running models in {python.parent.parent}.",
        f"PATH={shlex.quote(str(python.parent))}:\"$PATH\"; export PATH",
        *([f"LD_LIBRARY_PATH={lib}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}; export LD_LIBRARY_PATH"] if lib_dirs else []),
        f"exec {shlex.quote(str(binary))} --backend-directory={shlex.quote(str(backends))} \"$@\"",
        "",
    ])
    changed = _write_text_atomically(root / LAUNCHER, script, 0o755)
    _say("launcher", f"{'wrote' if changed else 'kept'} {root / LAUNCHER}")


def _server_version(log: str) -> str:
    """The version in tritonserver's start-up table (``| server_version | 2.51.0 |``)."""
    for line in log.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 2 and cells[1] == "server_version":
            return cells[2]
    return "unknown"


def _self_check(root: Path) -> tuple[float, str]:
    """Start the server with a one-line python model and ask it once; returns (start-up seconds, server version)."""
    install = ServerInstall.load(root, require_verified=False)
    with tempfile.TemporaryDirectory(dir=root, prefix="selfcheck.") as tmp:
        model = Path(tmp) / "repo" / "selfcheck"
        (model / "1").mkdir(parents=True)
        (model / "config.pbtxt").write_text(_SELFCHECK_CONFIG, encoding="utf-8")
        (model / "1" / "model.py").write_text(_SELFCHECK_MODEL, encoding="utf-8")
        server = LocalServer(install, model.parent, root / "selfcheck.log", ready_timeout_s=CHECK_TIMEOUT_S)
        body = json.dumps({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}).encode()
        try:
            with server:
                request = urllib.request.Request(f"http://{server.http_url}/v2/models/selfcheck/infer", data=body,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=10.0) as response:
                    answer = json.loads(response.read().decode())
        except (TritonServerError, OSError, ValueError) as exc:
            raise SetupError(f"self-check: {exc}") from None
        data = answer["outputs"][0]["data"] if answer.get("outputs") else None
        if data != [2.0, 3.0, 4.0]:
            raise SetupError(f"self-check: the python model answered {answer!r}, expected y = [2, 3, 4]")
        return server.startup_s or 0.0, _server_version(server.log_tail(200))


def setup_server(root: Path, base_python: str = sys.executable, force: bool = False) -> ServerInstall:
    """Make (or check) the server environment in ``root``; returns the verified install."""
    root = root.expanduser().resolve()
    check_output_dir(root, "server directory", "DIR")
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    python, info = _venv(root, base_python, force)
    info = _packages(python, info)
    binary, backends = _stub(info)
    lib_dirs = _library_dirs(info, backends / "python" / "triton_python_backend_stub")
    _launcher(root, python, binary, backends, lib_dirs)
    record = {"server_version": "unknown", "python_version": info["full_version"],
              "numpy_version": info["numpy_version"], "python": str(python), "verified": False}
    _write_text_atomically(root / SETUP_FILE, json.dumps(record, indent=2) + "\n")
    try:
        startup, version = _self_check(root)
    except SetupError as exc:
        record["error"] = str(exc).splitlines()[0]
        _write_text_atomically(root / SETUP_FILE, json.dumps(record, indent=2) + "\n")
        raise
    record.update(server_version=version, verified=True, startup_s=round(startup, 2))
    _write_text_atomically(root / SETUP_FILE, json.dumps(record, indent=2) + "\n")
    _say("check", f"tritonserver {version} ready in {startup:.1f} s on 127.0.0.1; the python model answered correctly")
    _say("done", f"in {time.monotonic() - t0:.0f} s. Serve a repository: {root / LAUNCHER} --model-repository=REPO")
    return ServerInstall.load(root)


def run(args: argparse.Namespace) -> int:
    setup_server(args.dir, args.python, args.force)
    return 0
