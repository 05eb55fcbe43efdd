"""Colour transfer across seams: a fast uint8 colour transform, estimators fitted once
per seam on the overlap frames, and a chain matcher that holds a chain to its first
segment's look against slow saturation/contrast creep.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .metrics import ciede2000, lab_to_rgb, rgb_to_lab

Frame = np.ndarray  # HxWx3 uint8 RGB
Method = Literal["auto", "affine", "hm-mkl", "hm-affine", "mkl", "histogram", "none"]

_LEVELS = np.arange(256, dtype=np.float64)
_EYE34 = np.hstack([np.eye(3), np.zeros((3, 1))])
_TOL = 1e-9


# --------------------------------------------------------------------------- curves


def _curve_or_none(curves: np.ndarray | None) -> np.ndarray | None:
    """Normalise a 3x256 curve table (levels → levels); None when it is the identity."""
    if curves is None:
        return None
    arr = np.round(np.array(curves, dtype=np.float64).reshape(3, 256), 3)
    if np.allclose(arr, _LEVELS[None, :], atol=1e-6, rtol=0.0):
        return None
    arr.setflags(write=False)
    return arr


def _eval_curves(curves: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    """Evaluate per-channel curves at float level values (..., 3), linear between levels."""
    v = np.clip(values, 0.0, 255.0)
    if curves is None:
        return v
    out = np.empty_like(v, dtype=np.float64)
    for c in range(3):
        out[..., c] = np.interp(v[..., c], _LEVELS, curves[c])
    return out


def _then_curves(first: np.ndarray | None, second: np.ndarray | None) -> np.ndarray | None:
    """Curves equal to applying ``first`` then ``second``."""
    if first is None:
        return second
    if second is None:
        return first
    return _curve_or_none(_eval_curves(second, first.T).T)


def _affine_as_curves(matrix: np.ndarray) -> np.ndarray:
    """A diagonal 3x4 matrix as per-channel curves (values clipped like uint8 output)."""
    gains = np.diag(matrix[:, :3])
    return np.clip(gains[:, None] * _LEVELS[None, :] + matrix[:, 3:4], 0.0, 255.0)


def _is_identity_matrix(m: np.ndarray) -> bool:
    return bool(np.allclose(m, _EYE34, atol=_TOL, rtol=0.0))


def _is_diagonal_matrix(m: np.ndarray) -> bool:
    off = m[:, :3] - np.diag(np.diag(m[:, :3]))
    return bool(np.all(np.abs(off) <= _TOL))


# ----------------------------------------------------------------- the transform


@dataclass(frozen=True, eq=False)
class ColourTransform:
    """A colour transform of uint8 RGB frames: per-channel ``pre`` curves, then a 3x4
    affine ``matrix`` (in 0..255 levels, last column the offset), then per-channel
    ``post`` curves. Absent curves are the identity.

    Applied per frame with OpenCV uint8 calls only (``cv2.LUT``, ``cv2.transform``),
    each stage skipped when it is the identity; stages are rounded to uint8 in
    between, as a video pipeline would. Values are immutable; every operation
    returns a new transform.
    """

    matrix: np.ndarray = field(default_factory=lambda: _EYE34.copy())
    pre: np.ndarray | None = None
    post: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Parameters are kept on the grid they serialise to (matrix 1e-6, curves
        # 1e-3 levels), so a to_dict/from_dict round trip is exact.
        m = np.round(np.array(self.matrix, dtype=np.float64).reshape(3, 4), 6)
        if not np.all(np.isfinite(m)):
            raise ValueError("colour matrix must be finite")
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "pre", _curve_or_none(self.pre))
        object.__setattr__(self, "post", _curve_or_none(self.post))
        for name in ("pre", "post"):
            c = getattr(self, name)
            if c is not None and not np.all(np.isfinite(c)):
                raise ValueError(f"{name} curves must be finite")

    # -- constructors -------------------------------------------------------------

    @classmethod
    def identity(cls) -> ColourTransform:
        return cls()

    @classmethod
    def affine(cls, matrix: np.ndarray) -> ColourTransform:
        """From a 3x4 (or 3x3, no offset) matrix acting on 0..255 RGB levels."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.shape == (3, 3):
            m = np.hstack([m, np.zeros((3, 1))])
        return cls(matrix=m)

    @classmethod
    def curves(cls, curves: np.ndarray) -> ColourTransform:
        """From per-channel curves (3x256 level → level)."""
        return cls(post=np.asarray(curves, dtype=np.float64))

    # -- predicates ---------------------------------------------------------------

    @property
    def is_identity(self) -> bool:
        return self.pre is None and self.post is None and _is_identity_matrix(self.matrix)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ColourTransform):
            return NotImplemented
        return (
            np.array_equal(self.matrix, other.matrix)
            and _same_curves(self.pre, other.pre)
            and _same_curves(self.post, other.post)
        )

    def __hash__(self) -> int:
        parts = [self.matrix.tobytes()]
        parts += [b"" if c is None else c.tobytes() for c in (self.pre, self.post)]
        return hash(tuple(parts))

    def __repr__(self) -> str:
        m = np.array2string(self.matrix, precision=3, suppress_small=True, separator=",")
        return (
            f"ColourTransform(matrix={m.replace(chr(10), '')}, "
            f"pre={'id' if self.pre is None else 'curves'}, post={'id' if self.post is None else 'curves'})"
        )

    # -- applying -----------------------------------------------------------------

    @cached_property
    def _stages(self) -> tuple[tuple[str, np.ndarray], ...]:
        """The OpenCV stages that realise this transform (diagonal matrices folded into curves)."""
        m = self.matrix
        if _is_identity_matrix(m):
            curves = _then_curves(self.pre, self.post)
            stages = [] if curves is None else [("lut", curves)]
        elif _is_diagonal_matrix(m):
            curves = _then_curves(_then_curves(self.pre, _affine_as_curves(m)), self.post)
            stages = [] if curves is None else [("lut", curves)]
        else:
            stages = []
            if self.pre is not None:
                stages.append(("lut", self.pre))
            stages.append(("matrix", m))
            if self.post is not None:
                stages.append(("lut", self.post))
        out = []
        for kind, data in stages:
            if kind == "lut":
                lut = np.ascontiguousarray(np.clip(np.rint(data.T), 0, 255).astype(np.uint8)).reshape(1, 256, 3)
                out.append(("lut", lut))
            else:
                out.append(("matrix", np.ascontiguousarray(data, dtype=np.float32)))
        return tuple(out)

    def apply(self, frame: Frame) -> Frame:
        """Transform one HxWx3 uint8 RGB frame (the identity returns ``frame`` itself)."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an HxWx3 uint8 frame, got {frame.dtype} {frame.shape}")
        out = frame
        for kind, data in self._stages:
            out = cv2.LUT(out, data) if kind == "lut" else cv2.transform(out, data)
        return out

    __call__ = apply

    def apply_values(self, rgb: np.ndarray) -> np.ndarray:
        """The transform on float RGB levels (…x3, 0..255), without uint8 rounding."""
        v = _eval_curves(self.pre, np.asarray(rgb, dtype=np.float64))
        v = np.clip(v @ self.matrix[:, :3].T + self.matrix[:, 3], 0.0, 255.0)
        return _eval_curves(self.post, v)

    # -- algebra ------------------------------------------------------------------

    def then(self, other: ColourTransform) -> ColourTransform:
        """The transform that applies ``self`` and then ``other``.

        Exact (up to uint8 rounding between stages) when the curves meeting in the
        middle are the identity or either matrix has no cross-channel terms, which
        covers every composition the chain matcher makes; otherwise the result is a
        least-squares fit of the composite on a colour lattice.
        """
        a, b = self, other
        if a.is_identity:
            return b
        if b.is_identity:
            return a
        middle = _then_curves(a.post, b.pre)
        if middle is None:
            return ColourTransform(
                matrix=_matmul34(b.matrix, a.matrix), pre=a.pre, post=b.post
            )
        if _is_diagonal_matrix(a.matrix):
            pre = _then_curves(_then_curves(a.pre, _affine_as_curves(a.matrix)), middle)
            return ColourTransform(matrix=b.matrix, pre=pre, post=b.post)
        if _is_diagonal_matrix(b.matrix):
            post = _then_curves(_then_curves(middle, _affine_as_curves(b.matrix)), b.post)
            return ColourTransform(matrix=a.matrix, pre=a.pre, post=post)
        lattice = _lattice()
        return _fit_structure(
            lattice, b.apply_values(a.apply_values(lattice)), pre=True, post=True, ridge=1e-6
        )

    def scaled(self, strength: float) -> ColourTransform:
        """Blend with the identity: 0 gives the identity, 1 gives ``self``."""
        return lerp(ColourTransform(), self, strength)

    def inverse(self) -> ColourTransform:
        """Approximate inverse (curves inverted numerically; assumes monotone curves)."""
        m3 = np.linalg.inv(self.matrix[:, :3])
        inv_m = np.hstack([m3, -m3 @ self.matrix[:, 3:4]])
        return ColourTransform(matrix=inv_m, pre=_invert_curves(self.post), post=_invert_curves(self.pre))

    # -- serialisation -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-able dict: ``matrix`` (3 rows of 4, levels), and ``pre`` /
        ``post`` (3 rows of 256 levels) only when they are not the identity."""
        d: dict[str, Any] = {"matrix": self.matrix.tolist()}
        if self.pre is not None:
            d["pre"] = self.pre.tolist()
        if self.post is not None:
            d["post"] = self.post.tolist()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColourTransform:
        unknown = set(data) - {"matrix", "pre", "post"}
        if unknown:
            raise ValueError(f"unknown colour transform keys: {sorted(unknown)}")
        return cls(
            matrix=np.asarray(data.get("matrix", _EYE34), dtype=np.float64),
            pre=None if data.get("pre") is None else np.asarray(data["pre"], dtype=np.float64),
            post=None if data.get("post") is None else np.asarray(data["post"], dtype=np.float64),
        )


def _same_curves(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


def _matmul34(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """3x4 affine ``second ∘ first``."""
    return np.hstack([second[:, :3] @ first[:, :3], second[:, :3] @ first[:, 3:4] + second[:, 3:4]])


def _invert_curves(curves: np.ndarray | None) -> np.ndarray | None:
    if curves is None:
        return None
    out = np.empty_like(curves)
    for c in range(3):
        y = np.maximum.accumulate(curves[c])
        y = y + np.arange(256) * 1e-9  # strictly increasing for interp
        out[c] = np.interp(_LEVELS, y, _LEVELS)
    return out


def compose(*transforms: ColourTransform) -> ColourTransform:
    """``compose(a, b, c)`` applies a, then b, then c."""
    out = ColourTransform()
    for t in transforms:
        out = out.then(t)
    return out


def lerp(a: ColourTransform, b: ColourTransform, t: float) -> ColourTransform:
    """Interpolate parameters between ``a`` (t=0) and ``b`` (t=1), stage by stage.

    With equal curves (as between a segment's start and end transforms) this is
    exactly the blend of the two outputs; otherwise it is a smooth path between them.
    """
    t = float(t)
    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    m = (1.0 - t) * a.matrix + t * b.matrix

    def mix(ca: np.ndarray | None, cb: np.ndarray | None) -> np.ndarray | None:
        if ca is None and cb is None:
            return None
        if _same_curves(ca, cb):
            return ca
        xa = _LEVELS[None, :].repeat(3, 0) if ca is None else ca
        xb = _LEVELS[None, :].repeat(3, 0) if cb is None else cb
        return (1.0 - t) * xa + t * xb

    return ColourTransform(matrix=m, pre=mix(a.pre, b.pre), post=mix(a.post, b.post))


def _lattice(n: int = 17) -> np.ndarray:
    g = np.linspace(0.0, 255.0, n)
    r, gg, b = np.meshgrid(g, g, g, indexing="ij")
    return np.stack([r.ravel(), gg.ravel(), b.ravel()], axis=1)


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
_KNOTS = np.linspace(0.0, 255.0, 17)


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


def _fit_affine(x: np.ndarray, y: np.ndarray, ridge: float = 1e-3, robust: bool = True) -> np.ndarray:
    """Ridge (towards identity) least squares 3x4 affine x→y in levels; Huber IRLS."""
    n = x.shape[0]
    xs = np.hstack([x / 255.0, np.ones((n, 1))])
    ys = y / 255.0
    prior = np.vstack([np.eye(3), np.zeros((1, 3))])  # 4x3, xs @ prior = x
    reg = ridge * n * np.diag([1.0, 1.0, 1.0, 0.1])
    w = np.ones(n)
    for _ in range(3 if robust else 1):
        xw = xs * w[:, None]
        b = np.linalg.solve(xw.T @ xs + reg, xw.T @ ys + reg @ prior)
        if not robust:
            break
        r = np.linalg.norm(xs @ b - ys, axis=1)
        scale = 1.4826 * np.median(r) + 1e-6
        delta = 2.0 * scale
        w = np.minimum(1.0, delta / np.maximum(r, 1e-12))
    m = b.T  # 3x4 in normalised units
    return np.hstack([m[:, :3], m[:, 3:4] * 255.0])


# Hat bases are kept sparse (each value touches two knots) and their Gram matrices
# built with bincount: no BLAS call, so fit time does not depend on thread contention.


def _hat(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left knot index and fraction of values v (N,) on _KNOTS."""
    k = len(_KNOTS)
    pos = np.clip(v, 0.0, 255.0) / (_KNOTS[1] - _KNOTS[0])
    i0 = np.minimum(pos.astype(np.int64), k - 2)
    return i0, pos - i0


def _hat_dot(h: tuple[np.ndarray, np.ndarray], y: np.ndarray) -> np.ndarray:
    """Φᵀ y for a hat basis Φ (K,)."""
    i0, f = h
    k = len(_KNOTS)
    return np.bincount(i0, (1.0 - f) * y, minlength=k) + np.bincount(i0 + 1, f * y, minlength=k)


def _hat_gram(ha: tuple[np.ndarray, np.ndarray], hb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Φaᵀ Φb (K x K) for two hat bases over the same samples."""
    k = len(_KNOTS)
    out = np.zeros(k * k)
    (ia, fa), (ib, fb) = ha, hb
    for da, wa in ((0, 1.0 - fa), (1, fa)):
        for db, wb in ((0, 1.0 - fb), (1, fb)):
            out += np.bincount((ia + da) * k + (ib + db), wa * wb, minlength=k * k)
    return out.reshape(k, k)


def _smooth_penalty(k: int) -> np.ndarray:
    d = np.diff(np.eye(k), n=2, axis=0)
    return d.T @ d


def _knots_to_curve(v: np.ndarray) -> np.ndarray:
    v = np.maximum.accumulate(np.clip(v, -64.0, 320.0))
    return np.clip(np.interp(_LEVELS, _KNOTS, v), 0.0, 255.0)


def _fit_curve_1d(p: np.ndarray, y: np.ndarray, smooth: float, ridge: float) -> np.ndarray:
    """Monotone smooth curve (knot values) with y ≈ curve(p)."""
    h = _hat(p)
    n, k = p.shape[0], len(_KNOTS)
    a = _hat_gram(h, h) + n * (smooth * _smooth_penalty(k) + ridge * np.eye(k))
    rhs = _hat_dot(h, y) + n * ridge * _KNOTS
    return np.maximum.accumulate(np.linalg.solve(a, rhs))


def _fit_pre_curves(
    hats: list[tuple[np.ndarray, np.ndarray]], gram: list[list[np.ndarray]], z: np.ndarray,
    m: np.ndarray, smooth: float, ridge: float,
) -> np.ndarray:
    """Knot values (3xK) of input curves g with z ≈ M[:, :3] g(x) + M[:, 3].

    ``hats`` are the hat bases of the three input channels, ``gram`` their Gram blocks.
    """
    n, k = z.shape[0], len(_KNOTS)
    r = z - m[:, 3]
    ata = np.zeros((3 * k, 3 * k))
    atb = np.zeros(3 * k)
    for j in range(3):
        atb[j * k:(j + 1) * k] = _hat_dot(hats[j], r @ m[:, j])
        for jj in range(3):
            ata[j * k:(j + 1) * k, jj * k:(jj + 1) * k] = float(m[:, j] @ m[:, jj]) * gram[j][jj]
    pen = np.kron(np.eye(3), smooth * _smooth_penalty(k) + ridge * np.eye(k))
    v = np.linalg.solve(ata + n * pen, atb + n * ridge * np.tile(_KNOTS, 3))
    return np.maximum.accumulate(v.reshape(3, k), axis=1)


def _fit_structure(
    x: np.ndarray,
    y: np.ndarray,
    pre: bool,
    post: bool,
    ridge: float = 1e-3,
    curve_smooth: float = 3e-3,
    curve_ridge: float = 1e-4,
    iterations: int = 4,
) -> ColourTransform:
    """Fit ``post(M · pre(x))`` to y by alternating least squares (levels, Nx3)."""
    g_knots = np.tile(_KNOTS, (3, 1))
    h_curves: np.ndarray | None = None
    m = _EYE34.copy()
    if pre:
        hats = [_hat(x[:, j]) for j in range(3)]
        gram = [[_hat_gram(hats[j], hats[jj]) for jj in range(3)] for j in range(3)]
    for _ in range(iterations if (pre or post) else 1):
        z = y if h_curves is None else np.stack(
            [np.interp(y[:, c], h_curves[c] + _LEVELS * 1e-9, _LEVELS) for c in range(3)], axis=1
        )
        gx = np.stack([np.interp(x[:, j], _KNOTS, g_knots[j]) for j in range(3)], axis=1)
        m = _fit_affine(gx, z, ridge=ridge, robust=not (pre or post))
        if pre:
            g_knots = _fit_pre_curves(hats, gram, z, m, curve_smooth, curve_ridge)
            gx = np.stack([np.interp(x[:, j], _KNOTS, g_knots[j]) for j in range(3)], axis=1)
            m = _fit_affine(gx, z, ridge=ridge, robust=False)
        if post:
            p = np.clip(gx @ m[:, :3].T + m[:, 3], 0.0, 255.0)
            h_curves = np.stack(
                [_knots_to_curve(_fit_curve_1d(p[:, c], y[:, c], curve_smooth, curve_ridge)) for c in range(3)]
            )
    pre_curves = np.stack([_knots_to_curve(g_knots[j]) for j in range(3)]) if pre else None
    return ColourTransform(matrix=m, pre=pre_curves, post=h_curves)


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


# ------------------------------------------------------------------ configuration


class ColourConfig(BaseModel):
    """How seams are colour-matched (``defaults.colour`` in a storyboard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        "auto",
        description="Seam estimator; auto fits affine, hm-mkl and hm-affine and keeps the "
        "one with the lowest held-out ΔE on the overlap.",
    )
    strength: float = Field(1.0, ge=0.0, le=1.0, description="How much of the seam transform to apply.")
    anchor: float = Field(
        0.5, ge=0.0, le=1.0, description="How strongly a chain is held to its first segment's look."
    )
    spatial: bool = Field(
        True,
        description="Also correct a smooth spatial residual (a tint gradient or vignette) measured on "
        "the overlap, fading out over the segment.",
    )


# -------------------------------------------------------------------- look stats


@dataclass(frozen=True)
class LookStats:
    """Global look of a few frames in CIE Lab: mean lightness, lightness spread
    (contrast) and RMS chroma (saturation)."""

    lightness: float
    contrast: float
    chroma: float

    @classmethod
    def of(cls, frames: Sequence[Frame] | Frame) -> LookStats:
        lab = _lab_pixels(frames)
        return cls(
            lightness=float(lab[:, 0].mean()),
            contrast=float(lab[:, 0].std()),
            chroma=float(np.sqrt(np.mean(lab[:, 1] ** 2 + lab[:, 2] ** 2))),
        )

    def log_ratio(self, ref: LookStats) -> np.ndarray:
        """log(self/ref) of (contrast, chroma), softened near grey/flat frames."""
        return np.array(
            [
                math.log((self.contrast + 2.0) / (ref.contrast + 2.0)),
                math.log((self.chroma + 2.0) / (ref.chroma + 2.0)),
            ]
        )

    def to_dict(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 3) for k in ("lightness", "contrast", "chroma")}


def _as_list(frames: Sequence[Frame] | Frame) -> list[Frame]:
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        return [frames]
    return list(frames)


def _lab_pixels(frames: Sequence[Frame] | Frame, width: int = 96) -> np.ndarray:
    small = [_shrink(f, width) for f in _as_list(frames)]
    return rgb_to_lab(np.concatenate([s.reshape(-1, 3) for s in small])).astype(np.float64)


def look_correction(frames: Sequence[Frame] | Frame, d_contrast: float, d_chroma: float) -> ColourTransform:
    """An RGB affine that scales Lab lightness spread by exp(d_contrast) about its mean
    and chroma by exp(d_chroma), fitted on the colours of ``frames``."""
    if abs(d_contrast) < 1e-6 and abs(d_chroma) < 1e-6:
        return ColourTransform()
    small = [_shrink(f, 128) for f in _as_list(frames)]
    rgb = np.concatenate([s.reshape(-1, 3) for s in small])
    if rgb.shape[0] > 8000:
        rgb = rgb[np.random.default_rng(0).choice(rgb.shape[0], 8000, replace=False)]
    lab = rgb_to_lab(rgb).astype(np.float64)
    m_l = lab[:, 0].mean()
    target = lab.copy()
    target[:, 0] = m_l + math.exp(d_contrast) * (lab[:, 0] - m_l)
    target[:, 1:] *= math.exp(d_chroma)
    y = lab_to_rgb(target).astype(np.float64) * 255.0
    return ColourTransform(matrix=_fit_affine(rgb.astype(np.float64), y, ridge=1e-6, robust=False))


# ---------------------------------------------------------------- residual field

FIELD_GRID = (16, 9)  # (columns, rows) of the residual field
FIELD_LIMIT = 16.0  # levels: a seam residual larger than this is content, not colour
FIELD_MIN = 0.75  # levels: a field weaker than this everywhere is left out


@dataclass(frozen=True, eq=False)
class ResidualField:
    """A smooth, low-resolution additive RGB correction (levels), upsampled to the
    frame: what a global transform leaves at a seam when a segment's drift varies
    across the picture (a tint gradient, a vignette). Fitted on the pixel-aligned
    overlap, so it is measured, not guessed."""

    grid: np.ndarray  # rows x columns x 3, float32 levels

    def to_dict(self) -> dict[str, Any]:
        return {"grid": np.round(self.grid.astype(np.float64), 2).tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResidualField:
        return cls(np.asarray(data["grid"], dtype=np.float32))

    @property
    def peak(self) -> float:
        return float(np.abs(self.grid).max())

    def plane(self, width: int, height: int) -> np.ndarray:
        """The field at ``width`` x ``height``, as uint8 biased by 128 (one per size)."""
        cache: dict[tuple[int, int], np.ndarray] = self.__dict__.setdefault("_planes", {})
        got = cache.get((width, height))
        if got is None:
            up = cv2.resize(self.grid, (width, height), interpolation=cv2.INTER_LINEAR)
            got = np.clip(np.rint(up + 128.0), 0, 255).astype(np.uint8)
            cache[(width, height)] = got
        return got

    def add_to(self, frame: Frame, weight: float = 1.0) -> Frame:
        """``frame`` + ``weight`` x the field, saturated to uint8 (one OpenCV call)."""
        h, w = frame.shape[:2]
        return cv2.addWeighted(frame, 1.0, self.plane(w, h), weight, -128.0 * weight)


def fit_residual_field(
    source_frames: Sequence[Frame], target_frames: Sequence[Frame], transform: ColourTransform,
    grid: tuple[int, int] = FIELD_GRID, limit: float = FIELD_LIMIT,
) -> ResidualField | None:
    """The spatial part of ``target - transform(source)`` over pixel-aligned frame pairs:
    per frame area-reduced to ``grid``, the median over frames (robust to a moving
    highlight), its mean removed (the transform owns the global colour), clipped to
    ``limit``. None when it is negligible."""
    if not source_frames or len(source_frames) != len(target_frames):
        raise ValueError("need the same, non-zero number of source and target frames")
    cells = []
    for src, tgt in zip(source_frames, target_frames):
        if src.shape != tgt.shape:
            raise ValueError("source and target frames must have the same size")
        diff = tgt.astype(np.float32) - transform.apply(src).astype(np.float32)
        cells.append(cv2.resize(diff, grid, interpolation=cv2.INTER_AREA))
    res = np.median(np.stack(cells), axis=0)
    res -= res.reshape(-1, 3).mean(axis=0)
    res = np.clip(res, -limit, limit).astype(np.float32)
    if float(np.abs(res).max()) < FIELD_MIN:
        return None
    return ResidualField(res)


# ----------------------------------------------------------------- chain matcher


@dataclass(frozen=True)
class SegmentColour:
    """The colour transform of every frame of one segment: ``start`` up to frame
    ``ramp_start``, ``end`` from frame ``ramp_end`` on, and ``lerp(start, end, t)``
    linearly in between (a slow ramp nobody sees frame to frame)."""

    start: ColourTransform
    end: ColourTransform
    length: int
    ramp_start: int
    ramp_end: int
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)
    residual: ResidualField | None = None

    def t(self, index: int) -> float:
        if self.ramp_end <= self.ramp_start:
            return 1.0 if index >= self.ramp_end else 0.0
        return min(1.0, max(0.0, (index - self.ramp_start) / (self.ramp_end - self.ramp_start)))

    def at(self, index: int) -> ColourTransform:
        """The transform of frame ``index`` (0-based within the segment)."""
        return lerp(self.start, self.end, self.t(index))

    def residual_weight(self, index: int) -> float:
        """How much of the seam's residual field frame ``index`` gets: all of it
        through the overlap, fading out over the same ramp as the hold."""
        return 0.0 if self.residual is None else 1.0 - self.t(index)

    def apply(self, frame: Frame, index: int) -> Frame:
        out = self.at(index).apply(frame)
        weight = self.residual_weight(index)
        if self.residual is not None and weight > 0.0:
            out = self.residual.add_to(out, weight)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.to_dict(),
            "end": self.end.to_dict(),
            "length": self.length,
            "ramp_start": self.ramp_start,
            "ramp_end": self.ramp_end,
            **({"residual": self.residual.to_dict()} if self.residual is not None else {}),
            **({"info": dict(self.info)} if self.info else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentColour:
        return cls(
            start=ColourTransform.from_dict(data["start"]),
            end=ColourTransform.from_dict(data["end"]),
            length=int(data["length"]),
            ramp_start=int(data["ramp_start"]),
            ramp_end=int(data["ramp_end"]),
            info=dict(data.get("info", {})),
            residual=ResidualField.from_dict(data["residual"]) if "residual" in data else None,
        )


class ChainColourMatcher:
    """Walks one chain of segments (one continuous shot) and returns each segment's
    ``SegmentColour``: the seam transform fitted on the overlap as its start, and an
    end transform that also holds the chain to its first segment's look.

    The hold is a slow, limited correction of global contrast and saturation (Lab
    lightness spread and RMS chroma), ramped in over each segment's frames: every
    segment pulls back a fraction ``config.anchor`` of the excess over the anchor (the
    chain's first frames) still showing, smoothed over segments. It only ever takes
    away (creep grows; a duller scene is left alone and earlier corrections are given
    back), by at most ``max_step`` (log units) per segment and ``max_total`` in all,
    so a real change of content is bent a little at most. Hue, white balance and mean
    lightness are left to the seam transforms.

    Call ``start`` at every chain start (scene start or hard cut), then ``follow``
    for each next segment, in order. Frame ``i`` of a segment is shown as
    ``segment_colour.apply(raw_frame, i)``.
    """

    def __init__(
        self,
        config: ColourConfig | None = None,
        *,
        max_step: float = 0.05,
        max_total: float = 0.25,
        smoothing: float = 0.5,
    ) -> None:
        self.config = config or ColourConfig()
        self.max_step = max_step
        self.max_total = max_total
        self.smoothing = smoothing
        self.anchor_stats: LookStats | None = None
        self._applied = np.zeros(2)  # cumulative correction (log contrast, log chroma)
        self._excess: np.ndarray | None = None  # smoothed excess of the raw chain

    def start(self, samples: Mapping[int, Frame], length: int, overlap: int) -> SegmentColour:
        """First segment of a chain: sets the anchor look from its early ``samples``.

        ``samples`` maps frame indices (0-based in the segment) to raw frames; give
        at least frame 0 and the last frame (``length - 1``), ideally the middle too.
        ``overlap`` is the number of frames the next segment will re-generate.
        """
        _check_samples(samples, length)
        self._applied = np.zeros(2)
        self._excess = None
        early = [f for i, f in samples.items() if i <= length // 2] or [samples[min(samples)]]
        self.anchor_stats = LookStats.of(early)
        return self._finish(ColourTransform(), None, samples, length, ramp_start=0, overlap=overlap)

    def follow(
        self,
        head: Sequence[Frame],
        prev_tail: Sequence[Frame],
        samples: Mapping[int, Frame],
        length: int,
        overlap: int,
        new_anchor: bool = False,
    ) -> SegmentColour:
        """The next segment of the chain (``new_anchor``: it starts a scene whose look
        becomes the anchor from here on, seams still matched).

        ``head``: this segment's first K raw frames (the re-generated overlap);
        ``prev_tail``: the previous segment's last K frames as shown, i.e. after its
        ``SegmentColour`` was applied and before any crossfade, pixel-aligned with
        ``head``; ``samples``: raw frames of this segment by index, at least the
        first one shown (index K) and the last (``length - 1``), ideally the middle.
        """
        if self.anchor_stats is None:
            raise RuntimeError("ChainColourMatcher.follow called before start()")
        if len(head) != len(prev_tail) or not head:
            raise ValueError("head and prev_tail must be the same, non-zero number of frames")
        _check_samples(samples, length)
        seam = fit_seam(head, prev_tail, self.config.method)
        start = seam.transform.scaled(self.config.strength)
        if new_anchor:
            self.rebase({i: start.apply(f) for i, f in samples.items()})
        colour = self._finish(start, seam, samples, length, ramp_start=len(head), overlap=overlap)
        residual = None
        # a field is only trusted where the overlap pairs up pixel for pixel
        if self.config.spatial and not seam.correspondence < AUTO_MIN_CORRESPONDENCE:
            residual = fit_residual_field(head, prev_tail, start)
        if residual is not None and self.config.strength < 1.0:
            residual = ResidualField(residual.grid * self.config.strength)
        if residual is None:
            return colour
        return replace(colour, residual=residual, info={**colour.info, "residual_peak": round(residual.peak, 2)})

    def rebase(self, samples: Mapping[int, Frame]) -> None:
        """Take the look shown in ``samples`` (frames as shown, after the seam
        transform) as the chain's new anchor: a ``continue`` scene may change its
        look on purpose, so the hold restarts from it while seams stay matched."""
        if not samples:
            return
        self.anchor_stats = LookStats.of(list(samples.values()))
        self._applied = np.zeros(2)
        self._excess = None

    def _finish(
        self,
        start: ColourTransform,
        seam: SeamFit | None,
        samples: Mapping[int, Frame],
        length: int,
        ramp_start: int,
        overlap: int,
    ) -> SegmentColour:
        assert self.anchor_stats is not None
        ramp_end = max(ramp_start, length - overlap)
        shown = {i: start.apply(f) for i, f in sorted(samples.items()) if i >= ramp_start}
        if not shown:
            shown = {max(samples): start.apply(samples[max(samples)])}
        drift = LookStats.of(list(shown.values())).log_ratio(self.anchor_stats)
        raw_drift = drift - self._applied  # what the chain would show with no hold so far
        if self._excess is None:
            self._excess = raw_drift
        else:
            self._excess = self._excess + self.smoothing * (raw_drift - self._excess)
        # pull a fraction of the (smoothed) excess still showing back towards the anchor;
        # the total stays within [-max_total, 0]: never boost past the raw look
        showing = self._excess + self._applied
        target = np.clip(self._applied - self.config.anchor * showing, -self.max_total, 0.0)
        step = np.clip(target - self._applied, -self.max_step, self.max_step)
        last = shown[max(shown)]
        end = start.then(look_correction(last, float(step[0]), float(step[1])))
        self._applied = self._applied + step
        info: dict[str, Any] = {
            "drift": _rounded(drift),
            "hold_step": _rounded(step),
            "hold_total": _rounded(self._applied),
        }
        if seam is not None:
            info["seam"] = {k: v for k, v in seam.to_dict().items() if k != "transform"}
        return SegmentColour(
            start=start, end=end, length=length, ramp_start=ramp_start, ramp_end=ramp_end, info=info
        )


def _rounded(v: np.ndarray) -> list[float]:
    return [round(float(x), 4) for x in v]


def _check_samples(samples: Mapping[int, Frame], length: int) -> None:
    if not samples:
        raise ValueError("need at least one sample frame (the segment's last frame)")
    bad = [i for i in samples if not 0 <= i < length]
    if bad:
        raise ValueError(f"sample indices {bad} outside the segment (0..{length - 1})")
