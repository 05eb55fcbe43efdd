"""CLI command ``composer seams``: a rendered film's seams measured, worst first, with the
seam gate's decision where it judged one and the ``composer reroll`` command for each that fails.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ComposerError
from . import handle_errors, main


@main.command()
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the measures as JSON.")
@handle_errors
def seams(manifest: Path, as_json: bool) -> None:
    """Measure every seam of the film MANIFEST describes (colour, motion, sharpness), worst first."""
    from ..rendering.gate import rank_manifest

    try:
        data = json.loads(manifest.read_text())
        rows = rank_manifest(data)
    except (KeyError, ValueError) as exc:
        raise ComposerError(f"{manifest}: not a composer film manifest ({exc})") from None
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    board = data.get("storyboard", {}).get("source") or "STORYBOARD"
    for r in rows:
        m = r["measures"]
        verdict = "FAIL" if r["failures"] else "ok"
        click.echo(f"{verdict:4s} segment {r['segment']:3d} at frame {r['film_frame']:6d}: colour {m['colour']:.2f} ΔE, "
                   f"motion jump {m['motion']['jump']:.2f} px, sharpness {m['sharpness']:.2f}")
        gate = r.get("gate")
        if gate:
            kept = gate["kept"]
            click.echo(f"     seam gate: {gate['decision']}, kept take {kept['take']} (seed {kept['seed']}), "
                       f"{len(gate.get('rejected', []))} rejected")
        if r["failures"]:
            click.echo(f"     {'; '.join(r['failures'])}\n     composer reroll {board} {r['segment']}")
    if not rows:
        click.echo("no seams to measure")
