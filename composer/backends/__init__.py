"""Backends that turn a GenerationRequest into a video file, chosen by name."""
from __future__ import annotations

from .base import Backend, BackendEvent, GenerateContext, GenerationResult, file_url, local_path

BACKEND_NAMES = ("preview", "fal")


def get_backend(name: str, **options) -> Backend:
    """Build the backend called ``name`` (``preview`` or ``fal``)."""
    if name == "preview":
        from .preview import PreviewBackend

        return PreviewBackend(**options)
    if name == "fal":
        from .fal import FalBackend

        return FalBackend(**options)
    from ..errors import ComposerError

    raise ComposerError(f"unknown backend {name!r}: choose one of {', '.join(BACKEND_NAMES)}")


__all__ = ["Backend", "BackendEvent", "GenerateContext", "GenerationResult", "get_backend", "file_url", "local_path", "BACKEND_NAMES"]
