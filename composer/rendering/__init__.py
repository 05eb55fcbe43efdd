"""Rendering: scheduler, segment cache, progress display, and the pipeline that runs them."""
from .cache import SegmentCache
from ..events import Event
from .pipeline import RenderOptions, RenderResult, render

__all__ = ["Event", "RenderOptions", "RenderResult", "SegmentCache", "render"]
