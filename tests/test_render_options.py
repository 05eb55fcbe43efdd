"""composer.render's settings: RenderOptions or keywords, and a plan passed in is rendered as it is."""
from __future__ import annotations

import dataclasses
import json

import pytest

import composer
from composer import RenderOptions
from composer.errors import ComposerError

BOARD = """\
version: 1
title: options
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 3
  segment: {frames: 33, overlap: 9}
scenes:
  - {id: a, duration: 3s, prompt: "first"}
  - {id: b, duration: 2s, prompt: "second", transition: continue}
"""


def _reseeded(plan: composer.RenderPlan) -> composer.RenderPlan:
    """The same plan with every seed changed: what planning its storyboard never gives."""
    segments = [s.model_copy(update={"seed": s.seed + 1, "request": {**s.request, "seed": s.seed + 1}})
                for s in plan.segments]
    return plan.model_copy(update={"segments": segments})


def test_a_plan_passed_in_is_rendered_as_it_is(write_board, tmp_path):
    board = composer.load(write_board(BOARD))
    planned = composer.plan(board)
    mine = _reseeded(planned)
    assert mine.storyboard is board
    assert [s.seed for s in composer.plan(board).segments] == [s.seed for s in planned.segments]

    result = composer.render(mine, tmp_path / "f.mp4", cache=tmp_path / "cache", otio=False)
    assert result.plan is mine
    manifest = json.loads(result.manifest.read_text())
    assert [s["request"]["seed"] for s in manifest["segments"]] == [s.seed for s in mine.segments]
    assert [s["request"]["seed"] for s in manifest["segments"]] != [s.seed for s in planned.segments]
    assert manifest["plan"] == mine.model_dump(mode="json")


def test_options_object_and_keywords_are_the_same_settings(write_board, tmp_path):
    path = write_board(BOARD)
    cache = composer.SegmentCache(tmp_path / "cache")
    events: list[composer.events.Event] = []
    opts = RenderOptions(cache=cache, otio=False, on_event=events.append)

    first = composer.render(path, tmp_path / "a.mp4", options=opts)
    assert first.generated == first.plan.requests and events
    assert not (tmp_path / "a.otio").exists()

    # a keyword overrides the object; the cache it names is the one used (nothing generated again)
    again = composer.render(path, tmp_path / "b.mp4", options=opts, otio=True)
    assert again.generated == 0 and again.cached == first.plan.requests
    assert (tmp_path / "b.otio").exists()
    assert opts.otio is False  # the caller's object is not changed


def test_unknown_keyword_is_a_type_error(write_board, tmp_path):
    path = write_board(BOARD)
    with pytest.raises(TypeError, match="'max_costs'"):
        composer.render(path, tmp_path / "a.mp4", max_costs=1.0)
    with pytest.raises(TypeError):
        RenderOptions(max_costs=1.0)  # type: ignore[call-arg]
    assert not (tmp_path / "a.mp4").exists()


def test_options_are_frozen_and_keep_no_caller_list():
    scenes = ["a"]
    opts = RenderOptions(scenes=scenes, frame_range=[0, 12])  # type: ignore[arg-type]
    scenes.append("b")
    assert opts.scenes == ("a",) and opts.frame_range == (0, 12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.jobs = 4  # type: ignore[misc]


def test_draft_of_a_plan_is_refused(write_board, tmp_path):
    planned = composer.plan(composer.load(write_board(BOARD)))
    with pytest.raises(ComposerError, match="draft"):
        composer.render(planned, tmp_path / "a.mp4", draft=True, cache=tmp_path / "cache")
