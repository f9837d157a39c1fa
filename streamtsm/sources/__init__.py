"""Frame sources (camera, video file, network stream, synthetic) and the capture thread.

numpy + OpenCV only (on the Jetson path). :func:`open_source` turns a command-line style spec
into an open source; :class:`CaptureThread` reads it on its own thread. Modules: ``base``
(Source, Frame, SourceError), ``camera``, ``file``, ``stream``, ``synthetic`` (a scripted
scene), ``performer`` (a synthetic person who gestures on cue, for ``streamtsm record``),
``replay`` (pre-rendered frames as a paced camera, for benchmarks), ``capture``.
"""

from __future__ import annotations

import difflib
import inspect
import re
from pathlib import Path
from typing import Any, Literal

from .base import Frame, OpenStopped, Source, SourceError
from .camera import MAX_CAMERA_INDEX, CameraSource, check_camera_index
from .capture import CaptureStats, CaptureThread
from .file import VideoFileSource
from .performer import PerformerSource
from .replay import ReplaySource
from .stream import STREAM_SCHEMES, Backoff, StreamSource, redact_url
from .synthetic import SyntheticSource

__all__ = [
    "check_loop_option_names",
    "MAX_CAMERA_INDEX",
    "PerformerSource",
    "STREAM_SCHEMES",
    "Backoff",
    "CameraSource",
    "CaptureStats",
    "CaptureThread",
    "Frame",
    "OpenStopped",
    "ReplaySource",
    "Source",
    "SourceError",
    "StreamSource",
    "SyntheticSource",
    "VideoFileSource",
    "open_source",
    "redact_url",
    "source_kind",
    "source_options",
]

SourceKind = Literal["camera", "stream", "synthetic", "file"]

_SIGNED_INTEGER = re.compile(r"[+-]?\d+")


def source_kind(spec: str | int | Path) -> SourceKind:
    """What :func:`open_source` makes of ``spec``, without opening anything.

    An integer or integer text (signed too: ``"-1"`` is a bad camera index, not a file name)
    -> camera; ``rtsp://``, ``http(s)://`` ... -> stream; ``"synthetic"``, ``"synthetic:SEED"`` or
    ``"synthetic:performer[:SPLIT][:SEED]"`` -> synthetic; any other text or path -> file (a
    ``file:///path`` URL too); empty text is refused.
    """
    if isinstance(spec, bool):
        raise SourceError(f"source spec {spec!r} is not a camera index, path, URL or 'synthetic'")
    if isinstance(spec, int) or (isinstance(spec, str) and _SIGNED_INTEGER.fullmatch(spec.strip())):
        return "camera"
    if isinstance(spec, str) and not spec.strip():
        raise SourceError(f"the source is empty ({spec!r}): give a camera index such as 0, a video path, an rtsp:// or "
                          "http:// URL, or 'synthetic'")
    if isinstance(spec, str) and spec.lower().startswith(STREAM_SCHEMES):
        return "stream"
    if isinstance(spec, str) and (spec == "synthetic" or spec.startswith("synthetic:")):
        return "synthetic"
    if isinstance(spec, (str, Path)):
        return "file"
    raise SourceError(f"source spec must be a camera index, path, URL or 'synthetic', got {type(spec).__name__}")


def is_performer_spec(spec: str) -> bool:
    """``synthetic:performer`` and its variants name the :class:`PerformerSource`."""
    return spec == "synthetic:performer" or spec.startswith("synthetic:performer:")


def parse_performer_spec(spec: str) -> tuple[str, int]:
    """``synthetic:performer[:SPLIT][:SEED]`` -> (split, seed); split 'train' and seed 0 by default."""
    parts = spec.split(":")[2:]
    split, seed = "train", 0
    if parts and parts[0] in ("train", "test"):
        split = parts.pop(0)
    if parts and parts[0].isdigit():
        seed = int(parts.pop(0))
    if parts:
        raise SourceError(f"synthetic performer spec {spec!r} is not 'synthetic:performer[:train|test][:SEED]' "
                          "(e.g. synthetic:performer, synthetic:performer:7, synthetic:performer:test:7)")
    return split, seed


#: Per source class: what the user's kind of source is called in messages, and the constructor
#: parameters that :func:`open_source` fills from the spec itself (not options), with where they come from.
_SOURCE_WORDS: dict[type, tuple[str, dict[str, str]]] = {
    CameraSource: ("a camera", {"index": "the camera index is the spec itself, as in 0"}),
    StreamSource: ("a stream", {"url": "the URL is the spec itself"}),
    SyntheticSource: ("the synthetic source", {"seed": "the seed is part of the spec, as in 'synthetic:3'"}),
    PerformerSource: ("the synthetic performer", {"seed": "the seed is part of the spec, as in 'synthetic:performer:7'",
                                                  "split": "the split is part of the spec, as in 'synthetic:performer:test'"}),
    VideoFileSource: ("a file", {"path": "the path is the spec itself"}),
}


def source_options(source_class: type) -> tuple[str, ...]:
    """The option names :func:`open_source` takes for a source class (its constructor's parameters
    except those the spec fills: the camera index, URL, path, synthetic seed)."""
    from_spec = _SOURCE_WORDS.get(source_class, ("", {}))[1]
    parameters = inspect.signature(source_class.__init__).parameters.values()
    return tuple(p.name for p in parameters if p.name != "self" and p.name not in from_spec
                 and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD))


def check_loop_option_names(options: dict[str, Any], loop_keywords: tuple[str, ...], error: type[Exception]) -> None:
    """A ``run()`` keyword misspelled (``max_frame=3``) is no source's option either: name the keyword
    it is close to, before any source opens (else the source says only what *it* takes)."""
    every = {name for cls in _SOURCE_WORDS for name in source_options(cls)}
    for name in options:
        if name in every:
            continue
        close = difflib.get_close_matches(str(name), loop_keywords, n=1, cutoff=0.7)
        if close:
            raise error(f"unknown option {name!r} (did you mean {close[0]!r}?): the loop takes "
                        f"{', '.join(loop_keywords)}; other keywords go to the source")


def _check_options(source_class: type, options: dict[str, Any]) -> None:
    """Refuse an option the source does not take, with the closest name and all it takes (a typo such as
    ``realtim=True`` would otherwise reach the constructor as a bare TypeError)."""
    known = source_options(source_class)
    unknown = [name for name in options if name not in known]
    if not unknown:
        return
    what, from_spec = _SOURCE_WORDS.get(source_class, (source_class.__name__, {}))
    name = unknown[0]
    takes = f"{what} takes {', '.join(known)}" if known else f"{what} takes no options"
    if name in from_spec:
        raise SourceError(f"source option {name!r} does not apply to {what} ({from_spec[name]}): {takes}")
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.7)  # 0.6 offers read_timeout_s for realtime
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise SourceError(f"unknown source option {name!r} for {what}{hint}: {takes}")


def open_source(spec: str | int | Path, **kwargs: Any) -> Source:
    """Build and open a source from a command-line style spec (see :func:`source_kind`).

    ``kwargs`` go to the source's constructor (:func:`source_options` lists the names each kind
    takes; another name is refused). Raises :class:`SourceError` naming the problem.
    """
    kind = source_kind(spec)
    source: Source
    if kind == "camera":
        index = check_camera_index(spec if isinstance(spec, int) else int(str(spec).strip()))
        _check_options(CameraSource, kwargs)
        source = CameraSource(index, **kwargs)
    elif kind == "stream":
        _check_options(StreamSource, kwargs)
        source = StreamSource(str(spec), **kwargs)
    elif kind == "synthetic" and is_performer_spec(str(spec)):
        split, seed = parse_performer_spec(str(spec))
        _check_options(PerformerSource, kwargs)
        source = PerformerSource(seed=seed, split=split, **kwargs)
    elif kind == "synthetic":
        seed_text = str(spec).partition(":")[2] or "0"
        if not seed_text.lstrip("-").isdigit():
            raise SourceError(f"synthetic source seed must be an integer, as in 'synthetic:3', got {spec!r}")
        _check_options(SyntheticSource, kwargs)
        source = SyntheticSource(seed=int(seed_text), **kwargs)
    else:
        _check_options(VideoFileSource, kwargs)
        source = VideoFileSource(spec, **kwargs)
    return source.open()
