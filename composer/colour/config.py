"""Colour settings, defined once: the seam methods and ``ColourConfig`` (the
storyboard's ``defaults.colour`` is this model).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["auto", "affine", "hm-mkl", "hm-affine", "mkl", "histogram", "none"]


class ColourConfig(BaseModel):
    """How seams are colour-matched (``defaults.colour`` in a storyboard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        "auto",
        description="Seam estimator; auto fits affine, hm-mkl and hm-affine and keeps the "
        "one with the lowest held-out ΔE on the overlap.",
    )
    strength: float = Field(1.0, ge=0.0, le=1.0, description="How much of the seam transform to apply.")
    anchor: float = Field(
        0.5, ge=0.0, le=1.0, description="How strongly a chain is held to its first segment's look."
    )
    spatial: bool = Field(
        True,
        description="Also correct a smooth spatial residual (a tint gradient or vignette) measured on "
        "the overlap, fading out over the segment.",
    )
