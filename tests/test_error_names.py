"""Errors name what the user gave, never the run's scratch files: a backend whose clip is broken,
or that fails naming its own working file, is reported by segment and scene."""
from __future__ import annotations

from pathlib import Path

import pytest

import composer
from composer.backends.base import Backend, GenerateContext, GenerationResult
from composer.errors import ComposerError, MediaError
from composer.request import GenerationRequest

BOARD = """\
version: 1
title: broken backend
output: {resolution: 480p, aspect_ratio: "16:9", fps: 24}
defaults:
  seed: 1
  segment: {frames: 25, overlap: 9}
scenes:
  - id: harbour
    duration: 40f
    prompt: a harbour at dusk
"""


class Broken(Backend):
    """Writes text where a clip should be (``garbage``), or fails naming its working file."""

    name = "broken"
    version = "1"

    def __init__(self, how: str) -> None:
        self.how = how
        self.workdirs: list[str] = []

    def generate(self, request: GenerationRequest, workdir: Path, ctx: GenerateContext | None = None) -> GenerationResult:
        out = Path(workdir) / "clip.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("not a video")
        self.workdirs.append(str(workdir))
        if self.how == "raise":
            raise MediaError(f"could not read {out}: moov atom not found")
        return GenerationResult(path=out, num_frames=request.num_frames)


@pytest.mark.parametrize("how", ["garbage", "raise"])
def test_a_segment_failure_names_the_segment_not_a_scratch_path(tmp_path: Path, how: str) -> None:
    backend = Broken(how)
    with pytest.raises(ComposerError) as caught:
        composer.render(composer.loads(BOARD), tmp_path / "film.mp4", backend=backend, cache=tmp_path / "cache")
    text = " ".join([str(caught.value), *getattr(caught.value, "errors", [])])
    assert backend.workdirs, "the backend was never asked"
    assert all(w not in text for w in backend.workdirs)
    assert "run-" not in text and "/tmp" not in text.replace(str(tmp_path / "film.mp4"), "")
    assert "segment 0 (scene 'harbour')" in text
    assert not (tmp_path / "film.mp4").exists()
    # a clip that does not decode never enters the cache (a later render would stitch it)
    assert not list((tmp_path / "cache").glob("segments/*/*/video.mp4"))
