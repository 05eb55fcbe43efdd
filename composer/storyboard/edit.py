"""Small, surgical edits to a storyboard file (pinning a segment's seed).

ruamel's round-trip parse only locates the scene; the change is spliced into the
original text so every other line (indentation, comments, quoting) stays byte-identical.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from ..atomic import atomic_write_text
from ..errors import Location, Problem, StoryboardError

_TOKEN = re.compile(r"[^\s,}\]#]+")


def _parse(text: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    return yaml.load(text)


def _find_scene(data: Any, scene_id: str) -> CommentedMap | None:
    scenes = data.get("scenes") if isinstance(data, dict) else None
    for scene in scenes or []:
        if isinstance(scene, CommentedMap) and scene.get("id") == scene_id:
            return scene
    return None


def _offset(lines: list[str], line: int, col: int) -> int:
    return sum(len(x) for x in lines[:line]) + col


def _line_end(text: str, pos: int) -> int:
    """Offset just after the newline ending the line that holds ``pos``."""
    nl = text.find("\n", pos)
    return len(text) if nl < 0 else nl + 1


def _splice(text: str, scene: CommentedMap, index: int, seed: int) -> str | None:
    """The text with ``seeds[index] = seed`` written into ``scene``; None where no safe splice exists."""
    lines = text.splitlines(keepends=True)
    if scene.fa.flow_style():
        return None  # a one-line `- {id: ..}` scene: rare, left to the round-trip dump
    seeds = scene.get("seeds")
    if "seeds" not in scene:
        # A new `seeds:` line right after the `id:` line, at the scene's own key column.
        line, col = scene.lc.key("id")
        vline, _ = scene.lc.value("id")
        if vline != line:
            return None
        at = _line_end(text, _offset(lines, line, col))
        newline = "" if text[:at].endswith("\n") else "\n"
        return text[:at] + newline + " " * col + f"seeds: {{{index}: {seed}}}\n" + text[at:]
    if not isinstance(seeds, CommentedMap):
        return None
    if index in seeds:
        # Replace only the value token of the existing entry.
        vline, vcol = seeds.lc.value(index)
        start = _offset(lines, vline, vcol)
        m = _TOKEN.match(text, start)
        if m is None:
            return None
        return text[:start] + str(seed) + text[m.end():]
    sline, scol = scene.lc.value("seeds")
    open_at = _offset(lines, sline, scol)
    if text[open_at:open_at + 1] == "{":  # ruamel does not mark an empty `{}` as flow style
        # `{...}`: add the entry before the closing brace (ints only inside, so no nesting).
        close_at = text.find("}", open_at)
        if close_at < 0:
            return None
        inner = text[open_at + 1:close_at]
        entry = f"{index}: {seed}"
        if inner.strip():
            before = text[:close_at].rstrip()
            return before + f", {entry}" + text[len(before):]
        return text[:open_at + 1] + entry + text[close_at:]
    if not seeds:
        return None
    # Block mapping: a new line after the last entry, at the entries' column.
    last = list(seeds)[-1]
    kline, kcol = seeds.lc.key(last)
    vline, _ = seeds.lc.value(last)
    if vline != kline:
        return None
    at = _line_end(text, _offset(lines, kline, kcol))
    newline = "" if text[:at].endswith("\n") else "\n"
    return text[:at] + newline + " " * kcol + f"{index}: {seed}\n" + text[at:]


def _dump(text: str, scene_id: str, index: int, seed: int) -> str:
    """Fallback: the whole file re-dumped by ruamel (keeps comments, may re-indent)."""
    import io

    yaml = YAML(typ="rt")
    yaml.version = (1, 2)
    yaml.preserve_quotes = True
    data = yaml.load(text)
    scene = _find_scene(data, scene_id)
    assert scene is not None
    seeds = scene.get("seeds")
    if not isinstance(seeds, dict):
        seeds = CommentedMap()
        seeds.fa.set_flow_style()
        scene["seeds"] = seeds
    seeds[index] = seed
    out = io.StringIO()
    yaml.dump(data, out)
    dumped = out.getvalue()
    if dumped.startswith("%YAML"):
        dumped = dumped.split("---\n", 1)[1] if "---\n" in dumped else dumped
    return dumped


def pin_seed(path: Path, scene_id: str, index_in_scene: int, seed: int) -> None:
    """Write ``seeds: {index_in_scene: seed}`` into scene ``scene_id`` of the file at ``path``.

    Only the lines holding that seed change; the rest of the file is kept byte for byte.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    scene = _find_scene(_parse(text), scene_id)
    if scene is None:
        raise StoryboardError([Problem(Location(str(path), 1, 1), f"no scene {scene_id!r} to pin a seed in")])
    edited = _splice(text, scene, index_in_scene, seed)
    if edited is not None:
        # Never write a splice that does not read back as exactly the intended change.
        check = _find_scene(_parse(edited), scene_id)
        got = check.get("seeds") if check is not None else None
        if not isinstance(got, dict) or got.get(index_in_scene) != seed:
            edited = None
    if edited is None:
        edited = _dump(text, scene_id, index_in_scene, seed)
    atomic_write_text(path, edited)
