"""The ``composer`` command line: validate, plan, schema, render and friends.

A thin layer over the library: it parses options, prints, and maps composer's
errors to one-line messages and exit codes (2 for a user's storyboard mistake).
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__
from .errors import ComposerError, StoryboardError
from .timecode import format_frames


def _fail(exc: ComposerError) -> None:
    if isinstance(exc, StoryboardError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
    else:
        click.echo(f"error: {exc}", err=True)
    sys.exit(exc.exit_code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn composer's errors into a message and exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ComposerError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted: finished segments are kept in the cache; run the same command to resume", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="composer")
def main() -> None:
    """Compose long videos from storyboard files, segment by segment."""


@main.command()
@click.argument("boards", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@handle_errors
def validate(boards: tuple[Path, ...]) -> None:
    """Check storyboards; print every problem as file:line:col: message."""
    from .plan import plan
    from .storyboard import load

    failed: list[StoryboardError] = []
    for path in boards:
        try:
            board = load(path)
            p = plan(board)
        except StoryboardError as exc:
            failed.append(exc)
            continue
        except ComposerError as exc:
            failed.append(StoryboardError([]))
            click.echo(f"{path}: {exc}", err=True)
            continue
        click.echo(
            f"{path}: ok — {len(board.scenes)} scene{'s' if len(board.scenes) != 1 else ''}, {format_frames(p.total_frames, p.fps)} "
            f"({p.total_frames} frames at {p.fps} fps), {p.requests} requests, ${p.estimated_cost_usd:.2f}"
        )
    if failed:
        for exc in failed:
            for problem in exc.problems:
                click.echo(str(problem), err=True)
        sys.exit(2)


@main.command("plan")
@click.argument("board", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole plan as JSON.")
@handle_errors
def plan_cmd(board: Path, as_json: bool) -> None:
    """Show the segments a render will generate, what it costs and how long the critical path is."""
    from .plan import plan
    from .storyboard import load

    p = plan(load(board))
    if as_json:
        click.echo(p.to_json(), nl=False)
        return
    click.echo(render_plan_table(p))


def render_plan_table(p: Any, cached: dict[int, bool] | None = None) -> str:
    """A readable table of a RenderPlan (and which segments are cached, when known)."""
    lines = []
    title = f"{p.title}: " if p.title else ""
    lines.append(
        f"{title}{p.width}x{p.height} {p.resolution} {p.aspect_ratio} at {p.fps} fps, "
        f"{format_frames(p.total_frames, p.fps)} ({p.total_frames} frames)"
    )
    head = f"{'seg':>4} {'chain':>5} {'scene':<14} {'shown (film time)':<27} {'frames':>6}  {'conditioning':<22} prompt"
    if cached is not None:
        head = head.replace("prompt", "cache  prompt")
    lines.append(head)
    for s in p.segments:
        conds = []
        for c in s.conditioning:
            if c.kind == "video":
                conds.append(f"tail#{c.source.split(':')[1]}x{c.num_frames}")
            else:
                conds.append(f"img@{c.start_frame}")
        span = f"{format_frames(s.shown_start, p.fps)}–{format_frames(s.shown_end, p.fps)}"
        prompt = s.prompt if len(s.prompt) <= 48 else s.prompt[:47] + "…"
        row = f"{s.index:>4} {s.chain:>5} {s.scene[:14]:<14} {span:<27} {s.num_frames:>6}  {', '.join(conds)[:22]:<22} "
        if cached is not None:
            row += f"{'hit' if cached.get(s.index) else 'new':<6} "
        lines.append(row + prompt)
    chains = len(p.chains)
    lines.append(
        f"{p.requests} requests in {chains} chain{'s' if chains != 1 else ''}, "
        f"critical path {p.critical_path} request{'s' if p.critical_path != 1 else ''} (chain {p.critical_chain}), "
        f"estimated cost ${p.estimated_cost_usd:.2f}"
    )
    if cached is not None:
        todo = [s for s in p.segments if not cached.get(s.index)]
        lines.append(
            f"cached: {len(p.segments) - len(todo)}/{len(p.segments)}; a render would still make "
            f"{len(todo)} request{'s' if len(todo) != 1 else ''} (${sum(s.cost_usd for s in todo):.2f})"
        )
    for snap in p.snaps:
        lines.append(
            f"note: scene '{snap.scene}' keyframe {snap.keyframe} moved from frame {snap.wanted_frame} to "
            f"{snap.used_frame} ({snap.delta:+d}) to sit on LTX's 8-frame grid (segment {snap.segment})"
        )
    return "\n".join(lines)


@main.command()
@click.option("--indent", default=2, show_default=True)
def schema(indent: int) -> None:
    """Print the storyboard JSON Schema (for editors' validation and completion)."""
    from .storyboard import Storyboard

    doc = Storyboard.model_json_schema()
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", **doc, "title": "composer storyboard"}
    click.echo(json.dumps(doc, indent=indent))


if __name__ == "__main__":  # pragma: no cover
    main()
