"""``composer seams``: a film's seams measured worst first, a reroll command for a failing one."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

import composer
from composer.cli import main

BOARD = """\
version: 1
title: gate
output: {resolution: 480p, aspect_ratio: "16:9", fps: 24}
defaults:
  seed: 4
  segment: {frames: 41, overlap: 17}
  colour: {method: none}
scenes:
  - id: shot
    duration: 61f
    prompt: A sunlit meadow with wild flowers, slow camera drift
"""


def film(tmp_path: Path, drift: object, name: str) -> Path:
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    result = composer.render(board, tmp_path / f"{name}.mp4", cache=tmp_path / "cache", otio=False,
                             backend_options={"drift": drift, "text": False})
    return Path(result.manifest)


def test_seams_flags_a_camera_turn_and_prints_the_reroll(tmp_path: Path) -> None:
    bad = CliRunner().invoke(main, ["seams", str(film(tmp_path, {"kinds": ["motion"], "amount": 2.0}, "bad"))])
    assert bad.exit_code == 0, bad.output
    assert bad.output.startswith("FAIL segment   1")
    assert "motion jump" in bad.output and "composer reroll" in bad.output and " 1\n" in bad.output
    good = CliRunner().invoke(main, ["seams", "--json", str(film(tmp_path, 0.0, "good"))])
    rows = json.loads(good.output)
    assert [r["segment"] for r in rows] == [1]
    assert rows[0]["measures"]["motion"]["jump"] < 0.8  # the same seam without the turn passes on motion


def test_seams_refuses_what_is_not_a_manifest(tmp_path: Path) -> None:
    junk = tmp_path / "x.json"
    junk.write_text("{}")
    r = CliRunner().invoke(main, ["seams", str(junk)])
    assert r.exit_code != 0 and "not a composer film manifest" in r.output and "Traceback" not in r.output
