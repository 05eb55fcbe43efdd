"""The render manifest written next to every output (``film.manifest.json``):
what was rendered from what, per segment its request, cache key, timings, cost,
colour transform and measured seam jump. Never a secret.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .version import __version__
from .atomic import atomic_write_text

SECRET_ENV = ("FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET")


def manifest_path_for(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.stem + ".manifest.json")


def scrub(text: str) -> str:
    """Remove any secret value from the environment that slipped into ``text``."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def write_manifest(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as JSON atomically, with secrets scrubbed."""
    body = scrub(json.dumps({"composer_version": __version__, **data}, indent=2, ensure_ascii=False, default=str))
    atomic_write_text(path, body + "\n")
    return path


def board_timeline(board: Any, plan: Any) -> dict[str, Any]:
    """Where each beat and keyframe lands in film frames (the plan keeps only segments and snaps),
    so a reader of the manifest alone (the review page) can draw the film to scale."""
    fps = plan.fps
    starts = {s.id: s.start_frame for s in plan.scenes}
    used = {(c.scene, c.keyframe): c.film_frame for seg in plan.segments for c in seg.conditioning
            if c.kind == "image" and c.scene is not None}
    beats, keyframes = [], []
    for scene in board.scenes:
        start = starts.get(scene.id, 0)
        for beat in scene.beats:
            beats.append({"scene": scene.id, "film_frame": start + beat.at.to_frames(fps), "prompt": beat.prompt})
        for i, kf in enumerate(scene.keyframes):
            wanted = start + kf.at.to_frames(fps)
            keyframes.append({"scene": scene.id, "keyframe": i, "image": kf.image, "strength": kf.strength,
                              "wanted_frame": wanted, "film_frame": used.get((scene.id, i), wanted)})
    return {"beats": beats, "keyframes": keyframes}


def read_manifest(path: Path) -> dict[str, Any]:
    """A render manifest as data (the review page and tools read it back)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
