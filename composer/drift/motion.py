"""Kind ``motion``: the camera changes direction/speed at the seam.

From the first generated frame on, the picture pans at a new constant velocity (reflected
at the borders), on top of whatever motion the clip already has.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .base import Drift, rng_for


def add(drift: Drift, digest: bytes, d: float, width: int, height: int) -> None:
    rng = rng_for(digest, "drift-motion")
    angle = rng.uniform(0, 2 * math.pi)
    speed = d * rng.uniform(0.004, 0.008) * min(width, height)  # pixels per frame
    vx, vy = speed * math.cos(angle), speed * math.sin(angle)

    def pan(frame: np.ndarray, t: int, g: int) -> np.ndarray:
        k = t - g
        if g <= 0 or k < 0:
            return frame
        m = np.array([[1, 0, vx * (k + 1)], [0, 1, vy * (k + 1)]], np.float32)
        return cv2.warpAffine(frame, m, (frame.shape[1], frame.shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT101)  # fmt: skip

    drift.frame_fns.append(pan)
