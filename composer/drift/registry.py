"""Which drift kinds exist, which the matcher may be tuned on, and building a clip's drift.

``LEGACY`` is what a bare ``drift: float`` has always meant.
"""
from __future__ import annotations

from collections.abc import Callable

from . import blur, creep, flash, motion, ramp, shift, tint
from .base import Drift, DriftSpec, strikes

Adder = Callable[[Drift, bytes, float, int, int], None]

# Order matters only for the picture stages; colour stages compose in a fixed order.
KINDS: dict[str, Adder] = {
    "shift": shift.add,
    "creep": creep.add,
    "tint": tint.add,
    "ramp": ramp.add,
    "flash": flash.add,
    "motion": motion.add,
    "blur": blur.add,
}
ALL_KINDS: tuple[str, ...] = tuple(KINDS)
LEGACY: tuple[str, ...] = ("shift", "creep", "tint")
# The matcher is tuned on these only; the held-out ones are reported, never tuned on.
TUNING: tuple[str, ...] = ("shift", "creep", "tint", "ramp")
HELD_OUT: tuple[str, ...] = ("flash", "motion", "blur")


def make_drift(spec: DriftSpec, digest: bytes, width: int, height: int) -> Drift:
    """The drift of one clip (``digest`` makes it deterministic per request)."""
    unknown = [k for k in spec.kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown drift kind(s) {', '.join(unknown)}; known: {', '.join(ALL_KINDS)}")
    drift = Drift()
    # shift's matrix must sit right of creep's saturation (the historical composite)
    for name in sorted(set(spec.kinds), key=ALL_KINDS.index):
        if strikes(spec, name, digest):
            KINDS[name](drift, digest, spec.amount, width, height)
    return drift
