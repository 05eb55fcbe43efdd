"""The spatial residual field: a smooth per-cell colour offset (tint gradient,
vignette) measured on a seam's overlap and faded out over the segment.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .transform import ColourTransform, Frame

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
