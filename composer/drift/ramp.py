"""Kind ``ramp``: a gain/offset that ramps in over the first 8 generated frames after the overlap.

The conditioned overlap is untouched, so an overlap-only fit sees nothing; the look leaves
the conditioning's within a third of a second (issue 16's independent server).
"""
from __future__ import annotations

import numpy as np

from .base import Drift, rng_for, smoothstep

RAMP_FRAMES = 8


def add(drift: Drift, digest: bytes, d: float, width: int, height: int) -> None:
    rng = rng_for(digest, "drift-ramp")
    gain = 1.0 + d * rng.uniform(0.05, 0.10, 3) * rng.choice([-1, 1], 3)
    offset = d * rng.uniform(4.0, 9.0, 3) * rng.choice([-1, 1], 3) / 255.0

    def curve(x: np.ndarray, t: int, g: int) -> np.ndarray:
        w = smoothstep((t - g + 1) / RAMP_FRAMES) if t >= g else 0.0
        return x * (1.0 + w * (gain - 1.0)) + w * offset

    drift.curves.append(curve)
