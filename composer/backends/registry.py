"""Which backends exist, by name: the built-ins plus any an installed package declares.

A package adds one with an entry point in the ``composer.backends`` group
(``name = "package.module:BackendClass"``). Built-ins are always known, installed or not.
"""
from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ..errors import ComposerError
from .base import Backend

ENTRY_POINT_GROUP = "composer.backends"

# Built-ins by import path, so naming one imports nothing heavy (fal_client) until it is used.
BUILTIN_BACKENDS: dict[str, str] = {
    "preview": "composer.backends.preview:PreviewBackend",
    "fal": "composer.backends.fal:FalBackend",
}


def _installed() -> dict[str, EntryPoint]:
    """Entry points of the group, first one per name (importlib.metadata's path order)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def backend_names() -> tuple[str, ...]:
    """Every backend name: the built-ins first, then installed ones in name order."""
    extra = sorted(n for n in _installed() if n not in BUILTIN_BACKENDS)
    return (*BUILTIN_BACKENDS, *extra)


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name`` (a built-in wins over an entry point of the same name)."""
    if name in BUILTIN_BACKENDS:
        module, _, attr = BUILTIN_BACKENDS[name].partition(":")
        loaded: Any = getattr(importlib.import_module(module), attr)
    else:
        ep = _installed().get(name)
        if ep is None:
            raise ComposerError(f"unknown backend {name!r}: choose one of {', '.join(backend_names())}")
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plug-in is the user's environment, not a traceback
            raise ComposerError(f"backend {name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}") from exc
    if not (isinstance(loaded, type) and issubclass(loaded, Backend)):
        raise ComposerError(f"backend {name!r} is registered as {loaded!r}, which is not a composer Backend class")
    return loaded


def get_backend(name: str, **options: Any) -> Backend:
    """Build the backend called ``name`` with ``options`` (its constructor's keyword arguments)."""
    return backend_class(name)(**options)
