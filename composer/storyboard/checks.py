"""Rules that need the whole storyboard: unique ids, times inside their scene,
transitions that fit, segment settings that make progress, a film length within
bounds, and media files that exist and decode (header-level, cheap).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path
from collections.abc import Callable

from ..errors import Location, MediaError, Problem
from ..media.audio import check_audio
from ..media.image import read_image_header
from ..media.probe import file_problem
from ..timecode import format_frames
from .limits import Limits
from .models import Storyboard

Where = Callable[..., Location]


def check_storyboard(board: Storyboard, where: Where | None = None, *, limits: Limits | None = None) -> list[Problem]:
    """Every whole-board problem, in file order."""
    limits = limits or Limits.from_env()
    if where is None:
        def where(loc, key=False):
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
        add(("defaults", "params", "seed"), "set the film's seed as defaults.seed (each segment's seed derives from it)",
            key=True)

    max_frames = limits.max_film_seconds * fps
    film_frames = 0
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
        film_frames += n
        if film_frames > max_frames:
            # Everything after this point would only repeat the message or cost time on a film that is refused.
            add(("scenes", i, "duration"),
                f"{label}: the film reaches {_length(film_frames, fps)} here; films are limited to "
                f"{_length(int(max_frames), fps)} (set COMPOSER_MAX_FILM, e.g. COMPOSER_MAX_FILM=8h, to allow more)")
            break
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
            problem = _image_problem(board, kf.image)
            if problem:
                add(("scenes", i, "keyframes", k, "image"), f"{label}: {problem}")
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
        problem = _audio_problem(board, board.audio.file)
        if problem:
            add(("audio", "file"), problem)
    problems.sort(key=lambda p: (p.location.line, p.location.col))
    return problems


def _length(frames: int, fps: int) -> str:
    return format_frames(frames, fps).split(".")[0]


def _shown(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:40]}…{text[-20:]} ({len(text)} characters)"


def _resolve(board: Storyboard, relative: str) -> Path | str:
    """The path, or why it has none ("~nosuchuser/x.png" cannot be expanded)."""
    try:
        return board.resolve(relative)
    except RuntimeError as exc:
        return f"cannot expand '~' ({exc})"


def _media_problem(board: Storyboard, name: str, what: str, check: Callable[..., object]) -> str | None:
    """One line on what is wrong with a media file the board names (``what``: "image", "audio file")."""
    path = _resolve(board, name)
    if isinstance(path, str):
        return f"{what} {_shown(name)}: {path}"
    where = _shown(name)
    problem = file_problem(path)
    if problem == "not found":
        return f"{what} not found: {where} (looked in {_shown(str(path.parent))})"
    if problem:
        return f"{what} {where} {problem}" if problem.startswith("is ") else f"{what} {where}: {problem}"
    try:
        check(str(path), *_stamp(path))
    except OSError as exc:  # gone or changed since the stat above
        return f"{what} {where}: cannot be read ({exc.strerror or exc})"
    except MediaError as exc:
        return f"{what} {where}: {str(exc).removeprefix(str(path) + ': ')}"
    return None


def _image_problem(board: Storyboard, image: str) -> str | None:
    return _media_problem(board, image, "image", _image_header_cached)


def _audio_problem(board: Storyboard, file: str) -> str | None:
    return _media_problem(board, file, "audio file", _audio_cached)


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


# Checks are keyed by (path, size, mtime, inode): `watch` and the fuzzer re-check unchanged files for free.
@functools.lru_cache(maxsize=512)
def _image_header_cached(path: str, size: int, mtime_ns: int, inode: int) -> None:
    read_image_header(path)


@functools.lru_cache(maxsize=64)
def _audio_cached(path: str, size: int, mtime_ns: int, inode: int) -> None:
    check_audio(path)
