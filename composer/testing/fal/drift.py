"""Drift of the fal emulator: how its rendered clips differ from a perfect model.

The kinds live in ``composer.drift`` (shared with the preview backend); the emulator passes
``drift`` through: a float (the historical shift+creep+tint composite) or
``{"kinds": [...], "amount": x}``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...drift import ALL_KINDS, LEGACY

DriftOption = float | Mapping[str, Any] | None


def preview_options(drift: DriftOption, kinds: tuple[str, ...] | None = None) -> dict[str, Any]:
    """PreviewBackend keyword options for ``drift`` (``kinds`` overrides a float's legacy kinds)."""
    if drift is None:
        return {"drift": None}
    if isinstance(drift, Mapping):
        return {"drift": dict(drift)}
    if kinds is None or tuple(kinds) == LEGACY:
        return {"drift": float(drift)}
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise ValueError(f"unknown drift kind(s) {', '.join(unknown)}")
    return {"drift": {"kinds": list(kinds), "amount": float(drift)}}
