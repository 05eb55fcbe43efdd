"""Rules that need the whole storyboard: unique ids, times inside their scene,
transitions that fit, segment settings that make progress, files that exist.
"""
from __future__ import annotations

from typing import Callable

from ..errors import Location, Problem
from .models import Storyboard

Where = Callable[..., Location]


def check_storyboard(board: Storyboard, where: Where | None = None) -> list[Problem]:
    """Every whole-board problem, in file order."""
    if where is None:
        def where(loc, key=False):  # noqa: ARG001 - boards built in code have no lines
            return Location(board.source, 1, 1)
    fps = board.output.fps
    problems: list[Problem] = []

    def add(loc, msg: str, key: bool = False) -> None:
        problems.append(Problem(where(loc, key=key), msg))

    seg = board.defaults.segment
    if seg.overlap + 8 > seg.frames:
        add(("defaults", "segment", "overlap"),
            f"segment overlap ({seg.overlap}) must leave at least 8 new frames in a {seg.frames}-frame segment")

    if "seed" in board.defaults.params.model_fields_set:
        add(("defaults", "params", "seed"), "set the film's seed as defaults.seed (each segment's seed derives from it)", key=True)

    seen: dict[str, int] = {}
    for i, scene in enumerate(board.scenes):
        label = f"scene {scene.id!r}"
        if scene.id in seen:
            add(("scenes", i, "id"), f"{label}: duplicate scene id (first used by scene #{seen[scene.id] + 1})")
        else:
            seen[scene.id] = i
        n = scene.duration.to_frames(fps)
        if n <= 0:
            add(("scenes", i, "duration"), f"{label}: duration must be > 0 (got {scene.duration}, {n} frames at {fps} fps)")
            continue
        if i == 0 and scene.transition != "cut":
            add(("scenes", i, "transition"), f"{label}: the first scene must start with a cut (nothing comes before it)")
        fade = scene.crossfade
        if fade is not None and i > 0:
            f = fade.to_frames(fps)
            prev = board.scenes[i - 1].duration.to_frames(fps)
            if f < 2:
                add(("scenes", i, "transition", "crossfade"), f"{label}: crossfade must last at least 2 frames (got {fade})")
            elif f > min(n, prev):
                add(("scenes", i, "transition", "crossfade"),
                    f"{label}: crossfade of {f} frames is longer than this scene or the one before ({min(n, prev)} frames)")
        used: dict[int, int] = {}
        for k, kf in enumerate(scene.keyframes):
            at = kf.at.to_frames(fps)
            if kf.at.is_negative() or at >= n:
                add(("scenes", i, "keyframes", k, "at"),
                    f"{label}: keyframe at {kf.at} is outside the scene (0 to {scene.duration}, last frame {n - 1})")
            elif at in used:
                add(("scenes", i, "keyframes", k, "at"), f"{label}: two keyframes at frame {at}")
            used[at] = k
            path = board.resolve(kf.image)
            if not path.is_file():
                add(("scenes", i, "keyframes", k, "image"), f"{label}: image not found: {kf.image} (looked in {path.parent})")
        beat_frames: set[int] = set()
        for k, beat in enumerate(scene.beats):
            at = beat.at.to_frames(fps)
            if at <= 0 or at >= n:
                add(("scenes", i, "beats", k, "at"),
                    f"{label}: beat at {beat.at} must fall inside the scene (after 0s, before {scene.duration})")
            elif at in beat_frames:
                add(("scenes", i, "beats", k, "at"), f"{label}: two beats at frame {at}")
            beat_frames.add(at)
    if board.audio is not None:
        path = board.resolve(board.audio.file)
        if not path.is_file():
            add(("audio",) if isinstance(board.audio, str) else ("audio", "file"),
                f"audio file not found: {board.audio.file} (looked in {path.parent})")
    problems.sort(key=lambda p: (p.location.line, p.location.col))
    return problems
