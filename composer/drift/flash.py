"""Kind ``flash``: an exposure flash at the first generated frame, fading over three frames.

A one-off brightness pop right on the seam, invisible to a fit over the overlap.
"""
from __future__ import annotations

import numpy as np

from .base import Drift, rng_for

FLASH_FRAMES = 3


def add(drift: Drift, digest: bytes, d: float, width: int, height: int) -> None:
    rng = rng_for(digest, "drift-flash")
    stops = d * rng.uniform(0.25, 0.45) * rng.choice([-1, 1])  # exposure change in stops

    def curve(x: np.ndarray, t: int, g: int) -> np.ndarray:
        k = t - g
        if g <= 0 or not (0 <= k < FLASH_FRAMES):
            return x
        return x * 2.0 ** (stops * (1.0 - k / FLASH_FRAMES))

    drift.curves.append(curve)
