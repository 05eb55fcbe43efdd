"""The fal emulator speaks fal_client 1.0.3's protocol: real fal_client, loopback HTTPS, no mocks."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import fal_client
import httpx
import pytest

from composer.backends.fal import probe_video
from composer.request import ENDPOINT_ID
from composer.testing.fal_emulator import FalEmulator
from composer.testing.fixtures import fal_emulator, fal_emulator_factory, fal_env, use_fal_emulator

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"prompt": "a lighthouse at dusk", "num_frames": 25, "resolution": "480p", "aspect_ratio": "16:9"}


def _client(emu: FalEmulator, key: str | None = None) -> fal_client.SyncClient:
    return fal_client.SyncClient(key=key or emu.key, default_timeout=20)


def _wait_done(handle, timeout: float = 20.0) -> list:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = handle.status(with_logs=True)
        seen.append(status)
        if isinstance(status, fal_client.Completed):
            return seen
        time.sleep(0.02)
    raise AssertionError(f"not completed: {seen[-1:]}")


def test_queue_round_trip_with_fal_client(fal_env):
    emu = fal_env
    client = _client(emu)
    handle = client.submit(ENDPOINT_ID, SMALL)
    # status/result URLs drop the app's sub-path, like fal's
    assert handle.status_url == f"https://{emu.host}/fal-ai/ltx-video-13b-distilled/requests/{handle.request_id}/status"
    statuses = _wait_done(handle)
    done = statuses[-1]
    assert done.error is None and "inference_time" in done.metrics
    assert any("Generating 25 frames at 848x480" in log["message"] for log in done.logs)
    result = client.result(ENDPOINT_ID, handle.request_id)  # fal_client.result: re-attach by id
    assert result["prompt"] == SMALL["prompt"] and isinstance(result["seed"], int)
    assert result["video"]["url"].startswith(emu.cdn_url + "/files/")

    with httpx.Client(verify=emu.tls.client_context()) as http:
        video = http.get(result["video"]["url"])
    assert video.status_code == 200 and int(video.headers["content-length"]) == result["video"]["file_size"]
    path = Path(emu._root) / "check.mp4"
    path.write_bytes(video.content)
    assert probe_video(path) == (25, 848, 480)

    assert emu.submit_count(ENDPOINT_ID) == 1
    assert emu.counts["result_ok"] == 1 and emu.counts["download_ok"] == 1
    assert emu.submitted_bodies() == [SMALL]
    assert emu.job(handle.request_id).status_polls >= 2


def test_queue_positions_and_hold(fal_emulator_factory, monkeypatch):
    emu = use_fal_emulator(fal_emulator_factory(workers=1, canned=True), monkeypatch)
    client = _client(emu)
    emu.hold(times=1)
    first = client.submit(ENDPOINT_ID, SMALL)
    emu.wait_for_state(first.request_id, "IN_PROGRESS")
    second = client.submit(ENDPOINT_ID, SMALL)
    status = second.status()
    assert isinstance(status, fal_client.Queued) and status.position == 0
    held = first.status(with_logs=True)
    assert isinstance(held, fal_client.InProgress) and any("held" in log["message"] for log in held.logs)
    time.sleep(0.2)
    assert isinstance(first.status(), fal_client.InProgress)  # stays there until released
    emu.release(first.request_id)
    assert _wait_done(first)[-1].error is None
    assert _wait_done(second)[-1].error is None


@pytest.mark.parametrize(
    "change, loc, type_, words",
    [
        ({"num_frames": 50}, ["body", "num_frames"], "value_error", "8k+1"),
        ({"num_frames": 2000}, ["body", "num_frames"], "less_than_equal", "1441"),
        ({"colour_grade": "teal"}, ["body", "colour_grade"], "extra_forbidden", "not permitted"),
        ({"images": [{"image_url": "data:image/png;base64,AAAA", "start_frame_num": 4}]},
         ["body", "images", 0, "start_frame_num"], "multiple_of", "multiple of 8"),
        ({"images": [{"image_url": "https://example.com/a.png"}]},
         ["body", "images", 0, "image_url"], "file_download_error", "Could not download"),
    ],
)
def test_invalid_input_is_422_with_field_errors(fal_env, change, loc, type_, words):
    emu = fal_env
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        _client(emu).submit(ENDPOINT_ID, {**SMALL, **change})
    assert info.value.status_code == 422
    detail = info.value.response.json()["detail"]
    assert any(d["loc"] == loc and d["type"] == type_ and words in d["msg"] for d in detail), detail
    assert emu.submit_count() == 0 and emu.counts["submit_rejected"] == 1


def test_validation_at_result_time(fal_emulator_factory, monkeypatch):
    emu = use_fal_emulator(fal_emulator_factory(validate_on="result", canned=True), monkeypatch)
    client = _client(emu)
    handle = client.submit(ENDPOINT_ID, {**SMALL, "num_frames": 50})
    done = _wait_done(handle)[-1]
    assert done.error == "Unprocessable Entity"
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        handle.get()
    assert info.value.status_code == 422
    assert info.value.response.json()["detail"][0]["loc"] == ["body", "num_frames"]
    assert emu.submit_count() == 1


def test_authorization_is_required(fal_env):
    emu = fal_env
    with httpx.Client(verify=emu.tls.client_context()) as http:
        anonymous = http.post(f"{emu.base_url}/{ENDPOINT_ID}", json=SMALL)
    assert anonymous.status_code == 401
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        _client(emu, key="not-the-key").submit(ENDPOINT_ID, SMALL)
    assert info.value.status_code == 401
    assert emu.submit_count() == 0
    submits = emu.received_for("submit")
    assert [r.authorized for r in submits] == [False, False]
    recorded = json.dumps([r.__dict__ for r in emu.received], default=str)
    assert "not-the-key" not in recorded and emu.key not in recorded


def test_content_policy_rejection_looks_like_fal(fal_env):
    emu = fal_env
    emu.reject_safety()
    handle = _client(emu).submit(ENDPOINT_ID, SMALL)
    done = _wait_done(handle)[-1]
    assert done.error_type == "content_policy_violation"
    with pytest.raises(fal_client.FalClientHTTPError) as info:
        handle.get()
    exc = info.value
    assert exc.status_code == 422 and exc.error_type == "content_policy_violation"
    assert exc.response.headers["x-fal-error-type"] == "content_policy_violation"
    assert exc.response.json()["detail"][0]["type"] == "content_policy_violation"


def test_upload_file_v3_and_storage_fallback(fal_env, tmp_path):
    emu = fal_env
    data = os.urandom(3000)
    src = tmp_path / "key.png"
    src.write_bytes(data)
    client = _client(emu)
    url = client.upload_file(src)
    assert url.startswith(emu.cdn_url + "/files/") and url.endswith("key.png")
    assert emu.uploads[-1].via == "v3" and emu.uploads[-1].sha256 == hashlib.sha256(data).hexdigest()
    with httpx.Client(verify=emu.tls.client_context()) as http:
        assert http.get(url).content == data

    emu.fail("upload", 500)  # the v3 CDN fails: fal_client falls back to signed-URL storage
    url2 = client.upload_file(src)
    assert emu.uploads[-1].via == "storage" and url2 != url
    assert emu.counts["upload_fault_status"] == 1 and emu.counts["upload_ok"] == 2

    # an uploaded file is valid conditioning media; anything off the emulator's CDN is not
    handle = client.submit(ENDPOINT_ID, {**SMALL, "images": [{"image_url": url2}]})
    media = emu.job(handle.request_id).media
    assert [(m.field, m.source, m.sha256) for m in media] == [
        ("images[0].image_url", "cdn", hashlib.sha256(data).hexdigest())]


def test_sync_run_and_cancel(fal_emulator_factory, monkeypatch):
    emu = use_fal_emulator(fal_emulator_factory(canned=True), monkeypatch)
    client = _client(emu)
    result = client.run(ENDPOINT_ID, SMALL)
    assert result["video"]["url"].startswith(emu.cdn_url) and emu.counts["run"] == 1
    assert emu.submit_count() == 0

    emu.hold()
    handle = client.submit(ENDPOINT_ID, SMALL)
    emu.wait_for_state(handle.request_id, "IN_PROGRESS")
    handle.cancel()
    done = handle.status()
    assert isinstance(done, fal_client.Completed) and done.error_type == "client_cancelled"
    assert emu.job(handle.request_id).cancelled


def test_data_uri_media_are_resolved(fal_env):
    emu = fal_env
    png = b"\x89PNG\r\n\x1a\n" + b"x" * 64
    uri = "data:image/png;base64," + base64.b64encode(png).decode()
    handle = _client(emu).submit(ENDPOINT_ID, {**SMALL, "images": [{"image_url": uri, "start_frame_num": 8}]})
    (ref,) = emu.job(handle.request_id).media
    assert ref.source == "data" and ref.size == len(png) and Path(ref.path).read_bytes() == png


def test_subprocess_client_uses_env(fal_emulator_factory):
    """The plain route: a fresh process, fal_client configured only by env() at import."""
    emu = fal_emulator_factory(canned=True)
    script = textwrap.dedent(f"""
        import fal_client
        result = fal_client.subscribe({ENDPOINT_ID!r}, arguments={SMALL!r}, interval=0.02)
        print(result["video"]["url"])
    """)
    env = {**os.environ, **emu.env()}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(emu.cdn_url + "/files/")
    assert emu.submit_count() == 1


def test_command_line_emulator_and_restart_with_state(tmp_path, monkeypatch):
    """``python -m composer.testing.fal_emulator`` prints env lines; a state dir survives a restart."""
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "composer.testing.fal_emulator", "--canned", "--latency", "0.05",
         "--state-dir", str(state)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        env = {}
        for _ in range(7):
            line = proc.stdout.readline()
            if line.startswith("export "):
                k, _, v = line[len("export "):].strip().partition("=")
                env[k] = v
        assert set(env) >= {"FAL_RUN_HOST", "FAL_QUEUE_RUN_HOST", "FAL_KEY", "SSL_CERT_FILE",
                            "COMPOSER_FAL_REST_URL", "COMPOSER_FAL_CDN_URL"}
        import fal_client.client as fc

        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.setattr(fc, "QUEUE_URL_FORMAT", f"https://{env['FAL_QUEUE_RUN_HOST']}/")
        client = fal_client.SyncClient(key=env["FAL_KEY"])
        handle = client.submit(ENDPOINT_ID, SMALL)
        assert _wait_done(handle)[-1].error is None

        # steering an emulator in another process: faults and stats over its control endpoints
        base = f"https://{env['FAL_QUEUE_RUN_HOST']}/_emulator"
        with httpx.Client(headers={"Authorization": f"Key {env['FAL_KEY']}"}) as http:
            assert http.post(f"{base}/faults", json={"kind": "safety"}).status_code == 200
            assert http.post(f"{base}/faults", json={"stage": "status", "status": 500}).status_code == 200
            assert http.post(f"{base}/faults", json={"stage": "nowhere"}).status_code == 422
            rejected = client.submit(ENDPOINT_ID, SMALL)
            with pytest.raises(fal_client.FalClientHTTPError):  # the injected 500 (fal_client does not retry it)
                rejected.status()
            assert _wait_done(rejected)[-1].error_type == "content_policy_violation"
            stats = http.get(f"{base}/stats").json()
        assert stats["counts"]["status_fault_status"] == 1 and sum(stats["submits"].values()) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0

    # The same state dir: same port, same certificate, the old request id still answers.
    with FalEmulator(state_dir=state) as again:
        assert again.host == env["FAL_QUEUE_RUN_HOST"]
        result = fal_client.SyncClient(key=env["FAL_KEY"]).result(ENDPOINT_ID, handle.request_id)
        assert result["video"]["url"].startswith(again.cdn_url)
        assert again.submit_count() == 0


def test_unfinished_job_resumes_after_emulator_restart(tmp_path, monkeypatch):
    state = tmp_path / "state"
    emu = FalEmulator(state_dir=state, canned=True).start()
    try:
        use_fal_emulator(emu, monkeypatch)
        emu.hold()
        handle = _client(emu).submit(ENDPOINT_ID, SMALL)
        emu.wait_for_state(handle.request_id, "IN_PROGRESS")
    finally:
        emu.stop()
    with FalEmulator(state_dir=state, canned=True) as again:
        assert again.port == emu.port
        assert _wait_done(_client(again).get_handle(ENDPOINT_ID, handle.request_id))[-1].error is None
        assert again.submit_count() == 0


def test_renderer_gets_the_request_with_local_media(fal_emulator_factory, monkeypatch, tmp_path):
    """What the emulator hands its renderer (PreviewBackend by default): the request, media as file:// URLs."""
    from composer.backends.base import local_path
    from composer.testing.fal.generation import _render_testsrc

    seen = []

    def renderer(request, workdir):
        seen.append(request)
        return _render_testsrc(request, workdir)

    emu = use_fal_emulator(fal_emulator_factory(renderer=renderer, drift=0.5), monkeypatch)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(100)
    uploaded = tmp_path / "tail.mp4"
    uploaded.write_bytes(os.urandom(500))
    client = _client(emu)
    video_url = client.upload_file(uploaded)
    image_uri = "data:image/png;base64," + base64.b64encode(png).decode()
    handle = client.submit(ENDPOINT_ID, {**SMALL, "seed": 7, "images": [{"image_url": image_uri, "start_frame_num": 16}],
                                         "videos": [{"video_url": video_url, "strength": 0.5}]})
    assert _wait_done(handle)[-1].error is None
    (request,) = seen
    assert local_path(request.images[0].image_url).read_bytes() == png
    assert local_path(request.videos[0].video_url).read_bytes() == uploaded.read_bytes()
    assert request.images[0].start_frame_num == 16 and request.videos[0].strength == 0.5
    assert request.seed == 7 and request.num_frames == 25
    assert handle.get()["seed"] == 7 and emu.renderer_used == "renderer"
