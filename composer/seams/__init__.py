"""Seam measures across the cut between segments: colour, motion and sharpness steps.

Pure numpy/OpenCV on film frames (HxWx3 uint8 RGB); used by the seam benchmark and gate.
"""
from __future__ import annotations

from .metrics import (
    COLOUR_AFTER,
    COLOUR_BEFORE,
    MotionStep,
    SeamMeasures,
    colour_step,
    measure_seam,
    motion_step,
    sharpness,
    sharpness_step,
)

__all__ = [
    "COLOUR_AFTER",
    "COLOUR_BEFORE",
    "MotionStep",
    "SeamMeasures",
    "colour_step",
    "measure_seam",
    "motion_step",
    "sharpness",
    "sharpness_step",
]
