"""A submit answered with a server error after fal queued it (the answer names the request id):
the backend follows that request instead of buying it again; found by ``benchmarks/reliability.py``
(HTTP 500 after accept paid 7 of a 6-request plan). Real ``fal_client`` against the emulator."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from composer.backends.base import BackendEvent, GenerateContext
from composer.backends.fal import FalBackend, probe_video
from composer.media import probe
from composer.planner import plan
from composer.request import GenerationRequest
from composer.storyboard import load
from composer.testing.fixtures import FAST_BACKEND_OPTIONS

pytestmark = pytest.mark.usefixtures("fal_client_urls_restored")

ROOT = Path(__file__).resolve().parents[1]


def generate(emu, tmp_path: Path) -> tuple[object, list[BackendEvent], list[str]]:
    events: list[BackendEvent] = []
    submitted: list[str] = []
    ctx = GenerateContext(label="seg000", on_event=events.append, on_submitted=submitted.append)
    request = GenerationRequest(prompt="a red kite over a beach", num_frames=25, resolution="480p", aspect_ratio="16:9")
    result = FalBackend(env=emu.env(), **FAST_BACKEND_OPTIONS).generate(request, tmp_path, ctx)
    return result, events, submitted


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_naming_a_queued_request_is_followed_not_paid_again(fal_emulator_factory, tmp_path, status):
    emu = fal_emulator_factory(canned=True)
    emu.fail("submit", status, after_accept=True)  # queued, then answered with an error carrying its id
    result, events, submitted = generate(emu, tmp_path)
    assert emu.submit_count() == 1 and emu.counts["submit"] == 1  # one paid request, never sent again
    (job_id,) = emu.jobs
    assert result.request_id == job_id and submitted == [job_id]  # journalled like any submit
    assert probe_video(result.path)[0] == 25
    assert any("following that request, not paying again" in e.message for e in events if e.kind == "log")


def test_a_server_error_naming_a_request_fal_does_not_know_is_submitted_again(fal_emulator_factory, tmp_path):
    emu = fal_emulator_factory(canned=True)
    emu.fail("submit", 500, headers={"x-fal-request-id": "0000-not-queued"})  # an id, but nothing was queued
    result, events, _ = generate(emu, tmp_path)
    assert emu.submit_count() == 1 and emu.counts["submit"] == 2  # refused once, then bought once
    assert result.request_id in emu.jobs
    assert any("does not know request 0000-not-queued" in e.message for e in events if e.kind == "log")


def test_cli_render_with_a_queued_submit_error_pays_the_plan(fal_emulator_factory, write_board, tmp_path):
    emu = fal_emulator_factory(canned=True)
    board = write_board("""\
        version: 1
        output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
        defaults: {seed: 3, segment: {frames: 17, overlap: 9}}
        scenes:
          - {id: a, duration: 2s, prompt: "a harbour at dawn"}
        """)
    p = plan(load(board))
    emu.fail("submit", 500, after_accept=True, times=2)
    out = tmp_path / "film.mp4"
    boot = ("import sys; from composer.backends.fal import FalBackend; "
            "FalBackend.__init__.__kwdefaults__.update(poll_interval=0.03, base_delay=0.02, max_delay=0.2); "
            "from composer.cli import main; main(prog_name='composer')")
    proc = subprocess.run([sys.executable, "-c", boot, "render", str(board), "-o", str(out), "--backend", "fal",
                           "--cache-dir", str(tmp_path / "cache"), "--quiet", "--no-review"],
                          env={**os.environ, **emu.env()}, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert emu.submit_count() == p.requests == 2  # before the fix: 4, each segment bought twice
    assert probe(out).num_frames == p.total_frames
