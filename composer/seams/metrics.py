"""The three seam steps of issue 16, each a pure function of film frames and the seam frame ``g``.

``g`` is the film index of the new segment's first generated frame; windows are film
frames relative to it, so the same call measures a drifted and an undrifted render alike.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from ..metrics import mean_lab, mean_lab_delta_e

COLOUR_BEFORE = (-7, -1)  # film frames [g-7, g-1): what was shown before the seam
COLOUR_AFTER = (9, 15)  # film frames [g+9, g+15): after any ramp-in has settled
MOTION_AROUND = 6  # frame pairs on each side of the seam pair
FLOW_WIDTH = 320  # optical flow runs on frames shrunk to this width


def _window(frames: Sequence[np.ndarray], g: int, span: tuple[int, int]) -> list[np.ndarray]:
    lo, hi = g + span[0], g + span[1]
    if lo < 0 or hi > len(frames):
        raise ValueError(f"seam at {g}: frames [{lo}, {hi}) are outside the film's 0..{len(frames)}")
    return [frames[i] for i in range(lo, hi)]


def colour_step(frames: Sequence[np.ndarray], g: int) -> float:
    """CIEDE2000 between the mean Lab of film frames [g-7, g-1) and [g+9, g+15)."""
    before = mean_lab(np.stack(_window(frames, g, COLOUR_BEFORE)))
    after = mean_lab(np.stack(_window(frames, g, COLOUR_AFTER)))
    return mean_lab_delta_e(before, after)


def _grey(frame: np.ndarray) -> np.ndarray:
    small = frame
    if frame.shape[1] > FLOW_WIDTH:
        h = max(8, round(frame.shape[0] * FLOW_WIDTH / frame.shape[1]))
        small = cv2.resize(frame, (FLOW_WIDTH, h), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


def mean_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The median DIS optical-flow vector from ``a`` to ``b`` in full-frame pixels per frame (dx, dy)."""
    ga, gb = _grey(a), _grey(b)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    flow = dis.calc(ga, gb, None)
    scale = a.shape[1] / ga.shape[1]
    m = 4  # borders hold the least reliable vectors
    inner = flow[m:-m, m:-m].reshape(-1, 2) if min(flow.shape[:2]) > 4 * m else flow.reshape(-1, 2)
    return np.median(inner, axis=0).astype(np.float64) * scale


@dataclass(frozen=True)
class MotionStep:
    """Motion continuity at a seam, from the median flow of consecutive frame pairs.

    ``jump``: how far the seam pair's flow is from the mean flow around it (pixels);
    ``around``: the mean speed around the seam; ``ratio``: jump / max(around, 0.5 px);
    ``turn``: the angle between the mean motion before and after (degrees; 0 when
    either is slower than 0.25 px/frame); ``speed_ratio``: speed after / before.
    """

    jump: float
    around: float
    ratio: float
    turn: float
    speed_ratio: float


def motion_step(frames: Sequence[np.ndarray], g: int, around: int = MOTION_AROUND) -> MotionStep:
    """Flow magnitude/direction across the seam (pair g-1 → g) against the pairs around it."""
    _window(frames, g, (-around - 1, around + 1))
    before = [mean_flow(frames[i], frames[i + 1]) for i in range(g - 1 - around, g - 1)]
    after = [mean_flow(frames[i], frames[i + 1]) for i in range(g, g + around)]
    seam = mean_flow(frames[g - 1], frames[g])
    v_before, v_after = np.mean(before, axis=0), np.mean(after, axis=0)
    expected = (v_before + v_after) / 2
    jump = float(np.hypot(*(seam - expected)))
    speed = float(np.mean([np.hypot(*v) for v in before + after]))
    sb, sa = float(np.hypot(*v_before)), float(np.hypot(*v_after))
    turn = 0.0
    if sb > 0.25 and sa > 0.25:
        cos = float(np.dot(v_before, v_after) / (sb * sa))
        turn = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
    speed_ratio = sa / sb if sb > 0.25 else (1.0 if sa <= 0.25 else float("inf"))
    return MotionStep(jump, speed, jump / max(speed, 0.5), turn, speed_ratio)


def sharpness(frame: np.ndarray) -> float:
    """Variance of the Laplacian of the grey frame (higher = sharper)."""
    return float(cv2.Laplacian(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def sharpness_step(frames: Sequence[np.ndarray], g: int) -> float:
    """Sharpness after the seam over before it: mean var-of-Laplacian of [g+9, g+15) / [g-7, g-1)."""
    before = np.mean([sharpness(f) for f in _window(frames, g, COLOUR_BEFORE)])
    after = np.mean([sharpness(f) for f in _window(frames, g, COLOUR_AFTER)])
    return float(after / before) if before > 0 else (1.0 if after == 0 else float("inf"))


@dataclass(frozen=True)
class SeamMeasures:
    """All three steps at one seam."""

    frame: int
    colour: float
    motion: MotionStep
    sharpness: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def measure_seam(frames: Sequence[np.ndarray], g: int) -> SeamMeasures:
    """Colour, motion and sharpness steps at the seam whose first generated film frame is ``g``."""
    return SeamMeasures(g, colour_step(frames, g), motion_step(frames, g), sharpness_step(frames, g))
