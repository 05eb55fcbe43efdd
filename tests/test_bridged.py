"""Bridged rendering: anchors pinned by a skeleton, bridges conditioned on both neighbours.

The planner keeps the sequential film layout and changes only parents and conditioning;
the scheduler runs the DAG; the preview and the emulator put a conditioning video's frames
in place at any start frame; a fal render pays exactly the plan's requests, once each,
even across a SIGKILL.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from composer.media import load_image, probe, read_frames
from composer.planner import descendants, frame_range_segments, plan, with_mode
from composer.rendering import SegmentCache, render
from composer.storyboard import load

ROOT = Path(__file__).resolve().parents[1]
BOOT = (
    "import sys; from composer.backends.fal import FalBackend; "
    "FalBackend.__init__.__kwdefaults__.update(poll_interval=0.03, base_delay=0.02, max_delay=0.2); "
    "from composer.cli import main; main(prog_name='composer')"
)

# One chain of four segments (25 + 3 x 24 new frames = 97 frames): anchor, bridge, anchor, bridge.
FOUR = """\
version: 1
title: bridged film
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 3
  segment: {frames: 33, overlap: 9}
  render: {mode: bridged}
scenes:
  - id: harbour
    duration: 97f
    prompt: "a harbour at dawn"
    keyframes:
      - {at: 0s, image: images/a.png}
"""
# Three requests of 17 frames and a skeleton: the smallest bridged chain (for request counting).
SMALL = """\
version: 1
title: small bridged film
output: {resolution: 720p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 3
  segment: {frames: 17, overlap: 9}
  render: {mode: bridged}
scenes:
  - id: harbour
    duration: 33f
    prompt: "a harbour at dawn"
"""


def _long_chain(seconds: int, fps: int = 24) -> str:
    return f"""\
version: 1
output: {{resolution: 480p, aspect_ratio: 16:9, fps: {fps}}}
defaults: {{render: {{mode: bridged}}}}
scenes:
  - {{id: shot, duration: {seconds}s, prompt: "one long continuous shot"}}
"""


# --------------------------------------------------------------------------- the planner (pure)


def _layout(p):
    return [(s.index, s.chain, s.scene, s.output_start_frame, s.num_frames, s.overlap, s.seam_frame, s.shown_start,
             s.shown_end, s.depends_on, s.seed, s.prompt) for s in p.segments if s.role != "skeleton"]


@pytest.mark.parametrize("name", ["harbour", "quickstart", "vertical"])
def test_bridged_layout_is_the_sequential_layout(name):
    board = load(ROOT / "storyboards" / f"{name}.yaml")
    seq, bri = plan(with_mode(board, "sequential")), plan(with_mode(board, "bridged"))
    assert (seq.mode, bri.mode) == ("sequential", "bridged")
    assert _layout(bri) == _layout(seq)
    assert [c.segments for c in bri.chains] == [c.segments for c in seq.chains]
    assert bri.snaps == seq.snaps or [s.used_frame for s in bri.snaps] == [s.used_frame for s in seq.snaps]
    # every keyframe lands on the same film frame in both modes
    kf = lambda p: sorted((c.scene, c.keyframe, c.film_frame) for s in p.segments for c in s.conditioning
                          if c.kind == "image" and c.scene is not None)
    assert kf(bri) == kf(seq)
    skeletons = [s for s in bri.segments if s.role == "skeleton"]
    assert bri.requests == len(bri.segments) <= 1.1 * seq.requests + len(skeletons)
    assert all(s.shown_start == s.shown_end for s in skeletons)
    assert all(i not in c.segments for c in bri.chains for i in (s.index for s in skeletons))


def test_bridges_are_conditioned_at_both_ends_on_the_8_frame_grid(write_board):
    p = plan(load(write_board(FOUR)))
    roles = [s.role for s in p.segments]
    assert roles == ["anchor", "bridge", "anchor", "bridge", "skeleton"]
    a0, b1, a2, b3, sk = p.segments
    assert (a0.parents, b1.parents, a2.parents, b3.parents, sk.parents) == ([], [0, 2], [4], [2], [])
    assert [s.depends_on for s in p.segments] == [None, 0, 1, 2, None]
    v = [c for c in b1.conditioning if c.kind == "video"]
    assert [(c.source, c.start_frame, c.num_frames) for c in v] == [("tail:0", 0, 9), ("head:2", 24, 9)]
    assert b1.request["videos"][1]["start_frame_num"] == b1.num_frames - b1.overlap == 24
    assert all(item["start_frame_num"] % 8 == 0 for s in p.segments for item in s.request["videos"] + s.request["images"])
    # the chain's last segment is a bridge: only its predecessor's tail
    assert [(c.source, c.start_frame) for c in b3.conditioning if c.kind == "video"] == [("tail:2", 0)]
    # anchors carry no video: the first is pinned by its keyframe, the other by a skeleton frame
    assert a0.request["videos"] == [] and a2.request["videos"] == []
    assert [c.source for c in a0.conditioning] == ["images/a.png"]
    (frame,) = a2.conditioning
    assert frame.source == f"skeleton:4@{a2.output_start_frame}" and frame.start_frame == 0
    # the bridge's tail and the next anchor's head are the same film frames
    assert b1.output_start_frame + b1.num_frames - b1.overlap == a2.output_start_frame
    # the skeleton: one cheap request at 480p covering the chain, with its keyframe
    assert (sk.request["resolution"], sk.request["enable_detail_pass"], sk.request["frame_rate"]) == ("480p", False, 12)
    assert sk.num_frames >= p.total_frames and (sk.num_frames - 1) % 8 == 0
    assert [c.source for c in sk.conditioning] == ["images/a.png"]
    assert p.critical_path == 3


def test_a_long_chain_has_a_critical_path_of_three(write_board):
    seq = plan(with_mode(load(write_board(_long_chain(60))), "sequential"))
    p = plan(load(write_board(_long_chain(60))))
    skeletons = [s for s in p.segments if s.role == "skeleton"]
    assert len(skeletons) == 1 and skeletons[0].request["frame_rate"] == 24
    assert seq.critical_path == seq.requests > 10
    assert p.critical_path == 3 and p.requests == seq.requests + 1
    # five minutes do not fit one skeleton request even at a lower rate: several, each independent
    five = plan(load(write_board(_long_chain(300))))
    skeletons = [s for s in five.segments if s.role == "skeleton"]
    assert len(skeletons) == 2 and all(s.parents == [] for s in skeletons)
    assert all(s.request["frame_rate"] == 8 and s.num_frames <= 1441 for s in skeletons)
    assert five.critical_path == 3
    assert five.requests <= 1.1 * plan(with_mode(load(write_board(_long_chain(300))), "sequential")).requests + 2
    # every anchor that needs a skeleton frame names one inside its skeleton
    for s in five.segments:
        for c in s.conditioning:
            if c.source.startswith("skeleton:"):
                index, frame = map(int, c.source.split(":")[1].split("@"))
                assert s.parents == [index] and 0 <= frame < five.segments[index].num_frames


def test_partial_and_reroll_sets_follow_parents(write_board):
    p = plan(load(write_board(FOUR)))
    # film frames inside the first bridge need the anchors on both sides and the skeleton
    assert frame_range_segments(p, 30, 40) == {0, 1, 2, 4}
    # a new take of the second anchor re-renders it and both bridges next to it, not the first anchor
    assert descendants(p, 2) == [1, 2, 3]
    assert descendants(p, 4) == [1, 2, 3, 4]


def test_plan_command_shows_both_modes(tmp_path, write_board):
    board = write_board(FOUR)
    r = subprocess.run([sys.executable, "-m", "composer", "plan", str(board)], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "COMPOSER_CACHE_DIR": str(tmp_path / "c")})
    assert r.returncode == 0, r.stderr
    assert "this plan: bridged: 5 requests (1 skeleton), $0.20, critical path 3 requests" in r.stdout
    assert "other mode: sequential: 4 requests, $0.16, critical path 4 requests" in r.stdout
    assert "tail#0x9, head#2x9" in r.stdout
    seq = subprocess.run([sys.executable, "-m", "composer", "plan", str(board), "--mode", "sequential", "--json"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "COMPOSER_CACHE_DIR": str(tmp_path / "c")})
    data = json.loads(seq.stdout)
    assert data["mode"] == "sequential" and data["requests"] == 4 and data["critical_path"] == 4


# --------------------------------------------------------------------------- rendering with the preview


def _frames(path: Path, start: int, count: int) -> np.ndarray:
    return np.stack(read_frames(path, start=start, count=count)).astype(np.int16)


def test_bridged_preview_render_is_frame_exact(tmp_path, write_board):
    board = write_board(FOUR)
    p = plan(load(board))
    out = tmp_path / "film.mp4"
    r = render(board, out, cache=tmp_path / "cache", review=False, jobs=2)
    assert r.generated == p.requests == 5 and probe(out).num_frames == p.total_frames == 97
    v = {i: o.video for i, o in r.outcomes.items()}
    ov = p.segments[1].overlap
    for bridge, before, after in ((1, 0, 2),):
        b = p.segments[bridge]
        tail = _frames(v[bridge], b.num_frames - ov, ov)  # videos[1] went in place at num_frames - overlap
        head = _frames(v[after], 0, ov)
        match = [int(np.argmin([np.abs(t - h).mean() for h in head])) for t in tail]
        assert match == list(range(ov))  # frame for frame, not shifted
        assert np.abs(tail - head).mean() < 3.0  # the same pixels, through two encodes
        other = _frames(v[bridge], b.num_frames // 2, 1)[0]
        assert np.abs(other - head[0]).mean() > 4 * np.abs(tail - head).mean()  # and not just a still picture
        front = _frames(v[bridge], 0, ov)
        assert np.abs(front - _frames(v[before], p.segments[before].num_frames - ov, ov)).mean() < 3.0
    # the skeleton conditions the second anchor: its first frame is the skeleton's frame there, fitted
    sk = p.segments[4]
    frame = int(p.segments[2].conditioning[0].source.split("@")[1])
    assert np.abs(_frames(v[2], 0, 1)[0] - _frames(v[sk.index], frame, 1)[0]).mean() < 3.0
    # both seams of the bridge are measured, and the skeleton is never stitched
    seams = {s["segment"] for s in r.assembly["seams"]}
    assert seams == {1, 2, 3}
    film = _frames(out, 0, p.total_frames)
    assert film.shape[0] == 97
    manifest = json.loads((tmp_path / "film.manifest.json").read_text())
    assert manifest["requests_made"] == 5 and {s["index"] for s in manifest["segments"]} == {0, 1, 2, 3, 4}
    import opentimelineio as otio  # the editor's timeline: the film's frames, the skeleton nowhere

    timeline = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    assert timeline.duration().to_frames() == p.total_frames
    markers = [m for clip in timeline.tracks[0] for m in getattr(clip, "markers", [])]
    assert [m.metadata["composer"].get("segment") for m in markers if m.metadata["composer"]["kind"] == "keyframe"] == [0]

    # cached: a second render makes nothing; a new take of the second anchor re-renders it and the
    # bridges on either side (both have it as a parent), not the first anchor or the skeleton
    again = render(board, tmp_path / "again.mp4", cache=tmp_path / "cache", review=False)
    assert again.generated == 0 and again.cached == 5
    board = write_board(FOUR.replace('prompt: "a harbour at dawn"', 'prompt: "a harbour at dawn"\n    seeds: {2: 99}'))
    changed = render(board, tmp_path / "changed.mp4", cache=tmp_path / "cache", review=False)
    assert {i for i, o in changed.outcomes.items() if o.status == "generated"} == {1, 2, 3}


def test_a_skeleton_is_decoded_once_for_all_its_anchors(tmp_path, write_board, monkeypatch):
    import composer.media as media
    import composer.media.reader

    board = write_board(FOUR.replace("duration: 97f", "duration: 177f"))  # 7 segments: anchors 0, 2, 4, 6
    p = plan(load(board))
    (sk,) = [s for s in p.segments if s.role == "skeleton"]
    pinned = {s.index: int(c.source.split("@")[1]) for s in p.segments for c in s.conditioning
              if c.source.startswith("skeleton:")}
    assert sorted(pinned) == [2, 4, 6]
    opened: list[Path] = []
    real = media.VideoReader

    class Counting(real):  # the real reader, counted
        def __init__(self, path, *args, **kwargs):
            opened.append(Path(path))
            super().__init__(path, *args, **kwargs)

    monkeypatch.setattr(media, "VideoReader", Counting)
    monkeypatch.setattr(media.reader, "VideoReader", Counting)  # read_frames' own
    r = render(board, tmp_path / "film.mp4", cache=tmp_path / "cache", review=False, jobs=4)
    skeleton = r.outcomes[sk.index].video
    assert r.generated == p.requests and opened.count(skeleton) == 1
    for anchor, frame in pinned.items():  # and each anchor still starts on its own skeleton frame
        first = _frames(r.outcomes[anchor].video, 0, 1)[0]
        assert np.abs(first - _frames(skeleton, frame, 1)[0]).mean() < 3.0
        others = [f for a, f in pinned.items() if a != anchor]
        assert all(np.abs(first - _frames(skeleton, f, 1)[0]).mean() > 3.0 for f in others)


def test_partial_bridged_render_generates_only_what_it_needs(tmp_path, write_board):
    board = write_board(FOUR)
    p = plan(load(board))
    cache = tmp_path / "cache"
    part = render(board, tmp_path / "part.mp4", cache=cache, review=False, frame_range=(30, 40))
    assert {i for i, o in part.outcomes.items() if o.status == "generated"} == {0, 1, 2, 4}
    assert probe(tmp_path / "part.mp4").num_frames == 10
    whole = render(board, tmp_path / "whole.mp4", cache=cache, review=False)
    assert whole.cached == 4 and whole.generated == 1  # only the last bridge was missing
    # the part shows exactly the whole film's frames there (same colours: streamed from the chain's start)
    assert np.abs(_frames(tmp_path / "part.mp4", 0, 10) - _frames(tmp_path / "whole.mp4", 30, 10)).mean() < 2.0
    assert p.segments[3].index not in part.outcomes


# --------------------------------------------------------------------------- through fal, against the emulator


@pytest.fixture
def emu(fal_emulator_factory):
    return fal_emulator_factory(canned=True, key="sk-test-bridged:0000")


def _cli(emu, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BOOT, *map(str, args)], env={**os.environ, **emu.env()},
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_bridged_fal_render_pays_exactly_the_plan(emu, tmp_path, write_board):
    board = write_board(SMALL.replace("mode: bridged", "mode: sequential"))
    p = plan(with_mode(load(board), "bridged"))
    assert [s.role for s in p.segments] == ["anchor", "bridge", "anchor", "skeleton"] and p.requests == 4
    cache, out = tmp_path / "cache", tmp_path / "film.mp4"
    r = _cli(emu, "render", board, "-o", out, "--backend", "fal", "--cache-dir", cache, "--mode", "bridged")
    assert r.returncode == 0, r.stderr
    assert emu.submit_count() == p.requests == 4
    assert (probe(out).num_frames, probe(out).width, probe(out).height) == (p.total_frames, 1280, 720)
    manifest = json.loads((tmp_path / "film.manifest.json").read_text())
    ids = {s["index"]: s["request_id"] for s in manifest["segments"]}
    assert set(ids.values()) == set(emu.jobs) and manifest["cost_usd"] == pytest.approx(0.16)
    ledger = [x["request_id"] for x in SegmentCache(cache).ledger()]
    assert sorted(ledger) == sorted(ids.values())
    # the skeleton went first, at 480p; the bridge last, with both anchors' frames
    skeleton = emu.job(ids[3])
    assert skeleton.body["resolution"] == "480p" and skeleton.body["frame_rate"] == 12
    anchor = emu.job(ids[2])
    assert anchor.body["videos"] == [] and len(anchor.body["images"]) == 1
    (ref,) = [m for m in anchor.media if m.field == "images[0].image_url"]
    assert load_image(Path(ref.path)).shape[:2] == (720, 1280)  # a 480p skeleton frame fitted to the film
    bridge = emu.job(ids[1])
    starts = [v["start_frame_num"] for v in bridge.body["videos"]]
    assert starts == [0, p.segments[1].num_frames - p.segments[1].overlap] == [0, 8]
    media = {m.field: Path(m.path) for m in bridge.media}
    key = {s["index"]: s["cache_key"] for s in manifest["segments"]}
    video = lambda i: cache / "segments" / key[i][:2] / key[i] / "video.mp4"
    head = _frames(video(2), 0, 9)
    tail = _frames(video(0), p.segments[0].num_frames - 9, 9)
    assert np.abs(np.stack(read_frames(media["videos[1].video_url"])).astype(np.int16) - head).mean() < 3.0
    assert np.abs(np.stack(read_frames(media["videos[0].video_url"])).astype(np.int16) - tail).mean() < 3.0
    again = _cli(emu, "render", board, "-o", out, "--backend", "fal", "--cache-dir", cache, "--mode", "bridged")
    assert again.returncode == 0, again.stderr
    assert emu.submit_count() == 4  # all cached: nothing paid twice


def test_sigkill_with_anchors_in_flight_then_resume_pays_nothing_twice(emu, tmp_path, write_board):
    board = write_board(SMALL)
    p = plan(load(board))
    cache, out = tmp_path / "cache", tmp_path / "film.mp4"
    emu.hold(times=None)  # every job stays IN_PROGRESS until released
    child = (BOOT.split("from composer.cli")[0]
             + "from composer import render; from composer.events import SegmentLog; "
             "render(sys.argv[1], sys.argv[2], backend='fal', cache=sys.argv[3], jobs=2, otio=False, review=False, "
             "on_event=lambda e: isinstance(e, SegmentLog) and e.kind == 'submitted' and print(e.index, flush=True))")
    proc = subprocess.Popen([sys.executable, "-c", child, str(board), str(out), str(cache)],
                            env={**os.environ, **emu.env()}, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(120, proc.kill)
    guard.start()
    try:
        first = proc.stdout.readline().strip()
        assert first == "3", proc.stderr.read() if proc.poll() is not None else first  # the skeleton first
        (job,) = list(emu.jobs.values())
        emu.release(job.id)  # the skeleton finishes; both anchors start side by side and are held
        anchors = {proc.stdout.readline().strip(), proc.stdout.readline().strip()}
        assert anchors == {"0", "2"}
        assert len(list((cache / "journal").glob("*.json"))) == 2
    finally:
        guard.cancel()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert emu.submit_count() == 3
    emu.clear_faults()
    emu.release()

    r = _cli(emu, "render", board, "-o", out, "--backend", "fal", "--cache-dir", cache)
    assert r.returncode == 0, r.stderr
    assert emu.submit_count() == p.requests == 4  # the two journalled anchors were fetched, not bought again
    ledger = [x["request_id"] for x in SegmentCache(cache).ledger()]
    assert len(ledger) == len(set(ledger)) == 4
    assert list((cache / "journal").glob("*.json")) == []
    assert probe(out).num_frames == p.total_frames


# --------------------------------------------------------------------------- doctor --live --bridged


def test_doctor_bridged_probe_asks_then_renders_two_anchors_and_a_bridge(fal_emulator_factory, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from composer.backends.fal import FalBackend
    from composer.cli import main
    from composer.testing.fixtures import use_fal_emulator

    emu = use_fal_emulator(fal_emulator_factory(canned=True, key="sk-test-probe:1234"), monkeypatch)
    monkeypatch.setitem(FalBackend.__init__.__kwdefaults__, "poll_interval", 0.02)
    monkeypatch.setitem(FalBackend.__init__.__kwdefaults__, "base_delay", 0.01)
    cache = tmp_path / "cache"
    runner = CliRunner()
    no = runner.invoke(main, ["doctor", "--live", "--bridged", "--cache-dir", str(cache)], input="n\n")
    assert no.exit_code == 1 and "Spend up to $0.12 on fal? [y/N]" in no.output
    assert emu.submit_count() == 0
    r = runner.invoke(main, ["doctor", "--live", "--bridged", "--yes", "--cache-dir", str(cache)],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert emu.submit_count() == 3  # two anchors pinned by keyframes (no skeleton) and one bridge
    bodies = sorted(emu.submitted_bodies(), key=lambda b: len(b.get("videos", [])))
    assert [len(b.get("videos", [])) for b in bodies] == [0, 0, 2]
    assert [v["start_frame_num"] for v in bodies[2]["videos"]] == [0, 24]
    saved = json.loads((cache / "doctor" / "bridged.json").read_text())
    sheet = Path(saved["contact_sheet"])
    assert sheet == cache / "doctor" / "bridged-contact-sheet.png" and str(sheet) in r.output
    img = load_image(sheet)
    assert img.shape[:2] == (4 * (24 + round(480 * 160 / 848)), 9 * 160)  # four labelled rows of nine thumbnails
    assert [s["seam"] for s in saved["seams"]] == ["head", "tail"] and saved["requests_made"] == 3
    assert saved["cost_usd"] == pytest.approx(0.12)
    assert "bridged tail (videos at frame 24)" in r.output
    assert sorted(x["request_id"] for x in SegmentCache(cache).ledger()) == sorted(emu.jobs)
    assert "sk-test-probe" not in r.output and "sk-test-probe" not in (cache / "doctor" / "bridged.json").read_text()


# --------------------------------------------------------------------------- the emulator's renderer


def test_ltx_trim_rule_for_a_conditioning_video():
    from composer.testing.fal.validation import conditioning_frames

    # written from LTX-Video's trim_conditioning_sequence: min(length, num_frames - start), then 8k+1
    assert conditioning_frames(24, 9, 33) == 9      # a bridge's videos[1]: ends on the last frame
    assert conditioning_frames(24, 17, 33) == 9     # too long for the room left: trimmed
    assert conditioning_frames(0, 40, 33) == 33
    assert conditioning_frames(32, 9, 33) == 1      # one frame left: a single keyframe-like frame
    assert conditioning_frames(8, 12, 33) == 9      # not 8k+1: trimmed down to it


def test_emulator_renders_a_bridge_with_both_anchors_in_place(fal_emulator_factory, monkeypatch, write_board,
                                                            tmp_path):
    from composer.backends.fal import FalBackend
    from composer.testing.fixtures import use_fal_emulator

    emu = use_fal_emulator(fal_emulator_factory(canned=False, renderer="preview", key="sk-test-emu:42"), monkeypatch)
    monkeypatch.setitem(FalBackend.__init__.__kwdefaults__, "poll_interval", 0.02)
    board = write_board(SMALL.replace("720p", "480p"))
    p = plan(load(board))
    r = render(board, tmp_path / "film.mp4", backend="fal", cache=tmp_path / "cache", review=False, otio=False)
    assert r.generated == emu.submit_count() == 4
    v = {i: o.video for i, o in r.outcomes.items()}
    bridge = emu.job(r.outcomes[1].request_id)
    lines = [entry["message"] for entry in bridge.logs]
    assert "videos[0]: 9 frame(s) in place at frames 0-8 (strength 1)" in lines
    assert "videos[1]: 9 frame(s) in place at frames 8-16 (strength 1)" in lines
    tail, head = _frames(v[1], 8, 9), _frames(v[2], 0, 9)
    assert np.abs(tail - head).mean() < 3.0
    assert [int(np.argmin([np.abs(t - h).mean() for h in head])) for t in tail] == list(range(9))
    assert probe(tmp_path / "film.mp4").num_frames == p.total_frames
