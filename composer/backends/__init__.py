"""Backends that turn a GenerationRequest into a video file, found by name in a registry."""
from __future__ import annotations

from .base import Backend, BackendEvent, GenerateContext, GenerationResult, file_url, local_path
from .registry import BUILTIN_BACKENDS, ENTRY_POINT_GROUP, backend_class, backend_names, get_backend

__all__ = ["BUILTIN_BACKENDS", "ENTRY_POINT_GROUP", "Backend", "BackendEvent", "GenerateContext",
           "GenerationResult", "backend_class", "backend_names", "file_url", "get_backend", "local_path"]
