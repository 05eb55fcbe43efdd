"""Colour settings, defined once: the seam methods and the one settings model (the
storyboard's ``defaults.colour`` is this model; the assembler hands it to the matcher).
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["auto", "affine", "hm-mkl", "hm-affine", "mkl", "histogram", "none"]


class ColourSpec(BaseModel):
    """Colour matching across seams."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(
        "auto", description="Seam estimator; auto keeps the best of affine, hm-mkl and hm-affine on the overlap.")
    strength: float = Field(1.0, ge=0.0, le=1.0)
    anchor: float = Field(0.5, ge=0.0, le=1.0, description="How strongly a chain is held to its first segment's look.")
    hold_step: float = Field(
        0.05, ge=0.0, le=1.0,
        description="Most the hold may take off a segment's contrast and saturation, in log units per segment "
        "(0.05: about 5 %).")
    hold_total: float = Field(
        0.25, ge=0.0, le=2.0,
        description="Most the hold may take off a chain's contrast and saturation in all, in log units "
        "(0.25: about 22 %).")
    tail: Literal["raw", "corrected"] = Field(
        "corrected",
        description="What conditions the next segment: the previous segment's tail as generated (raw) "
        "or as shown after colour matching (corrected, which stops drift compounding at the source).",
    )
    spatial: bool = Field(
        True,
        description="Also correct a smooth spatial residual (tint gradient, vignette) measured on the "
        "overlap, fading out over the segment; off leaves only the global transform.",
    )
    continuity: bool = Field(
        True,
        description="Also compare the last frame shown before a seam with the first generated frames after it "
        "(paired under optical flow) and correct a fast colour step there that the overlap does not show; "
        "a change that keeps going (an intended look change) is kept.",
    )


#: The name the colour code has always used for the same model.
ColourConfig = ColourSpec
