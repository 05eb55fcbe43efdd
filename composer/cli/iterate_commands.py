"""CLI commands for iterating on a film: ``reroll`` and ``pin`` a segment's seed,
and ``watch`` a storyboard to re-render on every save.
"""
from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import click

from ..backends import backend_class, get_backend
from ..request import GenerationRequest
from . import _cached_map, backend_option, cache_option, handle_errors, main


def _paid_cost(backend_name: str, segments: list[Any]) -> float:
    """What rendering ``segments`` costs on ``backend_name``, as the backend prices it (0 if it is free)."""
    if not backend_class(backend_name).paid:
        return 0.0
    backend = get_backend(backend_name)
    try:
        return round(sum(backend.estimate_cost(GenerationRequest.model_validate(s.request)) for s in segments), 6)
    finally:
        backend.close()


def _chain_rest(p: Any, index: int) -> list[Any]:
    """The segment and every one whose request follows from it (the rest of its chain, sequentially)."""
    from ..planner import descendants

    return [p.segments[i] for i in descendants(p, index)]


def _segment_arg(p: Any, index: int) -> Any:
    if not 0 <= index < len(p.segments):
        raise click.BadParameter(f"segment {index} does not exist (the plan has 0–{len(p.segments) - 1})", param_hint="SEGMENT")
    seg = p.segments[index]
    if seg.role == "skeleton":
        raise click.BadParameter(f"{seg.label} is never shown (it only conditions anchors) and its seed "
                                 "follows the storyboard's: reroll or pin the anchors it conditions instead",
                                 param_hint="SEGMENT")
    return seg


@main.command()
@click.argument("board", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("segment", type=int)
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=None, help="Use this seed instead of a random one.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@backend_option
@cache_option
@handle_errors
def reroll(board: Path, segment: int, seed: int | None, yes: bool, backend: str, cache_dir: str | None) -> None:
    """Give SEGMENT a new seed (a new take), pinned in BOARD.

    Shows first what re-rendering it and the rest of its chain will cost.
    """
    from ..planner import plan
    from ..storyboard import load
    from ..storyboard.edit import pin_seed

    b = load(board)
    p = plan(b)
    seg = _segment_arg(p, segment)
    rest = _chain_rest(p, segment)
    cost = _paid_cost(backend, rest)
    click.echo(f"{seg.label} has seed {seg.seed}. A new take re-renders it and the {len(rest) - 1} segment(s) that "
               f"follow from it in chain {seg.chain}: {len(rest)} request(s), ${cost:.2f} with --backend {backend}.")
    if not yes and not click.confirm("Pin a new seed?", default=False):
        raise SystemExit(1)
    new = seed if seed is not None else secrets.randbelow(2**31)
    pin_seed(board, seg.scene, seg.index_in_scene, new)
    click.echo(f"pinned scene '{seg.scene}' segment #{seg.index_in_scene} to seed {new} in {board}; "
               f"run `composer render` to render the new take")


@main.command()
@click.argument("board", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("segment", type=int)
@handle_errors
def pin(board: Path, segment: int) -> None:
    """Pin SEGMENT's current seed in BOARD, so a take that works stays."""
    from ..planner import plan
    from ..storyboard import load
    from ..storyboard.edit import pin_seed

    p = plan(load(board))
    seg = _segment_arg(p, segment)
    pin_seed(board, seg.scene, seg.index_in_scene, seg.seed)
    click.echo(f"pinned scene '{seg.scene}' segment #{seg.index_in_scene} to seed {seg.seed} in {board}")


def _fingerprint(board: Path) -> tuple:
    """What a watch compares: the board and every file it refers to (mtime and size)."""
    from ..errors import ComposerError
    from ..storyboard import load

    paths = [board]
    try:
        b = load(board)
        paths += [b.resolve(k.image) for s in b.scenes for k in s.keyframes]
        if b.audio is not None:
            paths.append(b.resolve(b.audio.file))
    except (ComposerError, OSError):  # a half-edited board: watch its file alone until it loads again
        pass
    out: list[tuple[str, int | None, int | None]] = []
    for p in paths:
        try:
            st = Path(p).stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(p), None, None))
    return tuple(out)


@main.command()
@click.argument("board", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@backend_option
@cache_option
@click.option("--max-cost", type=click.FloatRange(0), default=None, help="Budget per re-render (required with --backend fal).")
@click.option("--draft", is_flag=True, help="Render drafts (480p, fewer steps).")
@click.option("--interval", type=click.FloatRange(0.05), default=0.5, show_default=True, help="Seconds between checks.")
@click.option("--max-runs", type=click.IntRange(1), default=None, hidden=True, help="Stop after this many renders (tests).")
@handle_errors
def watch(board: Path, output: Path, backend: str, cache_dir: str | None, max_cost: float | None, draft: bool,
          interval: float, max_runs: int | None) -> None:
    """Re-plan and re-render BOARD on every save of it or its images (Ctrl-C stops)."""
    from ..errors import ComposerError, StoryboardError
    from ..planner import draft_board, plan
    from ..rendering import render as run_render
    from ..rendering.progress import Progress
    from ..storyboard import load

    if backend_class(backend).paid and max_cost is None:
        raise click.UsageError(f"watch with --backend {backend} pays on every save: set --max-cost")
    seen = None
    runs = 0
    click.echo(f"watching {board} (Ctrl-C to stop)")
    while max_runs is None or runs < max_runs:
        current = _fingerprint(board)
        if current == seen:
            time.sleep(interval)
            continue
        seen = current
        try:
            b = load(board)
            if draft:
                b = draft_board(b)
            p = plan(b)
            cached = _cached_map(b, p, backend, cache_dir)
            todo = [s for s in p.segments if not cached[s.index]]
            cost = _paid_cost(backend, todo)
            changed = ", ".join(str(s.index) for s in todo) or "none"
            click.echo(f"{time.strftime('%H:%M:%S')} change: {len(todo)} of {len(p.segments)} segments to render "
                       f"({changed}), ${cost:.2f}")
            result = run_render(b, output, backend=backend, cache=cache_dir, max_cost=max_cost,
                                on_event=Progress(quiet=True))
            click.echo(f"wrote {result.output}: {result.generated} generated, {result.cached} from cache")
        except StoryboardError as exc:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        except ComposerError as exc:
            click.echo(f"error: {exc}", err=True)
        runs += 1
