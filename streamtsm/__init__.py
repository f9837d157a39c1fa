"""streamtsm: online streaming action recognition (online TSM) with 3D-CNN baselines.

The runtime names (ModelCard, Recognizer, open_source, list_weights, download, …) need only numpy
and OpenCV. The torch names (load_model, create_model, to_online, …) are imported lazily on first
use, so ``import streamtsm`` works on a device without torch.

The errors an application catches are here too (``except streamtsm.SourceError``), each the
class the code raises; none of them needs torch (``CheckpointError`` included).
"""

from __future__ import annotations

import importlib
from typing import Any

from .card import CardError, ModelCard, Preprocessing, StateTensor, Temporal

__version__ = "0.1.0"

# name -> module that defines it (imported on first attribute access)
_LAZY = {
    "load_model": ".checkpoints",
    "save_model": ".checkpoints",
    "inspect_checkpoint": ".checkpoints",
    "CheckpointError": ".describe",  # defined torch-free; streamtsm.checkpoints raises the same class
    "create_model": ".models",
    "list_models": ".models",
    "to_online": ".models",
    "OnlineTSM": ".models",
    "NotOnlineCapableError": ".models",
    "Recognizer": ".recognizer",
    "MultiRecognizer": ".multi",
    "Prediction": ".predictions",
    "Reset": ".sampling",
    "ResetReason": ".sampling",
    "open_source": ".sources",
    "Frame": ".sources",
    "SourceError": ".sources",
    "FrameError": ".preprocess",
    "list_weights": ".weights",
    "download": ".weights",
    "StreamingSession": ".session",
    "WindowSession": ".session",
    # errors users catch
    "RecognizerError": ".recognizer",
    "MultiRecognizerError": ".multi",
    "SessionError": ".session",
    "BackendError": ".backends.base",
    "ModelSpecError": ".resolve",
    "WeightsError": ".weights",
    "DownloadError": ".weights",
}

__all__ = ["CardError", "ModelCard", "Preprocessing", "StateTensor", "Temporal", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamtsm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
