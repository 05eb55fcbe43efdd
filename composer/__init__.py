"""composer: long videos from storyboard files.

``load`` reads and validates a storyboard, ``plan`` turns it into a pure render
plan, ``render`` generates its segments against a backend and stitches the film.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .backends import Backend, GenerationResult, get_backend  # noqa: E402
from .errors import (  # noqa: E402
    BackendError,
    BudgetExceeded,
    Cancelled,
    ComposerError,
    RenderFailed,
    StoryboardError,
)
from .planner import RenderPlan, plan  # noqa: E402
from .rendering import RenderOptions, RenderResult, SegmentCache, render  # noqa: E402
from . import events  # noqa: E402
from .request import GenerationRequest  # noqa: E402
from .storyboard import Beat, Keyframe, Output, Scene, Storyboard, load, loads, to_yaml  # noqa: E402
from .timecode import Timecode  # noqa: E402

__all__ = [
    "Backend", "BackendError", "Beat", "BudgetExceeded", "Cancelled", "ComposerError", "GenerationRequest",
    "GenerationResult", "Keyframe", "Output", "RenderFailed", "RenderOptions", "RenderPlan", "RenderResult", "Scene",
    "SegmentCache", "Storyboard", "StoryboardError", "Timecode", "events", "get_backend", "load", "loads",
    "plan", "render", "to_yaml", "__version__",
]
