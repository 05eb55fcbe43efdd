"""The random draws of the historical preview drift, in their historical order.

``shift``, ``creep`` and ``tint`` each read their part, so ``drift: float`` (all three) gives
the same pixels it always did.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .base import rng_for


@dataclass(frozen=True)
class LegacyDraws:
    hue: float
    gain: np.ndarray
    offset: np.ndarray
    gamma: np.ndarray
    sat0: float
    sat_creep: float
    contrast_creep: float
    tint_angle: float
    tint: np.ndarray
    vignette: float


def legacy_draws(digest: bytes, d: float) -> LegacyDraws:
    rng = rng_for(digest, "drift")
    hue = math.radians(d * rng.uniform(4.0, 8.0) * rng.choice([-1, 1]))
    gain = 1.0 + d * rng.uniform(-0.06, 0.06, 3)
    offset = d * rng.uniform(-6.0, 6.0, 3)
    gamma = np.clip(1.0 + d * rng.uniform(-0.12, 0.12, 3), 0.5, 2.0)
    sat0 = 1.0 + d * rng.uniform(-0.06, 0.1)
    sat_creep = d * rng.uniform(0.10, 0.22) / 120.0
    contrast_creep = d * rng.uniform(0.05, 0.12) / 120.0
    angle = rng.uniform(0, 2 * math.pi)
    tint = rng.uniform(-1, 1, 3)
    tint /= max(1e-6, np.abs(tint).max())
    vignette = rng.uniform(6.0, 12.0)
    return LegacyDraws(hue, gain, offset, gamma, sat0, sat_creep, contrast_creep, angle, tint, vignette)
