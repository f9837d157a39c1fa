"""Where benchmark results go, and how they are written (Markdown tables, JSON, atomically).

The committed figures in a checkout's ``benchmarks/results/`` come from deliberate full runs
on an idle machine. So every benchmark writes to ``runs/bench/`` under the current directory
(git-ignored) unless ``--out`` names another folder, prints the folder it wrote to, and a
smoke run (``--quick``) refuses to write into any ``benchmarks/results`` folder: its numbers
mean nothing. Only an explicit ``--out benchmarks/results`` updates the committed results.

Files are replaced atomically (a temporary name unique to the process, then ``os.replace``),
so an interrupted run never leaves half a table behind.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..outputs import PendingFile

#: Default output folder of every benchmark, relative to the current directory (git-ignored).
DEFAULT_OUT = Path("runs") / "bench"
#: The folder of committed results in a checkout (recognised by its last two path parts).
COMMITTED_PARTS = ("benchmarks", "results")


class OutputDirError(ValueError):
    """The output folder cannot be used for this run (the message says why and what to pass)."""


def is_committed_results(path: Path) -> bool:
    """True for a ``benchmarks/results`` folder (or anything inside one), wherever the checkout is."""
    parts = Path(os.path.abspath(path)).parts
    n = len(COMMITTED_PARTS)
    return any(parts[i:i + n] == COMMITTED_PARTS for i in range(len(parts) - n + 1))


def output_dir(out: Path | str | None, *, quick: bool) -> Path:
    """The folder a run writes to: ``out``, or ``runs/bench``; a quick run never gets ``benchmarks/results``.

    Checked before any measuring starts, so a refused run costs nothing.
    """
    path = DEFAULT_OUT if out is None else Path(out)
    if quick and is_committed_results(path):
        raise OutputDirError(
            f"--quick results are smoke-test numbers and never go into {path} (the committed results); "
            f"drop --out to write to {DEFAULT_OUT}/, or run without --quick for a full run"
        )
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"--out {path} is a file, not a folder; pass a folder (default {DEFAULT_OUT}/)")
    return path


def markdown_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (floats with 3 decimals; columns default to the first row's keys)."""
    columns = list(rows[0]) if columns is None and rows else list(columns or [])

    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def report_header(title: str, payload: Mapping[str, Any], details: str, *, quick: bool = False) -> list[str]:
    """The first lines of every benchmark report: title, command, machine, load, library versions, ``details``, date."""
    env = payload["environment"]

    def load(value: object) -> str:
        return f"{value:.2f}" if isinstance(value, (int, float)) else "—"

    torch = f"torch {env['torch']} ({env.get('torch_threads')} threads)" if env.get("torch") else "no torch"
    cpu = env["processor"] + (f" ({env['cpu_flags']})" if env.get("cpu_flags") else "")
    return [
        f"# {title}" + (" (QUICK MODE: a smoke test, numbers meaningless)" if quick else ""),
        "",
        f"Command: `{payload['command']}`  ",
        f"{cpu}, {env['cpu_count']} cores, load average {load(env.get('load_average_1min'))} at start / "
        f"{load(payload.get('load_average_end'))} at end; {torch}, onnxruntime {env.get('onnxruntime', '—')}, "
        f"numpy {env.get('numpy')}; {details}; {env['date_utc']}.",
        "",
    ]


def to_json(payload: object) -> str:
    """JSON text of a payload that may hold dataclasses (e.g. :class:`~streamtsm.bench.timing.Timing`) and paths."""
    def default(o: object) -> object:
        return asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)

    return json.dumps(payload, indent=2, default=default) + "\n"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block succeeds."""
    with PendingFile(path) as pending:
        yield pending.temp


def write_text(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_results(stem: str, payload: Mapping[str, Any], markdown: str, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``out_dir`` (created if needed), atomically."""
    out_dir = Path(out_dir)
    js = write_text(out_dir / f"{stem}.json", to_json(payload))
    md = write_text(out_dir / f"{stem}.md", markdown.rstrip("\n") + "\n")
    return js, md


def save_figure(fig: Any, path: Path, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (the PNG appears whole or not at all)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", **kwargs)
    return Path(path)


def announce(paths: Sequence[Path], print_fn: Callable[[str], None] = print) -> None:
    """Say where a run wrote its results (one line: the folder, then the file names)."""
    if not paths:
        return
    folder = Path(paths[0]).parent
    others = [p for p in paths if Path(p).parent != folder]
    names = ", ".join(Path(p).name for p in paths if Path(p).parent == folder)
    print_fn(f"results written to {folder}/: {names}" + ("".join(f", {p}" for p in others)))
