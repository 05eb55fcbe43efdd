"""Continuity across a seam: the colour change between the last frame shown before it and the
first generated frames after it, which an overlap fit cannot see (a look that ramps in after the
conditioned frames). Pixels are paired under DIS optical flow; only a fast step is corrected,
bounded, and a change that goes on smoothly past the seam (an intended look change, the content's
own light) is kept: the step is what is left at the seam of a smooth path fitted to the settled frames.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .transform import ColourTransform, compose, lerp

LOOK = 20  # generated frames looked at past the seam
FAST = 8  # a fast step settles within this many generated frames
SETTLED = (8, 12)  # generated frames the step is measured on
# the settled frames (FAST on) trace the content's own path; a smooth (quadratic) path through them,
# extrapolated back to the seam, leaves there the step that came in fast. A straight line cannot: a
# change that starts from rest at the seam (a new take's light) bends, and a line through its later,
# steeper frames takes most of the step for content.
PATH_DEGREE = 2
CHAIN = 4  # frames between the pairs that carry the path past the settled window
F_CURVE = 4.0  # the parabola is taken where it fits the path this much better than the line (F statistic)
SURE = (2.0, 4.0)  # a steady change is kept from this many spreads of the fit's scatter (none) to this (all)
SANE = (0.7, 1.5)  # the fast step must point within acos(0.7) of the step seen and be at most 1.5 times it
MIN_STEP = 0.6  # Lab units: below this nothing is corrected
MAX_STEP = 30.0  # Lab units: above this the change is content (a new subject), not drift
MARGIN = 6  # pixels of border where flow is least reliable
GRID = 4  # the frame is split GRIDxGRID to tell a global step (drift) from a local one (content)
AGREE = (0.5, 0.8)  # share of cells showing at least half the step: none corrected at or below, all above


@dataclass(frozen=True)
class SeamFix:
    """A correction applied on top of a segment's own transform from its seam on:
    ``weights[k]`` of ``transform`` at local frame ``start + k``; the last weight holds after."""

    transform: ColourTransform
    start: int
    weights: tuple[float, ...]
    info: Mapping[str, Any]

    def weight(self, index: int) -> float:
        k = index - self.start
        if k < 0 or not self.weights:
            return 0.0
        return self.weights[min(k, len(self.weights) - 1)]

    def on(self, base: ColourTransform, index: int) -> ColourTransform:
        w = self.weight(index)
        return base if w <= 0.0 else compose(base, lerp(ColourTransform.identity(), self.transform, w))

    def to_dict(self) -> dict[str, Any]:
        return {"transform": self.transform.to_dict(), "start": self.start,
                "weights": [round(w, 4) for w in self.weights], "info": dict(self.info)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SeamFix:
        return cls(ColourTransform.from_dict(data["transform"]), int(data["start"]),
                   tuple(float(w) for w in data["weights"]), dict(data.get("info", {})))


def _grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def _paired(before: np.ndarray, after: np.ndarray, cells: bool = False) -> Any:
    """(after pixels, the before pixels they show under motion), Nx3 float, borders and clipped levels out;
    ``cells``: also each pair's cell of a GRIDxGRID split of the frame."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    flow = dis.calc(_grey(after), _grey(before), None)
    h, w = after.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(before, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (xx + flow[..., 0] >= MARGIN) & (xx + flow[..., 0] < w - MARGIN) & \
             (yy + flow[..., 1] >= MARGIN) & (yy + flow[..., 1] < h - MARGIN)  # fmt: skip
    x, y = after[inside].astype(np.float64), warped[inside].astype(np.float64)
    ok = (x.min(1) > 3) & (x.max(1) < 252) & (y.min(1) > 3) & (y.max(1) < 252)
    if not cells:
        return x[ok], y[ok]
    cell = (yy * GRID // h).astype(int) * GRID + (xx * GRID // w).astype(int)
    return x[ok], y[ok], cell[inside][ok]


def _each(fn: Callable[[int], Any], ks: Iterable[int]) -> list[Any]:
    """``[fn(k) for k in ks]`` on a few threads: each is an optical flow that OpenCV computes
    with the GIL released, and this runs on a chain's critical path (before the next submit)."""
    ks = list(ks)
    workers = min(len(ks), max(1, min(4, os.cpu_count() or 1)))
    if workers <= 1:
        return [fn(k) for k in ks]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seam-flow") as pool:
        return list(pool.map(fn, ks))


def _lab(rgb: np.ndarray) -> np.ndarray:
    px = np.clip(rgb, 0, 255).astype(np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(px, cv2.COLOR_RGB2Lab).reshape(-1, 3).mean(axis=0).astype(np.float64)


def _gain_offset(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-channel y ≈ a·x + b, least squares with the worst-fitting tenth of the pairs dropped."""
    m = np.zeros((3, 4))
    for c in range(3):
        a = np.c_[x[:, c], np.ones(len(x))]
        coef = np.linalg.lstsq(a, y[:, c], rcond=None)[0]
        r = np.abs(a @ coef - y[:, c])
        keep = r <= np.quantile(r, 0.9)
        coef = np.linalg.lstsq(a[keep], y[keep, c], rcond=None)[0]
        m[c, c], m[c, 3] = np.clip(coef[0], 0.7, 1.4), np.clip(coef[1], -40, 40)
    return m


def _smoothstep(v: float) -> float:
    v = min(1.0, max(0.0, v))
    return v * v * (3.0 - 2.0 * v)


def _uniformity(x: np.ndarray, y: np.ndarray, cell: np.ndarray, step: np.ndarray) -> tuple[float, float]:
    """How much of ``step`` every part of the frame shows: (median over cells of the share of the step a
    cell shows, fraction of cells showing at least half of it)."""
    size2 = float(np.dot(step, step))
    if size2 <= 1e-9:
        return 0.0, 0.0
    shares = []
    for c in range(GRID * GRID):
        sel = cell == c
        if int(sel.sum()) >= 50:
            shares.append(float(np.dot(_lab(y[sel]) - _lab(x[sel]), step)) / size2)
    if len(shares) < GRID * GRID // 2:
        return 0.0, 0.0
    return float(np.median(shares)), float(np.mean([s >= 0.5 for s in shares]))


def _path(after: Sequence[np.ndarray], settled: Sequence[tuple[np.ndarray, ...]]) -> dict[int, np.ndarray]:
    """The colour path of the generated frames from SETTLED on, in the step's sense (mean RGB of the look
    before the seam less the frame's): the settled frames as paired with the frame before the seam
    (``settled``: their (pixels, pixels before) pairs), later ones through the frame CHAIN before them,
    since flow over twenty frames of motion pairs badly and a wrong pairing bends the path."""
    path = {k: p[1].mean(axis=0) - p[0].mean(axis=0) for k, p in zip(range(*SETTLED), settled) if len(p[0]) >= 100}
    later = range(SETTLED[1], LOOK)
    for k, (x, y) in zip(later, _each(lambda k: _paired(after[k - CHAIN], after[k]), later)):
        if k - CHAIN in path and len(x) >= 100:
            path[k] = path[k - CHAIN] + y.mean(axis=0) - x.mean(axis=0)
    return path


def _fast_part(path: Mapping[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """(what of the path was there at the seam already, the settled frames' mean of it), per RGB channel.

    A smooth curve through the path, taken back to the seam (frame 0 since the last one shown, where a
    change that goes on smoothly starts from nothing): a straight line, or a parabola where it fits the
    path clearly better (an F test: a new take's light starts from rest and quickens). What the curve
    says goes on is kept only as far as it stands out of the path's own scatter: real footage's path is
    noisy, and a curve through noise taken back ten frames says nothing, so there the whole step counts.
    """
    if len(path) <= PATH_DEGREE + 2:
        return None
    ks = sorted(path)
    t = np.array(ks, dtype=np.float64) + 1.0
    y = np.array([path[k] for k in ks])
    fits = []
    for degree in range(1, PATH_DEGREE + 1):
        basis = np.stack([t**p for p in range(degree + 1)], axis=1)
        coef = np.linalg.lstsq(basis, y, rcond=None)[0]
        fits.append((degree, basis, coef, ((basis @ coef - y) ** 2).sum(axis=0)))
    (_, _, _, rss_line), (_, _, _, rss_curve) = fits[0], fits[-1]
    extra = len(t) - PATH_DEGREE - 1
    f_stat = (rss_line.sum() - rss_curve.sum()) / max(rss_curve.sum() / extra, 1e-9) / 3
    degree, basis, coef, rss = fits[-1] if f_stat >= F_CURVE else fits[0]
    spread = np.sqrt(rss / (len(t) - degree - 1) * np.linalg.inv(basis.T @ basis)[0, 0])  # of the intercept
    settled = np.mean([path[k] for k in ks if SETTLED[0] <= k < SETTLED[1]], axis=0)
    steady = settled - coef[0]
    steady = steady * np.clip((np.abs(steady) / np.maximum(spread, 1e-6) - SURE[0]) / (SURE[1] - SURE[0]), 0.0, 1.0)
    fast = settled - steady
    reach = float(np.dot(fast, settled)) / max(float(np.dot(settled, settled)), 1e-9)
    if reach > 1.0:  # never more than the step itself along it
        fast = fast / reach
    return fast, settled


def estimate_seam_fix(before: np.ndarray, after: Sequence[np.ndarray], start: int) -> SeamFix | None:
    """The fix for the generated frames ``after`` (as shown, small RGB, first = local frame ``start``)
    against ``before`` (the last frame shown before the seam), or None when there is no fast step."""
    if len(after) < LOOK:
        return None
    pairs = _each(lambda k: _paired(before, after[k], cells=True), range(*SETTLED))
    x = np.concatenate([p[0] for p in pairs])
    y = np.concatenate([p[1] for p in pairs])
    cell = np.concatenate([p[2] for p in pairs])
    if len(x) < 500:
        return None
    step = _lab(y) - _lab(x)  # what the settled frames lack of the look before the seam
    size = float(np.linalg.norm(step))
    if size > MAX_STEP:
        return None
    # the colour path of the settled frames, fitted smooth and taken back to the seam: what it leaves
    # there came in fast (drift); the rest is a change that goes on (meant, or the content's own)
    parts = _fast_part(_path(after, pairs))
    if parts is None:
        return None
    full = _gain_offset(x, y)  # the settled frames to the look before the seam: the fast step and the rest
    steady_rgb = parts[1] - parts[0]
    matrix = full.copy()
    matrix[:, 3] -= steady_rgb  # ... less what goes on: the settled frames' mean moves by the fast step only
    transform = ColourTransform.affine(matrix)
    fast = _lab(transform.apply_values(x)) - _lab(x)
    fast_size = float(np.linalg.norm(fast))
    # drift moves the whole picture; a step only part of the frame shows is content (a subject moving in,
    # a light in one corner), which a global fix would only smear over the rest
    uniform = _uniformity(x, y, cell, step)
    share = _smoothstep((uniform[1] - AGREE[0]) / (AGREE[1] - AGREE[0]))
    if fast_size > SANE[1] * size or np.dot(fast, step) < SANE[0] * fast_size * size:
        # a "fast step" much larger than the step seen, or off its direction, is the path's fit taken
        # back too far (fast motion pairs badly, new content bends the path), not a step at the seam
        share = 0.0
    info = {"step_lab": [round(float(v), 3) for v in step], "fast_lab": [round(float(v), 3) for v in fast],
            "fast_share": round(share, 3), "uniform": [round(u, 3) for u in uniform]}
    if fast_size * share < MIN_STEP:
        return None
    # each early frame gets the share of the fast step it already shows (the drift ramps in, or a flash)
    weights = []
    for xk, yk in _each(lambda k: _paired(before, after[k]), range(FAST)):
        dk = _lab(yk) - _lab(xk) if len(xk) >= 100 else fast
        weights.append(float(np.clip(np.dot(dk, fast) / fast_size**2, 0.0, 1.0)) * share)
    weights.append(share)
    return SeamFix(transform, start, tuple(weights), info)
