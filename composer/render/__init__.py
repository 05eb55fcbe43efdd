"""Rendering: scheduler, segment cache, events and progress, and the pipeline."""
from .cache import SegmentCache
from .events import Event
from .pipeline import RenderResult, render

__all__ = ["Event", "RenderResult", "SegmentCache", "render"]
