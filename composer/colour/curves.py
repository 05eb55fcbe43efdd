"""Per-channel tone curves and the least-squares fitting behind every transform:
curve helpers, the robust affine, and the alternating curves-around-a-matrix fit.
"""
from __future__ import annotations

import numpy as np

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


def _lattice(n: int = 17) -> np.ndarray:
    g = np.linspace(0.0, 255.0, n)
    r, gg, b = np.meshgrid(g, g, g, indexing="ij")
    return np.stack([r.ravel(), gg.ravel(), b.ravel()], axis=1)


_KNOTS = np.linspace(0.0, 255.0, 17)


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


def _fit_structure_arrays(
    x: np.ndarray,
    y: np.ndarray,
    pre: bool,
    post: bool,
    ridge: float = 1e-3,
    curve_smooth: float = 3e-3,
    curve_ridge: float = 1e-4,
    iterations: int = 4,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
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
    return m, pre_curves, h_curves
