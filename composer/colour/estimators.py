"""Seam estimators: fit a ColourTransform from the overlap frames of two renders
(affine, mkl, histogram and the hm-* hybrids) and ``auto``'s held-out selection.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..metrics import ciede2000, rgb_to_lab
from .curves import _LEVELS, _fit_affine
from .transform import ColourTransform, Frame

# ----------------------------------------------------------------------- fitting

#: Methods ``method="auto"`` fits at each seam, keeping the lowest held-out ΔE.
AUTO_CANDIDATES: tuple[str, ...] = ("affine", "hm-mkl", "hm-affine")
#: How much lower (relative) a method with tone curves must score to be chosen over
#: a matrix-only one by auto. Assembly works on I420 planes, where a matrix costs
#: ~1.4 ms per 720p frame and curves need an RGB round trip (~8 ms); measured on the
#: benchmark films, curves won by 7-28% of a ~1 ΔE residual, i.e. under 0.1 ΔE at 10%.
AUTO_CURVE_MARGIN = 0.10
#: Below this per-channel R² between the two overlap renders, auto stops trusting
#: pixel pairs and uses hm-mkl (distribution matching); measured: aligned renders
#: give ≥ 0.99, a 1 px offset 0.93-0.98, 3 px 0.68-0.87.
AUTO_MIN_CORRESPONDENCE = 0.95
#: Auto scores candidates on up to this many blocks of the overlap frames shrunk to
#: VALIDATION_WIDTH wide.
VALIDATION_PIXELS = 3_000
VALIDATION_WIDTH = 32
#: Pixels drawn from the overlap frames for a fit (fit time stays a few ms).
SAMPLE_PIXELS = 8_000
#: Overlap frames are shrunk to this width before sampling: area averaging cuts
#: VAE noise (which would bias a regression) and makes sampling cheap.
WORK_WIDTH = 128


def _shrink(frame: Frame, width: int) -> Frame:
    if frame.shape[1] <= width:
        return frame
    h = max(1, round(frame.shape[0] * width / frame.shape[1]))
    return cv2.resize(frame, (width, h), interpolation=cv2.INTER_AREA)


def sample_pairs(
    source_frames: Sequence[Frame],
    target_frames: Sequence[Frame],
    n: int | None = None,
    work_width: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Corresponding pixels (float64 levels, Nx3 each) from pixel-aligned frame pairs.

    Frames are area-shrunk to ``work_width``; pixels clipped at 0 or 255 in either
    frame are left out (unless that would leave too few); the draw is deterministic.
    """
    n = SAMPLE_PIXELS if n is None else n
    work_width = WORK_WIDTH if work_width is None else work_width
    if len(source_frames) != len(target_frames) or not source_frames:
        raise ValueError("need the same, non-zero number of source and target frames")
    src = np.stack([_shrink(f, work_width) for f in source_frames]).reshape(-1, 3)
    tgt = np.stack([_shrink(f, work_width) for f in target_frames])
    if tgt.shape[1:3] != np.stack([_shrink(source_frames[0], work_width)]).shape[1:3]:
        raise ValueError("source and target frames must have the same size")
    tgt = tgt.reshape(-1, 3)
    ok = np.all((src > 2) & (src < 253) & (tgt > 2) & (tgt < 253), axis=1)
    idx = np.flatnonzero(ok)
    if idx.size < min(2000, src.shape[0] // 5):
        idx = np.arange(src.shape[0])
    rng = np.random.default_rng(seed)
    idx = rng.choice(idx, size=n, replace=False) if idx.size > n else rng.permutation(idx)
    return src[idx].astype(np.float64), tgt[idx].astype(np.float64)


def _fit_affine_symmetric(x: np.ndarray, y: np.ndarray) -> ColourTransform:
    """Mean of the x→y least-squares affine and the inverse of the y→x one.

    Both renders of the overlap carry noise and small misalignments, which shrink a
    one-way regression's gains by about (1-ε) (flatter contrast and saturation at
    every seam, compounding along a chain); the inverted reverse fit errs by about
    1/(1-ε), and their mean cancels that to first order.
    """
    forward = _fit_affine(x, y)
    backward = _fit_affine(y, x)
    try:
        inv = np.linalg.inv(backward[:, :3])
    except np.linalg.LinAlgError:
        return ColourTransform(matrix=forward)
    return ColourTransform(matrix=(forward + np.hstack([inv, -inv @ backward[:, 3:4]])) / 2.0)


def _correspondence(x: np.ndarray, y: np.ndarray) -> float:
    """Smallest per-channel R² of an affine fit of y on x: near 1 when the two renders
    agree pixel for pixel, lower when noise or misalignment blur the pairing."""
    m = _fit_affine(x, y, robust=False)
    res = y - (x @ m[:, :3].T + m[:, 3])
    var = np.maximum(((y - y.mean(axis=0)) ** 2).sum(axis=0), 1e-9)
    return float(np.min(1.0 - (res**2).sum(axis=0) / var))


def _fit_mkl(x: np.ndarray, y: np.ndarray, eps: float = 1e-2) -> ColourTransform:
    """Monge-Kantorovich linear transfer: match mean and covariance of x to y."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    cx = np.cov(x, rowvar=False) + eps * np.eye(3)
    cy = np.cov(y, rowvar=False) + eps * np.eye(3)

    def sqrtm(c: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(c)
        return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T

    cx_h = sqrtm(cx)
    cx_ih = np.linalg.inv(cx_h)
    t = cx_ih @ sqrtm(cx_h @ cy @ cx_h) @ cx_ih
    return ColourTransform(matrix=np.hstack([t, (my - t @ mx)[:, None]]))


def _quantiles(v: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Quantiles by sorting once and interpolating (much cheaper than np.quantile per q)."""
    srt = np.sort(v)
    return np.interp(q * (srt.size - 1), np.arange(srt.size), srt)


def _fit_histogram(x: np.ndarray, y: np.ndarray, tail: float = 0.002) -> ColourTransform:
    """Per-channel histogram (CDF) matching of x to y, as smooth monotone curves.

    Outside the sampled range (beyond the ``tail`` quantiles) the curve continues
    parallel to the identity rather than flat, so colours absent from the overlap
    keep their gradation.
    """
    q = np.linspace(tail, 1.0 - tail, 129)
    curves = []
    for c in range(3):
        xs = _quantiles(x[:, c], q)
        ys = _quantiles(y[:, c], q)
        xs = xs + np.arange(xs.size) * 1e-6
        xs = np.concatenate([[xs[0] - 256.0], xs, [xs[-1] + 256.0]])
        ys = np.concatenate([[ys[0] - 256.0], ys, [ys[-1] + 256.0]])
        lut = np.interp(_LEVELS, xs, ys)
        lut = np.convolve(np.pad(lut, 4, mode="edge"), np.ones(9) / 9.0, mode="valid")
        curves.append(np.clip(np.maximum.accumulate(lut), 0.0, 255.0))
    return ColourTransform(post=np.stack(curves))


#: Every estimator ``fit_pairs`` knows, for ``ColourConfig.method``.
METHODS: tuple[str, ...] = ("affine", "hm-mkl", "hm-affine", "mkl", "histogram", "none")


def fit_pairs(
    x: np.ndarray, y: np.ndarray, method: str, *, _hist: ColourTransform | None = None
) -> ColourTransform:
    """Fit a transform taking sampled source colours x onto target colours y (Nx3 levels).

    Methods: ``affine`` a robust, ridge-regularised least-squares 3x4 matrix (uses
    pixel correspondence); ``mkl`` Monge-Kantorovich linear transfer (mean and
    covariance only); ``histogram`` per-channel CDF matching (tone curves only);
    ``hm-mkl`` / ``hm-affine`` histogram-matched tone curves, then an MKL / a
    least-squares matrix for the cross-channel part; ``none`` the identity.
    """
    if method == "none":
        return ColourTransform()
    if method == "affine":
        return _fit_affine_symmetric(x, y)
    if method == "mkl":
        return _fit_mkl(x, y)
    if method == "histogram":
        return _hist if _hist is not None else _fit_histogram(x, y)
    if method in ("hm-mkl", "hm-affine"):
        pre = _hist if _hist is not None else _fit_histogram(x, y)
        px = pre.apply_values(x)
        mid = _fit_mkl(px, y) if method == "hm-mkl" else _fit_affine_symmetric(px, y)
        return ColourTransform(matrix=mid.matrix, pre=pre.post)
    raise ValueError(f"unknown colour method {method!r} (known: auto, {', '.join(METHODS)})")


@dataclass(frozen=True)
class SeamFit:
    """A fitted seam transform, the method used and its residual ΔE (mean CIEDE2000
    on coarse blocks of the overlap), with every candidate's residual for auto."""

    transform: ColourTransform
    method: str
    residual: float
    candidates: Mapping[str, float] = field(default_factory=dict)
    correspondence: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "method": self.method,
            "residual_de": round(self.residual, 4),
            "candidates": {k: round(v, 4) for k, v in self.candidates.items()},
            "transform": self.transform.to_dict(),
        }
        if math.isfinite(self.correspondence):
            d["correspondence_r2"] = round(self.correspondence, 4)
        return d


def _residual_de(t: ColourTransform, x: np.ndarray, y_lab: np.ndarray) -> float:
    pred = rgb_to_lab((t.apply_values(x) / 255.0).astype(np.float32))
    return float(np.mean(ciede2000(pred, y_lab)))


def fit_seam(
    source_frames: Sequence[Frame], target_frames: Sequence[Frame], method: str = "auto"
) -> SeamFit:
    """Like ``estimate``, also reporting the method chosen and the scores (mean ΔE on
    coarse blocks of the overlap) of every candidate."""
    names = AUTO_CANDIDATES if method == "auto" else (method,)
    xf, yf = sample_pairs(source_frames, target_frames)
    r2 = _correspondence(xf, yf) if method == "auto" else float("nan")
    if method == "auto" and r2 < AUTO_MIN_CORRESPONDENCE:
        # pixels do not pair up well enough for a regression to be trusted, nor
        # for the pixel-wise scores to tell candidates apart: match distributions
        names = ("hm-mkl",)
    # scored on block means of a much smaller copy: a few pixels of misalignment
    # between the two renders barely move a block's mean, so the score rewards the
    # right colour mapping, not a regression that has shrunk towards the mean
    xv, yv = sample_pairs(source_frames, target_frames, n=VALIDATION_PIXELS, work_width=VALIDATION_WIDTH, seed=1)
    hist = _fit_histogram(xf, yf) if any(n in ("histogram", "hm-mkl", "hm-affine") for n in names) else None
    fits = {name: fit_pairs(xf, yf, name, _hist=hist) for name in names}
    yv_lab = rgb_to_lab((yv / 255.0).astype(np.float32))
    scores = {name: _residual_de(t, xv, yv_lab) for name, t in fits.items()}
    # a transform with curves costs far more per frame than a matrix: take it only when clearly better
    penalised = {k: v * (1.0 + AUTO_CURVE_MARGIN * (fits[k].pre is not None or fits[k].post is not None))
                 for k, v in scores.items()}
    best = min(penalised, key=lambda k: penalised[k])
    return SeamFit(
        transform=fits[best], method=best, residual=scores[best], candidates=scores, correspondence=r2
    )


def estimate(
    source_frames: Sequence[Frame], target_frames: Sequence[Frame], method: str = "auto"
) -> ColourTransform:
    """Fit, once per seam, a transform taking ``source_frames`` (N+1's raw overlap
    head) onto ``target_frames`` (N's overlap tail as shown, i.e. already corrected).
    The two lists are pixel-aligned pairs, in order. ``auto`` fits every method in
    ``AUTO_CANDIDATES`` and keeps the one with the lowest ΔE on coarse blocks of the
    overlap (curves must win by ``AUTO_CURVE_MARGIN``).
    """
    return fit_seam(source_frames, target_frames, method).transform
