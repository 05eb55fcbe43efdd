"""The colour transform applied at seams: per-channel tone curves around a 3x4 RGB
affine, evaluated fast on uint8 frames, composed, inverted and interpolated.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from .curves import (
    _EYE34,
    _LEVELS,
    _affine_as_curves,
    _curve_or_none,
    _eval_curves,
    _fit_structure_arrays,
    _is_diagonal_matrix,
    _is_identity_matrix,
    _lattice,
    _then_curves,
)

Frame = np.ndarray  # HxWx3 uint8 RGB

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


def _fit_structure(x: np.ndarray, y: np.ndarray, pre: bool, post: bool, **kw: float) -> ColourTransform:
    """Fit ``post(M · pre(x))`` to y (levels, Nx3); see ``_fit_structure_arrays``."""
    m, pre_curves, post_curves = _fit_structure_arrays(x, y, pre, post, **kw)  # type: ignore[arg-type]
    return ColourTransform(matrix=m, pre=pre_curves, post=post_curves)
