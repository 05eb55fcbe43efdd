"""Seams in detail: the dissolve across the overlap, the spatial residual field,
the scheduler's tail-only pass and the last-frame samples kept beside segments."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from composer.assemble import ChainStream, assemble, film_frames, sample_path
from composer.colour import ColourTransform, ResidualField, fit_residual_field
from composer.media import read_frames, write_clip
from composer.planner import frame_range_segments, plan
from composer.storyboard import load
from composer.storyboard.models import ColourSpec
from composer.yuv import i420_to_rgb

BOARD = """\
version: 1
title: stitch
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  segment: {frames: 33, overlap: 9}
scenes:
  - {id: a, duration: 5s, prompt: a slow pan}
"""


@pytest.fixture
def chain_plan(write_board):
    p = plan(load(write_board(BOARD)))
    assert len(p.chains) == 1 and len(p.segments) >= 2
    return p


def _solid_segments(p, tmp_path: Path, levels: list[int]) -> dict[int, Path]:
    """Each segment one flat grey (its re-generated head included, as a whole-clip shift)."""
    videos = {}
    for seg, level in zip(p.segments, levels):
        frames = [np.full((p.height, p.width, 3), level, np.uint8)] * seg.num_frames
        videos[seg.index] = tmp_path / f"s{seg.index}.mp4"
        write_clip(frames, videos[seg.index], p.fps)
    return videos


def test_overlap_is_shown_as_a_dissolve_from_tail_to_head(chain_plan, tmp_path):
    p = chain_plan
    videos = _solid_segments(p, tmp_path, [100, 160, 100, 160][: len(p.segments)])
    frames = [i420_to_rgb(f) for f in film_frames(p, videos, ColourSpec(method="none"), {})]
    assert len(frames) == p.total_frames
    seg = p.segments[1]
    k = seg.overlap
    means = [float(f.mean()) for f in frames]
    for j in range(k):  # film frame of the j-th re-generated head frame
        want = 100 + 60 * (j + 1) / (k + 1)
        assert means[seg.seam_frame - k + j] == pytest.approx(want, abs=1.5), (j, means[seg.seam_frame - k: seg.seam_frame])
    assert means[seg.seam_frame - k - 1] == pytest.approx(100, abs=1.0)  # before the overlap: the old segment
    assert means[seg.seam_frame] == pytest.approx(160, abs=1.0)  # its first generated frame: the new one
    steps = np.abs(np.diff(means[seg.seam_frame - k - 1: seg.seam_frame + 1]))
    assert steps.max() < 60 / (k + 1) + 1.5  # no single jump: the difference is spread over the overlap


def test_matched_overlap_keeps_the_chain_look(chain_plan, tmp_path):
    p = chain_plan
    videos = _solid_segments(p, tmp_path, [100, 160, 100, 160][: len(p.segments)])
    frames = [i420_to_rgb(f) for f in film_frames(p, videos, ColourSpec(method="affine", spatial=False), {})]
    means = np.array([float(f.mean()) for f in frames])
    assert np.abs(means - 100).max() < 3.0  # every seam's shift undone, through the dissolve too


def test_residual_field_recovers_a_tint_gradient():
    rng = np.random.default_rng(0)
    h, w = 90, 160
    base = rng.integers(40, 200, size=(h, w, 3)).astype(np.uint8)
    gradient = np.linspace(-10, 10, w, dtype=np.float32)[None, :, None] * np.array([1.0, 0.0, -1.0], np.float32)
    source = [base] * 3
    target = [np.clip(base + gradient, 0, 255).astype(np.uint8)] * 3
    field = fit_residual_field(source, target, ColourTransform())
    assert field is not None
    corrected = field.add_to(base).astype(np.float32)
    before = np.abs(target[0].astype(np.float32) - base).mean()
    after = np.abs(target[0].astype(np.float32) - corrected).mean()
    assert after < 0.25 * before, (before, after)
    # the field is spatial only: its mean is left to the global transform
    assert np.abs(field.grid.reshape(-1, 3).mean(axis=0)).max() < 0.5


def test_residual_field_is_none_when_the_transform_explains_everything():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=(72, 128, 3)).astype(np.uint8)
    assert fit_residual_field([frame] * 2, [frame] * 2, ColourTransform()) is None


def test_residual_field_is_clipped_and_round_trips():
    grid = np.zeros((9, 16, 3), np.float32)
    grid[:, :8] = 100.0
    grid[:, 8:] = -100.0
    base = np.full((90, 160, 3), 128, np.uint8)
    target = ResidualField(grid).add_to(base)
    field = fit_residual_field([base], [target], ColourTransform(), limit=16.0)
    assert field is not None and field.peak <= 16.0 + 1e-6
    again = ResidualField.from_dict(field.to_dict())
    assert np.allclose(again.grid, field.grid, atol=0.01)


def test_tail_only_follow_matches_the_streamed_tail(write_board, tmp_path):
    from composer.backends.preview import PreviewBackend

    board = load(write_board(BOARD.replace("5s", "7s")))
    p = plan(board)
    assert len(p.segments) >= 3
    backend = PreviewBackend(drift=1.0)
    # segments rendered independently (raw tails are enough to compare the two passes)
    from composer.rendering.cache import SegmentCache
    from composer.rendering.scheduler import Scheduler

    cache = SegmentCache(tmp_path / "cache")
    sched = Scheduler(p, board, backend, cache, workdir=tmp_path / "work")
    outcomes = sched.run()
    videos = {i: o.video for i, o in outcomes.items()}
    spec = ColourSpec(method="auto")
    chain = p.chains[0]
    streamed, followed = ChainStream(chain, p, spec, keep_full_tail=True), ChainStream(chain, p, spec, keep_full_tail=True)
    for seg in streamed.segments[:-1]:
        a, b = {}, {}
        list(streamed.next_segment(videos[seg.index], a))
        followed.follow(videos[seg.index], b)
        assert a["transform"] == b["transform"]
        assert len(a["full_tail"]) == len(b["full_tail"]) == p.segments[seg.index + 1].overlap
        for x, y in zip(a["full_tail"], b["full_tail"]):
            assert np.array_equal(x, y)


def test_last_frame_sample_is_kept_and_changes_nothing(write_board, tmp_path):
    from composer.rendering import SegmentCache, render

    path = write_board(BOARD.replace("5s", "7s"))
    cache = SegmentCache(tmp_path / "cache")
    result = render(path, tmp_path / "a.mp4", cache=cache, backend_options={"drift": 1.0})
    p = result.plan
    keys = [s["cache_key"] for s in json.loads(result.manifest.read_text())["segments"]]
    videos = {i: cache.get(k).video for i, k in enumerate(keys)}
    kept = [list(videos[i].parent.glob("video.mp4.frame*.npy")) for i in videos]
    assert all(len(k) == 1 for k in kept), "every segment keeps its last-frame sample"
    seg = p.segments[0]
    last = seg.shown_end - seg.output_start_frame - 1
    sample = np.load(sample_path(videos[0], last))
    decoded = read_frames(videos[0], start=last, count=1)[0]
    assert sample.shape[1] == 256 and abs(float(sample.mean()) - float(decoded.mean())) < 1.5
    # assembling without the samples decodes them again and gives the same film
    with_samples = assemble(p, videos, tmp_path / "b.mp4", colour=ColourSpec())
    for files in kept:
        files[0].unlink()
    without = assemble(p, videos, tmp_path / "c.mp4", colour=ColourSpec())
    assert with_samples["transforms"] == without["transforms"]
    a, b = read_frames(tmp_path / "b.mp4"), read_frames(tmp_path / "c.mp4")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_range_ending_in_an_overlap_needs_the_next_segment(chain_plan):
    p = chain_plan
    nxt = p.segments[1]
    inside_overlap = nxt.seam_frame - 1  # shown as a dissolve into the next segment's head
    assert 1 in frame_range_segments(p, 0, inside_overlap + 1)
    assert 1 not in frame_range_segments(p, 0, nxt.seam_frame - nxt.overlap)
