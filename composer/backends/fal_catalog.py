"""What fal's LTX endpoint charges and returns: its price list and output pixel sizes.

Kept apart from ``fal.py`` (which imports fal_client and httpx) so the planner's
default pricing and the preview, which mimics fal's geometry, stay light.
"""
from __future__ import annotations

from ..request import GenerationRequest

PRICE_PER_REQUEST_USD = 0.04
DETAIL_PASS_MULTIPLIER = 2.0

# Pixel size of the endpoint's output per resolution and aspect. LTX pads to
# multiples of 32 internally; these are what we assume fal returns, and the
# preview backend and emulator produce. `composer doctor --live` measures them.
OUTPUT_SIZES: dict[tuple[str, str], tuple[int, int]] = {
    ("720p", "16:9"): (1280, 720),
    ("720p", "9:16"): (720, 1280),
    ("720p", "1:1"): (720, 720),
    ("480p", "16:9"): (848, 480),
    ("480p", "9:16"): (480, 848),
    ("480p", "1:1"): (480, 480),
}


def output_size(resolution: str, aspect_ratio: str) -> tuple[int, int]:
    """(width, height) of a generated clip; ``auto`` is taken as 16:9."""
    aspect = "16:9" if aspect_ratio == "auto" else aspect_ratio
    return OUTPUT_SIZES[(resolution, aspect)]


def request_cost(detail_pass: bool) -> float:
    """USD for one request: the price is per request, whatever its length."""
    return round(PRICE_PER_REQUEST_USD * (DETAIL_PASS_MULTIPLIER if detail_pass else 1.0), 6)


class FalPricing:
    """fal's list price and geometry as the planner's ``Pricing`` (what ``FalBackend`` charges)."""

    def estimate_cost(self, request: GenerationRequest) -> float:
        return request_cost(request.enable_detail_pass)

    def output_size(self, resolution: str, aspect_ratio: str) -> tuple[int, int]:
        return output_size(resolution, aspect_ratio)


FAL_PRICING = FalPricing()
