"""The scene around the object: a random background plate and a 'camera' that films it.

The camera adds what a real one does to every frame: shake (the plate is rendered with a
margin and cropped), a slowly varying gain with an optional lighting ramp, lens blur and sensor
noise. Background kinds (gradient, smooth noise, clutter, static objects of the split's
families) are shared by both splits: they are not what the model must generalise over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .appearance import make_appearance
from .params import smoothstep
from .sprite import draw_sprite, rasterise
from .textures import hsv_to_bgr, mix


@dataclass(frozen=True)
class Camera:
    """The static scene plate and everything the 'camera' adds per frame."""

    canvas: np.ndarray  # (H + 2m, W + 2m, 3) uint8, already tinted
    margin: int
    tint: np.ndarray  # (3,) float32, applied to sprites as they are rasterised
    shake_amp: np.ndarray  # (2, 2) px: axis x component
    shake_freq: np.ndarray  # (2, 2) Hz
    shake_phase: np.ndarray  # (2, 2)
    gain_base: float
    gain_amp: float
    gain_freq: float
    gain_phase: float
    ramp: tuple[float, float, float] | None  # (t0, t1, relative change) for a lighting change
    blur_sigma: float
    noise_pos: np.ndarray  # (K, H, W, 3) uint8
    noise_neg: np.ndarray
    noise_order: np.ndarray  # (P,) which noise frame each frame index uses

    def shake(self, t: float) -> tuple[int, int]:
        d = (self.shake_amp * np.sin(2 * np.pi * self.shake_freq * t + self.shake_phase)).sum(1)
        return int(round(d[0])), int(round(d[1]))

    def gain(self, t: float) -> float:
        g = self.gain_base * (1 + self.gain_amp * math.sin(2 * math.pi * self.gain_freq * t + self.gain_phase))
        if self.ramp is not None:
            t0, t1, change = self.ramp
            g *= 1 + change * smoothstep((t - t0) / max(t1 - t0, 1e-6))
        return g

    def plate(self, dx: int, dy: int, h: int, w: int) -> np.ndarray:
        """A writable copy of the background as seen through a camera shaken by (dx, dy)."""
        m = self.margin
        return self.canvas[m + dy:m + dy + h, m + dx:m + dx + w].copy()

    def finish(self, frame: np.ndarray, index: int, t: float) -> np.ndarray:
        """Lighting, lens blur and sensor noise, in that order (as a camera would)."""
        frame = cv2.convertScaleAbs(frame, alpha=self.gain(t))
        if self.blur_sigma > 0.3:
            frame = cv2.GaussianBlur(frame, (0, 0), self.blur_sigma)
        k = int(self.noise_order[index % len(self.noise_order)])
        frame = cv2.add(frame, self.noise_pos[k])
        return cv2.subtract(frame, self.noise_neg[k])

    def mean_color(self) -> np.ndarray:
        """The plate's average BGR colour (objects are drawn in colours far from it)."""
        return self.canvas.reshape(-1, 3).mean(0).astype(np.float32)


def _make_background(rng: np.random.Generator, split: str, h: int, w: int, short: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0 = hsv_to_bgr(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.2, 0.95))
    c1 = hsv_to_bgr(rng.uniform(), rng.uniform(0.0, 0.8), rng.uniform(0.2, 0.95))
    if rng.uniform() < 0.5:  # linear gradient, optionally vignetted
        d = rng.uniform(0, 2 * np.pi)
        proj = xx * math.cos(d) + yy * math.sin(d)
        proj = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
        bg = mix(c0, c1, proj)
        if rng.uniform() < 0.5:
            r = np.hypot(xx / w - 0.5, yy / h - 0.5)
            bg *= (1 - rng.uniform(0.1, 0.4) * r * 2)[..., None]
    else:  # smooth coloured noise
        gh, gw = int(rng.integers(2, 8)), int(rng.integers(2, 10))
        field = rng.uniform(0, 255, (gh, gw, 3)).astype(np.float32)
        bg = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
        bg = mix(bg, (c0 + c1) / 2, np.full((h, w), rng.uniform(0.2, 0.6), np.float32))
    bg = np.clip(bg, 0, 255).astype(np.uint8)
    if rng.uniform() < 0.6:  # clutter: rectangles, ellipses, lines
        overlay = bg.copy()
        for _ in range(int(rng.integers(4, 16))):
            color = tuple(float(c) for c in rng.uniform(0, 255, 3))
            kind = rng.integers(3)
            p = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
            extent = rng.uniform(0.04, 0.25) * short
            thick = -1 if rng.uniform() < 0.6 else int(rng.integers(1, 4))
            if kind == 0:
                q = (int(p[0] + rng.uniform(-2, 2) * extent), int(p[1] + rng.uniform(-2, 2) * extent))
                cv2.rectangle(overlay, p, q, color, thick, cv2.LINE_AA)
            elif kind == 1:
                axes = (int(extent), int(extent * rng.uniform(0.3, 1.0)))
                cv2.ellipse(overlay, p, axes, rng.uniform(0, 180), 0, 360, color, thick, cv2.LINE_AA)
            else:
                q = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
                cv2.line(overlay, p, q, color, max(thick, 1), cv2.LINE_AA)
        opacity = rng.uniform(0.5, 1.0)
        bg = cv2.addWeighted(overlay, opacity, bg, 1.0 - opacity, 0.0)
    if rng.uniform() < 0.5:  # static objects of this split's families: appearance is not the cue
        for _ in range(int(rng.integers(1, 4))):
            app = make_appearance(rng, split, None)
            size = rng.uniform(0.1, 0.3) * short
            sprite = rasterise(app, int(size) + 2, np.ones(3, np.float32))
            pose = (rng.uniform(0, w), rng.uniform(0, h), size, rng.uniform(0, 2 * np.pi), 1.0)
            draw_sprite(bg, sprite, pose)
    if rng.uniform() < 0.5:  # background out of focus
        bg = cv2.GaussianBlur(bg, (0, 0), rng.uniform(0.6, 2.0))
    grain = rng.normal(0, rng.uniform(1, 5), bg.shape).astype(np.float32)
    return np.clip(bg + grain, 0, 255).astype(np.uint8)


def make_camera(rng: np.random.Generator, split: str, h: int, w: int) -> Camera:
    """Draw a background plate and a camera (shake, gain, tint, blur, noise) for (h, w) frames."""
    short = min(h, w)
    amp = rng.uniform(0, 0.008 * short) if rng.uniform() < 0.7 else 0.0
    margin = int(math.ceil(2 * amp)) + 1
    canvas = _make_background(rng, split, h + 2 * margin, w + 2 * margin, short)
    tint = np.clip(1 + rng.normal(0, 0.06, 3), 0.85, 1.15).astype(np.float32)
    canvas = np.clip(canvas * tint, 0, 255).astype(np.uint8)
    sigma = rng.uniform(1, 6)
    noise = rng.normal(0, sigma, (4, h, w, 3)).astype(np.float32)
    return Camera(
        canvas=canvas,
        margin=margin,
        tint=tint,
        shake_amp=np.full((2, 2), amp / 2) * rng.uniform(0.5, 1.0, (2, 2)),
        shake_freq=rng.uniform(0.5, 4.0, (2, 2)),
        shake_phase=rng.uniform(0, 2 * np.pi, (2, 2)),
        gain_base=float(rng.uniform(0.8, 1.15)),
        gain_amp=float(rng.uniform(0, 0.08)),
        gain_freq=float(rng.uniform(0.02, 0.3)),
        gain_phase=float(rng.uniform(0, 2 * np.pi)),
        ramp=None,
        blur_sigma=float(rng.uniform(0, 1.2)),
        noise_pos=np.clip(noise, 0, 255).astype(np.uint8),
        noise_neg=np.clip(-noise, 0, 255).astype(np.uint8),
        noise_order=rng.integers(0, 4, 251),
    )
