"""CLI commands for editors: ``export`` (storyboard → OTIO timeline) and ``import`` (timeline → storyboard)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..atomic import atomic_write_text
from ..errors import ComposerError
from . import handle_errors, main


def _media_url(media: Path, otio_path: Path) -> str:
    """How the timeline names a media file: relative to the .otio's folder when beside or below it."""
    folder = otio_path.resolve().parent
    target = media.resolve()
    try:
        return target.relative_to(folder).as_posix()
    except ValueError:
        import opentimelineio as otio

        return otio.url_utils.url_from_filepath(str(target))


def _chain_media(template: str | None, board: Path, otio_path: Path, chain: int) -> Path:
    if template is None:
        return otio_path.parent / f"{board.stem}.chain{chain:02d}.mp4"
    if "{chain" in template:
        return Path(template.format(chain=chain))
    p = Path(template)
    return p.with_name(f"{p.stem}.chain{chain:02d}{p.suffix or '.mp4'}")


@main.command("export")
@click.argument("board", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--otio", "otio_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The timeline to write; the suffix picks the format: .otio, or with the "
                   "'editors' extra .edl (CMX 3600), .xml (FCP 7), .fcpxml (FCPX).")
@click.option("--media", default=None,
              help="The rendered film the clips point at (default: BOARD's name + .mp4 beside the .otio). "
                   "With --per-chain: a name with {chain} in it, e.g. film.chain{chain:02d}.mp4.")
@click.option("--per-chain", is_flag=True,
              help="One media file per chain (no dissolves baked in), crossfades as editable transitions.")
@click.option("--handles", type=click.IntRange(0), default=0, show_default=True,
              help="--per-chain: extra frames each chain file holds beyond its planned range, each side.")
@handle_errors
def export_cmd(board: Path, otio_path: Path, media: str | None, per_chain: bool, handles: int) -> None:
    """Write BOARD's film as an OpenTimelineIO timeline for an editor (Resolve, Premiere, Avid…)."""
    from ..otio import export_per_chain, export_timeline, write_otio
    from ..planner import plan
    from ..storyboard import load

    b = load(board)
    p = plan(b)
    if per_chain:
        files = {c.index: _chain_media(media, board, otio_path, c.index) for c in p.chains}
        timeline = export_per_chain(p, b, {i: _media_url(f, otio_path) for i, f in files.items()}, handles)
        expected = list(files.values())
    else:
        film = Path(media) if media is not None else otio_path.parent / f"{board.stem}.mp4"
        timeline = export_timeline(p, b, _media_url(film, otio_path))
        expected = [film]
    write_otio(timeline, otio_path)
    markers = sum(len(c.markers) for c in timeline.tracks[0] if hasattr(c, "markers"))
    click.echo(f"wrote {otio_path}: {len(p.scenes)} clips, {markers} markers, {p.total_frames} frames at {p.fps} fps"
               + (f", {len(p.chains)} chain files" if per_chain else ""))
    absent = [f for f in expected if not f.exists()]
    if absent and per_chain:
        click.echo(f"note: {len(absent)} of {len(expected)} chain files do not exist yet ("
                   + ", ".join(str(f) for f in absent[:2]) + (", …" if len(absent) > 2 else "") + ")", err=True)
    elif absent:
        click.echo(f"note: {absent[0]} does not exist yet: render it with "
                   f"composer render {board} -o {absent[0]}", err=True)


@main.command("import")
@click.argument("timeline", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The storyboard to write (default: print it).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT if it exists.")
@handle_errors
def import_cmd(timeline: Path, output: Path | None, force: bool) -> None:
    """Turn an edited timeline (.otio, or any format an OTIO adapter reads) into a storyboard skeleton."""
    from ..otio import import_timeline

    if output is not None and output.exists() and not force:
        raise ComposerError(f"{output} exists: pass --force to overwrite it")
    folder = (output.resolve().parent if output is not None else Path.cwd())
    warnings: list[str] = []
    text = import_timeline(timeline, relative_to=folder, warnings=warnings)
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        atomic_write_text(output, text)
    except OSError as exc:
        raise ComposerError(f"{output}: cannot write: {exc}") from None
    scenes = sum(1 for line in text.splitlines() if line.startswith("  - id: "))
    click.echo(f"wrote {output}: {scenes} scenes")
