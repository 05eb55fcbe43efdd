"""Kind ``tint``: a spatially varying tint (a directional gradient plus a vignette).

Constant over the clip; smooth, so it is computed at 1/8 size and scaled up.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .base import Drift
from .legacy import legacy_draws


def add(drift: Drift, digest: bytes, d: float, width: int, height: int) -> None:
    p = legacy_draws(digest, d)
    sw, sh = max(2, width // 8), max(2, height // 8)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    xn, yn = (xx + 0.5) / sw - 0.5, (yy + 0.5) / sh - 0.5
    ramp = xn * math.cos(p.tint_angle) + yn * math.sin(p.tint_angle)
    vignette = -(xn**2 + yn**2) * 2.0
    f = d * (ramp[..., None] * p.tint * 14.0 + vignette[..., None] * p.vignette)
    f = cv2.resize(f.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    drift.field_ = np.clip(np.round(f + 128.0), 0, 255).astype(np.uint8)
