#!/usr/bin/env python3
"""Draw the example storyboards' keyframe images and soundtrack.

Everything is painted procedurally with numpy + OpenCV (no downloads), from
fixed random seeds, so running this twice writes byte-identical files:

    python scripts/make_examples.py            # writes into storyboards/
    python scripts/make_examples.py --out DIR  # somewhere else

Outputs
    storyboards/images/*.png   illustrative keyframes (1280x720 and 720x1280)
    storyboards/audio/harbour.wav   ~60 s of gentle music (mono, 22050 Hz, 16-bit)

The pictures are deliberately simple "matte paintings": gradients, soft glows,
anti-aliased silhouettes and a little low-frequency texture. They are there to
show how keyframes steer a generation, not to be art.
"""
from __future__ import annotations

import argparse
import functools
import math
import sys
import wave
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
AA = cv2.LINE_AA
SHIFT = 4  # sub-pixel bits for cv2 drawing: coordinates are multiplied by 16
PNG_OPTS = [cv2.IMWRITE_PNG_COMPRESSION, 9]

# --------------------------------------------------------------------------
# Painting helpers. Images are float32 RGB in [0, 1], shape (h, w, 3).
# --------------------------------------------------------------------------


def rgb(hex_colour: str) -> np.ndarray:
    """'#rrggbb' -> float32 RGB triple in [0, 1]."""
    h = hex_colour.lstrip("#")
    return np.array([int(h[i : i + 2], 16) / 255.0 for i in (0, 2, 4)], np.float32)


def vgradient(w: int, h: int, stops: list[tuple[float, str]], y0: int = 0, y1: int | None = None) -> np.ndarray:
    """An (h, w, 3) image whose rows run through colour ``stops`` [(pos 0..1, '#hex')]
    between rows ``y0`` and ``y1`` (clamped outside)."""
    y1 = h if y1 is None else y1
    t = (np.arange(h, dtype=np.float32) - y0) / max(1, y1 - y0)
    t = np.clip(t, 0.0, 1.0)
    pos = np.array([p for p, _ in stops], np.float32)
    cols = np.stack([rgb(c) for _, c in stops])
    row = np.stack([np.interp(t, pos, cols[:, k]) for k in range(3)], axis=1).astype(np.float32)
    return np.repeat(row[:, None, :], w, axis=1)


def blank_mask(w: int, h: int) -> np.ndarray:
    return np.zeros((h, w), np.uint8)


def as_alpha(mask: np.ndarray, blur: float = 0.0) -> np.ndarray:
    """uint8 mask -> float alpha (h, w, 1), optionally feathered by a Gaussian blur."""
    a = mask.astype(np.float32) / 255.0
    if blur > 0:
        a = cv2.GaussianBlur(a, (0, 0), blur)
    return a[:, :, None]


def over(img: np.ndarray, alpha: np.ndarray, colour, opacity: float = 1.0) -> np.ndarray:
    """Composite ``colour`` (RGB triple or an image) over ``img`` through ``alpha``."""
    c = rgb(colour) if isinstance(colour, str) else colour
    a = alpha * opacity
    return img * (1.0 - a) + c * a


def add(img: np.ndarray, alpha: np.ndarray, colour, gain: float = 1.0) -> np.ndarray:
    """Additive light (glows, beams) through ``alpha``."""
    c = rgb(colour) if isinstance(colour, str) else colour
    return img + alpha * c * gain


def pts(points) -> np.ndarray:
    """Float points -> int32 array in cv2's fixed-point (SHIFT) coordinates."""
    return np.round(np.asarray(points, np.float64) * (1 << SHIFT)).astype(np.int32)


def poly_mask(w: int, h: int, polygons) -> np.ndarray:
    m = blank_mask(w, h)
    cv2.fillPoly(m, [pts(p) for p in polygons], 255, AA, SHIFT)
    return m


def ellipse_mask(w, h, centre, axes, angle=0.0, start=0.0, end=360.0, thickness=-1) -> np.ndarray:
    m = blank_mask(w, h)
    cv2.ellipse(m, tuple(int(v) for v in pts(centre)), tuple(int(v) for v in pts(axes)), angle, start, end,
                255, thickness, AA, SHIFT)
    return m


def circle_mask(w, h, centre, radius) -> np.ndarray:
    return ellipse_mask(w, h, centre, (radius, radius))


def line_mask(w, h, segments, thickness: int) -> np.ndarray:
    m = blank_mask(w, h)
    for a, b in segments:
        cv2.line(m, tuple(int(v) for v in pts(a)), tuple(int(v) for v in pts(b)), 255, thickness, AA, SHIFT)
    return m


def polyline_mask(w, h, lines, thickness: int) -> np.ndarray:
    m = blank_mask(w, h)
    cv2.polylines(m, [pts(p) for p in lines], False, 255, thickness, AA, SHIFT)
    return m


@functools.lru_cache(maxsize=4)
def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def radial(w: int, h: int, centre, radius: float, power: float = 2.0) -> np.ndarray:
    """Soft radial falloff (h, w, 1): 1 at ``centre``, ~0 beyond ``radius``."""
    yy, xx = _grid(w, h)
    d = np.sqrt((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / radius
    return np.exp(-(d**power) * 3.0)[:, :, None].astype(np.float32)


def smooth_noise(w: int, h: int, rng: np.random.Generator, cell: int, octaves: int = 3) -> np.ndarray:
    """Low-frequency value noise in roughly [-1, 1], shape (h, w)."""
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        gh, gw = max(2, h // cell + 2), max(2, w // cell + 2)
        grid = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= 0.5
        cell = max(2, cell // 2)
    return out / total


def ridge(w: int, rng: np.random.Generator, base: float, amp: float, cell: int) -> np.ndarray:
    """A 1-D smooth height profile (one y per column) for hills and tree lines."""
    n = w // cell + 3
    knots = rng.uniform(-1, 1, n)
    x = np.arange(w) / cell
    y = np.interp(x, np.arange(n), knots)
    y = cv2.GaussianBlur(y.astype(np.float32)[None, :], (0, 0), cell / 3.0)[0]
    return base + amp * y


def silhouette_below(w: int, h: int, ys: np.ndarray) -> np.ndarray:
    """Mask of everything below the profile ``ys`` (anti-aliased edge)."""
    poly = [(0, h + 2)] + [(x, float(ys[x])) for x in range(0, w, 2)] + [(w - 1, float(ys[-1])), (w, h + 2)]
    return poly_mask(w, h, [poly])


def texture(img: np.ndarray, rng: np.random.Generator, strength: float, cell: int = 96) -> np.ndarray:
    """Gentle painterly variation in brightness (low-frequency, so PNGs stay small)."""
    h, w = img.shape[:2]
    n = smooth_noise(w, h, rng, cell, octaves=3)
    return img * (1.0 + strength * n[:, :, None])


def vignette(img: np.ndarray, amount: float = 0.35) -> np.ndarray:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2
    return img * (1.0 - amount * np.clip(d / 2.0, 0, 1))[:, :, None]


def finish(img: np.ndarray) -> np.ndarray:
    """float RGB -> uint8 BGR (with a soft highlight shoulder, no hard clipping)."""
    x = np.maximum(img, 0.0)
    x = np.where(x > 0.85, 0.85 + 0.15 * np.tanh((x - 0.85) / 0.15), x)
    out = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_RGB2BGR)


def wave_bands(img, rng, horizon, w, h, colour, opacity, count=34, thickness=2, sway=6.0):
    """Horizontal wavy lines on water, closer together toward the horizon."""
    lines = []
    for i in range(count):
        t = (i + 1) / count
        y = horizon + (h - horizon) * t**1.8
        amp = 1.0 + sway * t
        period = 60 + 240 * t
        phase = rng.uniform(0, 2 * math.pi)
        xs = np.arange(-10, w + 10, 6, dtype=np.float64)
        ys = y + amp * np.sin(xs / period * 2 * math.pi + phase)
        # break each band into dashes so it reads as ripples, not stripes
        dash = int(20 + 140 * t)
        for start in range(0, len(xs), max(2, dash // 6 * 2)):
            if rng.uniform() < 0.45:
                continue
            seg = np.stack([xs[start : start + dash // 6], ys[start : start + dash // 6]], axis=1)
            if len(seg) > 1:
                lines.append(seg)
    m = polyline_mask(w, h, lines, thickness)
    return over(img, as_alpha(m, 0.6), colour, opacity)


def sun_glitter(img, rng, cx, horizon, w, h, colour, spread, n=260):
    """Broken horizontal strokes of light under a low sun or moon."""
    segs = []
    for _ in range(n):
        t = rng.uniform(0, 1) ** 1.6
        y = horizon + 3 + (h - horizon) * t
        half = spread * (0.25 + 1.5 * t)
        x = cx + rng.normal(0, half * 0.45)
        length = 4 + 40 * t * rng.uniform(0.4, 1.0)
        segs.append(((x - length / 2, y), (x + length / 2, y)))
    m = line_mask(w, h, segs, 2)
    return add(img, as_alpha(m, 0.7), colour, 0.9)


def birds(img, w, h, flock, colour, scale=1.0):
    lines = []
    for x, y, s in flock:
        s *= scale
        lines.append([(x - s, y - s * 0.35), (x - s * 0.45, y - s * 0.5), (x, y)])
        lines.append([(x, y), (x + s * 0.45, y - s * 0.5), (x + s, y - s * 0.35)])
    return over(img, as_alpha(polyline_mask(w, h, lines, 2)), colour, 0.85)


# --------------------------------------------------------------------------
# The pictures
# --------------------------------------------------------------------------


def harbour_wide(w=1280, h=720) -> np.ndarray:
    """Wide shot of a harbour at dawn: pier, moored boats, low sun, mist."""
    rng = np.random.default_rng(101)
    horizon = int(h * 0.56)
    sun = (w * 0.66, horizon - 38)
    img = vgradient(w, h, [(0, "#2b3561"), (0.45, "#8a6f9e"), (0.8, "#f0a884"), (1.0, "#ffd9a8")], 0, horizon)
    img = add(img, radial(w, h, sun, 420, 1.3), "#ffb070", 0.55)
    # thin clouds lit from below
    clouds = np.clip(smooth_noise(w, h, rng, 160, 3) * 1.6 - 0.35, 0, 1)
    band = np.clip(1 - np.abs(np.arange(h) - h * 0.22) / (h * 0.16), 0, 1)[:, None]
    img = over(img, (clouds * band)[:, :, None], "#f6c0a8", 0.5)
    img = add(img, radial(w, h, sun, 70, 2.0), "#fff2d0", 1.2)
    img = over(img, as_alpha(circle_mask(w, h, sun, 26), 0.8), "#fff6e0")
    # distant headland, two layers of haze
    far = silhouette_below(w, h, np.minimum(ridge(w, rng, horizon - 26, 22, 180), horizon))
    img = over(img, as_alpha(far, 0.8), "#9a7f9c", 0.75)
    near = silhouette_below(w, h, np.minimum(ridge(w, rng, horizon - 8, 14, 90) + np.linspace(-30, 20, w), horizon))
    img = over(img, as_alpha(near, 0.6), "#6c5b7e", 0.9)
    # sea
    sea = vgradient(w, h, [(0, "#c99a9a"), (0.25, "#6f6f93"), (1.0, "#1f3148")], horizon, h)
    sea_mask = np.zeros((h, w, 1), np.float32)
    sea_mask[horizon:] = 1.0
    img = img * (1 - sea_mask) + sea * sea_mask
    img = sun_glitter(img, rng, sun[0], horizon, w, h, "#ffd2a0", 50)
    img = wave_bands(img, rng, horizon, w, h, "#e9b9a8", 0.35)
    img = wave_bands(img, rng, horizon + 4, w, h, "#15233a", 0.35, count=26, thickness=2)
    # moored boats near the far quay
    for bx, by, s in [(820, horizon + 24, 0.55), (930, horizon + 30, 0.7), (1040, horizon + 20, 0.45)]:
        hull = [(bx - 60 * s, by - 12 * s), (bx + 60 * s, by - 12 * s), (bx + 44 * s, by + 6 * s), (bx - 50 * s, by + 6 * s)]
        img = over(img, as_alpha(poly_mask(w, h, [hull])), "#2a2638")
        img = over(img, as_alpha(poly_mask(w, h, [[(bx - 14 * s, by - 12 * s), (bx + 18 * s, by - 12 * s),
                                                     (bx + 18 * s, by - 34 * s), (bx - 14 * s, by - 34 * s)]])), "#3a3448")
        img = over(img, as_alpha(line_mask(w, h, [((bx, by - 12 * s), (bx, by - 120 * s))], 2)), "#2a2638")
    # the pier: a deck in perspective from the bottom left toward the horizon
    deck = [(0, h * 0.80), (470, horizon + 30), (520, horizon + 32), (250, h), (0, h)]
    deck_top = [(0, h * 0.80 - 14), (470, horizon + 26), (520, horizon + 28), (250, h - 10), (0, h - 10)]
    img = over(img, as_alpha(poly_mask(w, h, [deck])), "#241c22")
    planks = vgradient(w, h, [(0, "#6e5648"), (1, "#3a2a26")], horizon, h)
    img = over(img, as_alpha(poly_mask(w, h, [deck_top])), planks)
    plank_lines = []
    for i in range(1, 26):
        t = (i / 26) ** 1.7
        ya = horizon + 28 + (h - horizon - 28) * t
        xa = 495 - 495 * t
        plank_lines.append(((max(0, xa - 470 * (1 - t) * 0.0 - 10 - 60 * t), ya), (xa + 25 - 10 * t + 240 * t, ya)))
    img = over(img, as_alpha(line_mask(w, h, plank_lines, 1)), "#2b201d", 0.6)
    posts = []
    for i in range(9):
        t = (i / 8) ** 1.6
        x = 480 - 470 * t
        ytop = horizon + 26 + (h * 0.80 - horizon - 26) * t
        posts.append([(x - 3 - 9 * t, ytop), (x + 3 + 9 * t, ytop), (x + 3 + 9 * t, ytop + 16 + 70 * t), (x - 3 - 9 * t, ytop + 16 + 70 * t)])
    img = over(img, as_alpha(poly_mask(w, h, posts)), "#1b1418")
    # lamp posts on the pier with a warm glow
    for x, ytop, s in [(400, horizon - 30, 0.5), (250, horizon - 40, 0.8), (70, horizon - 70, 1.3)]:
        base = ytop + 120 * s
        img = over(img, as_alpha(line_mask(w, h, [((x, base), (x, ytop))], max(1, int(4 * s)))), "#1e1719")
        img = add(img, radial(w, h, (x, ytop), 40 * s, 1.5), "#ffc070", 0.8)
        img = over(img, as_alpha(circle_mask(w, h, (x, ytop), 5 * s)), "#fff0c0")
    # mist over the water, strongest along the horizon
    mist = np.clip(smooth_noise(w, h, rng, 200, 2) * 0.9 + 0.55, 0, 1)
    mband = np.exp(-(((np.arange(h) - (horizon + 10)) / (h * 0.08)) ** 2))[:, None]
    img = over(img, (mist * mband)[:, :, None], "#f3d6cf", 0.55)
    img = birds(img, w, h, [(560, 140, 10), (590, 160, 8), (620, 132, 9), (700, 176, 7)], "#3a2d45")
    img = texture(img, rng, 0.03)
    return vignette(img, 0.3)


def boat(w=1280, h=720) -> np.ndarray:
    """A small fishing boat drifting on calm morning water, with its reflection."""
    rng = np.random.default_rng(202)
    horizon = int(h * 0.47)
    img = vgradient(w, h, [(0, "#6f9cc8"), (0.6, "#bcd3e4"), (1.0, "#f3e2cc")], 0, horizon)
    img = add(img, radial(w, h, (w * 0.2, horizon - 60), 500, 1.2), "#ffe4b8", 0.35)
    clouds = np.clip(smooth_noise(w, h, rng, 220, 3) * 1.8 - 0.3, 0, 1)
    cband = np.clip(1 - np.abs(np.arange(h) - h * 0.17) / (h * 0.14), 0, 1)[:, None]
    img = over(img, (clouds * cband)[:, :, None], "#ffffff", 0.55)
    far = silhouette_below(w, h, np.minimum(ridge(w, rng, horizon - 14, 10, 140), horizon))
    img = over(img, as_alpha(far, 0.8), "#93a9bd", 0.8)
    sea = vgradient(w, h, [(0, "#a7c2cf"), (0.35, "#5f8ea5"), (1.0, "#1e4a63")], horizon, h)
    sea_mask = np.zeros((h, w, 1), np.float32)
    sea_mask[horizon:] = 1
    img = img * (1 - sea_mask) + sea * sea_mask

    # the boat, drawn into its own layer so the reflection can be mirrored
    layer = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w, 1), np.float32)

    def paint(mask, colour, blur=0.0):
        nonlocal layer, alpha
        a = as_alpha(mask, blur)
        c = rgb(colour) if isinstance(colour, str) else colour
        layer = layer * (1 - a) + c * a
        alpha = alpha * (1 - a) + a

    cx, wl = 640.0, horizon + 150.0  # centre and waterline
    bow = [(cx - 300, wl - 70), (cx + 250, wl - 80), (cx + 330, wl - 120), (cx + 280, wl - 30), (cx + 200, wl + 8), (cx - 250, wl + 8), (cx - 300, wl - 30)]
    paint(poly_mask(w, h, [bow]), "#e8e2d6")
    paint(poly_mask(w, h, [[(cx - 302, wl - 44), (cx + 304, wl - 56), (cx + 292, wl - 36), (cx - 300, wl - 26)]]), "#b2352c")
    paint(poly_mask(w, h, [[(cx - 285, wl - 14), (cx + 240, wl - 14), (cx + 200, wl + 8), (cx - 250, wl + 8)]]), "#1f3f5b")
    # hull shading
    shade = vgradient(w, h, [(0, "#ffffff"), (1, "#5b6470")], int(wl - 120), int(wl + 8))
    hull_a = as_alpha(poly_mask(w, h, [bow]))
    layer = layer * (1 - hull_a * 0.25) + shade * layer * hull_a * 0.25
    # wheelhouse
    paint(poly_mask(w, h, [[(cx - 170, wl - 72), (cx + 10, wl - 76), (cx + 10, wl - 190), (cx - 160, wl - 186)]]), "#f2efe8")
    paint(poly_mask(w, h, [[(cx - 180, wl - 186), (cx + 22, wl - 192), (cx + 16, wl - 206), (cx - 172, wl - 200)]]), "#2d4f6e")
    for x0 in (cx - 150, cx - 95, cx - 40):
        paint(poly_mask(w, h, [[(x0, wl - 170), (x0 + 40, wl - 171), (x0 + 40, wl - 130), (x0, wl - 129)]]), "#36556b")
        paint(poly_mask(w, h, [[(x0 + 4, wl - 166), (x0 + 16, wl - 166), (x0 + 10, wl - 134), (x0 + 4, wl - 134)]]), "#9fc2d6")
    # mast, boom, rigging, a small flag
    paint(line_mask(w, h, [((cx + 110, wl - 78), (cx + 110, wl - 330))], 7), "#5a4636")
    paint(line_mask(w, h, [((cx + 110, wl - 250), (cx + 280, wl - 110)), ((cx + 110, wl - 330), (cx - 250, wl - 72)),
                           ((cx + 110, wl - 330), (cx + 320, wl - 118))], 2), "#3b3a3a")
    paint(line_mask(w, h, [((cx + 110, wl - 240), (cx - 60, wl - 250))], 5), "#5a4636")
    paint(poly_mask(w, h, [[(cx + 112, wl - 330), (cx + 160, wl - 320), (cx + 112, wl - 306)]]), "#e0a030")
    # nets and floats piled on deck
    paint(ellipse_mask(w, h, (cx + 190, wl - 86), (70, 20)), "#4f6b4a")
    for i in range(6):
        paint(circle_mask(w, h, (cx + 135 + 22 * i, wl - 96 + 4 * (i % 2)), 7), "#e86a2a")
    # the reflection: mirror around the waterline, ripple it, darken it
    top = int(wl - 340)
    span = int(wl + 8) - top
    refl = np.zeros_like(layer)
    ra = np.zeros_like(alpha)
    y_dst0 = int(wl + 8)
    n = min(span, h - y_dst0)
    src = layer[top : top + span][::-1][:n]
    src_a = alpha[top : top + span][::-1][:n]
    refl[y_dst0 : y_dst0 + n] = src
    ra[y_dst0 : y_dst0 + n] = src_a
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    mapx = xx + 5.0 * np.sin(yy / 5.0) * np.clip((yy - y_dst0) / 80.0, 0, 1)
    refl = cv2.remap(refl, mapx, yy, cv2.INTER_LINEAR)
    ra = cv2.remap(ra, mapx, yy, cv2.INTER_LINEAR)[:, :, None]
    fade = np.clip(1 - (yy[:, :1] - y_dst0) / 260.0, 0, 1)[:, :, None] * 0.55
    img = img * (1 - ra * fade) + (refl * 0.55 + rgb("#1e4a63") * 0.45) * ra * fade
    img = wave_bands(img, rng, horizon, w, h, "#d6e6ee", 0.35, count=30)
    img = wave_bands(img, rng, horizon + 3, w, h, "#163a52", 0.3, count=24)
    # the boat itself over the water, with a soft contact shadow
    img = over(img, as_alpha(ellipse_mask(w, h, (cx, wl + 10), (330, 14)), 6), "#0f2a3c", 0.5)
    img = img * (1 - alpha) + layer * alpha
    img = birds(img, w, h, [(980, 150, 14), (1030, 120, 11), (1090, 170, 9)], "#34414f")
    img = texture(img, rng, 0.025)
    return vignette(img, 0.25)


def lighthouse_dusk(w=1280, h=720) -> np.ndarray:
    """A lighthouse on a cliff at dusk, its beam sweeping over a violet sea."""
    rng = np.random.default_rng(303)
    horizon = int(h * 0.62)
    img = vgradient(w, h, [(0, "#120f2e"), (0.35, "#3a2a62"), (0.7, "#b24f6e"), (0.9, "#f08a5d"), (1, "#ffc47a")], 0, horizon)
    # stars in the upper sky
    stars = blank_mask(w, h)
    for _ in range(140):
        x, y = rng.uniform(0, w), rng.uniform(0, horizon * 0.45)
        r = rng.choice([1, 1, 1, 2])
        cv2.circle(stars, (int(x * 16), int(y * 16)), int(r * 16), int(rng.uniform(90, 255)), -1, AA, SHIFT)
    fadek = np.clip(1 - np.arange(h) / (horizon * 0.5), 0, 1)[:, None, None]
    img = add(img, as_alpha(stars) * fadek, "#fff8e8", 0.9)
    # crescent moon
    moon = circle_mask(w, h, (230, 120), 28).astype(np.int16) - circle_mask(w, h, (242, 112), 26).astype(np.int16)
    img = add(img, radial(w, h, (230, 120), 90, 1.5), "#8c86c8", 0.25)
    img = over(img, as_alpha(np.clip(moon, 0, 255).astype(np.uint8)), "#fbf1d0")
    # afterglow at the horizon
    img = add(img, radial(w, h, (w * 0.35, horizon), 520, 1.6), "#ff9a5a", 0.35)
    # sea
    sea = vgradient(w, h, [(0, "#d07b78"), (0.15, "#5a3f70"), (1.0, "#100f26")], horizon, h)
    sm = np.zeros((h, w, 1), np.float32)
    sm[horizon:] = 1
    img = img * (1 - sm) + sea * sm
    img = sun_glitter(img, rng, w * 0.35, horizon, w, h, "#f3a070", 120, n=180)
    img = wave_bands(img, rng, horizon, w, h, "#2a1f45", 0.45, count=30)
    # cliff on the right with the lighthouse on top
    cliff_top = ridge(w, rng, 0, 10, 60)
    prof = np.full(w, h + 10, np.float32)
    xs = np.arange(w, dtype=np.float32)
    on = xs > 760
    prof[on] = np.interp(xs[on], [760, 820, 880, 1280], [h + 10, horizon + 20, 330, 300]) + cliff_top[on]
    img = over(img, as_alpha(silhouette_below(w, h, prof)), "#140f1e")
    cliff_a = as_alpha(silhouette_below(w, h, prof))
    # rock strata and a warm rim where the last light catches the cliff face
    strata = []
    for k in range(9):
        y0 = 340 + 38 * k + rng.uniform(-8, 8)
        xs0 = np.arange(760, w + 10, 20, dtype=np.float64)
        strata.append(np.stack([xs0, y0 + 6 * np.sin(xs0 / 70 + k) + (xs0 - 760) * rng.uniform(-0.05, 0.05)], 1))
    img = over(img, as_alpha(polyline_mask(w, h, strata, 2), 1.0) * cliff_a, "#2c2236", 0.8)
    face_light = np.clip(1 - (xs - 780) / 160.0, 0, 1)[None, :, None] * cliff_a
    img = add(img, face_light, "#7a3a4a", 0.35)
    img = add(img, as_alpha(polyline_mask(w, h, [np.stack([xs[780:], prof[780:] + 1], 1)], 2), 1.0), "#d8806a", 0.45)
    lx, base = 1010.0, 318.0
    tower = [(lx - 34, base), (lx + 34, base), (lx + 22, base - 210), (lx - 22, base - 210)]
    img = over(img, as_alpha(poly_mask(w, h, [tower])), "#e8e0e8")
    for k in range(0, 4):
        y0 = base - 30 - 52 * k
        t0, t1 = (base - y0) / 210, (base - y0 + 22) / 210
        band = [(lx - 34 + 12 * t0, y0), (lx + 34 - 12 * t0, y0), (lx + 34 - 12 * t1, y0 - 22), (lx - 34 + 12 * t1, y0 - 22)]
        img = over(img, as_alpha(poly_mask(w, h, [band])), "#b23a3a")
    # shade the tower's left side (the light is behind, to the west)
    shade = np.clip((lx + 10 - xs) / 40, 0, 1)[None, :, None] * as_alpha(poly_mask(w, h, [tower]))
    img = img * (1 - 0.45 * shade)
    # gallery, lantern room, roof
    img = over(img, as_alpha(poly_mask(w, h, [[(lx - 34, base - 210), (lx + 34, base - 210), (lx + 34, base - 218), (lx - 34, base - 218)]])), "#1e1a24")
    lamp = (lx, base - 236)
    beam = [lamp, (-40, base - 330), (-40, base - 150)]
    beam_a = as_alpha(poly_mask(w, h, [beam]), 6.0) * np.clip(xs / lx, 0, 1)[None, :, None] ** 0.6
    img = add(img, beam_a, "#ffe9b0", 0.35)
    beam2 = [lamp, (w + 40, base - 280), (w + 40, base - 200)]
    img = add(img, as_alpha(poly_mask(w, h, [beam2]), 4.0), "#ffe9b0", 0.2)
    img = add(img, radial(w, h, lamp, 90, 1.5), "#ffd98a", 0.9)
    img = over(img, as_alpha(poly_mask(w, h, [[(lx - 18, base - 218), (lx + 18, base - 218), (lx + 18, base - 252), (lx - 18, base - 252)]])), "#fff3c8")
    img = over(img, as_alpha(poly_mask(w, h, [[(lx - 26, base - 252), (lx + 26, base - 252), (lx, base - 284)]])), "#2a2030")
    # keeper's cottage with a lit window
    img = over(img, as_alpha(poly_mask(w, h, [[(1080, 318), (1190, 316), (1190, 270), (1135, 240), (1080, 272)]])), "#d9cfd8")
    img = img * (1 - 0.4 * as_alpha(poly_mask(w, h, [[(1080, 318), (1120, 318), (1120, 262), (1080, 272)]])))
    img = over(img, as_alpha(poly_mask(w, h, [[(1074, 274), (1135, 236), (1196, 272), (1196, 262), (1135, 226), (1074, 264)]])), "#3a2432")
    img = over(img, as_alpha(poly_mask(w, h, [[(1140, 300), (1162, 300), (1162, 280), (1140, 280)]])), "#ffcf70")
    img = add(img, radial(w, h, (1151, 290), 40, 1.5), "#ffb050", 0.4)
    # the beam's glow caught on the water below the cliff
    yy = np.arange(h, dtype=np.float32)[:, None]
    glow = np.exp(-((xs[None, :] - 620) / 160.0) ** 2) * np.clip((yy - horizon) / 20.0, 0, 1) * np.exp(-(yy - horizon) / 90.0)
    ripple = (np.sin(yy / 2.5) * 0.5 + 0.5) ** 2
    img = add(img, (glow * ripple * (yy > horizon))[:, :, None], "#ffd98a", 0.25)
    img = texture(img, rng, 0.03)
    return vignette(img, 0.4)


def city_night(w=1280, h=720) -> np.ndarray:
    """A rain-wet city street at night: lit windows, street lamps, neon, tail lights."""
    rng = np.random.default_rng(404)
    vp = (w * 0.52, h * 0.48)  # vanishing point
    img = vgradient(w, h, [(0, "#070a1c"), (0.7, "#1b2350"), (1, "#3c3566")], 0, int(vp[1]))
    img = add(img, radial(w, h, (vp[0], vp[1]), 420, 1.5), "#6a4a8a", 0.35)
    # distant skyline
    sky_prof = np.full(w, vp[1], np.float32)
    x = 0
    while x < w:
        bw = int(rng.uniform(30, 90))
        sky_prof[x : x + bw] = vp[1] - rng.uniform(30, 170)
        x += bw
    img = over(img, as_alpha(silhouette_below(w, h, sky_prof)), "#161a34")
    far_win = blank_mask(w, h)
    for _ in range(260):
        wx = rng.uniform(0, w)
        wy = rng.uniform(sky_prof[int(wx)] + 6, vp[1])
        cv2.rectangle(far_win, (int(wx), int(wy)), (int(wx) + 2, int(wy) + 3), int(rng.uniform(80, 230)), -1)
    img = add(img, as_alpha(far_win), "#ffd58a", 0.6)

    # road and pavements in perspective
    road = vgradient(w, h, [(0, "#2a2540"), (1, "#0b0b14")], int(vp[1]), h)
    ground = poly_mask(w, h, [[(0, h), (w, h), (w, vp[1]), (0, vp[1])]])
    img = over(img, as_alpha(ground), road)
    left_curb, right_curb = (150, h), (w - 120, h)
    img = over(img, as_alpha(poly_mask(w, h, [[(0, h), left_curb, vp, (0, vp[1] + 6)]])), "#1a1826")
    img = over(img, as_alpha(poly_mask(w, h, [[(w, h), right_curb, vp, (w, vp[1] + 6)]])), "#1a1826")
    # centre line dashes
    dashes = []
    for i in range(12):
        t0, t1 = (i / 12) ** 2.2, ((i + 0.5) / 12) ** 2.2
        p0 = (vp[0] + (w * 0.5 - vp[0]) * t0, vp[1] + (h - vp[1]) * t0)
        p1 = (vp[0] + (w * 0.5 - vp[0]) * t1, vp[1] + (h - vp[1]) * t1)
        dashes.append((p0, p1))
    img = over(img, as_alpha(line_mask(w, h, dashes, 3)), "#c9b27a", 0.55)

    # buildings on both sides, receding to the vanishing point
    def facade(side: int) -> None:
        nonlocal img
        edge_x = 0 if side < 0 else w
        x_near, x_far = (edge_x, vp[0] - 120) if side < 0 else (edge_x, vp[0] + 120)
        top_near, top_far = -40, vp[1] - 150
        quad = [(x_near, top_near), (x_far, top_far), (x_far, vp[1] + 4), (x_near, h * 0.85)]
        img = over(img, as_alpha(poly_mask(w, h, [quad])), "#12111f" if side < 0 else "#181629")
        wins = blank_mask(w, h)
        colours = blank_mask(w, h)
        for i in range(16):
            t0, t1 = i / 16, (i + 0.55) / 16
            xa = x_near + (x_far - x_near) * (1 - (1 - t0) ** 1.0)
            xb = x_near + (x_far - x_near) * (1 - (1 - t1) ** 1.0)
            for j in range(8):
                if rng.uniform() < 0.45:
                    continue
                s0, s1 = (j + 0.2) / 8, (j + 0.75) / 8
                ya0 = top_near + (h * 0.85 - top_near) * s0
                ya1 = top_near + (h * 0.85 - top_near) * s1
                yb0 = top_far + (vp[1] - top_far) * s0
                yb1 = top_far + (vp[1] - top_far) * s1
                yat = lambda t, a, b: a + (b - a) * t  # noqa: E731
                q = [(xa, yat(t0, ya0, yb0)), (xb, yat(t1, ya0, yb0)), (xb, yat(t1, ya1, yb1)), (xa, yat(t0, ya1, yb1))]
                v = int(rng.uniform(120, 255))
                cv2.fillPoly(wins, [pts(q)], v, AA, SHIFT)
                cv2.fillPoly(colours, [pts(q)], 255 if rng.uniform() < 0.7 else 0, AA, SHIFT)
        a = as_alpha(wins)
        warm = as_alpha(colours)
        img = add(img, a * warm, "#ffc46a", 0.85)
        img = add(img, a * (1 - warm), "#8fd0ff", 0.6)

    facade(-1)
    facade(1)
    # neon signs
    img = over(img, as_alpha(poly_mask(w, h, [[(250, 210), (330, 222), (330, 262), (250, 258)]])), "#ff3ea5", 0.9)
    img = add(img, radial(w, h, (290, 238), 110, 1.5), "#ff3ea5", 0.5)
    img = over(img, as_alpha(poly_mask(w, h, [[(960, 250), (1010, 244), (1010, 340), (960, 336)]])), "#2ef2ff", 0.9)
    img = add(img, radial(w, h, (985, 292), 110, 1.5), "#2ef2ff", 0.45)
    # street lamps
    lamps = [(120, 250, 1.3), (370, 325, 0.75), (470, 352, 0.45), (1130, 260, 1.2), (900, 330, 0.7), (790, 356, 0.45)]
    for lx, ly, s in lamps:
        img = over(img, as_alpha(line_mask(w, h, [((lx, ly), (lx, ly + 330 * s))], max(1, int(5 * s)))), "#0a0a10")
        img = add(img, radial(w, h, (lx, ly), 120 * s, 1.3), "#ffb45a", 0.7)
        img = over(img, as_alpha(circle_mask(w, h, (lx, ly), 7 * s)), "#fff1cc")
    # tail lights of a car ahead, and its body
    cx, cy = 610.0, 470.0
    img = over(img, as_alpha(poly_mask(w, h, [[(cx - 70, cy), (cx + 70, cy), (cx + 62, cy - 42), (cx + 40, cy - 70), (cx - 40, cy - 70), (cx - 62, cy - 42)]])), "#0d0c14")
    for dx in (-52, 52):
        img = add(img, radial(w, h, (cx + dx, cy - 30), 40, 1.5), "#ff2a2a", 0.6)
        img = over(img, as_alpha(ellipse_mask(w, h, (cx + dx, cy - 30), (12, 5))), "#ff5040")
    # wet road: stretch every light straight down as a shimmering reflection
    yy = np.arange(h, dtype=np.float32)[:, None]
    bright = np.clip(img - 0.35, 0, None)
    refl = np.zeros_like(img)
    ground_a = as_alpha(ground)
    for lx, ly, s in lamps + [(cx - 52, cy - 30, 0.6), (cx + 52, cy - 30, 0.6), (290, 238, 1.0), (985, 292, 1.0)]:
        col = bright[int(ly), int(lx)]
        streak = np.exp(-((np.arange(w)[None, :] - lx) / (10 * s + 4)) ** 2) * (yy > max(ly + 330 * s - 40, vp[1]))
        refl += streak[:, :, None] * col * 0.9
    shimmer = (smooth_noise(w, h, rng, 24, 2) * 0.5 + 0.6)[:, :, None]
    img = img + refl * shimmer * ground_a
    # a few rain streaks
    rain = []
    for _ in range(220):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        ln = rng.uniform(10, 26)
        rain.append(((x0, y0), (x0 - ln * 0.15, y0 + ln)))
    img = add(img, as_alpha(line_mask(w, h, rain, 1)), "#9fb3d9", 0.12)
    img = texture(img, rng, 0.03)
    return vignette(img, 0.35)


def forest(w=1280, h=720) -> np.ndarray:
    """A misty pine forest in morning light, god rays between the trunks."""
    rng = np.random.default_rng(505)
    img = vgradient(w, h, [(0, "#d8e6d2"), (0.55, "#bcd5b6"), (1, "#7f9e76")])
    sun = (w * 0.72, -40.0)
    img = add(img, radial(w, h, sun, 700, 1.2), "#fff4c8", 0.45)

    def pine_row(base_y, scale, colour, density, haze):
        nonlocal img
        polys, trunks = [], []
        x = -40.0 + rng.uniform(0, 40)
        while x < w + 40:
            th = scale * rng.uniform(0.8, 1.25)
            tw = th * rng.uniform(0.22, 0.3)
            ground = base_y + rng.uniform(-6, 6) * scale / 100
            tiers = 5
            for k in range(tiers):
                f0 = k / tiers
                top = ground - th * (0.25 + 0.75 * (f0 + 1 / tiers))
                bot = ground - th * (0.25 + 0.75 * f0) + th * 0.06
                half = tw * (1 - f0 * 0.75) * 0.5 * 1.25
                polys.append([(x, top), (x + half, bot), (x + half * 0.4, bot - th * 0.03), (x - half * 0.4, bot - th * 0.03), (x - half, bot)])
            trunks.append([(x - tw * 0.06, ground), (x + tw * 0.06, ground), (x + tw * 0.03, ground - th * 0.5), (x - tw * 0.03, ground - th * 0.5)])
            x += tw * density * rng.uniform(0.7, 1.3)
        m = poly_mask(w, h, polys + trunks)
        img = over(img, as_alpha(m), colour)
        img = over(img, as_alpha(m), "#dfe9d6", haze)

    pine_row(h * 0.52, 150, "#7d9a86", 0.8, 0.35)
    img = over(img, as_alpha(poly_mask(w, h, [[(0, h * 0.5), (w, h * 0.48), (w, h), (0, h)]])), "#a7bb98")
    pine_row(h * 0.62, 240, "#4e6f58", 0.9, 0.2)
    # mist between the layers
    mist = np.clip(smooth_noise(w, h, rng, 220, 2) * 0.8 + 0.5, 0, 1)
    mb = np.exp(-(((np.arange(h) - h * 0.6) / (h * 0.12)) ** 2))[:, None]
    img = over(img, (mist * mb)[:, :, None], "#eef3e6", 0.5)
    # forest floor with a path winding into the trees
    floor = vgradient(w, h, [(0, "#5f7a45"), (1, "#2f3f22")], int(h * 0.66), h)
    fm = poly_mask(w, h, [[(0, h * 0.68), (w, h * 0.66), (w, h), (0, h)]])
    img = over(img, as_alpha(fm, 2.0), floor)
    path = [(540, h), (900, h), (730, h * 0.8), (660, h * 0.72), (610, h * 0.67), (590, h * 0.67), (620, h * 0.72), (600, h * 0.8)]
    img = over(img, as_alpha(poly_mask(w, h, [path]), 1.5), vgradient(w, h, [(0, "#b9a57c"), (1, "#7a6444")], int(h * 0.66), h))
    pine_row(h * 0.72, 420, "#2b4232", 1.1, 0.05)
    # near trunks framing the shot
    for x0, wd in [(60, 60), (1150, 80), (980, 34)]:
        trunk = [(x0 - wd / 2, h + 5), (x0 + wd / 2, h + 5), (x0 + wd * 0.4, -5), (x0 - wd * 0.4, -5)]
        img = over(img, as_alpha(poly_mask(w, h, [trunk])), "#2a231c")
        lit = [(x0 + wd * 0.15, h + 5), (x0 + wd / 2, h + 5), (x0 + wd * 0.4, -5), (x0 + wd * 0.12, -5)]
        img = over(img, as_alpha(poly_mask(w, h, [lit])), "#6b5a40", 0.6)
    # ferns in the foreground
    fronds = []
    for cx0, cy0 in [(250, h - 10), (420, h + 10), (880, h), (1060, h - 20)]:
        for k in range(9):
            ang = math.radians(-160 + k * 17.5)
            length = rng.uniform(70, 120)
            pts_ = []
            for s in np.linspace(0, 1, 12):
                bend = 30 * s * s
                pts_.append((cx0 + math.cos(ang) * length * s, cy0 + math.sin(ang) * length * s + bend))
            fronds.append(pts_)
    img = over(img, as_alpha(polyline_mask(w, h, fronds, 6)), "#3f6a2e")
    img = over(img, as_alpha(polyline_mask(w, h, fronds, 2)), "#7fa955", 0.7)
    # god rays from the upper right
    rays = []
    for k in range(7):
        x_top = sun[0] + rng.uniform(-260, 200)
        spread = rng.uniform(30, 70)
        x_bot = x_top - 520 + rng.uniform(-60, 60)
        rays.append([(x_top - spread * 0.3, -10), (x_top + spread * 0.3, -10), (x_bot + spread, h), (x_bot - spread, h)])
    ra = as_alpha(poly_mask(w, h, rays), 18.0) * np.linspace(1.0, 0.25, h, dtype=np.float32)[:, None, None]
    img = add(img, ra, "#fff3c0", 0.28)
    img = texture(img, rng, 0.035, cell=64)
    return vignette(img, 0.3)


def vertical_window(w=720, h=1280) -> np.ndarray:
    """Portrait: a woman in profile at a tall window, golden hour, city beyond."""
    rng = np.random.default_rng(606)
    # warm room
    img = vgradient(w, h, [(0, "#3a2418"), (0.5, "#5a3722"), (1, "#2a1a12")])
    # the window: sky at sunset with a soft skyline
    wx0, wx1, wy0, wy1 = 90, 630, 140, 900
    view = vgradient(w, h, [(0, "#f2a25a"), (0.55, "#f7c98a"), (0.75, "#f4a07a"), (1, "#8a5a6a")], wy0, wy1)
    view = add(view, radial(w, h, (470, 720), 260, 1.4), "#fff0c0", 0.6)
    skyline = np.full(w, 820.0, np.float32)
    x = wx0
    while x < wx1:
        bw = int(rng.uniform(25, 60))
        skyline[x : x + bw] = 820 - rng.uniform(10, 160)
        x += bw
    view = over(view, as_alpha(silhouette_below(w, h, skyline), 1.0), "#9a6c70", 0.75)
    win = poly_mask(w, h, [[(wx0, wy0), (wx1, wy0), (wx1, wy1), (wx0, wy1)]])
    img = over(img, as_alpha(win), view)
    # window frame and mullions
    frame = line_mask(w, h, [((wx0, wy0), (wx1, wy0)), ((wx1, wy0), (wx1, wy1)), ((wx1, wy1), (wx0, wy1)), ((wx0, wy1), (wx0, wy0)),
                             ((360, wy0), (360, wy1)), ((wx0, 520), (wx1, 520))], 14)
    img = over(img, as_alpha(frame), "#2a1a12")
    # sunlight pooling on the sill and wall
    img = add(img, radial(w, h, (380, 980), 340, 1.6), "#ffb060", 0.25)
    img = over(img, as_alpha(poly_mask(w, h, [[(60, 900), (660, 900), (700, 940), (20, 940)]])), "#7a4a2a")
    # silhouette in profile, facing right, shoulders at the bottom
    head_c = (262.0, 640.0)
    body = [(-20, h + 5), (-20, 1000), (60, 930), (170, 890), (230, 860), (262, 800), (290, 812), (350, 860), (430, 900), (520, 960), (600, 1060), (640, h + 5)]
    img = over(img, as_alpha(poly_mask(w, h, [body]), 1.0), "#1c120e")
    face = [(300, 520), (350, 540), (378, 590), (382, 620), (402, 655), (386, 664), (390, 690), (380, 708), (384, 730), (360, 760), (330, 770), (295, 800), (262, 800), (240, 720)]
    img = over(img, as_alpha(poly_mask(w, h, [face]), 0.8), "#1c120e")
    img = over(img, as_alpha(ellipse_mask(w, h, head_c, (100, 130), -15), 1.0), "#1c120e")
    # hair bun and loose strands
    img = over(img, as_alpha(circle_mask(w, h, (200, 560), 58), 1.0), "#1c120e")
    strands = [[(220, 600), (200, 700), (215, 790), (240, 860)], [(240, 620), (230, 720), (250, 820)]]
    img = over(img, as_alpha(polyline_mask(w, h, strands, 3)), "#1c120e")
    # rim light along the profile, from the window
    edge = poly_mask(w, h, [face])
    rim = cv2.morphologyEx(edge, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8))
    rim = rim * (np.arange(w)[None, :] > 345) * (np.arange(h)[:, None] > 560)
    img = add(img, as_alpha(rim.astype(np.uint8), 1.5), "#ffc070", 0.9)
    # warm bokeh floating in front of the glass
    bokeh = blank_mask(w, h)
    for _ in range(26):
        cx, cy, r = rng.uniform(0, w), rng.uniform(150, 900), rng.uniform(8, 28)
        cv2.circle(bokeh, (int(cx * 16), int(cy * 16)), int(r * 16), int(rng.uniform(40, 110)), -1, AA, SHIFT)
    img = add(img, as_alpha(bokeh, 2.0), "#ffd59a", 0.7)
    img = texture(img, rng, 0.03)
    return vignette(img, 0.45)


def vertical_alley(w=720, h=1280) -> np.ndarray:
    """A narrow alley at night in the rain: neon signs stacked up tall walls, puddles."""
    rng = np.random.default_rng(707)
    vp = (w * 0.5, h * 0.55)
    img = vgradient(w, h, [(0, "#0b0820"), (0.5, "#2a1445"), (1, "#0c0a18")])
    # sliver of sky
    img = add(img, as_alpha(poly_mask(w, h, [[(250, 0), (470, 0), (400, vp[1] - 200), (320, vp[1] - 200)]]), 20), "#4a3a8a", 0.6)
    # walls
    left = [(0, 0), (300, 0), (330, vp[1] - 60), (330, vp[1] + 120), (0, h)]
    right = [(w, 0), (430, 0), (395, vp[1] - 60), (395, vp[1] + 120), (w, h)]
    img = over(img, as_alpha(poly_mask(w, h, [left])), vgradient(w, h, [(0, "#1a1230"), (1, "#0d0a16")]))
    img = over(img, as_alpha(poly_mask(w, h, [right])), vgradient(w, h, [(0, "#20163a"), (1, "#0f0b1a")]))
    # ground
    ground = [(0, h), (330, vp[1] + 120), (395, vp[1] + 120), (w, h)]
    img = over(img, as_alpha(poly_mask(w, h, [ground])), vgradient(w, h, [(0, "#1c1628"), (1, "#08070c")], int(vp[1]), h))
    # neon signs: vertical strips on both walls
    signs = [((40, 160, 110, 560), "#ff2d95"), ((200, 380, 250, 640), "#27e0ff"), ((560, 120, 640, 470), "#ffb020"),
             ((470, 420, 510, 620), "#a04bff"), ((270, 560, 300, 660), "#2dff9a")]
    for (x0, y0, x1, y1), col in signs:
        img = add(img, radial(w, h, ((x0 + x1) / 2, (y0 + y1) / 2), max(x1 - x0, y1 - y0) * 0.9, 1.3), col, 0.35)
        img = over(img, as_alpha(poly_mask(w, h, [[(x0, y0), (x1, y0), (x1, y1), (x0, y1)]])), "#120c1c")
        box = line_mask(w, h, [((x0 + 4, y0 + 4), (x1 - 4, y0 + 4)), ((x1 - 4, y0 + 4), (x1 - 4, y1 - 4)),
                               ((x1 - 4, y1 - 4), (x0 + 4, y1 - 4)), ((x0 + 4, y1 - 4), (x0 + 4, y0 + 4))], 3)
        img = add(img, as_alpha(box, 1.0), col, 1.0)
        # glyph-like bars inside
        bars = []
        for yb in np.arange(y0 + 24, y1 - 20, 38):
            bars.append(((x0 + 12, yb), (x1 - 12, yb + rng.uniform(-4, 4))))
            if rng.uniform() < 0.6:
                xm = rng.uniform(x0 + 14, x1 - 14)
                bars.append(((xm, yb), (xm, yb + 22)))
        img = add(img, as_alpha(line_mask(w, h, bars, 4), 0.8), col, 0.9)
        img = add(img, as_alpha(line_mask(w, h, bars, 8), 5.0), col, 0.5)
    # a lone figure with an umbrella, small, mid-alley
    fx, fy = 372.0, vp[1] + 150
    img = over(img, as_alpha(poly_mask(w, h, [[(fx - 14, fy), (fx + 14, fy), (fx + 10, fy - 70), (fx - 10, fy - 70)]])), "#06050a")
    img = over(img, as_alpha(ellipse_mask(w, h, (fx, fy - 78), (40, 20), 0, 180, 360)), "#06050a")
    img = over(img, as_alpha(line_mask(w, h, [((fx, fy - 78), (fx, fy - 40))], 2)), "#06050a")
    # puddle reflections of every sign, stretched down the wet ground
    yy = np.arange(h, dtype=np.float32)[:, None]
    xsv = np.arange(w, dtype=np.float32)[None, :]
    ground_a = as_alpha(poly_mask(w, h, [ground]))
    wob = smooth_noise(w, h, rng, 60, 2)
    shimmer = (0.55 + 0.45 * np.sin(yy * 0.9 + 6.0 * wob) ** 2)[:, :, None]
    for (x0, y0, x1, y1), col in signs:
        cx = (x0 + x1) / 2
        streak = np.exp(-((xsv - cx) / ((x1 - x0) * 0.5 + 6)) ** 2) * (yy > vp[1] + 140) * np.exp(-np.abs(yy - h * 0.85) / 300)
        img = img + streak[:, :, None] * rgb(col) * 0.4 * shimmer * ground_a
    # rain
    rain = []
    for _ in range(420):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        ln = rng.uniform(14, 40)
        rain.append(((x0, y0), (x0 + ln * 0.08, y0 + ln)))
    img = add(img, as_alpha(line_mask(w, h, rain, 1)), "#b8c6ff", 0.18)
    img = texture(img, rng, 0.03)
    return vignette(img, 0.35)


def vertical_rooftop(w=720, h=1280) -> np.ndarray:
    """A rooftop water tower against a pale pink dawn, the city waking below."""
    rng = np.random.default_rng(808)
    horizon = int(h * 0.66)
    img = vgradient(w, h, [(0, "#5d7fb5"), (0.45, "#b8b3d6"), (0.8, "#f6c4c0"), (1, "#ffe2c4")], 0, horizon)
    sun = (w * 0.3, horizon - 40)
    img = add(img, radial(w, h, sun, 380, 1.3), "#ffd6b0", 0.5)
    img = over(img, as_alpha(circle_mask(w, h, sun, 30), 1.0), "#fff5e6")
    clouds = np.clip(smooth_noise(w, h, rng, 140, 3) * 1.7 - 0.4, 0, 1)
    cb = np.clip(1 - np.abs(np.arange(h) - h * 0.3) / (h * 0.12), 0, 1)[:, None]
    img = over(img, (clouds * cb)[:, :, None], "#ffe6ea", 0.6)
    # two layers of skyline in the haze
    for base, lo, hi, col, op in [(horizon, 40, 260, "#b89fb8", 0.7), (horizon + 60, 60, 360, "#7c6a8c", 0.9)]:
        prof = np.full(w, float(base), np.float32)
        x = 0
        while x < w:
            bw = int(rng.uniform(30, 80))
            prof[x : x + bw] = base - rng.uniform(lo, hi)
            if rng.uniform() < 0.2:  # a spire
                prof[x + bw // 2 - 2 : x + bw // 2 + 2] -= 60
            x += bw
        img = over(img, as_alpha(silhouette_below(w, h, prof)), col, op)
    # morning haze low in the frame
    hz = np.exp(-(((np.arange(h) - (horizon + 40)) / 90.0) ** 2))[:, None, None]
    img = over(img, np.broadcast_to(hz, (h, w, 1)).astype(np.float32), "#f7d7d0", 0.5)
    # rooftop ledge in the foreground
    roof = [(0, h * 0.86), (w, h * 0.83), (w, h), (0, h)]
    img = over(img, as_alpha(poly_mask(w, h, [roof])), vgradient(w, h, [(0, "#4a3c4a"), (1, "#221a22")], int(h * 0.83), h))
    img = over(img, as_alpha(line_mask(w, h, [((0, h * 0.86), (w, h * 0.83))], 6)), "#d8a89a", 0.7)
    # water tower on stilts, right of frame
    tx, ty = 520.0, 520.0
    legs = [((tx - 80, h * 0.845), (tx - 60, ty + 200)), ((tx + 80, h * 0.84), (tx + 60, ty + 200)),
            ((tx - 20, h * 0.845), (tx - 20, ty + 200)), ((tx - 70, ty + 330), (tx + 70, ty + 260)), ((tx - 70, ty + 260), (tx + 70, ty + 330))]
    img = over(img, as_alpha(line_mask(w, h, legs, 7)), "#2e2430")
    tank = [(tx - 95, ty + 200), (tx + 95, ty + 200), (tx + 95, ty + 20), (tx - 95, ty + 20)]
    img = over(img, as_alpha(poly_mask(w, h, [tank])), "#5a3e3a")
    lit = np.clip((tx - np.arange(w)) / 190 + 0.5, 0, 1)[None, :, None] * as_alpha(poly_mask(w, h, [tank]))
    img = add(img, lit, "#ffb89a", 0.35)
    hoops = [((tx - 95, ty + y), (tx + 95, ty + y)) for y in (50, 110, 170)]
    img = over(img, as_alpha(line_mask(w, h, hoops, 3)), "#2e2430", 0.8)
    img = over(img, as_alpha(poly_mask(w, h, [[(tx - 110, ty + 24), (tx + 110, ty + 24), (tx, ty - 70)]])), "#3a2a30")
    # pigeons on the ledge and one in flight
    for px in (120, 160, 300):
        py = h * 0.86 - 3 - (px / w) * (h * 0.03)
        img = over(img, as_alpha(ellipse_mask(w, h, (px, py - 12), (16, 10))), "#2a2230")
        img = over(img, as_alpha(circle_mask(w, h, (px + 12, py - 24), 6)), "#2a2230")
    img = birds(img, w, h, [(230, 380, 22), (300, 330, 14)], "#3a3048")
    img = texture(img, rng, 0.03)
    return vignette(img, 0.3)


IMAGES = {
    "harbour_wide.png": harbour_wide,
    "boat.png": boat,
    "lighthouse_dusk.png": lighthouse_dusk,
    "city_night.png": city_night,
    "forest.png": forest,
    "vertical_window.png": vertical_window,
    "vertical_alley.png": vertical_alley,
    "vertical_rooftop.png": vertical_rooftop,
}

# --------------------------------------------------------------------------
# Music
# --------------------------------------------------------------------------

RATE = 22050


def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def make_music(seconds: float = 60.0, rate: int = RATE) -> np.ndarray:
    """A slow, calm piece: a pad of sine chords, a soft bass and a plucked arpeggio.

    D major, I - vi - IV - V (and a plagal turn at the end), 4 s per chord,
    72 bpm. Returns int16 mono samples.
    """
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    out = np.zeros(n, np.float64)
    # chords as MIDI notes (D major: D A Bm G ...)
    prog = [
        [50, 57, 62, 66], [47, 54, 59, 62], [43, 55, 59, 62], [45, 52, 57, 61],
        [50, 57, 62, 66], [47, 54, 59, 62], [43, 55, 59, 64], [45, 52, 57, 61],
        [43, 50, 59, 62], [45, 52, 57, 64], [47, 54, 59, 62], [42, 54, 57, 61],
        [43, 55, 59, 62], [43, 55, 58, 62], [50, 57, 62, 66],
    ]
    bar = seconds / len(prog)  # 4 s
    beat = 60.0 / 72.0
    for i, chord in enumerate(prog):
        t0 = i * bar
        # pad: each chord fades in and out, overlapping its neighbours
        s0, s1 = int(max(0.0, t0 - 0.8) * rate), int(min(seconds, t0 + bar + 0.8) * rate)
        tt = t[s0:s1] - t0
        env = np.clip((tt + 0.8) / 1.6, 0, 1) * np.clip((bar + 0.8 - tt) / 1.6, 0, 1)
        env = env * env * (3 - 2 * env)  # smoothstep
        for k, note in enumerate(chord):
            f = midi_hz(note + 12 if k else note)
            tone = np.sin(2 * np.pi * f * t[s0:s1]) + 0.3 * np.sin(2 * np.pi * 2 * f * t[s0:s1] + 0.5)
            tone *= 1.0 + 0.004 * np.sin(2 * np.pi * 0.3 * t[s0:s1] + k)  # slow chorus-like wobble
            out[s0:s1] += (0.10 if k else 0.16) * env * tone
        # plucked arpeggio in the upper register, one note per half beat
        arp = [chord[1] + 24, chord[2] + 24, chord[3] + 24, chord[2] + 24]
        step = beat / 2
        m = 0
        while t0 + m * step < min(seconds, t0 + bar) - 0.05:
            start = t0 + m * step
            note = arp[m % len(arp)]
            if i == len(prog) - 1 and m >= 4:  # let the last chord ring
                break
            a0 = int(start * rate)
            a1 = min(n, a0 + int(1.6 * rate))
            ta = t[a0:a1] - start
            f = midi_hz(note)
            pluck = np.exp(-ta * 3.2) * (1 - np.exp(-ta * 400))
            voice = np.sin(2 * np.pi * f * ta) + 0.25 * np.sin(2 * np.pi * 2 * f * ta) * np.exp(-ta * 6)
            out[a0:a1] += 0.07 * (0.85 if m % 2 else 1.0) * pluck * voice
            m += 1
    # overall shape: gentle swell in, long fade at the end
    fade_in = np.clip(t / 2.5, 0, 1)
    fade_out = np.clip((seconds - t) / 5.0, 0, 1)
    out *= fade_in * fade_out
    out /= np.max(np.abs(out)) + 1e-9
    return np.round(out * 0.8 * 32767).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.astype("<i2").tobytes())


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "storyboards", help="folder to write images/ and audio/ into")
    ap.add_argument("--only", nargs="*", help="draw only these image names (e.g. boat.png)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)  # keep every run's arithmetic identical
    images_dir, audio_dir = args.out / "images", args.out / "audio"
    images_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    for name, draw in IMAGES.items():
        if args.only and name not in args.only:
            continue
        path = images_dir / name
        ok, buf = cv2.imencode(".png", finish(draw()), PNG_OPTS)
        if not ok:
            raise RuntimeError(f"could not encode {name}")
        path.write_bytes(buf.tobytes())
        print(f"{path.relative_to(args.out.parent) if args.out.parent in path.parents else path}  {path.stat().st_size:>9,d} bytes")
    if not args.only:
        path = audio_dir / "harbour.wav"
        write_wav(path, make_music())
        print(f"{path.relative_to(args.out.parent) if args.out.parent in path.parents else path}  {path.stat().st_size:>9,d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
