"""Draw the demo overlay on a frame (top-k labels with bars, the current action, FPS, latency) and
the recorder's (prompt, countdown, REC mark, progress).

OpenCV drawing only (no highgui), so it works with opencv-python-headless: the same
function feeds the on-screen window, the ``--output`` video and the ``--screenshot`` PNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .predictions import Prediction
from .recording.session import Status

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_WHITE = (255, 255, 255)
_GREY = (170, 170, 170)
_BAR_BG = (70, 70, 70)
_BAR = (80, 200, 80)  # BGR green
_ACTIVE = (40, 170, 255)  # BGR orange
_TRUTH = (255, 200, 80)


@dataclass(frozen=True)
class OverlayInfo:
    """What the overlay shows besides the prediction itself."""

    model_fps: float | None = None  # predictions per second
    input_fps: float | None = None  # frames per second read from the source
    latency_ms: float | None = None  # end-to-end, capture -> prediction
    dropped: int = 0
    truth: str | None = None  # ground-truth label (synthetic source)
    last_event: str | None = None  # text of the most recent event


def display_size(height: int, width: int, target_width: int) -> tuple[int, int]:
    """(H, W) of a frame scaled to ``target_width`` (never below the frame's own width)."""
    if width >= target_width:
        return height, width
    scale = target_width / width
    return int(round(height * scale)), target_width


def render_overlay(
    image: np.ndarray,
    prediction: Prediction | None,
    info: OverlayInfo = OverlayInfo(),
    *,
    display_width: int = 640,
) -> np.ndarray:
    """A new BGR uint8 image: ``image`` scaled up to ``display_width`` with the overlay drawn on it.

    ``prediction`` may be None (no prediction yet); the panel then says so. The frame is
    scaled before drawing so text stays readable on small (e.g. 320x240) sources.
    """
    h, w = display_size(image.shape[0], image.shape[1], display_width)
    canvas = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != image.shape[:2] else image.copy()
    scale = max(0.45, min(1.0, w / 1000.0))
    line = int(round(26 * scale / 0.64))
    panel_w = min(w - 8, int(330 * scale / 0.64))
    rows = 4 + (len(prediction.top_k) if prediction is not None else 1) + (1 if info.truth else 0) + (1 if info.last_event else 0)
    panel_h = rows * line + 12
    _shade(canvas, 4, 4, panel_w, panel_h)

    x, y = 12, 4 + line
    current = prediction.current if prediction is not None else None
    state_text = f"action: {current}" if current else "action: -"
    _text(canvas, state_text, x, y, scale * 1.1, _ACTIVE if current else _GREY, 2)
    y += line
    if prediction is None:
        _text(canvas, "waiting for the first prediction...", x, y, scale, _GREY)
        y += line
    else:
        bar_x = x + int(150 * scale / 0.64)
        bar_w = panel_w - (bar_x - 4) - 12
        for label, score in prediction.top_k:
            _text(canvas, label, x, y, scale, _WHITE)
            top = y - int(line * 0.6)
            cv2.rectangle(canvas, (bar_x, top), (bar_x + bar_w, y), _BAR_BG, -1)
            cv2.rectangle(canvas, (bar_x, top), (bar_x + int(bar_w * min(1.0, max(0.0, score))), y), _BAR, -1)
            _text(canvas, f"{score:.2f}", bar_x + 4, y - 3, scale * 0.8, _WHITE)
            y += line
    if info.last_event:
        _text(canvas, info.last_event, x, y, scale * 0.85, _ACTIVE)
        y += line
    if info.truth:
        _text(canvas, f"truth: {info.truth}", x, y, scale * 0.85, _TRUTH)
        y += line
    rate = []
    if info.model_fps is not None:
        rate.append(f"model {info.model_fps:.1f} fps")
    if info.input_fps is not None:
        rate.append(f"input {info.input_fps:.1f} fps")
    _text(canvas, "  ".join(rate) or "fps: -", x, y, scale * 0.8, _GREY)
    y += line
    delay = f"latency {info.latency_ms:.0f} ms" if info.latency_ms is not None else "latency -"
    if info.dropped:
        delay += f"  dropped {info.dropped}"
    _text(canvas, delay, x, y, scale * 0.8, _GREY)
    return canvas


def _shade(img: np.ndarray, x: int, y: int, w: int, h: int, alpha: float = 0.6) -> None:
    """Darken a rectangle in place (a translucent panel behind the text)."""
    y1, x1 = min(img.shape[0], y + h), min(img.shape[1], x + w)
    roi = img[y:y1, x:x1]
    roi[:] = (roi.astype(np.float32) * (1.0 - alpha)).astype(np.uint8)


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float, color: tuple[int, int, int], thickness: int = 1) -> None:
    # A drop shadow at the same thickness (Hershey glyph advance depends on thickness, so a
    # thicker "outline" would drift away from the text).
    cv2.putText(img, text, (x + 1, y + 1), _FONT, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    cv2.putText(img, text, (x, y), _FONT, scale, color, thickness, cv2.LINE_AA)


def mosaic(tiles: list[np.ndarray | None], titles: list[str], *, columns: int | None = None) -> np.ndarray:
    """Tiles (BGR uint8, any sizes; None: not drawn yet, left black) in a grid, each scaled to
    the first tile's size and titled. The grid depends on the number of tiles only, so its size
    never changes while frames come in.

    ``columns`` defaults to the smallest square-ish grid (2 tiles: 2x1, 3-4: 2x2, 5-6: 3x2, …).
    """
    shown = [t for t in tiles if t is not None]
    if not shown:
        raise ValueError("mosaic needs at least one drawn tile")
    n = len(tiles)
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    h, w = shown[0].shape[:2]
    canvas = np.zeros((rows * h, cols * w, 3), dtype=np.uint8)
    for k, (tile, title) in enumerate(zip(tiles, titles)):
        r, c = divmod(k, cols)
        if tile is not None:
            cell = tile if tile.shape[:2] == (h, w) else cv2.resize(tile, (w, h), interpolation=cv2.INTER_AREA)
            canvas[r * h : (r + 1) * h, c * w : (c + 1) * w] = cell
        _text(canvas, title, c * w + 10, (r + 1) * h - 12, max(0.45, w / 1400.0), _TRUTH)
    return canvas


_REC = (40, 40, 230)  # BGR red


def render_record_overlay(
    image: np.ndarray,
    status: Status,
    *,
    background: str | None = None,
    display_width: int = 640,
) -> np.ndarray:
    """A new BGR image: ``image`` scaled up with the recorder's prompt, countdown, REC mark and progress.

    The recorded clip is the untouched frame; this is only what the person sees, in the demo's
    style (translucent panel, shadowed text).
    """
    h, w = display_size(image.shape[0], image.shape[1], display_width)
    canvas = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR) if (h, w) != image.shape[:2] else image.copy()
    scale = max(0.45, min(1.0, w / 1000.0))
    line = int(round(26 * scale / 0.64))
    _shade(canvas, 4, 4, min(w - 8, int(360 * scale / 0.64)), 3 * line + 12)
    x, y = 12, 4 + line
    if status.phase == "warmup":
        title, color = "getting ready...", _GREY
    elif status.phase == "between":
        title, color = "rest" + (f" (recording {background})" if background else ""), _GREY
    else:
        title, color = f"do: {status.class_name}", _ACTIVE
    _text(canvas, title, x, y, scale * 1.1, color, 2)
    y += line
    if status.class_name is not None:
        _text(canvas, f"take {status.take}/{status.takes}   {status.done} of {status.total} done", x, y, scale * 0.85,
              _WHITE)
    y += line
    _text(canvas, "space: redo   q: quit", x, y, scale * 0.8, _GREY)
    if status.phase == "countdown" and status.seconds_left is not None:
        number = str(max(1, int(np.ceil(status.seconds_left - 1e-6))))
        big = scale * 5
        (tw, th), _ = cv2.getTextSize(number, _FONT, big, 6)
        _text(canvas, number, (w - tw) // 2, (h + th) // 2, big, _WHITE, 6)
    if status.phase in ("recording", "between"):
        bar_h = max(6, line // 3)
        top = h - bar_h - 6
        cv2.rectangle(canvas, (6, top), (w - 6, top + bar_h), _BAR_BG, -1)
        fill = 6 + int((w - 12) * min(1.0, max(0.0, status.progress)))
        cv2.rectangle(canvas, (6, top), (fill, top + bar_h), _REC if status.phase == "recording" else _BAR, -1)
    if status.phase == "recording":
        radius = max(5, line // 3)
        cx, cy = w - 4 * line, 4 + line - radius
        cv2.circle(canvas, (cx, cy), radius, _REC, -1, cv2.LINE_AA)
        _text(canvas, "REC", cx + radius + 6, 4 + line, scale * 1.1, _REC, 2)
    return canvas
