"""composer: long videos from storyboard files.

A storyboard is loaded and validated (``load``), turned into a pure render plan
(``plan``), rendered segment by segment against a backend and stitched.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import ComposerError, StoryboardError  # noqa: E402
from .plan import RenderPlan, plan  # noqa: E402
from .storyboard import Storyboard, load, loads  # noqa: E402
from .timecode import Timecode  # noqa: E402

__all__ = ["ComposerError", "RenderPlan", "Storyboard", "StoryboardError", "Timecode", "load", "loads", "plan", "__version__"]
