"""The storyboard language: models, loader and whole-board checks."""
from .checks import check_storyboard
from .dump import to_yaml
from .loader import load, loads
from .models import (
    Audio,
    Beat,
    ColourSpec,
    Crossfade,
    Defaults,
    EndpointParams,
    Keyframe,
    Output,
    Scene,
    SegmentSpec,
    Storyboard,
)

__all__ = [
    "Audio", "Beat", "ColourSpec", "Crossfade", "Defaults", "EndpointParams", "Keyframe",
    "Output", "Scene", "SegmentSpec", "Storyboard", "check_storyboard", "load", "loads", "to_yaml",
]
