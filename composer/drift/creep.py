"""Kind ``creep``: saturation and contrast creep up over the generated frames.

Starts at the first generated frame (after the opening conditioning), linear per frame.
"""
from __future__ import annotations

import numpy as np

from .base import Drift
from .legacy import legacy_draws

_LUMA = np.array([0.2126, 0.7152, 0.0722])


def add(drift: Drift, digest: bytes, d: float, width: int, height: int) -> None:
    p = legacy_draws(digest, d)

    def saturate(t: int, g: int) -> np.ndarray:
        sat = p.sat0 * (1.0 + p.sat_creep * max(0, t - g))
        return sat * np.eye(3) + (1 - sat) * np.outer(np.ones(3), _LUMA)

    def contrast(x: np.ndarray, t: int, g: int) -> np.ndarray:
        return 0.5 + (x - 0.5) * (1.0 + p.contrast_creep * max(0, t - g))

    drift.matrix.append(saturate)
    drift.curves.append(contrast)
