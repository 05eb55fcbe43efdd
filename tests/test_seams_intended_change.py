"""An intended look change on a seam survives colour matching: the light turns copper over two
seconds starting at the seam (a backend that serves exactly that), and the film keeps it."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

import composer
from composer.backends.base import Backend, GenerateContext, GenerationResult
from composer.media import VideoReader, VideoWriter
from composer.metrics import mean_lab, mean_lab_delta_e
from composer.request import GenerationRequest

SEAM = 97  # film frame of segment 1's first generated frame (97-frame segments, overlap 17)
BOARD = """\
version: 1
title: copper
output: {resolution: 480p, aspect_ratio: "16:9", fps: 24}
defaults:
  seed: 1
  segment: {frames: 97, overlap: 17}
  colour: {method: auto}
scenes:
  - id: a
    duration: 170f
    prompt: a room, the light turning copper
"""


def source(film_frame: int, w: int, h: int) -> np.ndarray:
    """A textured panning picture; from the seam on its light turns copper over 48 frames."""
    rng = np.random.default_rng(2)
    small = rng.integers(50, 200, (h // 16, w // 16, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 3.0)
    img = np.roll(img, film_frame, axis=1).astype(np.float64)
    k = min(1.0, max(0.0, (film_frame - SEAM + 1) / 48))
    copper = np.array([1.20, 0.98, 0.78]), np.array([10.0, 0.0, -8.0])
    return np.clip(img * (1 + k * (copper[0] - 1)) + k * copper[1], 0, 255).astype(np.uint8)


class Copper(Backend):
    name = "copper-light"
    version = "1"

    def generate(self, request: GenerationRequest, workdir: Path, ctx: GenerateContext | None = None) -> GenerationResult:
        assert ctx is not None and ctx.film_range is not None
        w, h = self.output_size(request.resolution, request.aspect_ratio)
        out = Path(workdir) / f"copper{ctx.segment_index}.mp4"
        with VideoWriter(out, w, h, Fraction(request.frame_rate), crf=12) as writer:
            for f in ctx.film_range:
                writer.write(source(f, w, h))
        return GenerationResult(path=out, num_frames=request.num_frames)


def test_copper_light_turned_on_a_seam_is_not_undone(tmp_path: Path) -> None:
    result = composer.render(composer.loads(BOARD), tmp_path / "film.mp4", backend=Copper(),
                             cache=tmp_path / "cache", otio=False)
    assert [s.seam_frame for s in result.plan.segments][1:] == [SEAM]
    check = {SEAM - 1, SEAM + 20, SEAM + 40, SEAM + 60}
    with VideoReader(tmp_path / "film.mp4") as reader:
        film = {i: f for i, f in enumerate(reader) if i in check}
    w, h = film[SEAM - 1].shape[1], film[SEAM - 1].shape[0]
    change = mean_lab_delta_e(mean_lab(source(SEAM - 1, w, h)), mean_lab(source(SEAM + 60, w, h)))
    assert change > 5.0  # the look really changes
    for f in sorted(check):
        # the film shows the copper as served, not pulled back to the look before the seam
        assert mean_lab_delta_e(mean_lab(film[f]), mean_lab(source(f, w, h))) < 1.0, f  # measured ≤ 0.54
