"""Assembly as segments land: the encoder starts before the last segment lands, the film is
the same as one assembled after the fact, and a failed schedule leaves no film behind."""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from composer.assemble import assemble
from composer.backends.base import GenerateContext, GenerationResult
from composer.backends.preview import PreviewBackend
from composer.errors import BackendError, RenderFailed
from composer.events import AssemblyProgress, SegmentDone
from composer.media import read_frames
from composer.pieces import PieceStore
from composer.rendering import SegmentCache, render
from composer.rendering.landing import LandedVideos, SegmentUnavailable
from composer.storyboard import load

BOARD = """\
version: 1
title: streaming
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 5
  segment: {frames: 33, overlap: 9}
  colour: {method: auto}
scenes:
  - id: one
    duration: 8s
    prompt: "a harbour at dawn"
"""


class SlowPreview(PreviewBackend):
    """The preview backend, taking ``delay`` seconds more per segment (a slow endpoint);
    ``fail_at`` makes that segment fail like a rejected request."""

    def __init__(self, delay: float, fail_at: int | None = None, **kw):
        super().__init__(drift=1.0, **kw)
        self.delay, self.fail_at = delay, fail_at

    def generate(self, request, workdir: Path, ctx: GenerateContext | None = None) -> GenerationResult:
        if ctx is not None and ctx.segment_index == self.fail_at:
            raise BackendError(f"{ctx.label}: the endpoint refused it")
        time.sleep(self.delay)
        return super().generate(request, workdir, ctx)


def _timed_events():
    log: list[tuple[float, object]] = []
    lock = threading.Lock()

    def on_event(e):
        with lock:
            log.append((time.monotonic(), e))

    return log, on_event


def _encoder_nice(film: str) -> list[int]:
    """The nice values of this process's ffmpeg children encoding a file named like ``film`` (Linux /proc;
    the film's pieces are encoded as ``run000-%04d.mp4``); the backend's own encoders and the
    scheduler's decoders are not the assembler's."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            args = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        rest = text[text.rindex(")") + 2:].split()
        names = [os.path.basename(a.decode(errors="replace")) for a in args[-2:]]
        if int(rest[1]) == os.getpid() and b"rawvideo" in args and any(film in n for n in names):
            found.append(int(rest[16]))  # field 19 of proc(5)'s stat: nice
    return found


def _priority_log(film: str):
    """An event handler noting, at each assembly progress, the assembling thread's nice value and its
    encoder's, and what it noted."""
    seen: list[tuple[int, list[int]]] = []

    def on_event(e):
        if isinstance(e, AssemblyProgress):
            seen.append((os.getpriority(os.PRIO_PROCESS, threading.get_native_id()), _encoder_nice(film)))

    return seen, on_event


def test_encoder_starts_before_the_last_segment_lands_and_the_film_is_unchanged(write_board, tmp_path):
    path = write_board(BOARD)
    cache = SegmentCache(tmp_path / "cache")
    log, timed = _timed_events()
    priorities, noted = _priority_log("run000-")

    def on_event(e):
        timed(e)
        noted(e)
    out = tmp_path / "film.mp4"
    result = render(path, out, cache=cache, backend=SlowPreview(delay=1.0), jobs=1, on_event=on_event,
                    review=False, otio=False)
    assert result.generated == len(result.plan.segments) >= 4
    done = [t for t, e in log if isinstance(e, SegmentDone)]
    encoding = [t for t, e in log if isinstance(e, AssemblyProgress)]
    assert len(done) == len(result.plan.segments)
    assert encoding and encoding[0] < max(done), "the encoder only started after the last segment landed"
    # frames were encoded between two segments landing, not all at the end
    assert sum(1 for t in encoding if t < max(done)) >= 2
    assert result.assembly["streamed"] is True

    # the same segments assembled after the fact, from the cache, give the same film (its encoded
    # pieces made again elsewhere, not taken from the render's)
    board = load(path)
    videos = {i: o.video for i, o in result.outcomes.items()}
    again = tmp_path / "after.mp4"
    report = assemble(result.plan, videos, again, board=board, keep_samples=True,
                      pieces=PieceStore(tmp_path / "other-pieces"))
    assert report["pieces"]["taken"] == 0 and report["pieces"]["made"] == result.assembly["pieces"]["made"] > 1
    streamed, after = read_frames(out, pix_fmt="yuv420p"), read_frames(again, pix_fmt="yuv420p")
    assert len(streamed) == len(after) == result.plan.total_frames
    assert all(np.array_equal(a, b) for a, b in zip(streamed, after))

    if sys.platform.startswith("linux"):
        # while segments were generating, the assembler and its encoder yielded the CPU to the chain's
        # critical path; a re-render with every segment cached has nothing to yield to and runs at full speed
        base = os.getpriority(os.PRIO_PROCESS, 0)
        assert priorities and all(own == min(19, base + 10) for own, _ in priorities)
        assert any(kids for _, kids in priorities) and all(n == min(19, base + 10) for _, k in priorities for n in k)
        cached_priorities, noted_again = _priority_log("run000-")
        shutil.rmtree(cache.root / "pieces")  # the film is encoded again, not taken from its pieces
        render(path, tmp_path / "again.mp4", cache=cache, backend=SlowPreview(delay=1.0), jobs=1,
               on_event=noted_again, review=False, otio=False)
        assert cached_priorities and all(own == base for own, _ in cached_priorities)
        assert all(n == base for _, kids in cached_priorities for n in kids)


def test_a_failed_segment_fails_the_render_and_leaves_no_film(write_board, tmp_path):
    path = write_board(BOARD)
    cache = SegmentCache(tmp_path / "cache")
    out = tmp_path / "film.mp4"
    log, on_event = _timed_events()
    with pytest.raises(RenderFailed) as info:
        render(path, out, cache=cache, backend=SlowPreview(delay=0.2, fail_at=2), jobs=1, on_event=on_event,
               review=False)
    assert "the endpoint refused it" in str(info.value)
    assert "2 of " in str(info.value)  # segments 0 and 1 are safe in the cache
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith((".film", "film"))] == []
    # the assembler had started on the segments that landed before the failure
    assert any(isinstance(e, AssemblyProgress) for _, e in log)


def test_landed_videos_wait_fail_and_close(tmp_path):
    landing = LandedVideos([0, 1, 2])
    got: dict[str, object] = {}

    def read() -> None:
        got["video"] = landing[1]

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(0.3)
    assert reader.is_alive()  # waiting: segment 1 has not landed
    landing.landed(1, tmp_path / "one.mp4")
    reader.join(5)
    assert got["video"] == tmp_path / "one.mp4"
    landing.failed(2, "rejected")
    with pytest.raises(SegmentUnavailable, match="rejected"):
        landing[2]
    landing.close("stopped")
    with pytest.raises(SegmentUnavailable, match="stopped"):
        landing[0]
    assert list(landing) == [0, 1, 2] and len(landing) == 3


def test_encoder_feed_holds_frames_ahead_within_its_memory_budget():
    from composer.assemble import FEED_BYTES, feed_depth

    # enough frames at 480p to ride over a seam's colour estimate (~0.4 s at ~50 fps) ...
    assert feed_depth(848, 480) >= 48
    # ... within the budget at every size, never fewer than 8 (4K frames: 8 x 12 MB)
    for w, h in [(848, 480), (1280, 720), (1920, 1080)]:
        assert feed_depth(w, h) >= 8 and feed_depth(w, h) * w * h * 3 // 2 <= FEED_BYTES
    assert feed_depth(3840, 2160) == 8 and feed_depth(16, 16) == 128
