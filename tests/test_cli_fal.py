"""``composer generate`` and ``composer doctor``, in process (click's CliRunner), against
the preview backend and the fal emulator."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from composer.cli import doctor
from composer.backends.fal import FalBackend
from composer.cli import main
from composer.media import probe
from composer.rendering import SegmentCache
from composer.backends.fal_catalog import OUTPUT_SIZES
from composer.request import GenerationRequest
from composer.testing.fixtures import fal_emulator_factory, use_fal_emulator
from datetime import UTC

SECRET = "sk-test-2b4d6f:8a0c1e3g5i7k"


@pytest.fixture
def runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click ≥ 8.2 keeps stderr apart by itself
        return CliRunner()


@pytest.fixture
def fal(fal_emulator_factory, monkeypatch):
    """A canned emulator with a secret key, this process pointed at it, fal polling fast."""
    emu = use_fal_emulator(fal_emulator_factory(canned=True, key=SECRET), monkeypatch)
    monkeypatch.setitem(FalBackend.__init__.__kwdefaults__, "poll_interval", 0.02)
    monkeypatch.setitem(FalBackend.__init__.__kwdefaults__, "base_delay", 0.01)
    monkeypatch.setattr(doctor, "LIVE_POLL_INTERVAL_S", 0.02)
    return emu


def invoke(runner: CliRunner, *args, input: str | None = None):
    return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


# --------------------------------------------------------------------------- generate


def test_every_endpoint_field_is_an_option(runner):
    text = invoke(runner, "generate", "--help").output
    for name in GenerationRequest.model_fields:
        assert f"--{name.replace('_', '-')}" in text
    assert "--no-enable-safety-checker" in text and "[480p|720p]" in text and "2–12; default 8" in text


def test_options_and_json_file_build_the_request(runner, tmp_path, board_dir, monkeypatch):
    (tmp_path / "req").mkdir()
    (tmp_path / "req" / "body.json").write_text(json.dumps({
        "prompt": "from the file", "num_frames": 17, "seed": 5, "resolution": "480p",
        "images": [{"image_url": "../images/a.png", "start_frame_num": 8}],
    }))
    monkeypatch.chdir(board_dir)
    r = invoke(runner, "generate", "--json", tmp_path / "req" / "body.json", "--num-frames", "25",
               "--no-enable-safety-checker", "--aspect-ratio", "9:16", "--loras", '[{"path": "org/lora", "scale": 0.5}]',
               "--image", "images/b.png@16:0.7", "--video", "images/a.png", "-o", "x.mp4", "--dry-run")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout[r.stdout.index("{"):])
    assert (body["prompt"], body["num_frames"], body["seed"], body["resolution"], body["aspect_ratio"]) == (
        "from the file", 25, 5, "480p", "9:16")
    assert body["enable_safety_checker"] is False and body["loras"] == [{"path": "org/lora", "scale": 0.5}]
    assert [(i["image_url"], i["start_frame_num"], i["strength"]) for i in body["images"]] == [
        ((board_dir / "images" / "a.png").as_uri(), 8, 1.0), ((board_dir / "images" / "b.png").as_uri(), 16, 0.7)]
    assert body["videos"][0]["video_url"] == (board_dir / "images" / "a.png").as_uri()
    assert not (board_dir / "x.mp4").exists()  # a dry run writes nothing


@pytest.mark.parametrize("args, words", [
    (["--num-frames", "20"], ["num_frames=20 is not 8k+1", "8k+1"]),
    (["--image", "nothere.png@0"], ["--image", "no such file"]),
    (["--image", "images/a.png@4"], ["images[0].start_frame_num", "multiple of 8"]),
    (["--temporal-adain-factor", "0.33"], ["--temporal-adain-factor", "multiple of 0.05"]),
    (["--json", "bad.json"], ["mistake: not a field of the endpoint"]),
    (["--loras", "{not json"], ["--loras", "not valid JSON"]),
])
def test_invalid_requests_are_usage_errors(runner, board_dir, monkeypatch, args, words):
    monkeypatch.chdir(board_dir)
    (board_dir / "bad.json").write_text(json.dumps({"prompt": "x", "mistake": 1}))
    r = invoke(runner, "generate", "a kite", "-o", "x.mp4", *args)
    assert r.exit_code == 2
    for word in words:
        assert word in r.stderr
    assert not (board_dir / "x.mp4").exists()


def test_generate_with_the_preview_writes_one_clip(runner, board_dir, monkeypatch):
    monkeypatch.chdir(board_dir)
    r = invoke(runner, "generate", "a red kite over a beach", "-o", "clips/kite.mp4", "--num-frames", "17",
               "--resolution", "480p", "--aspect-ratio", "1:1", "--frame-rate", "12", "--image", "images/a.png@8")
    assert r.exit_code == 0, r.output
    info = probe(board_dir / "clips" / "kite.mp4")
    assert (info.num_frames, info.width, info.height, float(info.fps)) == (17, 480, 480, 12.0)
    assert [p.name for p in (board_dir / "clips").iterdir()] == ["kite.mp4"]  # no partial file left behind
    assert r.stdout.startswith("wrote ") and "cost" not in r.stdout


def test_generate_with_fal_prints_the_cost_first_and_records_it(runner, fal, board_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(board_dir)
    cache = tmp_path / "cache"
    r = invoke(runner, "generate", "a red kite", "--backend", "fal", "-o", "kite.mp4", "--cache-dir", cache,
               "--num-frames", "25", "--resolution", "480p", "--aspect-ratio", "16:9", "--image", "images/a.png@0",
               "--seed", "7")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("cost: $0.04 — 1 request to fal-ai/ltx-video-13b-distilled/multiconditioning")
    assert lines[-1].startswith("wrote kite.mp4 (25 frames, 848x480, fal request ") and "seed 7" in lines[-1]
    assert fal.submit_count() == 1
    (body,) = fal.submitted_bodies()
    assert body["seed"] == 7 and body["images"][0]["image_url"].startswith("data:image/png;base64,")
    (job,) = fal.jobs.values()
    assert [m.field for m in job.media] == ["images[0].image_url"]
    assert probe(board_dir / "kite.mp4").num_frames == 25
    ledger = SegmentCache(cache).ledger()
    assert [row["request_id"] for row in ledger] == [job.id] and ledger[0]["cost_usd"] == 0.04
    assert list((cache / "journal").glob("*.json")) == []
    texts = [r.stdout, r.stderr] + [p.read_bytes().decode("latin-1") for p in cache.rglob("*") if p.is_file()]
    assert all(SECRET not in t for t in texts)


def test_generate_with_fal_resumes_a_journalled_request(runner, fal, tmp_path):
    """A generate killed mid-request left its id in the journal: the next run fetches it instead of paying."""
    args = ["generate", "a red kite", "--backend", "fal", "-o", tmp_path / "kite.mp4", "--cache-dir", tmp_path / "c",
            "--num-frames", "9", "--resolution", "480p"]
    fal.fail("result", 400, times=None)  # the first run's request completes but cannot be fetched
    r = invoke(runner, *args)
    assert r.exit_code == 1 and fal.submit_count() == 1
    (journal,) = (tmp_path / "c" / "journal").glob("*.json")
    request_id = json.loads(journal.read_text())["request_id"]
    fal.clear_faults()
    again = invoke(runner, *args)
    assert again.exit_code == 0, again.output
    assert fal.submit_count() == 1 and "re-attached, not paid again" in again.stdout and "cost $0.00" in again.stdout
    assert [row["request_id"] for row in SegmentCache(tmp_path / "c").ledger()] == [request_id]


def test_generate_with_fal_needs_a_key(runner, fal, tmp_path, monkeypatch):
    monkeypatch.delenv("FAL_KEY")
    r = invoke(runner, "generate", "a kite", "--backend", "fal", "-o", tmp_path / "k.mp4", "--cache-dir", tmp_path)
    assert r.exit_code == 1 and "FAL_KEY is not set" in r.stderr and "Traceback" not in r.output
    assert fal.submit_count() == 0 and not (tmp_path / "k.mp4").exists()


# --------------------------------------------------------------------------- doctor


def test_doctor_reports_ffmpeg_cache_key_and_endpoint(runner, fal, tmp_path):
    r = invoke(runner, "doctor", "--cache-dir", tmp_path / "cache")
    assert r.exit_code == 0, r.output
    lines = {line.split(":")[0].split(None, 1)[1]: line for line in r.stdout.splitlines()}
    assert lines["ffmpeg"].startswith("ok") and "libx264 encodes" in lines["ffmpeg"] and "version" in lines["ffmpeg"]
    assert lines["cache"].startswith("ok") and str(tmp_path / "cache") in lines["cache"] and "writable" in lines["cache"]
    assert lines["fal key"] == "ok    fal key: FAL_KEY is set"
    assert lines["fal endpoint"].startswith("ok") and fal.host in lines["fal endpoint"]
    assert "the key was not refused" in lines["fal endpoint"]
    assert SECRET not in r.output and fal.submit_count() == 0


def test_doctor_says_when_the_key_is_not_set_or_refused(runner, fal, tmp_path, monkeypatch):
    monkeypatch.delenv("FAL_KEY")
    r = invoke(runner, "doctor", "--cache-dir", tmp_path)
    assert "fal key: FAL_KEY is not set" in r.stdout and "HTTP 401 without a key" in r.stdout
    monkeypatch.setenv("FAL_KEY", "wrong-key")
    r = invoke(runner, "doctor", "--cache-dir", tmp_path)
    assert r.exit_code == 1 and "refused FAL_KEY (HTTP 401)" in r.stdout and "wrong-key" not in r.output


def test_doctor_says_unreachable_quickly(runner, tmp_path, monkeypatch):
    silent = socket.socket()  # accepts connections (the kernel does) but never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("FAL_KEY", SECRET)
    # Quickly = one attempt bounded by --timeout, no retry loop: the silent server sees exactly one
    # connection, and the reason names the timeout (or the refusal), not a wall-clock measurement.
    reasons = {}
    try:
        for host in (f"127.0.0.1:{silent.getsockname()[1]}", f"127.0.0.1:{closed_port}"):
            monkeypatch.setenv("FAL_QUEUE_RUN_HOST", host)
            r = invoke(runner, "doctor", "--cache-dir", tmp_path, "--timeout", "0.5")
            line = next(x for x in r.stdout.splitlines() if "fal endpoint" in x)
            assert line.startswith("warn") and f"{host} is unreachable" in line and SECRET not in r.output
            assert r.exit_code == 0  # offline is a warning: the preview works without fal
            reasons[host] = line
        silent.setblocking(False)
        silent.accept()[0].close()  # the doctor's one connection
        with pytest.raises(BlockingIOError):
            silent.accept()  # and no second attempt
    finally:
        silent.close()
    silent_line, closed_line = reasons.values()
    assert "Timeout" in silent_line or "no answer within 0.5s" in silent_line  # the 0.5 s limit, not a hang
    assert "ConnectError" in closed_line
    check = doctor.check_endpoint(0.5, {"FAL_QUEUE_RUN_HOST": "no-such-host.invalid"})
    assert check.status == "warn" and "unreachable" in check.summary and check.details["reachable"] is False


def test_doctor_live_measures_the_endpoint_and_saves_the_findings(runner, fal, tmp_path):
    cache = tmp_path / "cache"
    r = invoke(runner, "doctor", "--live", "--yes", "--cache-dir", cache)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert f"--live makes {len(OUTPUT_SIZES)} paid request(s)" in out and "about $0.24" in out
    for (res, aspect), (w, h) in OUTPUT_SIZES.items():
        assert f"size {res} {aspect}: {w}x{h} (as composer assumes)" in out
    assert "unknown fields: rejected (HTTP 422 at submit" in out
    assert "unsnapped start frames: rejected (HTTP 422 at submit" in out
    assert "latency 720p 16:9 (121 frames)" in out and "spent: 6 request(s), $0.24" in out
    # the emulator agrees with composer's assumptions, and saw what was stated: 6 paid + 2 free rejections
    assert fal.submit_count() == len(OUTPUT_SIZES) and len(fal.received_for("submit")) == len(OUTPUT_SIZES) + 2
    saved = json.loads((cache / "doctor" / "live.json").read_text())
    assert f"findings saved to {cache / 'doctor' / 'live.json'}" in out
    assert {k: tuple(v["measured"]) for k, v in saved["output_sizes"].items()} == {
        f"{r_} {a}": s for (r_, a), s in OUTPUT_SIZES.items()}
    assert saved["unknown_fields"]["accepted"] is False and saved["unsnapped_start_frames"]["accepted"] is False
    assert sorted(saved["paid_requests"]) == sorted(fal.jobs) and saved["cost_usd"] == pytest.approx(0.24)
    assert len(saved["latency"]["requests"]) == 6 and saved["latency"]["median_total_s"] > 0
    ledger = SegmentCache(cache).ledger()
    assert sorted(row["request_id"] for row in ledger) == sorted(fal.jobs)
    assert SECRET not in r.output and SECRET not in (cache / "doctor" / "live.json").read_text()


def test_live_findings_report_differences_from_composers_assumptions():
    """What --live prints when fal differs from the emulator: a size to update, behaviours accepted."""
    from datetime import datetime, timezone

    def record(probe, **outcome):
        return {"probe": doctor.asdict(probe), "outcome": {"accepted": True, "paid": True, "request_id": probe.name,
                                                           "latency": {"queued_s": 0.5, "total_s": 2.0,
                                                                       "inference_s": 1.5}, **outcome},
                "test_outcome": {"accepted": True} if probe.tests else None}

    probes = {p.name: p for p in doctor.live_probes()}
    records = [record(probes["480p 16:9"], width=848, height=464, frames=9),
               record(probes["480p 1:1"], width=480, height=480, frames=17),
               {"probe": doctor.asdict(probes["720p 16:9"]), "test_outcome": None,
                "outcome": {"accepted": False, "stage": "submit", "http_status": 500, "detail": "boom"}}]
    findings = doctor._findings(records, datetime.now(UTC), {"QUEUE_URL_FORMAT": "https://q.example/"}, "x")
    lines = doctor.describe_findings(findings)
    assert "size 480p 16:9: 848x464 (composer assumes 848x480: update composer.backends.fal_catalog.OUTPUT_SIZES)" in lines
    assert "size 480p 1:1: 480x480 (as composer assumes); 17 frames for 9 requested" in lines
    assert "size 720p 16:9: not measured (boom)" in lines
    assert "unknown fields: accepted" in lines and "unsnapped start frames: accepted" in lines
    assert "spent: 2 request(s), $0.08" in lines and findings["queue_host"] == "q.example"


def test_doctor_live_asks_first_and_refuses_without_a_key(runner, fal, tmp_path, monkeypatch):
    r = invoke(runner, "doctor", "--live", "--cache-dir", tmp_path, input="n\n")
    assert r.exit_code == 1 and "Spend up to $0.24 on fal?" in r.output
    assert fal.submit_count() == 0 and not (tmp_path / "doctor").exists()
    monkeypatch.delenv("FAL_KEY")
    r = invoke(runner, "doctor", "--live", "--yes", "--cache-dir", tmp_path)
    assert r.exit_code == 1 and "needs FAL_KEY" in r.stderr and "nothing was spent" in r.stderr
    assert fal.submit_count() == 0 and len(fal.received_for("submit")) == 0
