"""The seam gate (``--heal``): a seam the fal emulator is told to ruin is re-rolled with a new
seed and the better take kept, within the budget, never paid twice; with ``heal`` 0 the bad
seam stays and ``composer seams`` names the reroll command; the preview keeps the best take.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import composer
from composer.backends.fal import FalBackend
from composer.cli import main
from composer.planner import plan
from composer.rendering import SegmentCache
from composer.rendering.gate import Thresholds, measure_film
from composer.rendering.heal import take_seed
from composer.storyboard import load
from composer.testing.fixtures import fal_emulator_factory, use_fal_emulator

# One chain of two segments: one seam, at film frame 41 (segment 1's first generated frame).
BOARD = """\
version: 1
title: gate
output: {resolution: 480p, aspect_ratio: "16:9", fps: 24}
defaults:
  seed: 4
  segment: {frames: 41, overlap: 17}
scenes:
  - id: shot
    duration: 65f
    prompt: A sunlit meadow with wild flowers, slow camera drift
"""


@pytest.fixture
def fal(fal_emulator_factory, monkeypatch):
    """An emulator that renders with the preview (no drift), this process pointed at it, polling fast."""
    emu = use_fal_emulator(fal_emulator_factory(drift=0.0), monkeypatch)
    monkeypatch.setitem(FalBackend.__init__.__kwdefaults__, "poll_interval", 0.02)
    monkeypatch.setitem(FalBackend.__init__.__kwdefaults__, "base_delay", 0.01)
    return emu


def cli(*args: object) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def board_file(tmp_path: Path, text: str = BOARD) -> Path:
    path = tmp_path / "board.yaml"
    path.write_text(text)
    return path


def ruin_segment_one(emu, board: Path):
    """The first take of segment 1 comes back with its generated frames at 30 % exposure."""
    seg = plan(load(board)).segments[1]
    return emu.ruin_take(seed=seg.seed, gain=0.3, from_frame=seg.overlap)


def manifest_of(film: Path) -> dict:
    return json.loads(film.with_name(film.stem + ".manifest.json").read_text())


def test_the_gate_rerolls_a_ruined_take_once_and_a_second_render_pays_nothing(fal, tmp_path):
    board = board_file(tmp_path)
    p = plan(load(board))
    ruin = ruin_segment_one(fal, board)
    film, cache = tmp_path / "film.mp4", tmp_path / "cache"
    args = ["render", board, "-o", film, "--backend", "fal", "--cache-dir", cache, "--heal", 1, "--no-review", "-q"]
    cli(*args)

    assert ruin.hits == 1
    assert fal.submit_count() == p.requests + 1  # exactly one re-roll
    m = manifest_of(film)
    seg = m["segments"][1]
    gate = seg["gate"]
    new_seed = take_seed(p.segments[1].seed, 1)
    assert new_seed != p.segments[1].seed
    assert gate["decision"] == "re-rolled" and gate["kept"]["take"] == 1 and gate["kept"]["seed"] == new_seed
    assert seg["seed"] == new_seed and seg["cache_key"] == gate["kept"]["cache_key"]
    [rejected] = gate["rejected"]
    assert rejected["seed"] == p.segments[1].seed and any("colour step" in f for f in rejected["failures"])
    assert rejected["measures"]["colour"] > Thresholds().colour > gate["measures"]["colour"]
    assert m["requests_made"] == 3 and m["cost_usd"] == pytest.approx(3 * p.segments[1].cost_usd)
    assert len(SegmentCache(cache).ledger()) == 3  # the rejected take was paid once and is in the ledger
    # the film as written shows the kept take: its seam measures under the threshold
    seam = measure_film(film, [p.segments[1].seam_frame])[p.segments[1].seam_frame]
    assert seam.colour < Thresholds().colour

    cli(*args)  # the same command again: every take, and the decision, come from the cache
    assert fal.submit_count() == p.requests + 1
    again = manifest_of(film)
    assert again["cost_usd"] == 0 and again["requests_made"] == 0
    assert [s["cache_hit"] for s in again["segments"]] == [True, True]
    assert again["segments"][1]["seed"] == new_seed and again["segments"][1]["gate"]["decision"] == "re-rolled"


def test_without_heal_the_ruined_seam_is_kept_and_seams_names_the_reroll(fal, tmp_path):
    board = board_file(tmp_path)
    p = plan(load(board))
    ruin_segment_one(fal, board)
    film = tmp_path / "film.mp4"
    cli("render", board, "-o", film, "--backend", "fal", "--cache-dir", tmp_path / "cache", "--no-review", "-q")

    assert fal.submit_count() == p.requests
    m = manifest_of(film)
    assert m["segments"][1]["gate"] is None and m["segments"][1]["seed"] == p.segments[1].seed
    out = cli("seams", film.with_name("film.manifest.json"))
    assert out.startswith("FAIL segment   1") and "colour step" in out
    assert f"composer reroll {board} 1" in out


def test_the_budget_stops_a_reroll_and_keeps_the_take_it_has(fal, tmp_path):
    board = board_file(tmp_path)
    p = plan(load(board))
    ruin_segment_one(fal, board)
    film = tmp_path / "film.mp4"
    budget = sum(s.cost_usd for s in p.segments)  # the plan, and not one request more
    cli("render", board, "-o", film, "--backend", "fal", "--cache-dir", tmp_path / "cache", "--heal", 1,
        "--max-cost", budget, "--no-review", "-q")

    assert fal.submit_count() == p.requests
    gate = manifest_of(film)["segments"][1]["gate"]
    assert gate["decision"] == "kept-best-failing" and gate["kept"]["take"] == 0
    assert "--max-cost" in gate["stopped"]


def test_plan_shows_what_heal_may_add(tmp_path):
    board = board_file(tmp_path, BOARD.replace("overlap: 17}", "overlap: 17}\n  heal: 2"))
    p = plan(load(board))
    cache = tmp_path / "cache"
    out = cli("plan", board, "--cache-dir", cache)
    assert f"up to +2 requests, ${2 * p.segments[1].cost_usd:.2f}" in out
    assert "seam gate" not in cli("plan", board, "--cache-dir", cache, "--heal", 0)


def test_the_preview_keeps_the_better_of_two_failing_takes_and_a_resume_keeps_it(tmp_path):
    # a camera turn at every seam (preview drift "motion") fails every take: the gate tries
    # heal + 1 takes, keeps the least bad one, and a second render reuses the decision
    board = board_file(tmp_path, BOARD.replace("overlap: 17}", "overlap: 17}\n  heal: 1"))
    options = {"drift": {"kinds": ["motion"], "amount": 2.0}, "text": False}
    first = composer.render(board, tmp_path / "film.mp4", cache=tmp_path / "cache", otio=False, review=False,
                            backend_options=options)
    gate = first.outcomes[1].gate
    assert gate is not None and gate["decision"] == "kept-best-failing" and gate["failures"]
    [rejected] = gate["rejected"]
    assert rejected["severity"] >= gate["severity"] > 1.0
    assert first.outcomes[1].key == gate["kept"]["cache_key"]

    again = composer.render(board, tmp_path / "film.mp4", cache=tmp_path / "cache", otio=False, review=False,
                            backend_options=options)
    assert again.cached == 2 and again.outcomes[1].key == first.outcomes[1].key
    assert again.outcomes[1].gate["kept"] == gate["kept"]
