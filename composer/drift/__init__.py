"""Model-like drift for the offline renderers (preview backend, fal emulator), one module per kind.

A low layer (numpy/OpenCV only): ``make_drift(spec, digest, w, h)`` builds a ``Drift`` that
``apply(frame, t, first_generated)`` runs on each frame of one clip. Kinds split into
``TUNING`` (the matcher may be tuned on them) and ``HELD_OUT`` (it never is).
"""
from __future__ import annotations

from .base import Drift, DriftSpec, parse_spec
from .registry import ALL_KINDS, HELD_OUT, KINDS, LEGACY, TUNING, make_drift

__all__ = ["ALL_KINDS", "HELD_OUT", "KINDS", "LEGACY", "TUNING", "Drift", "DriftSpec", "make_drift", "parse_spec"]
