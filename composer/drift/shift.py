"""Kind ``shift``: the whole clip, conditioned overlap included, moves in colour.

A hue rotation and per-channel gain/offset followed by a per-channel gamma, so no affine
fit is exact. Visible in the overlap, which is what an overlap fit is built for.
"""
from __future__ import annotations

import math

import numpy as np

from .base import Drift
from .legacy import legacy_draws


def add(drift: Drift, digest: bytes, d: float, width: int, height: int) -> None:
    p = legacy_draws(digest, d)
    k = np.ones(3) / math.sqrt(3)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + math.sin(p.hue) * kx + (1 - math.cos(p.hue)) * kx @ kx
    base = np.diag(p.gain) @ rot
    drift.matrix.append(lambda t, g: base)
    drift.offset = drift.offset + p.offset
    drift.curves.append(lambda x, t, g: x ** p.gamma)
