"""``composer doctor``: is this machine ready to render, and what does fal really do?

Offline checks (free, a few seconds at most):

- ``check_ffmpeg`` — which ffmpeg binary composer runs, its version, and that
  libx264 actually encodes (a one-frame test encode).
- ``check_cache`` — where the segment cache is, that it is writable, its size,
  what the ledger says was paid, and the free disk space.
- ``check_key`` — whether ``FAL_KEY`` is set. Never its value: only "FAL_KEY is
  set" / "FAL_KEY is not set" leaves this module.
- ``check_endpoint`` — whether fal's queue host answers: one free status request
  for a made-up request id (no generation, no charge), with a short timeout and a
  hard deadline (a thread we stop waiting for), so an offline machine is told
  "unreachable" within a few seconds, even when name resolution hangs.

Live measurements (``run_live``, ``composer doctor --live``): a handful of paid
requests (``live_probes()``, each at the endpoint's per-request price, stated
before anything is spent) that measure what offline work can only assume:

- the output pixel size for every resolution and aspect ratio (the planner,
  the preview backend and the emulator all take theirs from
  ``composer.backends.fal_catalog.OUTPUT_SIZES``);
- whether the endpoint rejects unknown fields (composer's ``GenerationRequest``
  forbids them, so the emulator rejects them with a 422);
- whether it accepts an image ``start_frame_num`` that is not a multiple of 8
  (composer snaps them to LTX's 8-frame grid, and the emulator rejects them);
- the real latency: time in the queue, time to completion, for a 9-frame clip
  and for a default 121-frame 720p segment.

The findings are printed and saved as JSON in the cache (``doctor/live.json``).

The bridged probe (``run_bridged_probe``, ``composer doctor --live --bridged``): a
tiny bridged film through the real render path (two 33-frame anchors pinned by
keyframes and one bridge conditioned on both, three paid requests), measuring how
closely the bridge keeps each anchor's frames where they condition it, and saving
a contact sheet (``doctor/bridged-contact-sheet.png``) for a person to judge; fal's
server code is not public, so this is what tells whether it honours ``videos[1]``
at a late start the way LTX's reference pipeline does.
The emulator (``composer.testing.fal_emulator``) is kept consistent with them:
its output sizes come from ``OUTPUT_SIZES`` and its input validation from
``GenerationRequest``; when a live run reports a difference, change those (the
one place each is defined) so the planner, the preview and the emulator follow
the real endpoint, and note the date of the measurement beside them.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable

from ..atomic import atomic_write_text
from ..errors import ComposerError
from ..backends.fal_catalog import OUTPUT_SIZES, request_cost
from ..request import ENDPOINT_ID

__all__ = [
    "Check",
    "LiveProbe",
    "check_cache",
    "check_endpoint",
    "check_ffmpeg",
    "check_key",
    "live_cost",
    "live_probes",
    "run_bridged_probe",
    "run_checks",
    "run_live",
    "save_findings",
]

# A request id no one has: asking for its status is free and proves the queue answers.
from ..backends.fal_transport import PROBE_REQUEST_ID  # noqa: F401 - doctor has always exported it
DEFAULT_TIMEOUT_S = 3.0
LIVE_POLL_INTERVAL_S = 0.5
LIVE_MAX_WAIT_S = 900.0
LIVE_WORKERS = 3
UNKNOWN_FIELD = "composer_doctor_unknown_field"
UNSNAPPED_FRAME = 4  # not a multiple of 8
PROBE_PROMPT = "A calm studio test chart of soft coloured bars, the camera slowly pans right"


@dataclass
class Check:
    """One line of the doctor's report. ``status`` is ``ok``, ``warn`` (works, with a caveat) or ``fail``."""

    name: str
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def line(self) -> str:
        return f"{self.status:<5} {self.name}: {self.summary}"


# --------------------------------------------------------------------------- offline checks


def check_ffmpeg(timeout: float = 30.0) -> Check:
    """Which ffmpeg, its version, and whether libx264 encodes one frame."""
    from ..media import ffmpeg_exe

    try:
        exe = ffmpeg_exe()
    except ComposerError as exc:
        return Check("ffmpeg", "fail", str(exc))
    if os.environ.get("COMPOSER_FFMPEG"):
        source = "$COMPOSER_FFMPEG"
    elif shutil.which("ffmpeg") == exe:
        source = "ffmpeg on PATH"
    else:
        source = "imageio-ffmpeg's binary"
    details: dict[str, Any] = {"path": exe, "source": source}
    try:
        run = subprocess.run([exe, "-hide_banner", "-version"], capture_output=True, text=True, errors="replace",
                             timeout=timeout)
        first = (run.stdout.splitlines() or [""])[0]
        version = first.split(" Copyright")[0].strip() or "unknown version"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("ffmpeg", "fail", f"{exe} ({source}) does not run: {exc}", details)
    details["version"] = version
    try:
        enc = subprocess.run(
            [exe, "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=64x64:r=1",
             "-frames:v", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "null", "-"],
            capture_output=True, text=True, errors="replace", timeout=timeout)
        encodes = enc.returncode == 0
        why = (enc.stderr.strip().splitlines() or [f"exit status {enc.returncode}"])[-1]
    except (OSError, subprocess.TimeoutExpired) as exc:
        encodes, why = False, str(exc)
    details["libx264"] = encodes
    if not encodes:
        return Check("ffmpeg", "fail", f"{exe} ({source}), {version}: libx264 does not encode ({why}); "
                                       "set COMPOSER_FFMPEG to an ffmpeg built with libx264", details)
    return Check("ffmpeg", "ok", f"{exe} ({source}), {version}; libx264 encodes", details)


def check_cache(root: str | Path | None = None) -> Check:
    """The cache's path, whether it is writable, how big it is and what the ledger says was paid."""
    from ..rendering.cache import SegmentCache, default_cache_dir

    from ..store import is_url

    path: str | Path = root if isinstance(root, str) and is_url(root) else (
        Path(root).expanduser() if root else default_cache_dir())
    try:
        cache = SegmentCache(path, writable=True)
        probe = cache.root / "tmp" / f".doctor-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except (ComposerError, OSError) as exc:
        return Check("cache", "fail", f"{path} is not writable: {exc}", {"path": str(path), "writable": False})
    info = cache.info()
    free = shutil.disk_usage(cache.root).free
    details = {"path": str(cache.root), "writable": True, "segments": info["segments"], "bytes": info["bytes"],
               "in_flight_requests": info["in_flight_requests"], "paid_requests": info["paid_requests"],
               "paid_usd": info["paid_usd"], "free_bytes": free}
    summary = (f"{cache.url} (writable; {info['segments']} segment(s), {info['bytes'] / 1e6:.1f} MB; "
               f"ledger: {info['paid_requests']} paid request(s), ${info['paid_usd']:.2f}; "
               f"{free / 1e9:.1f} GB free)")
    if info["in_flight_requests"]:
        summary += f"; {info['in_flight_requests']} request(s) in flight, fetched by the next render"
    return Check("cache", "warn" if free < 1e9 else "ok", summary + ("; under 1 GB free" if free < 1e9 else ""),
                 details)


def check_key(environ: dict[str, str] | None = None) -> Check:
    """Whether FAL_KEY is set (never its value)."""
    env = os.environ if environ is None else environ
    if env.get("FAL_KEY", "").strip():
        return Check("fal key", "ok", "FAL_KEY is set", {"set": True})
    return Check("fal key", "warn", "FAL_KEY is not set (the preview backend needs none; --backend fal does: "
                                    "https://fal.ai/dashboard/keys)", {"set": False})


def _host_of(url: str) -> str:
    import httpx

    u = httpx.URL(url)
    return f"{u.host}:{u.port}" if u.port else u.host


def check_endpoint(timeout: float = DEFAULT_TIMEOUT_S, environ: dict[str, str] | None = None) -> Check:
    """Whether fal's queue host answers a free status request, within about ``timeout`` seconds."""
    from ..backends.fal import fal_urls
    from ..backends.fal_transport import probe_queue

    env = os.environ if environ is None else environ
    queue = fal_urls(dict(env))["QUEUE_URL_FORMAT"]
    host = _host_of(queue)
    key = env.get("FAL_KEY", "").strip()
    answer = probe_queue(ENDPOINT_ID, timeout, env)
    elapsed = answer["seconds"]
    details: dict[str, Any] = {"host": host, "seconds": round(elapsed, 3)}

    def redact(text: str) -> str:
        return text.replace(key, "[FAL_KEY]") if key else text

    if "status" not in answer:
        exc = answer.get("error")
        if exc is None:
            why = f"no answer within {timeout:g}s"
        else:
            text = redact(str(exc)).strip().splitlines()[0][:160] if str(exc).strip() else ""
            why = f"{type(exc).__name__}" + (f": {text}" if text else "")
        details.update(reachable=False, error=why)
        return Check("fal endpoint", "warn",
                     f"{host} is unreachable ({why}; gave up after {elapsed:.1f}s): no network, a firewall, or "
                     "a proxy in the way; --backend fal will not work from here", details)
    code = answer["status"]
    details.update(reachable=True, http_status=code)
    took = f"{elapsed * 1000:.0f} ms"
    if code in (401, 403):
        if key:
            details["key_accepted"] = False
            return Check("fal endpoint", "fail", f"{host} answers ({took}), but refused FAL_KEY (HTTP {code}): "
                                                 "check the key at https://fal.ai/dashboard/keys", details)
        return Check("fal endpoint", "ok", f"{host} answers ({took}; HTTP {code} without a key)", details)
    if key:
        details["key_accepted"] = True
    note = "; the key was not refused" if key else ""
    return Check("fal endpoint", "ok", f"{host} answers ({took}; HTTP {code} for a made-up request id{note})",
                 details)


def run_checks(cache_dir: str | Path | None = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> list[Check]:
    """Every offline check, in the order the report prints them."""
    return [check_ffmpeg(), check_cache(cache_dir), check_key(), check_endpoint(timeout)]


# --------------------------------------------------------------------------- live measurements


@dataclass(frozen=True)
class LiveProbe:
    """One paid request ``--live`` makes; ``tests`` names a behaviour it also probes."""

    resolution: str
    aspect_ratio: str
    num_frames: int = 9
    tests: str | None = None  # "unknown_fields" | "unsnapped_start_frames" | None

    @property
    def name(self) -> str:
        return f"{self.resolution} {self.aspect_ratio}"

    def body(self, *, with_test: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": PROBE_PROMPT, "resolution": self.resolution, "aspect_ratio": self.aspect_ratio,
            "num_frames": self.num_frames, "frame_rate": 24, "seed": 1, "enable_safety_checker": True,
        }
        if with_test and self.tests == "unknown_fields":
            body[UNKNOWN_FIELD] = True
        if with_test and self.tests == "unsnapped_start_frames":
            body["images"] = [{"image_url": _probe_image_data_uri(), "start_frame_num": UNSNAPPED_FRAME,
                               "strength": 1.0}]
        return body


def live_probes() -> list[LiveProbe]:
    """One request per (resolution, aspect) in OUTPUT_SIZES; two of them also test a behaviour,
    and 720p 16:9 is a default segment (121 frames) so its latency is what a render sees.
    A probe whose test is rejected (free) is sent again without it, so the paid count stays one each."""
    probes = []
    for resolution, aspect in sorted(OUTPUT_SIZES):
        tests = {("480p", "16:9"): "unknown_fields", ("480p", "1:1"): "unsnapped_start_frames"}.get((resolution, aspect))
        frames = 121 if (resolution, aspect) == ("720p", "16:9") else 9
        probes.append(LiveProbe(resolution, aspect, frames, tests))
    return probes


def live_cost(probes: Iterable[LiveProbe] | None = None) -> float:
    """The most ``run_live`` can spend: one paid request per probe (rejected submits are free)."""
    return round(sum(request_cost(False) for _ in (probes if probes is not None else live_probes())), 6)


def _probe_image_data_uri() -> str:
    import cv2
    import numpy as np

    y, x = np.mgrid[0:64, 0:64]
    img = np.stack([x * 4, y * 4, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    ok, png = cv2.imencode(".png", img)
    if not ok:  # pragma: no cover
        raise ComposerError("cannot encode the probe image")
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()


class _Prober:
    """Submits raw bodies (bypassing GenerationRequest on purpose) and measures what comes back."""

    def __init__(self, key: str, workdir: Path, poll_interval: float, max_wait: float):
        import httpx

        import fal_client.client as fc

        from ..backends.fal import _GuardedSyncClient, configure_fal_client

        configure_fal_client()
        submit_path = httpx.URL(fc.QUEUE_URL_FORMAT + ENDPOINT_ID).path
        self._key = key
        self.client = _GuardedSyncClient(key=key, default_timeout=120.0, guarded_paths=(submit_path,))
        self.workdir = workdir
        self.poll_interval = poll_interval
        self.max_wait = max_wait

    def redact(self, text: str) -> str:
        return text.replace(self._key, "[FAL_KEY]") if self._key else text

    def close(self) -> None:
        self.client.close()

    def send(self, body: dict[str, Any]) -> dict[str, Any]:
        """Submit ``body``, wait, download and measure; never raises for an answer fal gives."""
        import fal_client
        import httpx

        from ..backends.fal import SubmitOutcomeUnknown, _detail

        out: dict[str, Any] = {"accepted": False}
        t0 = time.monotonic()
        try:
            handle = self.client.submit(ENDPOINT_ID, body)
        except fal_client.FalClientHTTPError as exc:
            text, _ = _detail(exc)
            out.update(stage="submit", http_status=exc.status_code, detail=self.redact(text)[:500])
            return out
        except SubmitOutcomeUnknown as exc:
            out.update(stage="submit", error=f"{exc}; it may have been queued (check https://fal.ai/dashboard/requests)")
            return out
        except Exception as exc:  # noqa: BLE001 — a probe records any failure; raising would lose the other probes' paid results
            out.update(stage="submit", error=self.redact(f"{type(exc).__name__}: {exc}")[:300])
            return out
        out.update(accepted=True, request_id=handle.request_id)
        started_at = None
        status = None
        while True:
            try:
                status = handle.status(with_logs=False)
            except Exception as exc:  # noqa: BLE001 — as for submit: the paid request's record must survive any failure
                out.update(stage="status", error=self.redact(f"{type(exc).__name__}: {exc}")[:300])
                return out
            now = time.monotonic()
            if started_at is None and not isinstance(status, fal_client.Queued):
                started_at = now
            if isinstance(status, fal_client.Completed):
                break
            if now - t0 > self.max_wait:
                out.update(stage="status", error=f"not finished after {self.max_wait:.0f}s")
                return out
            time.sleep(self.poll_interval)
        done = time.monotonic()
        out["latency"] = {
            "queued_s": round((started_at or done) - t0, 3),
            "total_s": round(done - t0, 3),
            "inference_s": (status.metrics or {}).get("inference_time"),
        }
        try:
            result = handle.get()
        except fal_client.FalClientHTTPError as exc:
            text, _ = _detail(exc)
            out.update(stage="result", http_status=exc.status_code, detail=self.redact(text)[:500],
                       error_type=status.error_type, paid=False)
            if exc.status_code == 422:
                out["accepted"] = False  # validated late: rejected all the same
            return out
        if status.error:
            out.update(stage="result", error=self.redact(str(status.error))[:300], error_type=status.error_type,
                       paid=False)
            return out
        out["paid"] = True
        video = result.get("video") if isinstance(result, dict) else None
        url = video.get("url") if isinstance(video, dict) else None
        if not url:
            out.update(stage="result", error="the result has no video URL")
            return out
        try:
            out.update(self._measure(url, handle.request_id))
        except (httpx.HTTPError, OSError, ComposerError) as exc:  # download, disk, or ffprobe (MediaError)
            out.update(stage="download", error=self.redact(f"{type(exc).__name__}: {exc}")[:300])
        return out

    def _measure(self, url: str, request_id: str) -> dict[str, Any]:
        import httpx

        from ..media import probe

        dest = self.workdir / f"{request_id}.mp4"
        t0 = time.monotonic()
        # No Authorization header: result URLs are public CDN links and the key stays with fal's API.
        with httpx.Client(timeout=httpx.Timeout(120.0, connect=30.0), follow_redirects=True) as http, \
                http.stream("GET", url) as response:
            response.raise_for_status()
            with open(dest, "wb") as f:
                for chunk in response.iter_bytes():
                    f.write(chunk)
        info = probe(dest)
        return {"width": info.width, "height": info.height, "frames": info.num_frames,
                "fps": float(info.fps), "bytes": dest.stat().st_size,
                "download_s": round(time.monotonic() - t0, 3)}


def run_live(
    *,
    cache_dir: str | Path | None = None,
    probes: list[LiveProbe] | None = None,
    poll_interval: float | None = None,
    max_wait: float = LIVE_MAX_WAIT_S,
    workers: int = LIVE_WORKERS,
    on_result: Callable[[LiveProbe, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Make the live probes' paid requests and return the findings (see the module docstring).

    Refuses without ``FAL_KEY``. Each accepted request is written to the cache's cost ledger.
    """
    from .. import __version__
    from ..backends.fal import fal_urls
    from ..rendering.cache import SegmentCache

    key = os.environ.get("FAL_KEY", "").strip()
    if not key:
        raise ComposerError("doctor --live spends real requests and needs FAL_KEY: export your fal API key "
                            "(https://fal.ai/dashboard/keys); nothing was spent")
    probes = list(probes if probes is not None else live_probes())
    poll = LIVE_POLL_INTERVAL_S if poll_interval is None else poll_interval
    cache = SegmentCache(cache_dir)
    workdir = Path(tempfile.mkdtemp(prefix="doctor-live-", dir=cache.root / "tmp"))
    prober = _Prober(key, workdir, poll, max_wait)
    lock = threading.Lock()

    def one(probe: LiveProbe) -> dict[str, Any]:
        tried: dict[str, Any] | None = None
        outcome = prober.send(probe.body(with_test=True))
        if probe.tests and not outcome.get("accepted") and "http_status" in outcome:
            tried = outcome  # the tested behaviour was refused (free): measure the size with a clean body
            outcome = prober.send(probe.body(with_test=False))
        elif probe.tests:
            tried = outcome
        if outcome.get("paid"):
            cache.ledger_append({"request_id": outcome["request_id"], "cost_usd": request_cost(False),
                                 "backend": "fal/doctor", "purpose": f"doctor --live: {probe.name}"})
        record = {"probe": asdict(probe), "outcome": outcome, "test_outcome": tried}
        if on_result is not None:
            with lock:
                on_result(probe, record)
        return record

    started = datetime.now(UTC)
    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="doctor-live") as pool:
            records = list(pool.map(one, probes))
    finally:
        prober.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return _findings(records, started, fal_urls(), __version__)


def _findings(records: list[dict[str, Any]], started: datetime, urls: dict[str, str], version: str) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    behaviours: dict[str, Any] = {}
    latency: list[dict[str, Any]] = []
    paid: list[str] = []
    for rec in records:
        probe = LiveProbe(**rec["probe"])
        out = rec["outcome"]
        assumed = list(OUTPUT_SIZES[(probe.resolution, probe.aspect_ratio)])
        entry: dict[str, Any] = {"assumed": assumed, "requested_frames": probe.num_frames}
        if "width" in out:
            measured = [out["width"], out["height"]]
            entry.update(measured=measured, frames=out["frames"], matches=measured == assumed,
                         frames_match=out["frames"] == probe.num_frames)
        else:
            entry.update(measured=None, error=out.get("error") or out.get("detail") or "no video")
        sizes[probe.name] = entry
        if out.get("paid"):
            paid.append(out["request_id"])
        if "latency" in out and out.get("paid"):
            latency.append({"probe": probe.name, "num_frames": probe.num_frames, **out["latency"],
                            "download_s": out.get("download_s")})
        if probe.tests:
            test = rec["test_outcome"] or {}
            finding = {"accepted": bool(test.get("accepted")), "probe": probe.name}
            for k in ("http_status", "detail", "stage", "error"):
                if k in test:
                    finding[k] = test[k]
            if probe.tests == "unknown_fields":
                finding["field"] = UNKNOWN_FIELD
            else:
                finding["start_frame_num"] = UNSNAPPED_FRAME
            behaviours[probe.tests] = finding
    totals = [x["total_s"] for x in latency]
    # composer plan's wall-time estimate reads this (the default-sized segment's time) back from the cache
    segment = max(latency, key=lambda x: x["num_frames"], default=None)
    return {
        "measured_at": started.isoformat(timespec="seconds"),
        "composer_version": version,
        "endpoint": ENDPOINT_ID,
        "queue_host": _host_of(urls["QUEUE_URL_FORMAT"]),
        "output_sizes": sizes,
        "unknown_fields": behaviours.get("unknown_fields"),
        "unsnapped_start_frames": behaviours.get("unsnapped_start_frames"),
        "latency": {
            "requests": latency,
            "median_total_s": round(statistics.median(totals), 3) if totals else None,
            "max_total_s": round(max(totals), 3) if totals else None,
            "segment_total_s": segment["total_s"] if segment else None,
        },
        "paid_requests": paid,
        "cost_usd": round(len(paid) * request_cost(False), 6),
    }


def save_findings(findings: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """Write the findings to ``<cache>/doctor/live.json`` (atomically) and return the path."""
    from ..rendering.cache import SegmentCache

    cache = SegmentCache(cache_dir)
    out = cache.root / "doctor" / "live.json"
    atomic_write_text(out, json.dumps(findings, indent=2, sort_keys=True) + "\n")
    return out


def describe_findings(findings: dict[str, Any]) -> list[str]:
    """The findings as report lines."""
    lines = []
    for name, s in findings["output_sizes"].items():
        if s.get("measured"):
            w, h = s["measured"]
            verdict = "as composer assumes" if s["matches"] else (
                f"composer assumes {s['assumed'][0]}x{s['assumed'][1]}: update composer.backends.fal_catalog.OUTPUT_SIZES")
            frames = "" if s.get("frames_match", True) else f"; {s['frames']} frames for {s['requested_frames']} requested"
            lines.append(f"size {name}: {w}x{h} ({verdict}){frames}")
        else:
            lines.append(f"size {name}: not measured ({s.get('error')})")
    for key, label in (("unknown_fields", "unknown fields"), ("unsnapped_start_frames", "unsnapped start frames")):
        f = findings.get(key)
        if not f:
            continue
        if f["accepted"]:
            lines.append(f"{label}: accepted")
        elif "http_status" in f:
            lines.append(f"{label}: rejected (HTTP {f['http_status']} at {f.get('stage', 'submit')}: "
                         f"{str(f.get('detail', ''))[:120]})")
        else:
            lines.append(f"{label}: unknown ({f.get('error', 'no answer')})")
    lat = findings["latency"]
    for r in lat["requests"]:
        inference = f", inference {r['inference_s']:.1f}s" if isinstance(r.get("inference_s"), (int, float)) else ""
        lines.append(f"latency {r['probe']} ({r['num_frames']} frames): {r['total_s']:.1f}s "
                     f"(queued {r['queued_s']:.1f}s{inference})")
    if lat["median_total_s"] is not None:
        lines.append(f"latency: median {lat['median_total_s']:.1f}s, slowest {lat['max_total_s']:.1f}s")
    if lat.get("segment_total_s") is not None:
        lines.append(f"composer plan now estimates wall time at {lat['segment_total_s']:.1f}s per request")
    lines.append(f"spent: {len(findings['paid_requests'])} request(s), ${findings['cost_usd']:.2f}")
    return lines


# --------------------------------------------------------------------------- the bridged probe

# Two anchors pinned by keyframes (so no skeleton request) and the bridge between them:
# 33 + 24 + 24 = 81 frames. The second keyframe lands on the bridge's conditioned tail,
# which makes it the second anchor's first frame.
BRIDGED_PROBE_BOARD = """\
version: 1
title: composer doctor bridged probe
output: {resolution: 480p, aspect_ratio: "16:9", fps: 24}
defaults:
  seed: 7
  segment: {frames: 33, overlap: 9}
  params: {enable_detail_pass: false}
  render: {mode: bridged}
scenes:
  - id: probe
    duration: 81f
    prompt: "A slow, steady pan across a quiet harbour at dawn, boats rocking gently"
    keyframes:
      - {at: 0f, image: a.png}
      - {at: 48f, image: b.png}
"""
SHEET_THUMB_WIDTH = 160


def bridged_probe_cost() -> float:
    """What the bridged probe spends at most: its three requests (nothing when they are cached)."""
    return round(3 * request_cost(False), 6)


def _probe_picture(path: Path, hue: int) -> None:
    import cv2
    import numpy as np

    y, x = np.mgrid[0:480, 0:848]
    hsv = np.stack([(x * 90 // 848 + hue) % 180, 120 + y * 100 // 480, np.full_like(x, 200)], -1).astype(np.uint8)
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    for k in range(6):
        cv2.circle(img, (80 + 140 * k, 240 + (-1) ** k * 90), 40, (240, 240, 240), -1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):  # pragma: no cover
        raise ComposerError(f"cannot write the probe image {path}")


def run_bridged_probe(*, cache_dir: str | Path | None = None, backend: str = "fal",
                      backend_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Render the bridged probe film on ``backend`` (paid on fal: through the cache, the journal
    and the ledger like any render), measure both seams of its bridge and save a contact sheet.

    Returns the findings; the sheet and ``bridged.json`` are in ``<cache>/doctor/``.
    """
    import numpy as np

    from ..media import read_frames
    from ..planner import plan
    from ..rendering import render
    from ..rendering.cache import SegmentCache
    from ..storyboard import load

    cache = SegmentCache(cache_dir)
    folder = Path(tempfile.mkdtemp(prefix="doctor-bridged-", dir=cache.root / "tmp"))
    try:
        _probe_picture(folder / "a.png", 10)
        _probe_picture(folder / "b.png", 100)
        board_path = folder / "probe.yaml"
        board_path.write_text(BRIDGED_PROBE_BOARD, encoding="utf-8")
        board = load(board_path)
        p = plan(board)
        if [s.role for s in p.segments] != ["anchor", "bridge", "anchor"]:  # pragma: no cover - a planner change
            raise ComposerError(f"the bridged probe plans {[s.role for s in p.segments]}, not two anchors and a bridge")
        result = render(board, folder / "film.mp4", backend=backend, backend_options=backend_options, cache=cache,
                        review=False, otio=False, jobs=2)
        videos = {i: o.video for i, o in result.outcomes.items()}
        a0, bridge, _ = p.segments
        ov = bridge.overlap

        def clip(i: int, start: int) -> Any:
            frames = read_frames(videos[i], start=start, count=ov)  # type: ignore[arg-type]
            return np.stack(frames).astype(np.int16)

        rows = {"anchor 0 tail (videos[0])": clip(0, a0.num_frames - ov), "bridge head": clip(1, 0),
                "bridge tail": clip(1, bridge.num_frames - ov), "anchor 2 head (videos[1])": clip(2, 0)}
        seams = []
        for name, given, kept in (("head", rows["anchor 0 tail (videos[0])"], rows["bridge head"]),
                                  ("tail", rows["anchor 2 head (videos[1])"], rows["bridge tail"])):
            step = np.abs(kept[1:] - kept[:-1]).mean()  # an ordinary frame-to-frame change, for scale
            seams.append({"seam": name, "start_frame_num": 0 if name == "head" else bridge.num_frames - ov,
                          "kept_mae": round(float(np.abs(given - kept).mean()), 3),
                          "frame_step_mae": round(float(step), 3)})
        doctor_dir = cache.root / "doctor"
        sheet = doctor_dir / "bridged-contact-sheet.png"
        _contact_sheet(rows, sheet)
        findings = {
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "backend": backend, "requests_made": result.generated, "from_cache": result.cached,
            "cost_usd": result.cost_usd, "request_ids": [o.request_id for o in result.outcomes.values()],
            "seams": seams, "contact_sheet": str(sheet),
        }
        atomic_write_text(doctor_dir / "bridged.json", json.dumps(findings, indent=2, sort_keys=True) + "\n")
        return findings
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _contact_sheet(rows: dict[str, Any], path: Path) -> None:
    """One labelled row of thumbnails per clip: rows 1 and 2 should match, and rows 3 and 4."""
    import cv2
    import numpy as np

    from ..atomic import atomic_path
    from ..media import save_image

    lines = []
    for label, frames in rows.items():
        h, w = frames.shape[1:3]
        th = round(h * SHEET_THUMB_WIDTH / w)
        thumbs = [cv2.resize(f.astype(np.uint8), (SHEET_THUMB_WIDTH, th), interpolation=cv2.INTER_AREA)
                  for f in frames]
        band = np.full((24, SHEET_THUMB_WIDTH * len(thumbs), 3), 20, np.uint8)
        cv2.putText(band, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (230, 230, 230), 1, cv2.LINE_AA)
        lines += [band, np.concatenate(thumbs, axis=1)]
    with atomic_path(path) as tmp:
        save_image(np.concatenate(lines, axis=0), tmp)


def describe_bridged(findings: dict[str, Any]) -> list[str]:
    """The bridged probe's findings as report lines."""
    lines = []
    for s in findings["seams"]:
        lines.append(f"bridged {s['seam']} (videos at frame {s['start_frame_num']}): the bridge keeps the anchor's "
                     f"frames to a mean difference of {s['kept_mae']:.1f} (an ordinary frame step: "
                     f"{s['frame_step_mae']:.1f})")
    lines.append(f"bridged probe: {findings['requests_made']} request(s) made, {findings['from_cache']} from cache, "
                 f"${findings['cost_usd']:.2f}; look at the contact sheet: {findings['contact_sheet']}")
    return lines
