"""Kind ``blur``: regenerated frames come back softer (a VAE round trip).

Every frame the model returns, the regenerated overlap included, is low-passed; the previous
segment's frames before the seam are sharp, so sharpness steps down across it.
"""
from __future__ import annotations

import cv2
import numpy as np

from .base import Drift, rng_for


def add(drift: Drift, digest: bytes, d: float, width: int, height: int) -> None:
    rng = rng_for(digest, "drift-blur")
    sigma = d * rng.uniform(0.9, 1.4) * max(1.0, min(width, height) / 512)

    def soften(frame: np.ndarray, t: int, g: int) -> np.ndarray:
        return cv2.GaussianBlur(frame, (0, 0), sigmaX=sigma)

    drift.frame_fns.append(soften)
