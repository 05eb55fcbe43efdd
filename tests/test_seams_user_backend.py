"""A user's own Backend object renders a board, and its context says which film frames it makes."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

import composer
from composer.backends.base import Backend, GenerateContext, GenerationResult
from composer.media import VideoReader, VideoWriter
from composer.request import GenerationRequest

BOARD = """\
version: 1
title: user backend
output: {resolution: 480p, aspect_ratio: "16:9", fps: 24}
defaults:
  seed: 1
  segment: {frames: 25, overlap: 9}
  colour: {method: none}
scenes:
  - id: a
    duration: 50f
    prompt: grey ramp
"""


class FilmFrameGrey(Backend):
    """Each clip frame is a flat grey equal to twice its film frame number (the context's range)."""

    name = "film-frame-grey"
    version = "1"

    def __init__(self) -> None:
        self.seen: list[tuple[int | None, range | None, int]] = []

    def generate(self, request: GenerationRequest, workdir: Path, ctx: GenerateContext | None = None) -> GenerationResult:
        assert ctx is not None and ctx.film_range is not None
        self.seen.append((ctx.segment_index, ctx.film_range, ctx.overlap))
        w, h = self.output_size(request.resolution, request.aspect_ratio)
        out = Path(workdir) / f"clip{ctx.segment_index}.mp4"
        with VideoWriter(out, w, h, Fraction(request.frame_rate), crf=10) as writer:
            for film_frame in ctx.film_range:
                writer.write(np.full((h, w, 3), 2 * film_frame, np.uint8))
        return GenerationResult(path=out, num_frames=request.num_frames)


def test_a_user_backend_object_renders_a_board(tmp_path: Path) -> None:
    backend = FilmFrameGrey()
    result = composer.render(composer.loads(BOARD), tmp_path / "film.mp4", backend=backend,
                             cache=tmp_path / "cache", otio=False)
    plan = result.plan
    assert sorted(i for i, _, _ in backend.seen) == [s.index for s in plan.segments]
    for index, film, overlap in backend.seen:
        seg = plan.segments[index]
        assert film == range(seg.output_start_frame, seg.output_start_frame + seg.num_frames)
        assert overlap == seg.overlap
    with VideoReader(tmp_path / "film.mp4") as reader:
        greys = [float(f.mean()) for f in reader]
    assert len(greys) == plan.total_frames
    # every film frame shows the grey of its own number: the clips landed where their context said
    assert np.abs(np.array(greys) - 2 * np.arange(len(greys))).max() < 3.0
