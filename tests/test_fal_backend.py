"""FalBackend against the emulator: real fal_client over loopback HTTPS, faults injected server-side.

Tests hand the backend the emulator's environment (``FalBackend(env=...)``) rather than
patching os.environ or fal_client; uploads are the exception (fal_client's own upload
clients read the process environment), and one test keeps the os.environ path covered.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from composer.backends.base import BackendEvent, GenerateContext, file_url
from composer.backends.fal import FalBackend, probe_video
from composer.errors import BackendError, Cancelled, RequestRejected, SafetyRejected
from composer.request import GenerationRequest
from composer.testing.fixtures import (
    FAST_BACKEND_OPTIONS,
    fal_backend,
    fal_emulator,
    fal_emulator_factory,
    fal_env,
    use_fal_emulator,
)

pytestmark = pytest.mark.usefixtures("fal_client_urls_restored")

ROOT = Path(__file__).resolve().parents[1]


def small_request(**changes) -> GenerationRequest:
    body = {"prompt": "a red kite over a beach", "num_frames": 25, "resolution": "480p", "aspect_ratio": "16:9",
            **changes}
    return GenerationRequest.model_validate(body)


class Recorder:
    """A GenerateContext that remembers what the backend told it."""

    def __init__(self, **kwargs):
        self.events: list[BackendEvent] = []
        self.submitted: list[str] = []
        self.ctx = GenerateContext(label="seg007", on_event=self.events.append, on_submitted=self.submitted.append,
                                   **kwargs)

    def kinds(self, kind: str) -> list[BackendEvent]:
        return [e for e in self.events if e.kind == kind]


@pytest.fixture
def media(tmp_path) -> dict[str, Path]:
    """A keyframe PNG and a 17-frame 480p conditioning clip (the previous segment's tail)."""
    import cv2
    import imageio_ffmpeg

    y, x = np.mgrid[0:480, 0:848]
    img = np.stack([(x * 255 // 847), (y * 255 // 479), np.full_like(x, 90)], axis=-1).astype(np.uint8)
    png = tmp_path / "media" / "key.png"
    png.parent.mkdir()
    cv2.imwrite(str(png), img)
    clip = tmp_path / "media" / "tail.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=848x480:rate=24", "-frames:v", "17", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)
    return {"image": png, "video": clip}


def conditioned_request(media) -> GenerationRequest:
    return small_request(
        images=[{"image_url": file_url(media["image"]), "start_frame_num": 24, "strength": 1.0}],
        videos=[{"video_url": file_url(media["video"]), "start_frame_num": 0, "strength": 1.0}],
    )


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def canned(fal_emulator_factory):
    """An emulator that answers with a pre-rendered clip (fast)."""
    return fal_emulator_factory(canned=True)


def backend(emu, *, env: dict[str, str] | None = None, **changes) -> FalBackend:
    """A fast FalBackend pointed at ``emu`` through its injected environment."""
    return FalBackend(env=emu.env() if env is None else env, **{**FAST_BACKEND_OPTIONS, **changes})


# --------------------------------------------------------------------------- the happy paths


def test_generates_clip_with_media_as_data_uris(fal_env, fal_backend, media, tmp_path):
    emu = fal_env
    rec = Recorder()
    result = fal_backend.generate(conditioned_request(media), tmp_path / "work", rec.ctx)

    assert result.path.parent == tmp_path / "work" and result.path.exists()
    assert probe_video(result.path) == (25, 848, 480) and result.num_frames == 25  # verified, and said so
    assert result.request_id == rec.submitted[0] and rec.submitted == [result.request_id]
    assert result.cost_usd == pytest.approx(0.04)
    job = emu.job(result.request_id)
    assert result.seed == job.result["seed"]
    body = emu.submitted_bodies()[0]
    assert body["images"][0]["image_url"].startswith("data:image/png;base64,")
    assert body["videos"][0]["video_url"].startswith("data:video/mp4;base64,")
    assert body["images"][0]["start_frame_num"] == 24 and body["num_frames"] == 25
    assert [(m.field, m.source, m.sha256) for m in job.media] == [
        ("images[0].image_url", "data", sha(media["image"])),
        ("videos[0].video_url", "data", sha(media["video"])),
    ]
    assert emu.uploads == [] and emu.submit_count() == 1
    assert rec.kinds("submitted")[0].data["request_id"] == result.request_id
    assert any("Generating 25 frames" in e.message for e in rec.kinds("log"))
    assert [p.name for p in (tmp_path / "work").iterdir()] == [result.path.name]  # atomic: no temp file left


def test_large_media_are_uploaded_once(canned, media, tmp_path, monkeypatch):
    emu = use_fal_emulator(canned, monkeypatch)  # fal_client's upload clients read the process environment
    fal = backend(emu, data_uri_max_bytes=1000)  # both files are bigger: upload them
    request = conditioned_request(media)
    first = fal.generate(request, tmp_path / "a", Recorder().ctx)
    body = emu.submitted_bodies()[0]
    assert body["images"][0]["image_url"].startswith(emu.cdn_url + "/files/")
    assert body["videos"][0]["video_url"].startswith(emu.cdn_url + "/files/")
    assert sorted(u.sha256 for u in emu.uploads) == sorted([sha(media["image"]), sha(media["video"])])
    assert [m.source for m in emu.job(first.request_id).media] == ["cdn", "cdn"]

    fal.generate(request, tmp_path / "b", Recorder().ctx)  # same files: no second upload
    assert len(emu.uploads) == 2 and emu.submit_count() == 2


def test_queue_position_and_logs_become_events(fal_emulator_factory, tmp_path):
    emu = fal_emulator_factory(canned=True, latency=0.15, log_interval=0.05)
    emu.slow_queue(0.2)
    rec = Recorder()
    backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert [e.data["position"] for e in rec.kinds("queued")] == [0]
    messages = [e.message for e in rec.kinds("log")]
    assert len(messages) == len(set(messages))  # each log line once, however often it was polled
    assert sum(m.startswith("step ") for m in messages) == 3


# --------------------------------------------------------------------------- retries


def test_rate_limited_submit_is_retried_by_fal_client(canned, tmp_path):
    emu = canned
    emu.fail("submit", 429, times=2)
    rec = Recorder()
    result = backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert result.path.exists()
    assert emu.counts["submit"] == 3 and emu.submit_count() == 1  # 2 refused + 1 accepted
    assert rec.kinds("retry") == []  # fal_client handled it; we did not add our own attempts


def test_server_errors_after_submit_are_retried_without_paying_again(canned, tmp_path):
    emu = canned
    emu.fail("status", 500, times=2)
    emu.fail("result", 503, times=1)
    emu.drop("result", times=1)
    emu.drop("status", times=1)
    rec = Recorder()
    result = backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert probe_video(result.path)[0] == 25
    assert emu.submit_count() == 1 and emu.counts["submit"] == 1
    assert emu.counts["status_fault_status"] == 2 and emu.counts["status_fault_drop"] == 1
    assert emu.counts["result_fault_status"] == 1 and emu.counts["result_fault_drop"] == 1
    assert [e.data["stage"] for e in rec.kinds("retry")] == ["status", "status", "result"]
    assert rec.submitted == [result.request_id]


def test_retries_are_bounded_and_not_multiplied(canned, tmp_path):
    emu = canned
    emu.fail("status", 500, times=None)
    rec = Recorder()
    with pytest.raises(BackendError) as info:
        backend(emu, retries=2).generate(small_request(), tmp_path, rec.ctx)
    assert info.value.retryable and "HTTP 500" in str(info.value) and "seg007" in str(info.value)
    assert rec.submitted[0] in str(info.value)  # the scheduler can re-attach to it
    assert emu.counts["status"] == 3  # 1 + 2 retries: fal_client does not retry a plain 500
    assert emu.submit_count() == 1


def test_submit_server_error_is_retried(canned, tmp_path):
    emu = canned
    emu.fail("submit", 500, times=1)
    result = backend(emu).generate(small_request(), tmp_path, Recorder().ctx)
    assert result.request_id and emu.counts["submit"] == 2 and emu.submit_count() == 1


@pytest.mark.parametrize("after_accept", [True, False])
def test_dropped_submit_is_never_resent_blindly(canned, tmp_path, after_accept):
    emu = canned
    emu.drop("submit", after_accept=after_accept)
    rec = Recorder()
    with pytest.raises(BackendError) as info:
        backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert not info.value.retryable and "may have been queued" in str(info.value)
    assert emu.counts["submit"] == 1  # fal_client's own retry loop did not resend it
    assert emu.submit_count() == (1 if after_accept else 0)
    assert rec.submitted == []


# --------------------------------------------------------------------------- refusals


def test_invalid_request_is_request_rejected(canned, tmp_path):
    emu = canned
    with pytest.raises(RequestRejected) as info:
        backend(emu).generate(small_request(num_frames=50), tmp_path, Recorder().ctx)
    message = str(info.value)
    assert "num_frames" in message and "8k+1" in message and message.startswith("seg007: ")
    assert not info.value.retryable
    assert emu.counts["submit"] == 1 and emu.submit_count() == 0


def test_invalid_request_found_at_result_time(fal_emulator_factory, tmp_path):
    emu = fal_emulator_factory(canned=True, validate_on="result")
    rec = Recorder()
    with pytest.raises(RequestRejected) as info:
        backend(emu).generate(small_request(num_frames=50), tmp_path, rec.ctx)
    assert "num_frames" in str(info.value) and rec.submitted[0] in str(info.value)
    assert emu.submit_count() == 1 and rec.kinds("retry") == []


def test_safety_rejection_is_not_retried(canned, tmp_path):
    emu = canned
    emu.reject_safety(times=None)
    rec = Recorder()
    with pytest.raises(SafetyRejected) as info:
        backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert not info.value.retryable and "safety checker" in str(info.value) and "prompt" in str(info.value)
    assert emu.submit_count() == 1 and emu.counts["submit"] == 1 and rec.kinds("retry") == []


def test_missing_key_is_a_clear_error(canned, tmp_path):
    env = {k: v for k, v in canned.env().items() if k != "FAL_KEY"}
    with pytest.raises(BackendError, match="FAL_KEY is not set") as info:
        backend(canned, env=env).generate(small_request(), tmp_path, Recorder().ctx)
    assert not info.value.retryable and canned.received == []


def test_wrong_key_is_not_retried(canned, tmp_path):
    env = {**canned.env(), "FAL_KEY": "wrong-key-value"}
    with pytest.raises(BackendError, match="check FAL_KEY") as info:
        backend(canned, env=env).generate(small_request(), tmp_path, Recorder().ctx)
    assert not info.value.retryable and canned.counts["submit"] == 1


# --------------------------------------------------------------------------- downloads


def test_truncated_download_is_detected_and_fetched_again(canned, tmp_path):
    emu = canned
    emu.truncate_downloads(times=1)
    rec = Recorder()
    result = backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert probe_video(result.path)[0] == 25
    assert emu.counts["download"] == 2 and emu.submit_count() == 1
    assert rec.kinds("retry")[0].data["stage"] == "download"


@pytest.mark.parametrize("cut, words", [(False, "truncated"), (True, "does not decode")])
def test_always_truncated_download_fails(canned, tmp_path, cut, words):
    emu = canned
    emu.truncate_downloads(times=None, cut=cut)
    with pytest.raises(BackendError) as info:
        backend(emu, download_retries=1).generate(small_request(), tmp_path, Recorder().ctx)
    assert words in str(info.value) and info.value.retryable
    assert emu.counts["download"] == 2 and emu.submit_count() == 1
    assert list(tmp_path.iterdir()) == []  # no partial file left where a clip is expected


def test_wrong_frame_count_is_an_error(canned, tmp_path):
    emu = canned
    emu.canned_clip = None
    # a 33-frame clip answering a 25-frame request
    other = backend(emu).generate(small_request(num_frames=33), tmp_path / "src", Recorder().ctx)
    emu.canned_clip = other.path
    with pytest.raises(BackendError, match="33 frames, 25 were requested") as info:
        backend(emu).generate(small_request(), tmp_path / "dst", Recorder().ctx)
    assert not info.value.retryable


# --------------------------------------------------------------------------- resume, cancel, crash


def test_resume_fetches_without_a_new_submit(canned, tmp_path):
    emu = canned
    first = backend(emu).generate(small_request(), tmp_path / "a", Recorder().ctx)
    rec = Recorder(resume_request_id=first.request_id)
    again = backend(emu).generate(small_request(), tmp_path / "b", rec.ctx)
    assert again.request_id == first.request_id and rec.submitted == []
    assert emu.submit_count() == 1 and emu.job(first.request_id).result_fetches == 2
    assert probe_video(again.path)[0] == 25


def test_resume_of_unknown_request_submits_anew(canned, tmp_path):
    emu = canned
    rec = Recorder(resume_request_id="00000000-0000-0000-0000-000000000000")
    result = backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert rec.submitted == [result.request_id] and emu.submit_count() == 1
    assert any("unknown or expired" in e.message for e in rec.kinds("log"))


def test_resume_of_failed_request_submits_anew(canned, tmp_path):
    emu = canned
    emu.fail_generation(times=1)
    rec = Recorder()
    with pytest.raises(BackendError) as info:
        backend(emu, failed_resubmits=0).generate(small_request(), tmp_path, rec.ctx)
    assert info.value.retryable and "runner_server_error" in str(info.value)
    rec2 = Recorder(resume_request_id=rec.submitted[0])
    result = backend(emu).generate(small_request(), tmp_path, rec2.ctx)
    assert result.request_id != rec.submitted[0] and rec2.submitted == [result.request_id]
    assert emu.submit_count() == 2 and emu.billed_count() == 1


def test_a_request_that_failed_on_fals_side_is_bought_again_unbilled(canned, tmp_path):
    """fal bills no 5xx failure, so the backend submits again by itself, a bounded number of times."""
    emu = canned
    emu.fail_generation(times=2)
    rec = Recorder()
    result = backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert len(rec.submitted) == 3 and result.request_id == rec.submitted[-1]  # each new id journalled
    assert emu.submit_count() == 3 and emu.billed_count() == 1
    assert sum("does not bill server errors" in e.message for e in rec.kinds("log")) == 2

    emu.fail_generation(times=None)  # fails every time: the backend gives up after its resubmits
    rec = Recorder()
    with pytest.raises(BackendError, match="runner_server_error"):
        backend(emu, failed_resubmits=1).generate(small_request(), tmp_path, rec.ctx)
    assert len(rec.submitted) == 2


def test_a_rejected_request_is_not_bought_again(canned, tmp_path):
    emu = canned
    emu.fail_generation(status=422, error="Unprocessable Entity", error_type=None, times=1)
    rec = Recorder()
    with pytest.raises(BackendError):
        backend(emu).generate(small_request(), tmp_path, rec.ctx)
    assert len(rec.submitted) == 1 and emu.submit_count() == 1


def test_cancel_while_polling_cancels_on_server(canned, tmp_path):
    emu = canned
    emu.hold()
    stop = {"now": False}
    rec = Recorder(cancelled=lambda: stop["now"])
    rec.ctx.on_submitted = lambda rid: (rec.submitted.append(rid), stop.update(now=True))
    with pytest.raises(Cancelled):
        backend(emu).generate(small_request(), tmp_path, rec.ctx)
    job = emu.job(rec.submitted[0])
    assert job.cancelled and emu.counts["cancel_ok"] == 1


def test_killed_client_reattaches_to_the_same_request(canned, tmp_path):
    """A render process dies mid-request; the next one fetches the journalled id instead of paying again."""
    emu = canned
    emu.hold()
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from composer.backends.base import GenerateContext
        from composer.backends.fal import FalBackend
        from composer.request import GenerationRequest
        req = GenerationRequest(prompt="a red kite over a beach", num_frames=25, resolution="480p", aspect_ratio="16:9")
        ctx = GenerateContext(on_submitted=lambda rid: print(rid, flush=True))
        FalBackend(poll_interval=0.02).generate(req, Path(sys.argv[1]), ctx)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "dead")], cwd=ROOT,
                            env={**os.environ, **emu.env()}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        request_id = proc.stdout.readline().strip()
        assert request_id, proc.stderr.read()
        emu.wait_for_state(request_id, "IN_PROGRESS")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert emu.job(request_id).result_fetches == 0
    emu.release()
    rec = Recorder(resume_request_id=request_id)
    result = backend(emu).generate(small_request(), tmp_path / "next", rec.ctx)
    assert result.request_id == request_id and rec.submitted == []
    assert emu.submit_count() == 1


# --------------------------------------------------------------------------- the key stays secret


def test_fal_key_never_leaks(fal_emulator_factory, tmp_path, caplog, capsys):
    secret = "sk-live-0f9e8d7c6b5a:4b3a291807f6e5d4c3b2a190"
    emu = fal_emulator_factory(canned=True, key=secret)
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    rec = Recorder()

    emu.fail("submit", 429)
    emu.fail("status", 500)
    emu.drop("result")
    result = backend(emu).generate(small_request(), tmp_path / "ok", rec.ctx)  # succeeds after retries
    for fault, exc_type in [(lambda: emu.fail("status", 500, times=None), BackendError),
                            (lambda: emu.reject_safety(), SafetyRejected),
                            (lambda: emu.drop("submit"), BackendError)]:
        emu.clear_faults()
        fault()
        with pytest.raises(exc_type) as info:
            backend(emu, retries=1).generate(small_request(), tmp_path / "fail", rec.ctx)
        errors.append(info.value)
    with pytest.raises(RequestRejected) as info:
        emu.clear_faults()
        backend(emu).generate(small_request(num_frames=50), tmp_path / "bad", rec.ctx)
    errors.append(info.value)

    out, err = capsys.readouterr()
    texts = [caplog.text, out, err, repr(rec.events), json.dumps([r.__dict__ for r in emu.received], default=str)]
    texts += [f"{e!s} {e!r} {e.__cause__!s}" for e in errors]
    texts += [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()]
    assert result.path.exists() and len(errors) == 4 and caplog.text  # there was something to look at
    for text in texts:
        assert secret not in text and secret.split(":")[1] not in text


def test_concurrent_generates_share_one_backend(canned, media, tmp_path, monkeypatch):
    """The scheduler runs independent chains on threads with one backend instance."""
    from concurrent.futures import ThreadPoolExecutor

    emu = use_fal_emulator(canned, monkeypatch)  # uploads: fal_client's own clients read os.environ
    fal = backend(emu, data_uri_max_bytes=1000)
    request = conditioned_request(media)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: fal.generate(request, tmp_path / f"w{i}", Recorder().ctx), range(4)))
    assert len({r.request_id for r in results}) == 4 and emu.submit_count() == 4
    assert all(probe_video(r.path)[0] == 25 for r in results)
    assert len(emu.uploads) == 2  # each file uploaded once, though four threads wanted it at the same time


# --------------------------------------------------------------------------- connections and polling


def test_one_client_and_connection_serve_every_request(canned, tmp_path, monkeypatch):
    """The backend keeps its HTTP clients: no new SSL context or TLS handshake per segment."""
    import ssl

    import httpx

    emu = canned
    made: list[httpx.Client] = []
    contexts: list[ssl.SSLContext] = []
    real_init, real_context = httpx.Client.__init__, ssl.create_default_context

    def counting_init(self, *a, **kw):
        made.append(self)
        real_init(self, *a, **kw)

    def counting_context(*a, **kw):
        contexts.append(real_context(*a, **kw))
        return contexts[-1]

    monkeypatch.setattr(httpx.Client, "__init__", counting_init)
    monkeypatch.setattr(ssl, "create_default_context", counting_context)
    fal = backend(emu)
    results = [fal.generate(small_request(), tmp_path / f"w{i}", Recorder().ctx) for i in range(3)]
    assert len({r.request_id for r in results}) == 3 and all(r.num_frames == 25 for r in results)
    # fal_client's client (and the BackupDomainTransport's inner one) for the API, one for downloads:
    # made once for three segments, each over one kept-alive TLS connection
    assert len(made) <= 3 and emu.tls_connections == 2
    assert len(contexts) == 1  # the CA bundle loaded once, for both clients
    fal.close()
    assert all(c.is_closed for c in made)
    fal.generate(small_request(), tmp_path / "after", Recorder().ctx)  # made again, lazily, after close()
    assert emu.tls_connections == 4
    fal.close()


def test_submit_guard_holds_on_a_kept_alive_connection(canned, tmp_path):
    """A submit whose connection drops is still never resent, now that connections are reused."""
    emu = canned
    fal = backend(emu)
    fal.generate(small_request(), tmp_path / "ok", Recorder().ctx)
    emu.drop("submit", after_accept=True)
    with pytest.raises(BackendError, match="may have been queued") as info:
        fal.generate(small_request(seed=9), tmp_path / "lost", Recorder().ctx)
    assert not info.value.retryable and emu.counts["submit"] == 2 and emu.submit_count() == 2
    fal.generate(small_request(seed=10), tmp_path / "next", Recorder().ctx)  # the client is still usable
    assert emu.submit_count() == 3
    fal.close()


def test_default_poll_interval_is_a_tenth_of_a_second(canned, tmp_path, monkeypatch):
    """Every poll brings the logs too; in a chain the wait after fal finishes is on the critical path."""
    import inspect

    import composer.backends.fal as fal_module

    assert inspect.signature(FalBackend).parameters["poll_interval"].default == 0.1
    waits: list[float] = []
    real_sleep = fal_module._Run.sleep
    monkeypatch.setattr(fal_module._Run, "sleep",
                        lambda run, seconds: (waits.append(seconds), real_sleep(run, seconds)))
    canned.latency = 0.6
    fal = FalBackend(base_delay=0.01, env=canned.env())
    fal.generate(small_request(), tmp_path, Recorder().ctx)
    fal.close()
    assert waits and set(waits) == {0.1}  # between status polls, nothing else slept
    assert canned.counts["status"] >= 3


def test_result_is_fetched_without_another_status_poll(canned, tmp_path):
    """Once a poll said COMPLETED, the result is fetched straight away (fal_client's handle.get()
    would poll the status once more first)."""
    emu = canned
    fal = backend(emu)
    result = fal.generate(small_request(), tmp_path, Recorder().ctx)
    fal.close()
    mine = [r for r in emu.received if r.request_id == result.request_id or result.request_id in r.path]
    stages = [(r.stage, r.status) for r in mine if r.stage in ("status", "result")]
    assert stages[-2:] == [("status", 200), ("result", 200)]
    assert sum(1 for s in stages if s == ("status", 200)) == 1  # 200: COMPLETED (202 while in flight)


# --------------------------------------------------------------------------- injection and fal_client's insides


def test_injected_transport_carries_every_call_and_stays_open(canned, tmp_path):
    """``FalBackend(transport=...)``: the API client (submit guard on top) and the download client use it."""
    import ssl

    import httpx

    class Recording(httpx.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.HTTPTransport(verify=ssl.create_default_context(cafile=canned.env()["SSL_CERT_FILE"]))
            self.seen: list[tuple[str, str]] = []
            self.closed = False

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.seen.append((request.method, request.url.host))
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.closed = True
            self.inner.close()

    transport = Recording()
    fal = backend(canned, transport=transport)
    result = fal.generate(small_request(), tmp_path, Recorder().ctx)
    fal.close()
    assert probe_video(result.path)[0] == 25 and canned.submit_count() == 1
    methods = [m for m, _ in transport.seen]
    assert methods[0] == "POST" and methods.count("POST") == 1  # the one submit
    assert len(transport.seen) == len(canned.received)  # every call the emulator saw came through it
    assert canned.counts["download"] == 1 and not transport.closed  # the caller owns it
    transport.close()


def test_fal_clients_http_client_is_where_composer_replaces_it():
    """If a fal_client release moves SyncClient._client, the submit guard would silently vanish:
    this fails with the message the backend itself gives in that case."""
    import fal_client

    from composer.backends.fal_transport import _GuardedSyncClient, _SubmitGuard, check_fal_client_layout

    check_fal_client_layout(fal_client.SyncClient)  # the pinned fal_client: as composer expects
    client = _GuardedSyncClient(key="k", guarded_paths=("/x",))
    layer, found = client._client, []
    for _ in range(6):  # httpx.Client → fal's BackupDomainTransport → its httpx.Client → our guard
        layer = getattr(layer, "_transport", None) or getattr(layer, "_client", None)
        found.append(type(layer).__name__)
        if isinstance(layer, _SubmitGuard):
            break
    assert isinstance(layer, _SubmitGuard), f"fal_client no longer sends through composer's submit guard: {found}"
    client.close()

    class Moved:
        @property
        def _client(self):  # a plain property: what an incompatible release might do
            return None

    with pytest.raises(BackendError, match=r"Moved\._client is no longer a functools\.cached_property") as info:
        check_fal_client_layout(Moved)
    assert "fal-client==1.0.3" in str(info.value) and not info.value.retryable


def test_fal_prices_and_sizes_come_from_the_backend():
    fal = FalBackend()
    assert fal.paid and fal.estimate_cost(small_request()) == pytest.approx(0.04)
    assert fal.estimate_cost(small_request(enable_detail_pass=True)) == pytest.approx(0.08)
    assert fal.output_size("480p", "16:9") == (848, 480) and fal.output_size("720p", "auto") == (1280, 720)


def test_polls_every_tenth_of_a_second_until_many_requests_share_the_rate():
    b = FalBackend()
    assert b.poll_interval == 0.1  # fal_client's own default: a chain waits on this after fal finishes
    assert b.poll_every() == 0.1
    b._waiting = 16  # 16 requests at 0.1 s: exactly the 160 polls a second allowed
    assert b.poll_every() == pytest.approx(0.1)
    b._waiting = 40
    assert b.poll_every() == pytest.approx(0.25)  # 40 in flight: the rate of the old fixed 0.25 s
    assert FalBackend(max_poll_rate=0).poll_every() == 0.1  # no bound
