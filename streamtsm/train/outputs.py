"""Where a training run writes, checked before the first epoch, and written so nothing is half-saved.

A run writes ``<out>.safetensors`` + ``<out>.card.json`` (the model) and ``<out>.resume.pt``
(optimiser state to continue). All three are replaced atomically (a temp file unique to this
process in the same folder, then ``os.replace``), so an interrupted save leaves the previous
epoch's files intact, and an existing model is never replaced unless the caller said so.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..card import card_path_for

if TYPE_CHECKING:  # checking an output path needs no torch (the CLI does it before importing torch)
    from torch import nn

__all__ = ["OutputError", "model_path", "resume_path_for", "check_output", "save_model_atomically", "temp_path",
           "RESUME_KEYS", "RESUME_SUFFIX", "is_resume_state", "resume_state_message", "read_resume_card"]

SUFFIX = ".safetensors"
RESUME_SUFFIX = ".resume.pt"
#: keys every resume state has (``loop._save_resume`` writes them, with ``card`` and more)
RESUME_KEYS = frozenset({"model", "optimizer", "epoch", "iteration"})


class OutputError(ValueError):
    """The output path cannot be used (a directory, not writable, would replace a model)."""


def model_path(out: str | Path) -> Path:
    """``out`` with the ``.safetensors`` suffix (added when it has none; any other suffix is an error)."""
    out = Path(out)
    if out.suffix == SUFFIX:
        return out
    if out.suffix and not out.suffix[1:].isdigit():  # "run.v2" style names are suffix-like; refuse them too
        raise OutputError(f"--out {out}: the model is a {SUFFIX} file; use {out.with_suffix(SUFFIX)} or a name without a suffix")
    return out.with_name(out.name + SUFFIX)


def resume_path_for(out: str | Path) -> Path:
    return model_path(out).with_suffix(RESUME_SUFFIX)


def _load_resume_state(path: Path) -> tuple[dict | None, str]:
    """The resume state in ``path`` (memory-mapped, so cheap) and "", or None and why it is not one."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - empty, truncated or foreign files fail in many ways
        first = str(exc).splitlines()[0][:120] if str(exc) else "empty"
        return None, f"unreadable ({type(exc).__name__}: {first})"
    if isinstance(state, dict) and RESUME_KEYS <= set(state):
        return state, ""
    return None, "not a streamtsm resume state"


def is_resume_state(path: str | Path) -> bool:
    """Whether ``path`` is a resume state written by ``streamtsm train`` (``<out>.resume.pt``)."""
    path = Path(path)
    return path.is_file() and _load_resume_state(path)[0] is not None


def resume_state_message(path: str | Path, what: str) -> str:
    """Why a resume state is not a model, and which file to give instead (``what``: the option or command)."""
    path = Path(path)
    name = path.name[: -len(RESUME_SUFFIX)] if path.name.endswith(RESUME_SUFFIX) else path.stem
    model = path.with_name(name + SUFFIX)
    instead = (f"give {model} (the model written beside it)" if model.is_file()
               else f"give the model file of that run ({model.name} is not beside it)")
    return (f"{what} {path} is the resume state of a training run (weights + optimizer + epoch), which only "
            f"`streamtsm train ... --out {model} --resume` reads: {instead}")


def read_resume_card(path: str | Path) -> dict:
    """The card fields saved in a resume state (architecture, classes, preprocessing, temporal ...)."""
    import json

    path = Path(path)
    state, why = _load_resume_state(path)
    if state is None:
        raise OutputError(f"--resume: {path} is {why}; it is probably truncated: restore it, or start over with --overwrite")
    if "card" not in state:
        raise OutputError(f"--resume: {path} was written by an older streamtsm without the run's settings; resume with "
                          "the run's --init and options, or start over with --overwrite")
    return json.loads(state["card"])


def temp_path(path: Path) -> Path:
    """A temp name beside ``path``, unique to this process, keeping its suffix (save_model needs it)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def check_output(out: str | Path, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Validate ``--out`` before any work: returns the model path, or raises :class:`OutputError`.

    Refuses a directory, a parent that is a file or not writable, and an existing model or resume
    file unless ``resume`` (continue it) or ``overwrite`` (replace it) is set.
    """
    raw = Path(out)
    if raw.is_dir():
        raise OutputError(f"--out {raw} is a directory: give a file path inside it, e.g. {raw / 'model.safetensors'}")
    path = model_path(raw)
    parent = path.parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputError(f"--out {raw}: {ancestor} is a file, not a folder; choose another --out")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".write-test-", delete=True):
            pass
    except OSError as exc:
        raise OutputError(f"--out {raw}: cannot write in {parent} ({exc.strerror or exc}); choose a writable folder") from None
    existing = [p for p in (path, card_path_for(path), resume_path_for(path)) if p.exists()]
    if existing and not (resume or overwrite):
        raise OutputError(f"--out {raw}: {existing[0]} already exists; pass --resume to continue that run, "
                          "--overwrite to replace it, or choose another --out")
    for p in (path, card_path_for(path)):
        if p.is_dir():
            raise OutputError(f"--out {raw}: {p} is a directory; choose another --out")
    return path


def save_model_atomically(model: nn.Module, path: Path) -> Path:
    """``save_model`` to temp files, then rename both into place (card first, then weights)."""
    from ..checkpoints import save_model

    tmp = temp_path(path)
    try:
        save_model(model, tmp)
        # the weights writer creates its file 0600; give it the mode the card got (what the umask allows,
        # as for every other output) so a model readable by the card's readers is readable by them too
        os.chmod(tmp, stat.S_IMODE(os.stat(card_path_for(tmp)).st_mode))
        os.replace(card_path_for(tmp), card_path_for(path))
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, card_path_for(tmp)):
            leftover.unlink(missing_ok=True)
    return path
