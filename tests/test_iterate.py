"""Partial and iterative work: --scene/--range, --draft, reroll/pin, watch, codecs,
the library API with events and cancellation, and the OTIO written beside a film."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import composer
from composer.media import probe
from composer.rendering import SegmentCache
from composer.events import AssemblyProgress, SegmentDone, SegmentQueued

BOARD = """\
version: 1
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 11
  segment: {frames: 25, overlap: 9}
scenes:
  # the opening
  - {id: a, duration: 3s, prompt: "first"}
  - {id: b, duration: 3s, prompt: "second", transition: continue}
  - {id: c, duration: 2s, prompt: "third"}
"""


@pytest.fixture
def cache(tmp_path: Path) -> SegmentCache:
    return SegmentCache(tmp_path / "cache")


def cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "composer", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_scene_render_writes_only_that_scene_and_needs_only_its_chain(write_board, tmp_path, cache):
    path = write_board(BOARD)
    result = composer.render(path, tmp_path / "c.mp4", cache=cache, scenes=["c"])
    p = result.plan
    c = next(s for s in p.scenes if s.id == "c")
    assert probe(tmp_path / "c.mp4").num_frames == c.end_frame - c.start_frame == 24
    assert set(result.outcomes) == {s.index for s in p.segments if s.scene == "c"}
    assert result.generated == len(result.outcomes)


def test_range_render_matches_the_full_film(write_board, tmp_path, cache):
    from composer.media import read_frames
    from composer.metrics import frame_delta_e

    path = write_board(BOARD)
    full = composer.render(path, tmp_path / "full.mp4", cache=cache)
    proc = cli("render", str(path), "-o", str(tmp_path / "part.mp4"), "--cache-dir", str(cache.root),
               "--range", "00:02-00:04.5", "--quiet")
    assert proc.returncode == 0, proc.stderr
    part = read_frames(tmp_path / "part.mp4")
    assert len(part) == 30  # 2 s .. 4.5 s at 12 fps
    whole = read_frames(tmp_path / "full.mp4")
    # the same frames, each encoded once more (a part starts a new GOP): only codec noise differs
    diffs = [frame_delta_e(a, b) for a, b in zip(part, whole[24:54])]
    assert np.mean(diffs) < 0.8 and max(diffs) < 2.5, diffs
    manifest = json.loads((tmp_path / "part.manifest.json").read_text())
    assert manifest["output"]["range"] == [24, 54]
    assert all(s["cache_hit"] for s in manifest["segments"])  # nothing new was needed
    assert full.plan.requests > len(manifest["segments"])


def test_draft_is_480p_with_fewer_steps_and_cached_apart(write_board, tmp_path, cache):
    path = write_board(BOARD.replace("480p", "720p"))
    draft = composer.render(path, tmp_path / "d.mp4", cache=cache, draft=True, scenes=["c"])
    info = probe(tmp_path / "d.mp4")
    assert (info.width, info.height) == (848, 480)
    req = draft.plan.segments[-1].request
    assert req["resolution"] == "480p" and req["first_pass_num_inference_steps"] < 8
    final = composer.render(path, tmp_path / "f.mp4", cache=cache, scenes=["c"])
    assert final.generated == len(final.outcomes)  # no draft entry reused for full quality
    assert {o.key for o in final.outcomes.values()}.isdisjoint({o.key for o in draft.outcomes.values()})


def test_reroll_pins_a_new_seed_preserving_comments_and_rerenders_the_rest_of_the_chain(write_board, tmp_path, cache):
    path = write_board(BOARD)
    before = composer.render(path, tmp_path / "a.mp4", cache=cache)
    chain0 = before.plan.chains[0].segments
    target = chain0[1]
    proc = cli("reroll", str(path), str(target), "--seed", "4242", "--yes", "--cache-dir", str(cache.root))
    assert proc.returncode == 0, proc.stderr
    assert f"{len(chain0) - 1} request(s)" in proc.stdout
    text = path.read_text()
    assert "# the opening" in text and "4242" in text
    board = composer.load(path)
    seg = composer.plan(board).segments[target]
    assert seg.seed == 4242
    after = composer.render(path, tmp_path / "b.mp4", cache=cache)
    regenerated = {i for i, o in after.outcomes.items() if o.status == "generated"}
    assert regenerated == {i for i in chain0 if i >= target}
    # pin keeps the current seed even if the storyboard's seed changes
    proc = cli("pin", str(path), "0")
    assert proc.returncode == 0, proc.stderr
    pinned = composer.plan(composer.load(path)).segments[0].seed
    changed = composer.loads(path.read_text().replace("seed: 11", "seed: 12"), name=str(path), base_dir=path.parent)
    plan2 = composer.plan(changed)
    assert plan2.segments[0].seed == pinned and plan2.segments[chain0[-1] + 1].seed != before.plan.segments[chain0[-1] + 1].seed


def test_watch_rerenders_on_save(write_board, tmp_path):
    path = write_board(BOARD)
    out = tmp_path / "w.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "composer", "watch", str(path), "-o", str(out), "--cache-dir",
                             str(tmp_path / "cache"), "--interval", "0.1", "--max-runs", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # the watcher's own "wrote" line is the event to edit on; a timer only guards against a hang
    guard = threading.Timer(240, proc.kill)
    guard.start()
    try:
        first = []
        for line in proc.stdout:
            first.append(line)
            if line.startswith("wrote "):
                break
        assert out.exists(), "".join(first)
        path.write_text(path.read_text().replace('"third"', '"third, at night"'))
        rest, stderr = proc.communicate()
    finally:
        guard.cancel()
    stdout = "".join(first) + rest
    assert proc.returncode == 0, stderr
    changes = [line for line in stdout.splitlines() if "change:" in line]
    assert len(changes) == 2
    in_c = [s.index for s in composer.plan(composer.load(path)).segments if s.scene == "c"]
    assert changes[1].split("change: ")[1].startswith(f"{len(in_c)} of"), changes[1]
    assert f"({', '.join(map(str, in_c))})" in changes[1]
    assert stdout.count("wrote ") == 2


@pytest.mark.parametrize("codec, suffix", [("prores", ".mov"), ("dnxhr", ".mov")])
def test_editing_codecs_keep_the_frame_exact_timeline(write_board, tmp_path, cache, codec, suffix):
    path = write_board(BOARD)
    out = tmp_path / f"film{suffix}"
    composer.render(path, out, cache=cache, codec=codec, scenes=["c"])
    info = probe(out)
    assert info.num_frames == 24
    assert info.codec in ("prores", "dnxhd")


def test_library_events_and_otio_beside_the_film(write_board, tmp_path, cache):
    import opentimelineio as otio

    path = write_board(BOARD)
    events = []
    result = composer.render(composer.plan(composer.load(path)), tmp_path / "f.mp4", cache=cache, on_event=events.append)
    kinds = {type(e).__name__ for e in events}
    assert {"RenderStarted", "SegmentQueued", "SegmentStarted", "SegmentDone", "AssemblyProgress", "RenderFinished"} <= kinds
    assert sum(isinstance(e, SegmentDone) for e in events) == result.plan.requests
    assert [e for e in events if isinstance(e, AssemblyProgress)][-1].frames_done == result.plan.total_frames
    timeline = otio.adapters.read_from_file(str(tmp_path / "f.otio"))
    clips = list(timeline.find_clips())
    assert [c.name for c in clips] == ["a", "b", "c"]
    assert clips[2].source_range.start_time.to_frames() == 72


def test_cancel_from_another_thread_keeps_finished_segments(write_board, tmp_path, cache):
    path = write_board(BOARD)
    cancel = threading.Event()
    done = []

    def on_event(e):
        if isinstance(e, SegmentDone):
            done.append(e.index)
            cancel.set()

    with pytest.raises(composer.Cancelled):
        composer.render(path, tmp_path / "f.mp4", cache=cache, on_event=on_event, cancel=cancel, jobs=1)
    assert not (tmp_path / "f.mp4").exists()
    assert 1 <= len(done) < composer.plan(composer.load(path)).requests
    again = composer.render(path, tmp_path / "f.mp4", cache=cache)
    assert again.cached >= len(done)


def test_per_chain_media_and_timeline(write_board, tmp_path, cache):
    import opentimelineio as otio

    board = BOARD.replace('transition: continue}', 'transition: continue}').replace(
        '{id: c, duration: 2s, prompt: "third"}', '{id: c, duration: 2s, prompt: "third", transition: {crossfade: 1s}}')
    path = write_board(board)
    result = composer.render(path, tmp_path / "f.mp4", cache=cache, per_chain=True)
    p = result.plan
    for chain in p.chains:
        media = tmp_path / f"f.chain{chain.index:02d}.mp4"
        assert probe(media).num_frames == chain.end_frame - chain.start_frame
    timeline = otio.adapters.read_from_file(str(tmp_path / "f.chains.otio"))
    transitions = [t for t in timeline.tracks[0] if isinstance(t, otio.schema.Transition)]
    assert len(transitions) == 1
    assert (transitions[0].in_offset + transitions[0].out_offset).to_frames() == p.chains[1].fade_in == 12
