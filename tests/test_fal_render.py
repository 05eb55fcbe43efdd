"""``composer render --backend fal`` end to end: the CLI in a subprocess, the real fal_client,
the emulator on loopback HTTPS (in this process, so faults can be injected and what it
received inspected).

The emulator answers with a canned clip (no rendering), so each test is a few seconds.
Most subprocesses run the CLI through ``BOOT``, which only shortens the fal backend's
poll interval and retry backoff (what ``FAST_BACKEND_OPTIONS`` does in-process) before
calling ``composer.cli.main``; the rest of the path is the one a user runs.
"""
from __future__ import annotations

import hashlib
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

from composer.media import load_image, probe, read_frames
from composer.planner import plan
from composer.rendering import SegmentCache
from composer.storyboard import load
from composer.testing.fixtures import fal_emulator_factory

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-test-7c1e5a0b:9d2f04b6e8a1c3f7"  # the emulator's key: must never appear anywhere
BOOT = (
    "import sys; from composer.backends.fal import FalBackend; "
    "FalBackend.__init__.__kwdefaults__.update(poll_interval=0.03, base_delay=0.02, max_delay=0.2); "
    "from composer.cli import main; main(prog_name='composer')"
)

HEAD = """\
version: 1
title: fal test film
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 3
  segment: {frames: 33, overlap: 9}
scenes:
"""
# Two chains (a hard cut) of two requests each: 4 requests, 108 frames.
TWO_CHAINS = HEAD + """\
  - id: harbour
    duration: 4.5s
    prompt: "a harbour at dawn"
    keyframes:
      - {at: 0s, image: images/a.png}
  - id: city
    duration: 4.5s
    prompt: "a city at night"
    keyframes:
      - {at: 2s, image: images/b.png}
"""
# Smaller still, for the tests that count requests: 17-frame segments (8 new frames each).
SMALL = HEAD.replace("frames: 33", "frames: 17")
# One chain of two requests, 24 frames.
ONE_CHAIN = SMALL + """\
  - id: harbour
    duration: 2s
    prompt: "a harbour at dawn"
"""
# Two chains of two requests: 4 requests, 48 frames.
SMALL_TWO_CHAINS = ONE_CHAIN + """\
  - id: city
    duration: 2s
    prompt: "a city at night"
"""


@pytest.fixture
def emu(fal_emulator_factory):
    return fal_emulator_factory(canned=True, key=SECRET)


def cli(emu, *args, fast: bool = True, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environ = env if env is not None else {**os.environ, **emu.env()}
    head = [sys.executable, "-c", BOOT] if fast else [sys.executable, "-m", "composer"]
    return subprocess.run([*head, *map(str, args)], env=environ, capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def render_args(board: Path, out: Path, cache: Path, *extra) -> list:
    return ["render", board, "-o", out, "--backend", "fal", "--cache-dir", cache, *extra]


def ledger_ids(cache: Path) -> list[str]:
    return [r["request_id"] for r in SegmentCache(cache).ledger()]


def assert_secret_never_appears(*texts: str, dirs: tuple[Path, ...] = ()) -> int:
    """The key (and either half of it) is in none of the texts and none of the files under ``dirs``."""
    blobs = list(texts)
    for d in dirs:
        blobs += [p.read_bytes().decode("latin-1") for p in Path(d).rglob("*") if p.is_file()]
    for blob in blobs:
        for part in (SECRET, *SECRET.split(":")):
            assert part not in blob
    return len(blobs)


def test_render_matches_the_plan_and_sends_its_media(emu, write_board, tmp_path):
    board = write_board(TWO_CHAINS)
    p = plan(load(board))
    cache, out = tmp_path / "cache", tmp_path / "out" / "film.mp4"
    assert p.requests == 4 and len(p.chains) == 2

    r = cli(emu, *render_args(board, out, cache))
    assert r.returncode == 0, r.stderr
    # (1) one paid request per planned request, and a film of the planned length
    assert emu.submit_count() == p.requests
    info = probe(out)
    assert (info.num_frames, info.width, info.height) == (p.total_frames, p.width, p.height)
    manifest = json.loads((tmp_path / "out" / "film.manifest.json").read_text())
    ids = [s["request_id"] for s in manifest["segments"]]
    assert set(ids) == set(emu.jobs) and manifest["requests_made"] == 4 and manifest["cost_usd"] == pytest.approx(0.16)
    assert sorted(ledger_ids(cache)) == sorted(ids)

    # (2) conditioning media arrive: each continuation's videos[0] is its parent's real tail,
    # each keyframe its fitted image, both resolved by the emulator
    fitted = {hashlib.sha256(f.read_bytes()).hexdigest() for f in (cache / "media").glob("*.png")}
    assert len(fitted) == 2
    seen_images = set()
    for seg, rid in zip(p.segments, ids):
        job = emu.job(rid)
        media = {m.field: m for m in job.media}
        body_images, body_videos = job.body.get("images", []), job.body.get("videos", [])
        planned_images = [c for c in seg.conditioning if c.kind == "image"]
        assert [i["start_frame_num"] for i in body_images] == [c.start_frame for c in planned_images]
        for i, item in enumerate(body_images):
            assert item["image_url"].startswith("data:image/png;base64,")
            ref = media[f"images[{i}].image_url"]
            seen_images.add(ref.sha256)
            assert load_image(Path(ref.path)).shape[:2] == (p.height, p.width)
        if seg.depends_on is None:
            assert body_videos == []
            continue
        assert len(body_videos) == 1 and body_videos[0]["start_frame_num"] == 0
        assert body_videos[0]["video_url"].startswith("data:video/mp4;base64,")
        sent = np.stack(read_frames(Path(media["videos[0].video_url"].path))).astype(np.int16)
        parent = p.segments[seg.depends_on]
        parent_video = cache / "segments" / manifest["segments"][parent.index]["cache_key"][:2] / \
            manifest["segments"][parent.index]["cache_key"] / "video.mp4"
        tail = np.stack(read_frames(parent_video, start=parent.num_frames - seg.overlap, count=seg.overlap)).astype(np.int16)
        assert sent.shape == tail.shape == (seg.overlap, p.height, p.width, 3)
        assert np.abs(sent - tail).mean() < 3.0  # the parent's last frames, re-encoded at high quality
    assert seen_images == fitted

    # (8) the plan shows cost and cached status with no key at all (here: all four segments are hits)
    no_key = {k: v for k, v in os.environ.items() if k != "FAL_KEY"}
    shown = cli(emu, "plan", board, "--backend", "fal", "--cache-dir", cache, fast=False, env=no_key)
    assert shown.returncode == 0, shown.stderr
    assert "estimated cost $0.16" in shown.stdout
    assert "cached: 4/4; a render would still make 0 requests ($0.00)" in shown.stdout
    assert [line.split()[6] for line in shown.stdout.splitlines()[2:6]] == ["hit"] * 4

    # (7) the key is in no file of the cache or the output folder, and was never printed
    assert assert_secret_never_appears(r.stdout, r.stderr, shown.stdout, shown.stderr,
                                       dirs=(cache, tmp_path / "out")) > 8


def test_transient_failures_are_retried_without_paying_twice(emu, write_board, tmp_path):
    board = write_board(ONE_CHAIN)
    cache, out = tmp_path / "cache", tmp_path / "film.mp4"
    emu.fail("submit", 500)          # the queue refused it: nothing was bought, we retry
    emu.fail("status", 500, times=2)  # our own retries
    emu.drop("status", times=2)       # fal_client's own retries (a dropped connection)
    emu.fail("result", 503)
    emu.truncate_downloads()          # a short download is fetched again

    r = cli(emu, *render_args(board, out, cache))
    assert r.returncode == 0, r.stderr
    assert emu.submit_count() == plan(load(board)).requests == 2
    assert (emu.counts["submit_fault_status"], emu.counts["status_fault_status"], emu.counts["status_fault_drop"],
            emu.counts["result_fault_status"], emu.counts["download_fault_truncate"]) == (1, 2, 2, 1, 1)
    assert "retry" in r.stderr
    assert probe(out).num_frames == 24
    assert len(set(ledger_ids(cache))) == len(ledger_ids(cache)) == 2
    assert_secret_never_appears(r.stdout, r.stderr, dirs=(cache, tmp_path))


def test_budget_stops_before_crossing_and_the_rest_is_paid_once(emu, write_board, tmp_path):
    board = write_board(SMALL_TWO_CHAINS)
    assert plan(load(board)).requests == 4
    cache, out = tmp_path / "cache", tmp_path / "film.mp4"

    # up front: the whole remaining plan does not fit, so nothing is spent
    r = cli(emu, *render_args(board, out, cache, "--max-cost", "0.08"))
    assert r.returncode != 0 and emu.submit_count() == 0
    last = r.stderr.strip().splitlines()[-1]
    assert "the remaining plan costs $0.16 (4 request(s)), over --max-cost $0.08" in last and "--allow-partial" in last
    assert "Traceback" not in r.stderr

    r = cli(emu, *render_args(board, out, cache, "--max-cost", "0.08", "--allow-partial"))
    assert r.returncode == 1
    assert emu.submit_count() == 2  # two chains in parallel: one request each, then the budget is spent
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "--max-cost $0.08" in last
    assert "2 of 4 segments are safe in the cache" in last and "raise --max-cost" in last
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert len(list((cache / "segments").glob("*/*/meta.json"))) == 2
    assert len(ledger_ids(cache)) == 2

    again = cli(emu, *render_args(board, out, cache))
    assert again.returncode == 0, again.stderr
    assert emu.submit_count() == 4  # only the rest was bought
    manifest = json.loads((tmp_path / "film.manifest.json").read_text())
    assert (manifest["cache_hits"], manifest["requests_made"], manifest["cost_usd"]) == (2, 2, pytest.approx(0.08))
    ids = ledger_ids(cache)
    assert len(ids) == len(set(ids)) == 4
    assert_secret_never_appears(r.stderr, again.stdout, again.stderr, dirs=(cache, tmp_path))


def test_sigkill_mid_request_then_resume_pays_nothing_twice(emu, write_board, tmp_path):
    board = write_board(ONE_CHAIN)
    p = plan(load(board))
    cache, out = tmp_path / "cache", tmp_path / "film.mp4"
    emu.hold()  # the first request stays IN_PROGRESS until released
    env = {**os.environ, **emu.env()}
    # the child announces the backend's "submitted" log (emitted after the scheduler journals the id)
    # on stdout, so the test acts on that event instead of polling the journal; a timer guards a hang
    child = (BOOT.split("from composer.cli")[0]
             + "from composer import render; from composer.events import SegmentLog; "
             "render(sys.argv[1], sys.argv[2], backend='fal', cache=sys.argv[3], jobs=1, otio=False, "
             "on_event=lambda e: isinstance(e, SegmentLog) and e.kind == 'submitted' and print('submitted', flush=True))")
    proc = subprocess.Popen([sys.executable, "-c", child, str(board), str(out), str(cache)],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(120, proc.kill)
    guard.start()
    try:
        line = proc.stdout.readline()
        assert line.strip() == "submitted", proc.stderr.read() if proc.poll() is not None else line
        (journal,) = list((cache / "journal").glob("*.json"))
        held = json.loads(journal.read_text())["request_id"]
        assert emu.job(held).state == "IN_PROGRESS"
    finally:
        guard.cancel()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert emu.submit_count() == 1 and emu.job(held).result_fetches == 0
    emu.release()

    r = cli(emu, *render_args(board, out, cache))
    assert r.returncode == 0, r.stderr
    assert emu.submit_count() == p.requests  # the journalled request was fetched, not bought again
    assert emu.job(held).result_fetches == 1
    ids = ledger_ids(cache)
    assert len(ids) == len(set(ids)) == p.requests and held in ids
    assert list((cache / "journal").glob("*.json")) == []
    manifest = json.loads((tmp_path / "film.manifest.json").read_text())
    assert held in [s["request_id"] for s in manifest["segments"]]
    assert probe(out).num_frames == p.total_frames


def test_safety_rejection_names_the_scene_and_is_not_retried(emu, write_board, tmp_path):
    board = write_board(ONE_CHAIN)
    cache, out = tmp_path / "cache", tmp_path / "film.mp4"
    emu.reject_safety()
    r = cli(emu, *render_args(board, out, cache), fast=False)  # the plain `python -m composer` entry point
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert emu.submit_count() == 1  # not retried; the rest of the chain was not attempted
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: segment 0 (scene 'harbour'): ")
    assert "safety checker" in last and "content policy" in last
    assert "change what the safety checker rejected" in last and "scene 'harbour'" in last.split("cache:")[1]
    assert "segment 1 (scene 'harbour'): skipped" in r.stderr
    assert not out.exists() and ledger_ids(cache) == []
    assert_secret_never_appears(r.stdout, r.stderr, dirs=(cache,))


def test_preflight_fails_in_seconds_without_a_key_or_a_network(emu, write_board, tmp_path):
    """One line up front, before any segment, and nothing asked of the (unreachable) queue."""
    import socket

    board = write_board(SMALL_TWO_CHAINS)
    cache, out = tmp_path / "cache", tmp_path / "film.mp4"
    no_key = {k: v for k, v in {**os.environ, **emu.env()}.items() if k != "FAL_KEY"}
    r = cli(emu, *render_args(board, out, cache), env=no_key)
    assert r.returncode != 0 and emu.submit_count() == 0
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "FAL_KEY is not set" in errors[0] and "segment" not in errors[0]

    with socket.socket() as s:  # a loopback port nobody listens on: "no network" without leaving the machine
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    offline = {**os.environ, **emu.env(), "FAL_QUEUE_RUN_HOST": dead, "FAL_RUN_HOST": dead}
    r = cli(emu, *render_args(board, out, cache), env=offline, timeout=30)
    assert r.returncode != 0 and emu.submit_count() == 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0] and "nothing was spent" in lines[0], r.stderr
    assert not out.exists()


def test_a_queue_that_drops_connections_is_not_called_unreachable(emu, write_board, tmp_path):
    """The preflight probe meets the same dropped connections as the render: a host that takes the
    connection is there, so the render goes on and its own retries carry it through."""
    board = write_board(ONE_CHAIN)
    cache, out = tmp_path / "cache", tmp_path / "film.mp4"
    emu.drop("status", times=3)  # the probe's, then the render's own status polls
    r = cli(emu, *render_args(board, out, cache))
    assert r.returncode == 0, r.stderr
    assert "unreachable" not in r.stderr
    assert emu.counts["status_fault_drop"] == 3
    assert emu.submit_count() == plan(load(board)).requests and probe(out).num_frames == 24
