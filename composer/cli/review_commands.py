"""CLI command ``review``: (re)write a render's review page from its manifest."""
from __future__ import annotations

from pathlib import Path

import click

from . import handle_errors, main


@main.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The page to write (default: FILM.review.html beside the manifest).")
@click.option("--film", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Take the thumbnails from this file (default: the film the manifest names, or the one beside it).")
@handle_errors
def review(manifest: Path, output: Path | None, film: Path | None) -> None:
    """Write the review page of a render: timeline, segments, seams worst first, colour drift."""
    from ..review import write_review

    page = write_review(manifest, output, film=film)
    click.echo(f"wrote {page}")
