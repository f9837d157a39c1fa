"""Where streamtsm keeps its downloaded and generated files: one root, ``STREAMTSM_HOME``.

One root for everything the project caches, so an air-gapped device is provisioned by copying one
folder, and a user cleans up by deleting one folder. Inside it, ``weights/`` holds downloaded weight
files (the model zoo) and ``exports/`` the ONNX exports made from checkpoints, beside each other.

The root is, first match wins:

1. ``$STREAMTSM_HOME``;
2. ``$STREAMTSM_CACHE`` (the older variable, still honoured: it names the same root, so its
   exports now live in ``$STREAMTSM_CACHE/exports`` instead of ``$STREAMTSM_CACHE/onnx``; the old
   folder is a cache and is simply not read any more);
3. ``$XDG_CACHE_HOME/streamtsm`` when ``XDG_CACHE_HOME`` is an absolute path (XDG rule);
4. ``~/.cache/streamtsm``.

Torch-free. Nothing here creates folders: the code that writes creates what it needs.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "STREAMTSM_HOME"
LEGACY_HOME_ENV = "STREAMTSM_CACHE"


class HomeError(ValueError):
    """The cache root named by the environment cannot be used."""


def home_dir() -> Path:
    """The root of streamtsm's cache (see the module docstring for the order of the variables)."""
    for var in (HOME_ENV, LEGACY_HOME_ENV):
        value = os.environ.get(var, "").strip()
        if value:
            root = Path(value).expanduser().absolute()
            if root.exists() and not root.is_dir():
                raise HomeError(f"{var}={value} is a file, not a directory; point {var} at a folder (it is created if missing)")
            return root
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "streamtsm"
    return Path.home() / ".cache" / "streamtsm"


def weights_dir() -> Path:
    """Downloaded weight files (``streamtsm download``, weight names given to ``load_model``)."""
    return home_dir() / "weights"


def exports_dir() -> Path:
    """ONNX exports of checkpoints, reused across runs (the export cache)."""
    return home_dir() / "exports"
