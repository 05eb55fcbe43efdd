"""The emulator's concurrency limit, seen through the real fal_client over loopback: at most N
requests run at once, the rest wait IN_QUEUE in submit order with fal's queue positions."""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time

import fal_client
import httpx

from composer.request import ENDPOINT_ID
from composer.testing.fal import FalEmulator
from composer.testing.fixtures import fal_emulator_factory, use_fal_emulator

SMALL = {"prompt": "a lighthouse at dusk", "num_frames": 9, "resolution": "480p", "aspect_ratio": "16:9"}


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant (an end at t closes before a start at t)."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def _done(handle, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = handle.status()
        if isinstance(status, fal_client.Completed):
            return status
        time.sleep(0.02)
    raise AssertionError("not completed")


def test_at_most_n_run_and_the_rest_queue_in_order(fal_emulator_factory, monkeypatch):
    emu = use_fal_emulator(fal_emulator_factory(concurrency=2, canned=True, latency=0.6), monkeypatch)
    client = fal_client.SyncClient(key=emu.key, default_timeout=20)
    handles = [client.submit(ENDPOINT_ID, {**SMALL, "seed": i}) for i in range(5)]
    emu.wait_for_state(handles[1].request_id, "IN_PROGRESS")
    statuses = [h.status() for h in handles]
    assert [type(s).__name__ for s in statuses[:2]] == ["InProgress", "InProgress"]
    # the three others wait, each told how many are ahead of it
    assert [(type(s).__name__, getattr(s, "position", None)) for s in statuses[2:]] == [
        ("Queued", 0), ("Queued", 1), ("Queued", 2)]
    for h in handles:
        assert _done(h).error is None
    jobs = [emu.job(h.request_id) for h in handles]
    assert max_overlap([(j.started, j.finished) for j in jobs]) == 2
    assert emu.peak_running == 2 and emu.stats()["peak_running"] == 2
    starts = [j.started for j in jobs]
    assert starts == sorted(starts)  # first come, first served
    # the fifth could only start once two had finished: about two latencies after the first
    assert jobs[4].started >= min(j.finished for j in jobs[:2])


def test_a_cancelled_request_leaves_the_line(fal_emulator_factory, monkeypatch):
    emu = use_fal_emulator(fal_emulator_factory(concurrency=1, canned=True), monkeypatch)
    client = fal_client.SyncClient(key=emu.key, default_timeout=20)
    emu.hold(times=1)
    running = client.submit(ENDPOINT_ID, SMALL)
    emu.wait_for_state(running.request_id, "IN_PROGRESS")
    dropped = client.submit(ENDPOINT_ID, SMALL)
    waiting = client.submit(ENDPOINT_ID, SMALL)
    assert waiting.status().position == 1
    dropped.cancel()
    assert waiting.status().position == 0
    emu.release(running.request_id)
    assert _done(waiting).error is None
    assert emu.job(dropped.request_id).started is None  # it never took a slot
    assert emu.peak_running == 1


def test_command_line_concurrency_reaches_stats():
    proc = subprocess.Popen([sys.executable, "-m", "composer.testing.fal", "--canned", "--concurrency", "3"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        env: dict[str, str] = {}
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("export "):
                k, v = line[len("export "):].strip().split("=", 1)
                env[k] = v
            if line.startswith("#"):
                break
        trust = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
        r = httpx.get(f"https://{env['FAL_QUEUE_RUN_HOST']}/_emulator/stats",
                      headers={"Authorization": f"Key {env['FAL_KEY']}"}, verify=trust)
        assert r.status_code == 200
        assert r.json()["concurrency"] == 3 and r.json()["peak_running"] == 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_default_is_a_new_accounts_two():
    assert FalEmulator().concurrency == 2
    assert FalEmulator(workers=5).concurrency == 5  # the older name still works
