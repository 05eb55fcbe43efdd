"""A segment's colour decision is kept beside its cached video and read back by the next assembly of
the same chain: the film is the same frame for frame, a damaged decision is made again, and a change
of colour settings makes new ones."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from composer.backends.preview import PreviewBackend
from composer.media import read_frames
from composer.rendering import SegmentCache, render

BOARD = """\
version: 1
title: decisions
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 3
  segment: {frames: 33, overlap: 9}
  colour: {method: auto%s}
scenes:
  - id: one
    duration: 6s
    prompt: "a harbour at dawn"
"""


def _decisions(cache: Path) -> list[Path]:
    return sorted(cache.glob("segments/*/*/video.mp4.colour-*.json"))


def _render(path: Path, cache: Path, out: Path):
    return render(path, out, cache=SegmentCache(cache), backend=PreviewBackend(drift=1.0), review=False, otio=False)


def test_kept_decisions_give_the_same_film_and_are_what_it_shows(write_board, tmp_path):
    path = write_board(BOARD % "")
    cache = tmp_path / "cache"
    first = _render(path, cache, tmp_path / "a.mp4")
    kept = _decisions(cache)
    # one per segment the matcher decides (every one of the chain)
    assert len(kept) == len(first.plan.segments) >= 3
    stamps = {p: p.stat().st_mtime_ns for p in kept}

    again = _render(path, cache, tmp_path / "b.mp4")
    assert again.generated == 0 and _decisions(cache) == kept
    assert all(p.stat().st_mtime_ns == stamps[p] for p in kept)  # read back, not made again
    a, b = read_frames(tmp_path / "a.mp4", pix_fmt="yuv420p"), read_frames(tmp_path / "b.mp4", pix_fmt="yuv420p")
    assert len(a) == len(b) == first.plan.total_frames and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert again.assembly["transforms"] == first.assembly["transforms"] and len(first.assembly["transforms"]) == 3
    assert again.assembly["seams"] == first.assembly["seams"]

    # the decision is what the film shows: brighten the last segment's kept transform
    last_key = Path(first.outcomes[first.plan.segments[-1].index].video).parent.name
    last = next(p for p in kept if p.parent.name == last_key)
    data = json.loads(last.read_text())
    for end in ("start", "end"):
        for row in data["record"]["transform"][end]["matrix"]:
            row[3] += 30.0
    last.write_text(json.dumps(data))
    # the film's encoded pieces are keyed by clips and settings, not by these files: without them,
    # the film is assembled again from the decisions
    shutil.rmtree(cache / "pieces")
    brighter = _render(path, cache, tmp_path / "c.mp4")
    c = read_frames(tmp_path / "c.mp4", pix_fmt="yuv420p")
    h = first.plan.height
    tail = slice(len(a) - 8, len(a))  # frames only the last segment shows
    assert np.mean([f[:h].mean() for f in c[tail]]) > np.mean([f[:h].mean() for f in a[tail]]) + 15
    assert all(np.array_equal(x, y) for x, y in zip(a[:8], c[:8]))  # the chain's start is untouched
    assert brighter.generated == 0

    # a damaged decision is estimated again, and the film is the first one again
    last.write_text("{ not json")
    shutil.rmtree(cache / "pieces")
    _render(path, cache, tmp_path / "d.mp4")
    d = read_frames(tmp_path / "d.mp4", pix_fmt="yuv420p")
    assert all(np.array_equal(x, y) for x, y in zip(a, d))
    assert json.loads(last.read_text())["record"]["transform"]  # and kept anew


def test_other_colour_settings_make_their_own_decisions(write_board, tmp_path):
    # conditioned on raw tails, the segments do not depend on the colour settings: one cache, two looks
    cache = tmp_path / "cache"
    first = _render(write_board(BOARD % ", tail: raw", "a.yaml"), cache, tmp_path / "a.mp4")
    n = len(_decisions(cache))
    assert n == len(first.plan.segments)
    other = _render(write_board(BOARD % ", tail: raw, strength: 0.5", "b.yaml"), cache, tmp_path / "b.mp4")
    assert other.generated == 0  # the same segments, another look: decided again, beside the first ones
    assert len(_decisions(cache)) == 2 * n
    a, b = read_frames(tmp_path / "a.mp4", pix_fmt="yuv420p"), read_frames(tmp_path / "b.mp4", pix_fmt="yuv420p")
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))


def test_the_schedulers_follow_decides_and_the_streaming_assembler_reads_it_back(write_board, tmp_path,
                                                                                 monkeypatch):
    # while generating, the scheduler colour-follows each segment for its successor's tail and keeps
    # that decision; the assembler, streaming behind it, reads it instead of estimating it again
    import composer.colour.continuity as continuity

    estimates: list[int] = []
    real = continuity.estimate_seam_fix
    monkeypatch.setattr(continuity, "estimate_seam_fix", lambda *a, **k: estimates.append(1) or real(*a, **k))
    path = write_board(BOARD % "")
    cache = tmp_path / "cache"
    first = _render(path, cache, tmp_path / "a.mp4")
    assert first.generated == len(first.plan.segments)
    # each seam's continuity is estimated once (by the scheduler), not a second time by the assembler
    assert len(estimates) == len(first.plan.segments) - 1
    kept = _decisions(cache)
    assert len(kept) == len(first.plan.segments)  # one digest for both: a second would be a second file
    assert len(first.assembly["seams"]) == len(first.plan.segments) - 1
    assert all(s["delta_e"] is not None for s in first.assembly["seams"])

    # the film assembled from scratch (no decision kept anywhere) is the same, frame for frame
    for p in kept:
        p.unlink()
    shutil.rmtree(cache / "pieces")  # nor any piece of the film
    estimates.clear()
    again = _render(path, cache, tmp_path / "b.mp4")
    assert again.generated == 0 and len(estimates) == len(first.plan.segments) - 1
    a, b = read_frames(tmp_path / "a.mp4", pix_fmt="yuv420p"), read_frames(tmp_path / "b.mp4", pix_fmt="yuv420p")
    assert len(a) == len(b) == first.plan.total_frames and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert again.assembly["transforms"] == first.assembly["transforms"]
    assert again.assembly["seams"] == first.assembly["seams"]


def test_a_decision_made_by_other_code_is_made_again(write_board, tmp_path, monkeypatch):
    # an upgrade that changes how colour is decided (an estimator, a fit) must not show the old decisions
    import composer.assemble as assemble

    path = write_board(BOARD % "")
    cache = tmp_path / "cache"
    first = _render(path, cache, tmp_path / "a.mp4")
    n = len(_decisions(cache))
    assert n == len(first.plan.segments)
    monkeypatch.setattr(assemble, "code_fingerprint", lambda: "another version of the colour code")
    shutil.rmtree(cache / "pieces")
    again = _render(path, cache, tmp_path / "b.mp4")
    assert again.generated == 0  # the same segments, paid once
    assert len(_decisions(cache)) == 2 * n  # decided again, beside the first ones
