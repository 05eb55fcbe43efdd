"""Colour transfer across seams: a fast uint8 colour transform, estimators fitted once
per seam on the overlap frames, and a chain matcher that holds a chain to its first
segment's look against slow saturation/contrast creep.
"""
from .chain import ChainColourMatcher, LookStats, SegmentColour, anchor_look, look_correction
from .config import ColourConfig, ColourSpec, Method
from .estimators import (
    AUTO_CANDIDATES,
    AUTO_CURVE_MARGIN,
    AUTO_MIN_CORRESPONDENCE,
    METHODS,
    SAMPLE_PIXELS,
    VALIDATION_PIXELS,
    VALIDATION_WIDTH,
    WORK_WIDTH,
    SeamFit,
    estimate,
    fit_pairs,
    fit_seam,
    sample_pairs,
)
from .spatial import FIELD_GRID, FIELD_LIMIT, FIELD_MIN, ResidualField, fit_residual_field
from .transform import ColourTransform, Frame, compose, lerp

__all__ = [
    "AUTO_CANDIDATES", "AUTO_CURVE_MARGIN", "AUTO_MIN_CORRESPONDENCE", "FIELD_GRID", "FIELD_LIMIT",
    "FIELD_MIN", "METHODS", "SAMPLE_PIXELS", "VALIDATION_PIXELS", "VALIDATION_WIDTH", "WORK_WIDTH",
    "ChainColourMatcher", "ColourConfig", "ColourSpec", "ColourTransform", "Frame", "LookStats", "Method", "ResidualField",
    "SeamFit", "SegmentColour", "anchor_look", "compose", "estimate", "fit_pairs", "fit_residual_field", "fit_seam",
    "lerp", "look_correction", "sample_pairs",
]
