"""Several ``composer render`` processes ("machines") on one cache: a bucket on a real S3 API
(moto's server on loopback, reached through ``AWS_ENDPOINT_URL``) or one local folder, the
real fal_client against the project's fal emulator. Each segment is paid exactly once at
the emulator, a killed machine's work is re-attached, not bought again, and a resume never
pays silently for a request that may already have been bought."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from composer.media import probe
from composer.planner import plan
from composer.rendering import SegmentCache
from composer.storyboard import load
from composer.testing.fixtures import fal_emulator_factory
from composer.testing.s3 import s3_bucket, s3_server

ROOT = Path(__file__).resolve().parents[1]
SECRET = "sk-test-team:0f3c9a1e5b7d"
BOOT = (
    "import sys; from composer.backends.fal import FalBackend; "
    "FalBackend.__init__.__kwdefaults__.update(poll_interval=0.03, base_delay=0.02, max_delay=0.2); "
    "from composer.cli import main; main(prog_name='composer')"
)
HEAD = """\
version: 1
title: team film
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 3
  segment: {frames: 17, overlap: 9}
scenes:
"""
# Two chains (a cut) of three requests each: 6 requests, 66 frames.
TWO_CHAINS = HEAD + """\
  - id: harbour
    duration: 33f
    prompt: "a harbour at dawn"
  - id: city
    duration: 33f
    prompt: "a city at night"
"""
ONE_CHAIN = HEAD + """\
  - id: harbour
    duration: 2s
    prompt: "a harbour at dawn"
"""
OTHER_BOARD = HEAD + """\
  - id: forest
    duration: 2s
    prompt: "a forest in fog"
  - id: desert
    duration: 2s
    prompt: "a desert at noon"
"""


@pytest.fixture
def emu(fal_emulator_factory):
    return fal_emulator_factory(canned=True, key=SECRET)


class Machines:
    """Start ``composer render --backend fal`` processes, each with its own local layer."""

    def __init__(self, emu, tmp_path: Path, cache: str, env: dict[str, str] | None = None):
        self.emu, self.tmp, self.cache = emu, tmp_path, cache
        self.env = {**(env or os.environ), **emu.env(), "COMPOSER_LEASE_TTL": "5", "PYTHONPATH": str(ROOT)}

    def args(self, board: Path, name: str, *extra: str) -> list[str]:
        return ["render", str(board), "-o", str(self.tmp / f"{name}.mp4"), "--backend", "fal",
                "--cache-dir", self.cache, *extra]

    def environ(self, name: str, **extra: str) -> dict[str, str]:
        return {**self.env, "COMPOSER_LOCAL_CACHE_DIR": str(self.tmp / f"layer-{name}"), **extra}

    def start(self, board: Path, name: str, *extra: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", BOOT, *self.args(board, name, *extra)],
                                env=self.environ(name, **env), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)

    def run(self, board: Path, name: str, *extra: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", BOOT, *self.args(board, name, *extra)],
                              env=self.environ(name, **env), cwd=ROOT, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=180)

    def composer(self, *args: str, name: str = "tool") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "composer", *args], env=self.environ(name), cwd=ROOT,
                              capture_output=True, text=True, timeout=120)


def kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=20)


def wait_until(what, timeout: float = 60.0, procs: tuple[subprocess.Popen, ...] = ()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a machine exited early ({p.returncode}): {p.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError("timed out")


def two_machines_one_killed(emu, write_board, tmp_path: Path, cache: str, env: dict[str, str] | None = None) -> Machines:
    board = write_board(TWO_CHAINS)
    p = plan(load(board))
    assert (p.requests, len(p.chains)) == (6, 2)
    machines = Machines(emu, tmp_path, cache, env)
    view = SegmentCache(cache, local_root=tmp_path / "layer-view")
    emu.hold(times=2)  # the first request of each chain stays IN_PROGRESS until released
    # every submit takes a second to be accepted: both machines reach each segment while the other is
    # mid-submit, the moment that made two renders pay twice before segments were leased
    emu.delay("submit", 1.0, times=None)
    a = machines.start(board, "a", "--jobs", "2")
    b = machines.start(board, "b", "--jobs", "2")
    try:
        ids = emu.wait_for_submit(2, timeout=90)
        # both first requests journalled with their ids (whoever holds them), nobody else submitting
        wait_until(lambda: sorted(r.get("request_id") or "" for r in view.journal()) == sorted(ids), procs=(a, b))
        kill(a)  # machine a dies mid-render, maybe holding leases
        emu.release()
        _, err = b.communicate(timeout=180)
    finally:
        for proc in (a, b):
            if proc.poll() is None:
                kill(proc)
    assert b.returncode == 0, err
    assert "may pay twice" not in err  # waiting for a live machine's segment is not a doubt
    assert emu.submit_count() == p.requests  # every segment paid exactly once, across both machines
    assert all(emu.job(i).result_fetches >= 1 for i in ids)
    assert probe(tmp_path / "b.mp4").num_frames == p.total_frames
    ledger = [r["request_id"] for r in view.ledger()]
    assert sorted(ledger) == sorted(set(ledger)) and len(ledger) == p.requests
    assert view.journal() == []

    third = machines.run(board, "c")  # a third machine: a fresh local layer, the shared cache
    assert third.returncode == 0, third.stderr
    assert emu.submit_count() == p.requests
    assert "0 generated, 6 from cache, cost $0.00" in third.stdout
    assert probe(tmp_path / "c.mp4").num_frames == p.total_frames
    return machines


def test_two_machines_on_one_bucket_pay_each_segment_once(emu, write_board, tmp_path, s3_bucket):
    url, env = s3_bucket
    machines = two_machines_one_killed(emu, write_board, tmp_path, url, env)
    board = tmp_path / "board.yaml"
    # the plan's cached/cost view and `cache info|prune` speak to the bucket too
    shown = machines.composer("plan", str(board), "--backend", "fal", "--cache-dir", url)
    assert shown.returncode == 0, shown.stderr
    assert "cached: 6/6; a render would still make 0 requests ($0.00)" in shown.stdout
    info = machines.composer("cache", "info", "--cache-dir", url)
    assert info.returncode == 0, info.stderr
    assert f"cache: {url}" in info.stdout and "segments: 6 " in info.stdout
    assert "paid requests in ledger: 6 ($0.24)" in info.stdout and "requests in flight (journalled): 0" in info.stdout
    pruned = machines.composer("cache", "prune", "--all", "--cache-dir", url)
    assert pruned.returncode == 0 and "removed 6 segment(s)" in pruned.stdout
    shown = machines.composer("plan", str(board), "--backend", "fal", "--cache-dir", url, name="fresh")
    assert "cached: 0/6" in shown.stdout


def test_two_machines_on_one_folder_pay_each_segment_once(emu, write_board, tmp_path):
    two_machines_one_killed(emu, write_board, tmp_path, str(tmp_path / "shared-cache"))


def test_different_boards_on_one_cache_both_complete(emu, write_board, tmp_path):
    one, other = write_board(TWO_CHAINS, "one.yaml"), write_board(OTHER_BOARD, "other.yaml")
    machines = Machines(emu, tmp_path, str(tmp_path / "shared-cache"))
    a, b = machines.start(one, "a"), machines.start(other, "b")
    (_, err_a), (_, err_b) = a.communicate(timeout=180), b.communicate(timeout=180)
    assert (a.returncode, b.returncode) == (0, 0), err_a + err_b
    assert emu.submit_count() == plan(load(one)).requests + plan(load(other)).requests
    assert probe(tmp_path / "a.mp4").num_frames == plan(load(one)).total_frames
    assert probe(tmp_path / "b.mp4").num_frames == plan(load(other)).total_frames


def test_killed_after_fal_accepted_the_submit_resume_never_pays_silently(emu, write_board, tmp_path):
    """The kill lands after the emulator accepted (and billed) a submit and before its id reached the
    journal: the journal holds only the intent, so the resume stops and asks before paying again."""
    board = write_board(ONE_CHAIN)
    p = plan(load(board))
    cache = tmp_path / "cache"
    machines = Machines(emu, tmp_path, str(cache))
    proc = machines.start(board, "a", "--jobs", "1", COMPOSER_TEST_PAUSE_AFTER_SUBMIT="60")
    try:
        (accepted,) = emu.wait_for_submit(1, timeout=60)
        (journal,) = wait_until(lambda: list((cache / "journal").glob("*.json")), procs=(proc,))
        intent = json.loads(journal.read_text())
        assert "request_id" not in intent and intent["segment"] == 0 and intent["intent_at"] > 0
    finally:
        kill(proc)
    assert emu.submit_count() == 1

    again = machines.run(board, "a")  # no terminal, no --yes: say so and stop, pay nothing
    assert again.returncode == 1
    assert "Traceback" not in again.stderr
    assert "segment 0 (scene 'harbour'): a run stopped" in again.stderr
    assert "may pay twice" in again.stderr and "$0.04" in again.stderr and "--yes" in again.stderr
    assert emu.submit_count() == 1 and not (tmp_path / "a.mp4").exists()
    assert json.loads(journal.read_text()) == intent  # still there: the next run asks again

    agreed = machines.run(board, "a", "--yes")
    assert agreed.returncode == 0, agreed.stderr
    assert emu.submit_count() == 1 + p.requests  # the one lost submit, and the film's requests, each once
    assert accepted not in [r["request_id"] for r in SegmentCache(cache).ledger()]
    assert probe(tmp_path / "a.mp4").num_frames == p.total_frames


def test_an_expired_result_is_not_bought_again_without_asking(emu, write_board, tmp_path):
    """fal keeps results about an hour: a journalled id it no longer knows is reported with the
    cost of submitting again, and bought only with --yes."""
    from composer.backends import get_backend
    from composer.rendering.scheduler import MediaResolver, compute_keys

    board = write_board(ONE_CHAIN)
    b = load(board)
    p = plan(b)
    cache = SegmentCache(tmp_path / "cache")
    keys = compute_keys(p, b, get_backend("fal"), MediaResolver(b, p, cache))
    gone = "00000000-0000-4000-8000-00000000dead"
    cache.journal_put(keys[0], {"request_id": gone, "segment": 0, "scene": "harbour",
                                "submitted_at": time.time() - 2 * 3600})
    machines = Machines(emu, tmp_path, str(tmp_path / "cache"))
    refused = machines.run(board, "a")
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert f"its fal request {gone} was submitted 2.0 h ago; fal keeps results about an hour" in refused.stderr
    assert "up to $0.04 for 1 request(s)" in refused.stderr
    assert "fal no longer has the result of request" in refused.stderr and "--yes to pay for it" in refused.stderr
    assert emu.submit_count() == 0

    agreed = machines.run(board, "a", "--yes")
    assert agreed.returncode == 0, agreed.stderr
    assert emu.submit_count() == p.requests
    assert cache.journal() == [] and len(cache.ledger()) == p.requests


def _read_only_mount(folder: Path, tmp_path: Path) -> Path | None:
    if os.geteuid() != 0:
        for d in [folder, *folder.rglob("*")]:
            if d.is_dir():
                d.chmod(0o555)
        return folder
    target = tmp_path / "ro-cache"
    target.mkdir()
    ok = subprocess.run(["mount", "--bind", str(folder), str(target)], capture_output=True).returncode == 0
    if ok and subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True).returncode == 0:
        return target
    if ok:
        subprocess.run(["umount", str(target)], capture_output=True)
    return None


def test_a_read_only_cache_folder_is_a_clear_error(write_board, tmp_path):
    board = write_board(ONE_CHAIN)
    cache = tmp_path / "cache"
    SegmentCache(cache)  # an existing cache, now read-only
    ro = _read_only_mount(cache, tmp_path)
    if ro is None:
        pytest.skip("cannot make a read-only folder here")
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        r = subprocess.run([sys.executable, "-m", "composer", "render", str(board), "-o", str(tmp_path / "f.mp4"),
                            "--cache-dir", str(ro)], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip() == (f"error: the cache folder {ro} is read-only: give a writable one with "
                                    "--cache-dir (or $COMPOSER_CACHE_DIR); nothing was spent")
        shown = subprocess.run([sys.executable, "-m", "composer", "plan", str(board), "--cache-dir", str(ro)],
                               env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert shown.returncode == 0 and "cached: 0/2" in shown.stdout  # reading still works
    finally:
        if ro != cache:
            subprocess.run(["umount", str(ro)], capture_output=True)


def test_generate_killed_after_the_submit_was_accepted_asks_before_paying_again(emu, tmp_path):
    """``composer generate`` keeps its books through the same helper as ``render``: intent first."""
    cache = tmp_path / "cache"
    env = {**os.environ, **emu.env(), "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", BOOT, "generate", "a red kite", "--backend", "fal", "-o", str(tmp_path / "k.mp4"),
            "--cache-dir", str(cache), "--num-frames", "17", "--resolution", "480p"]
    proc = subprocess.Popen(args, env={**env, "COMPOSER_TEST_PAUSE_AFTER_SUBMIT": "60"}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        emu.wait_for_submit(1, timeout=60)
        wait_until(lambda: list((cache / "journal").glob("generate-*.json")), procs=(proc,))
    finally:
        kill(proc)
    again = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip().startswith("error: generate: a run stopped")
    assert "may pay twice ($0.04)" in again.stderr and "--yes" in again.stderr
    assert emu.submit_count() == 1 and not (tmp_path / "k.mp4").exists()
    agreed = subprocess.run([*args, "--yes"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert agreed.returncode == 0, agreed.stderr
    assert emu.submit_count() == 2 and probe(tmp_path / "k.mp4").num_frames == 17
    assert len(SegmentCache(cache).ledger()) == 1 and SegmentCache(cache).journal() == []
