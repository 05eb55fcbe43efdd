"""Drift kinds of the fal emulator: how its rendered clips differ from a perfect model.

To add a kind: write a function ``amount -> PreviewBackend options`` and register it in ``DRIFT_KINDS``.
"""
from __future__ import annotations

from typing import Any
from collections.abc import Callable

def _colour(amount: float) -> dict[str, Any]:
    # The preview renderer's own colour drift (a per-segment shift that colour matching must undo).
    return {"drift": amount}


DRIFT_KINDS: dict[str, Callable[[float], dict[str, Any]]] = {"colour": _colour}


def preview_options(drift: float | None, kinds: tuple[str, ...] = ("colour",)) -> dict[str, Any]:
    """PreviewBackend keyword options for ``drift`` of the given kinds."""
    options: dict[str, Any] = {}
    for kind in kinds:
        options.update(DRIFT_KINDS[kind](drift or 0.0) if drift is not None else {"drift": None})
    return options
