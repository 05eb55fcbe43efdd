"""End-to-end renders with the preview backend, checked by decoding what was written."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from composer.media import fit_image, load_image, probe, read_frames
from composer.metrics import frame_delta_e
from composer.backends.preview import PreviewBackend
from composer.errors import RenderFailed
from composer.planner import plan
from composer.rendering import SegmentCache, render
from composer.storyboard import load

HEAD = """\
version: 1
title: test film
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 3
  segment: {frames: 33, overlap: 9}
"""


def board_text(scenes: str, extra: str = "") -> str:
    return HEAD + extra + "scenes:\n" + scenes


TWO_CHAINS = """\
  - id: one
    duration: 5s
    prompt: "a harbour at dawn"
    keyframes:
      - {at: 0s, image: images/a.png}
      - {at: 4s, image: images/b.png}
  - id: two
    duration: 3s
    prompt: "a city at night"
    transition: cut
    keyframes:
      - {at: 0s, image: images/b.png}
"""


@pytest.fixture
def cache(tmp_path: Path) -> SegmentCache:
    return SegmentCache(tmp_path / "cache")


def test_render_is_frame_exact(write_board, tmp_path, cache):
    path = write_board(board_text(TWO_CHAINS))
    out = tmp_path / "film.mp4"
    result = render(path, out, cache=cache)
    p = result.plan
    info = probe(out)
    assert info.num_frames == p.total_frames == 96
    assert (info.width, info.height) == (848, 480)
    assert float(info.fps) == 12
    assert result.generated == p.requests and result.cached == 0
    frames = read_frames(out)
    # each keyframe shows at its planned frame: the decoded frame is close to the fitted image
    board = load(path)
    for seg in p.segments:
        for c in seg.conditioning:
            if c.kind != "image":
                continue
            want = fit_image(load_image(board.resolve(c.source)), p.width, p.height, c.fit)
            here = frame_delta_e(frames[c.film_frame][:-40], want[:-40])  # bottom band holds the caption
            far = frame_delta_e(frames[(c.film_frame + 48) % len(frames)][:-40], want[:-40])
            assert here < 4.0, (c, here)
            assert far > here + 3.0, (c, here, far)
    # the cut at 5 s: the frame before shows chain 0, the frame after chain 1's first keyframe (b)
    b = fit_image(load_image(board.resolve("images/b.png")), p.width, p.height, "cover")
    assert frame_delta_e(frames[60][:-40], b[:-40]) < 4.0
    manifest = json.loads(result.manifest.read_text())
    assert manifest["output"]["frames"] == 96
    assert [s["cache_hit"] for s in manifest["segments"]] == [False] * p.requests


def test_rerender_hits_cache_and_edit_rerenders_only_affected(write_board, tmp_path, cache):
    path = write_board(board_text(TWO_CHAINS))
    first = render(path, tmp_path / "a.mp4", cache=cache)
    again = render(path, tmp_path / "b.mp4", cache=cache)
    assert again.generated == 0 and again.cached == first.plan.requests
    assert read_frames(tmp_path / "a.mp4")[50].tobytes() == read_frames(tmp_path / "b.mp4")[50].tobytes()
    # edit the second scene's prompt: only its chain's segments are rendered again
    edited = write_board(board_text(TWO_CHAINS.replace("a city at night", "a city in the rain")), "edited.yaml")
    third = render(edited, tmp_path / "c.mp4", cache=cache)
    changed = {s.index for s in third.plan.segments if s.scene == "two"}
    assert {i for i, o in third.outcomes.items() if o.status == "generated"} == changed
    assert all(third.outcomes[s.index].status == "cached" for s in third.plan.segments if s.scene == "one")


def test_editing_middle_segment_rerenders_it_and_the_rest_of_its_chain(write_board, tmp_path, cache):
    scenes = """\
  - {id: a, duration: 3s, prompt: "first"}
  - {id: b, duration: 3s, prompt: "second", transition: continue}
  - {id: c, duration: 3s, prompt: "third", transition: continue}
"""
    path = write_board(board_text(scenes))
    before = render(path, tmp_path / "a.mp4", cache=cache)
    edited = write_board(board_text(scenes.replace('"second"', '"second, in fog"')), "e.yaml")
    after = render(edited, tmp_path / "b.mp4", cache=cache)
    first_b = min(s.index for s in after.plan.segments if s.scene == "b")
    for s in after.plan.segments:
        assert after.outcomes[s.index].status == ("generated" if s.index >= first_b else "cached"), s.index
    assert before.plan.requests == after.plan.requests


def test_corrupt_cache_entry_is_regenerated(write_board, tmp_path, cache):
    path = write_board(board_text(TWO_CHAINS))
    render(path, tmp_path / "a.mp4", cache=cache)
    entry = next(cache.entries())
    data = entry.video.read_bytes()
    entry.video.write_bytes(data[: len(data) // 2])  # truncated
    result = render(path, tmp_path / "b.mp4", cache=cache)
    assert result.generated == 1
    assert probe(tmp_path / "b.mp4").num_frames == result.plan.total_frames


def test_colour_matching_reduces_seam_jump(write_board, tmp_path, cache):
    scenes = """\
  - id: long
    duration: 8s
    prompt: "slow pan over a harbour"
    keyframes:
      - {at: 0s, image: images/a.png}
"""
    jumps = {}
    for method in ("none", "auto"):
        path = write_board(board_text(scenes, extra=f"  colour: {{method: {method}}}\n"), f"{method}.yaml")
        result = render(path, tmp_path / f"{method}.mp4", cache=cache, backend_options={"drift": 1.0})
        manifest = json.loads(result.manifest.read_text())
        jumps[method] = [s["seam"]["delta_e"] for s in manifest["segments"] if s["seam"]]
    assert len(jumps["none"]) >= 2
    assert np.mean(jumps["auto"]) < 0.6 * np.mean(jumps["none"]), jumps


def test_crossfade_blends_both_chains(write_board, tmp_path, cache):
    scenes = """\
  - id: a
    duration: 3s
    prompt: "first"
    keyframes: [{at: 0s, image: images/a.png}]
  - id: b
    duration: 3s
    prompt: "second"
    transition: {crossfade: 1s}
    keyframes: [{at: 0s, image: images/b.png}]
"""
    path = write_board(board_text(scenes))
    result = render(path, tmp_path / "x.mp4", cache=cache)
    p = result.plan
    assert p.total_frames == 72 and p.chains[1].fade_in == 12
    frames = read_frames(tmp_path / "x.mp4")
    chain_a = read_frames(result.outcomes[p.chains[0].segments[-1]].video)
    seg_b = p.segments[p.chains[1].segments[0]]
    chain_b = read_frames(result.outcomes[seg_b.index].video)
    # mid-dissolve (film frame 36 is halfway through 30..41): close to the average of the two chains
    a_last = p.segments[p.chains[0].segments[-1]]
    fa = chain_a[36 - a_last.output_start_frame].astype(np.float32)
    fb = chain_b[36 - seg_b.output_start_frame].astype(np.float32)
    mix = (fa * (1 - 6.5 / 12) + fb * 6.5 / 12).astype(np.uint8)
    assert frame_delta_e(frames[36], mix) < frame_delta_e(frames[36], fa.astype(np.uint8))
    assert frame_delta_e(frames[36], mix) < frame_delta_e(frames[36], fb.astype(np.uint8))
    assert frame_delta_e(frames[36], mix) < 3.0


def test_audio_is_muxed_to_the_film_length(write_board, tmp_path, cache):
    path = write_board(board_text("  - {id: a, duration: 4s, prompt: x}\n", extra=""))
    path.write_text(path.read_text().replace("defaults:", "audio: {file: audio/tone.wav, fade_out: 1s}\ndefaults:", 1))
    out = tmp_path / "a.mp4"
    render(path, out, cache=cache)
    info = probe(out)
    assert info.has_audio
    assert abs(info.duration - 4.0) < 0.1  # the 3 s tone is padded to the film


def test_interrupted_assembly_leaves_no_output(write_board, tmp_path, cache):
    import threading

    from composer.errors import Cancelled
    from composer.events import AssemblyProgress, SegmentDone

    path = write_board(board_text(TWO_CHAINS))
    cancel = threading.Event()
    out = tmp_path / "film.mp4"

    landed = set()

    def on_event(e):
        if isinstance(e, SegmentDone):
            landed.add(e.index)
        if isinstance(e, AssemblyProgress) and e.frames_done >= 24:
            cancel.set()

    with pytest.raises(Cancelled):
        render(path, out, cache=cache, on_event=on_event, cancel=cancel)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".film")] == []
    # assembly runs while segments land, so cancelling it stops the schedule too; what landed
    # was kept: a second render generates only the rest
    again = render(path, out, cache=cache)
    assert again.generated == len(again.plan.segments) - len(landed)
    assert probe(out).num_frames == 96


def test_sigkill_mid_render_resumes_without_regenerating(write_board, tmp_path):
    scenes = "".join(f"  - {{id: s{i}, duration: 4s, prompt: 'shot {i}'}}\n" for i in range(4))
    path = write_board(board_text(scenes))
    cache_dir = tmp_path / "cache"
    env = {**os.environ, "COMPOSER_PREVIEW_DELAY": "0.6"}
    cmd = [sys.executable, "-m", "composer", "render", str(path), "-o", str(tmp_path / "f.mp4"),
           "--cache-dir", str(cache_dir), "--jobs", "1", "--quiet"]
    # the killed run reports each finished segment on stdout (its on_event), so the kill follows the
    # second SegmentDone rather than a polling loop; a timer only guards against a hang
    child = ("import sys; from composer import render; from composer.events import SegmentDone; "
             "render(sys.argv[1], sys.argv[2], cache=sys.argv[3], jobs=1, otio=False, on_event=lambda e: "
             "isinstance(e, SegmentDone) and print('done', flush=True))")
    proc = subprocess.Popen([sys.executable, "-c", child, str(path), str(tmp_path / "f.mp4"), str(cache_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(120, proc.kill)
    guard.start()
    try:
        done = 0
        for line in proc.stdout:
            done += line.strip() == "done"
            if done == 2:
                break
        assert done == 2, proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        guard.cancel()
        proc.stdout.close()
        proc.stderr.close()
    done_before = {p.parent.name for p in cache_dir.glob("segments/*/*/meta.json")}
    total = plan(load(path)).requests
    assert 2 <= len(done_before) < total
    assert not (tmp_path / "f.mp4").exists()
    result = subprocess.run(cmd, env={**os.environ}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "f.manifest.json").read_text())
    hits = {s["cache_key"] for s in manifest["segments"] if s["cache_hit"]}
    assert hits == done_before
    assert probe(tmp_path / "f.mp4").num_frames == 192


def test_overlap_longer_than_new_frames_still_matches_colour(write_board, tmp_path, cache):
    # 17-frame segments carrying 9 frames show only 8 of their own: the next seam's
    # reference then includes a frame of the segment's own (re-generated) head
    board = (HEAD.replace("{frames: 33, overlap: 9}", "{frames: 17, overlap: 9}")
             + "scenes:\n  - {id: a, duration: 4s, prompt: x}\n")
    path = write_board(board)
    result = render(path, tmp_path / "f.mp4", cache=cache, backend_options={"drift": 1.0})
    assert result.plan.requests >= 4
    assert probe(tmp_path / "f.mp4").num_frames == 48
    manifest = json.loads(result.manifest.read_text())
    assert all(s["colour"] is not None for s in manifest["segments"])


class _ReportingPreview(PreviewBackend):
    """The preview backend, reporting ``report(frames it wrote)`` as the verified frame count."""

    def __init__(self, report):
        super().__init__()
        self.report = report

    def generate(self, request, workdir, ctx=None):
        result = super().generate(request, workdir, ctx)
        return dataclasses.replace(result, num_frames=self.report(result.num_frames))


def _probed_outputs(monkeypatch) -> list[Path]:
    """Backend outputs (``seg*/preview-*.mp4``) that ``composer.media.probe`` is asked about."""
    import composer.media

    seen: list[Path] = []
    real = composer.media.probe

    def spy(path, *a, **kw):
        p = Path(path)
        if p.name.startswith("preview-") and p.parent.name.startswith("seg"):
            seen.append(p)
        return real(path, *a, **kw)

    monkeypatch.setattr(composer.media, "probe", spy)
    # the spy only sees calls made through the attribute composer.media.probe: fail loudly if the
    # scheduler stops looking it up there (a module-level or moved import would bypass the spy and
    # let "no probe happened" pass silently)
    import inspect

    import composer.rendering.scheduler as scheduler

    assert "probe" not in vars(scheduler), "scheduler binds probe at import: the spy would not see it"
    assert "from ..media import probe" in inspect.getsource(scheduler), "scheduler no longer imports media.probe"
    return seen


ONE_CHAIN = """\
  - {id: a, duration: 3s, prompt: "first"}
  - {id: b, duration: 2s, prompt: "second", transition: continue}
"""


def test_scheduler_trusts_the_backends_verified_frame_count(write_board, tmp_path, cache, monkeypatch):
    """The backend already checked its clip (GenerationResult.num_frames): no second probe."""
    probed = _probed_outputs(monkeypatch)
    result = render(write_board(board_text(ONE_CHAIN)), tmp_path / "a.mp4", cache=cache,
                    backend=_ReportingPreview(lambda n: n))
    assert result.generated == result.plan.requests >= 2 and probed == []


def test_scheduler_probes_when_the_backend_did_not_verify(write_board, tmp_path, cache, monkeypatch):
    probed = _probed_outputs(monkeypatch)
    result = render(write_board(board_text(ONE_CHAIN)), tmp_path / "a.mp4", cache=cache,
                    backend=_ReportingPreview(lambda n: None))
    assert len(probed) == len(set(probed)) == result.plan.requests


def test_wrong_verified_frame_count_fails_the_segment(write_board, tmp_path, cache):
    with pytest.raises(RenderFailed) as info:
        render(write_board(board_text(ONE_CHAIN)), tmp_path / "a.mp4", cache=cache,
               backend=_ReportingPreview(lambda n: n - 1))
    assert "backend returned 32 frames, expected 33" in info.value.failures[0]  # segments are 33 frames
    assert not list(cache.entries())  # nothing kept


def test_tail_clip_is_quick_to_encode_and_faithful(write_board, tmp_path, cache, monkeypatch):
    """The conditioning tail is on every dependent segment's critical path: encoded with x264's
    quickest preset, and still within a level or so of the frames it was made from."""
    import composer.media

    written: list[tuple] = []
    real = composer.media.write_clip

    def spy(frames, path, fps, **kw):
        frames = list(frames)
        n = real(frames, path, fps, **kw)
        written.append((frames, Path(path), kw, read_frames(path, pix_fmt=kw.get("pix_fmt", "rgb24"))))
        return n

    monkeypatch.setattr(composer.media, "write_clip", spy)
    render(write_board(board_text(ONE_CHAIN)), tmp_path / "a.mp4", cache=cache)
    assert written
    for frames, _path, kw, back in written:
        assert kw.get("preset") == "ultrafast" and kw.get("crf", 12) <= 12
        assert len(back) == len(frames) == 9
        assert max(np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(frames, back)) < 1.5
