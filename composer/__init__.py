"""composer: long videos from storyboard files.

``load`` reads and validates a storyboard, ``plan`` turns it into a pure render
plan, ``render`` generates its segments against a backend and stitches the film.
"""
from __future__ import annotations

from .version import __version__

from .backends import Backend, GenerationResult, get_backend
from .errors import (
    BackendError,
    BudgetExceeded,
    Cancelled,
    ComposerError,
    RenderFailed,
    StoryboardError,
)
from .planner import RenderPlan, plan
from .rendering import RenderOptions, RenderResult, SegmentCache, render
from . import events
from .request import GenerationRequest
from .storyboard import Beat, Keyframe, Output, Scene, Storyboard, load, loads, to_yaml
from .timecode import Timecode

__all__ = [
    "Backend",
    "BackendError",
    "Beat",
    "BudgetExceeded",
    "Cancelled",
    "ComposerError",
    "GenerationRequest",
    "GenerationResult",
    "Keyframe",
    "Output",
    "RenderFailed",
    "RenderOptions",
    "RenderPlan",
    "RenderResult",
    "Scene",
    "SegmentCache",
    "Storyboard",
    "StoryboardError",
    "Timecode",
    "__version__",
    "events",
    "get_backend",
    "load",
    "loads",
    "plan",
    "render",
    "to_yaml",
]
