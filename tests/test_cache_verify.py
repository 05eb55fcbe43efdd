"""A corrupt cache entry is never stitched: a re-render finds the damage (the entry's hash
no longer matches), discards it and makes that segment again; the film is the clean one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from composer.backends.base import GenerateContext, GenerationResult
from composer.backends.preview import PreviewBackend
from composer.media import read_frames
from composer.rendering import SegmentCache, render

BOARD = """\
version: 1
title: verify
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 9
  segment: {frames: 33, overlap: 9}
scenes:
  - id: one
    duration: 6s
    prompt: "a lighthouse in fog"
"""


class CountingPreview(PreviewBackend):
    def __init__(self) -> None:
        super().__init__(drift=1.0)
        self.made: list[int] = []

    def generate(self, request, workdir: Path, ctx: GenerateContext | None = None) -> GenerationResult:
        self.made.append(ctx.segment_index if ctx is not None else -1)
        return super().generate(request, workdir, ctx)


def test_a_corrupt_entry_is_made_again_not_stitched(write_board, tmp_path):
    path = write_board(BOARD)
    cache = SegmentCache(tmp_path / "cache")
    first = render(path, tmp_path / "a.mp4", cache=cache, backend=CountingPreview(), review=False, otio=False)
    assert first.generated == len(first.plan.segments) >= 3
    victim = first.outcomes[1]
    meta = json.loads((victim.video.parent / "meta.json").read_text())
    data = bytearray(victim.video.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0x5A for b in data[mid:mid + 64])  # same size: only the hash can tell
    victim.video.write_bytes(bytes(data))
    assert victim.video.stat().st_size == meta["size"]

    again = CountingPreview()
    second = render(path, tmp_path / "b.mp4", cache=cache, backend=again, review=False, otio=False)
    assert again.made == [1]  # the damaged segment, and nothing else, was made again
    assert second.outcomes[1].status == "generated"
    a, b = read_frames(tmp_path / "a.mp4", pix_fmt="yuv420p"), read_frames(tmp_path / "b.mp4", pix_fmt="yuv420p")
    assert len(a) == len(b) == first.plan.total_frames
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert cache.lookup(first.outcomes[1].key) is not None  # the entry is whole again
