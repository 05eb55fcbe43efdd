"""Small, comment-preserving edits to a storyboard file (pinning a segment's seed).

ruamel's round-trip mode keeps the user's comments, order and quoting; the file
is replaced atomically.
"""
from __future__ import annotations

import io
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from ..atomic import atomic_write_text
from ..errors import StoryboardError, Location, Problem


def pin_seed(path: Path, scene_id: str, index_in_scene: int, seed: int) -> None:
    """Write ``seeds: {index_in_scene: seed}`` into scene ``scene_id`` of the file at ``path``."""
    path = Path(path)
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.preserve_quotes = True
    data = yaml.load(path.read_text(encoding="utf-8"))
    for scene in data.get("scenes") or []:
        if isinstance(scene, dict) and scene.get("id") == scene_id:
            seeds = scene.get("seeds")
            if not isinstance(seeds, dict):
                seeds = CommentedMap()
                seeds.fa.set_flow_style()
                scene["seeds"] = seeds
            seeds[index_in_scene] = seed
            break
    else:
        raise StoryboardError([Problem(Location(str(path), 1, 1), f"no scene {scene_id!r} to pin a seed in")])
    out = io.StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    if text.startswith("%YAML"):
        text = text.split("---\n", 1)[1] if "---\n" in text else text
    atomic_write_text(path, text)
