"""A fal-compatible server on loopback, for tests that drive the real ``fal_client``.

It speaks HTTPS (a throwaway CA made at start, see ``tls.py``) and the protocol
fal_client 1.0.x uses:

queue (``FAL_QUEUE_RUN_HOST`` = ``emulator.host``)
    ``POST /{app_id}`` (app_id may carry a sub-path) → ``{request_id, response_url,
    status_url, cancel_url, queue_position}``;
    ``GET /{owner}/{alias}/requests/{id}/status?logs=1`` → ``IN_QUEUE`` (with
    ``queue_position``) / ``IN_PROGRESS`` (``logs``) / ``COMPLETED`` (``logs``,
    ``metrics``, optional ``error`` / ``error_type``); 202 while in flight, 200 when done;
    ``GET /{owner}/{alias}/requests/{id}`` → the result (or the stored error);
    ``PUT /{owner}/{alias}/requests/{id}/cancel``.
synchronous run (``FAL_RUN_HOST`` = ``emulator.host + "/run"``)
    ``POST /run/{app_id}`` → the result directly.
storage (fal_client's module constants ``REST_URL`` / ``CDN_URL``, pointed here by
``COMPOSER_FAL_REST_URL`` / ``COMPOSER_FAL_CDN_URL`` or by patching them)
    ``POST /rest/storage/auth/token`` → a CDN token; ``POST /cdn/files/upload`` (the
    v3 upload fal_client tries first); ``POST /rest/storage/upload/initiate`` +
    ``PUT /cdn/put/{token}`` (its fallback); ``GET /cdn/files/{name}`` serves
    uploads and generated videos.
control (same key)
    ``GET /_emulator/stats``, ``POST /_emulator/faults``, ``POST /_emulator/release``,
    ``POST /_emulator/clear`` so a test can steer an emulator in another process.

Every queue/run/storage call needs ``Authorization: Key <key>`` (401 otherwise).
Input is validated with ``composer.request.GenerationRequest`` plus
``ltx_rule_violations`` and refused with 422 and a fal/FastAPI-style body
``{"detail": [{"loc": ["body", ...], "msg": ..., "type": ...}]}``. By default that
happens at submit (``validate_on="submit"``); ``validate_on="result"`` accepts
the request and fails it later (COMPLETED with ``error``, the result GET answers
422), which is the other way a queue can report it. Content-policy rejections
look like fal's: 422 at the result, detail ``type: content_policy_violation``
and the ``X-Fal-Error-Type: content_policy_violation`` header (fal_client puts
it in ``FalClientHTTPError.error_type``).

Media URLs may be ``data:`` URIs or URLs on the emulator's own CDN; anything else
(the internet, ``file://``) is a ``file_download_error`` 422. The video is made
by composer's ``PreviewBackend`` (``drift`` passed through), or, in canned mode,
copied from a pre-rendered clip after ``latency`` seconds with no CPU work.

Fault injection: ``fail`` / ``drop`` / ``delay`` / ``truncate_downloads`` act on
the next N HTTP calls of a stage; ``slow_queue`` / ``fail_generation`` /
``reject_safety`` / ``hold`` act on the next N submitted jobs. Everything received
is recorded (``received``, ``jobs``, ``uploads``, ``counts``, ``tls_connections``) without the
Authorization header's value.

In-process use: fal_client reads ``FAL_RUN_HOST`` / ``FAL_QUEUE_RUN_HOST`` once,
at import, into ``fal_client.client.RUN_URL_FORMAT`` / ``QUEUE_URL_FORMAT``;
``REST_URL`` / ``CDN_URL`` are plain constants. All four are read at call time,
so patching them (``patched_fal_client()``, or the ``fal_env`` fixture) works
whenever fal_client was imported. httpx 0.28 reads ``SSL_CERT_FILE`` each time a
client is built, so setting it in ``os.environ`` before the client is made is
enough. Subprocesses get ``env()``.

Command line: ``python -m composer.testing.fal_emulator --port 8443 --drift 0.5
--latency 0.2`` prints ``export`` lines and serves until Ctrl-C.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import mimetypes
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from .tls import TLSFiles, make_tls_files

_log = logging.getLogger("composer.testing.fal_emulator")

DEFAULT_KEY = "emulator-key-id:emulator-key-secret"
ERRORS_URL = "https://docs.fal.ai/errors"
SAFETY_MESSAGE = "The content was flagged by a content checker."

STAGES = ("submit", "status", "result", "cancel", "run", "token", "upload", "download")
HTTP_ACTIONS = ("status", "drop", "delay", "truncate")
JOB_FAULTS = ("slow_queue", "error", "safety", "hold")


# --------------------------------------------------------------------------- records


@dataclass
class Fault:
    """A fault for the next ``times`` HTTP calls of ``stage`` (``None``: every call).

    action ``status``: answer ``status`` (JSON ``body`` or a default detail, extra
    ``headers``); ``ingress=True`` mimics an nginx ingress error (no
    ``x-fal-request-id``, "nginx" in the text), which fal_client retries by itself
    for 502/503/504. ``drop``: read the request, then close the connection without
    a word. ``delay``: sleep ``seconds`` before answering normally. ``truncate``
    (stage ``download``): send ``fraction`` of the file; with ``cut=False`` the
    Content-Length still promises the whole file (the client sees a short body),
    with ``cut=True`` the headers agree with the short body (HTTP is happy, the
    video is not). ``after_accept`` (stage ``submit``): queue the job first, then
    fail or drop the answer: the case where the client cannot know it paid.
    """

    stage: str
    action: str = "status"
    status: int = 500
    times: int | None = 1
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    ingress: bool = False
    after_accept: bool = False
    fraction: float = 0.5
    cut: bool = False
    seconds: float = 0.0
    hits: int = 0

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; one of {STAGES}")
        if self.action not in HTTP_ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; one of {HTTP_ACTIONS}")
        if self.action == "truncate" and self.stage != "download":
            raise ValueError("truncate applies to the download stage only")
        if self.after_accept and self.stage != "submit":
            raise ValueError("after_accept applies to the submit stage only")


@dataclass
class JobFault:
    """A fault for the next ``times`` submitted jobs.

    ``slow_queue``: stay IN_QUEUE ``seconds`` longer. ``error``: complete with
    ``error`` / ``error_type``, the result answering ``status``. ``safety``: a
    content-policy rejection of ``field``. ``hold``: stay IN_PROGRESS until
    ``release()`` (or cancel, or stop).
    """

    kind: str
    seconds: float = 0.0
    status: int = 500
    error: str = "Internal Server Error"
    error_type: str | None = "runner_server_error"
    field: str = "prompt"
    times: int | None = 1
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in JOB_FAULTS:
            raise ValueError(f"unknown job fault {self.kind!r}; one of {JOB_FAULTS}")


@dataclass
class Received:
    """One HTTP request as the emulator saw it (never the Authorization value)."""

    method: str
    path: str
    stage: str
    json: Any
    size: int
    authorized: bool
    time: float
    status: int | None = None  # None: dropped
    fault: str | None = None
    request_id: str | None = None


@dataclass
class MediaRef:
    """A conditioning media URL of a request, resolved to a local file."""

    field: str  # e.g. "images[0].image_url"
    source: str  # "data" | "cdn"
    path: str
    size: int
    sha256: str
    content_type: str


@dataclass
class Upload:
    name: str  # stored name, served at /cdn/files/{name}
    file_name: str
    size: int
    sha256: str
    content_type: str
    via: str  # "v3" | "storage"
    url: str


@dataclass
class Job:
    id: str
    app_id: str
    body: Any
    created: float
    state: str = "IN_QUEUE"  # IN_QUEUE | IN_PROGRESS | COMPLETED
    logs: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None  # {"status", "body", "headers", "error", "error_type"}
    media: list[MediaRef] = field(default_factory=list)
    faults: list[JobFault] = field(default_factory=list)
    output: str | None = None
    cancelled: bool = False
    status_polls: int = 0
    result_fetches: int = 0
    started: float | None = None
    finished: float | None = None
    sync: bool = False

    def __post_init__(self) -> None:
        self._release = threading.Event()
        self._cancel = threading.Event()
        self._done = threading.Event()

    @property
    def held(self) -> bool:
        return any(f.kind == "hold" for f in self.faults) and not self._release.is_set()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Job":
        data = dict(data)
        data["media"] = [MediaRef(**m) for m in data.get("media", [])]
        data["faults"] = [JobFault(**f) for f in data.get("faults", [])]
        return cls(**data)


class _Dropped(Exception):
    """Raised inside a handler to end the connection without an answer."""


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fal-emulator/1"
    sys_version = ""
    timeout = 60  # idle keep-alive connections end after this

    def _go(self) -> None:
        self.server.emulator._dispatch(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _go

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        _log.debug("%s %s", self.address_string(), format % args)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], emulator: "FalEmulator", context) -> None:
        self.emulator = emulator
        self.ssl_context = context
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake runs here, in the connection's own thread, so a slow
        # or broken client cannot stall accept().
        try:
            request.settimeout(30)
            # Headers and body go out as separate writes; without this, Nagle + delayed ACK add ~40 ms to each answer.
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError):
            return
        with self.connections_lock:
            self.connections.add(conn)
        self.emulator._count_connection()
        try:
            self.RequestHandlerClass(conn, client_address, self)
        except (OSError, ValueError):
            pass
        finally:
            with self.connections_lock:
                self.connections.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def handle_error(self, request, client_address) -> None:
        _log.debug("connection from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError, ValueError):
                conn.shutdown(socket.SHUT_RDWR)


def _read_body(h: BaseHTTPRequestHandler, limit: int) -> bytes:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks, total = [], 0
        while True:
            line = h.rfile.readline(1024)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                break
            total += size
            if total > limit:
                raise _Dropped()
            chunks.append(h.rfile.read(size))
            h.rfile.readline(1024)
        return b"".join(chunks)
    length = int(h.headers.get("Content-Length") or 0)
    if length > limit:
        raise _Dropped()
    return h.rfile.read(length) if length else b""


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def _short(value: Any, limit: int = 120) -> Any:
    """JSON-safe and short (data URIs in error echoes are cut)."""
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + f"…(+{len(value) - limit} chars)"
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_short(v, limit) for v in value][:20]
    if isinstance(value, dict):
        return {str(k): _short(v, limit) for k, v in list(value.items())[:40]}
    return _short(str(value), limit)


_LOC_PART = re.compile(r"([A-Za-z_]+)(?:\[(\d+)\])?")


def _loc_from_problem(text: str) -> list[Any]:
    """``"images[0].start_frame_num=130 is past…"`` → ``["images", 0, "start_frame_num"]``."""
    head = text.split("=", 1)[0].split(" ", 1)[0]
    loc: list[Any] = []
    for part in head.split("."):
        m = _LOC_PART.fullmatch(part)
        if not m:
            return []
        loc.append(m.group(1))
        if m.group(2) is not None:
            loc.append(int(m.group(2)))
    return loc


def validate_input(body: Any) -> list[dict[str, Any]]:
    """The endpoint's 422 detail for ``body`` (empty when it is acceptable)."""
    from pydantic import ValidationError

    from ..request import GenerationRequest, ltx_rule_violations

    if not isinstance(body, dict):
        return [{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]
    try:
        GenerationRequest.model_validate(body)
    except ValidationError as exc:
        detail = []
        for err in exc.errors(include_url=False):
            item = {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]}
            if "input" in err:
                item["input"] = _short(err["input"])
            if err.get("ctx"):
                item["ctx"] = _short(err["ctx"])
            detail.append(item)
        return detail
    return [
        {"loc": ["body", *_loc_from_problem(p)], "msg": p, "type": "value_error"} for p in ltx_rule_violations(body)
    ]


def _render_testsrc(request, workdir: Path) -> Path:
    """A plain ffmpeg test pattern of the requested size, rate and length."""
    import imageio_ffmpeg

    width, height = request.size()
    out = Path(workdir) / "testsrc.mp4"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={request.frame_rate}",
        "-frames:v", str(request.num_frames), "-c:v", "libx264", "-preset", "ultrafast",
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    return out


_CANNED: dict[tuple, Path] = {}
_CANNED_LOCK = threading.Lock()
_CANNED_DIR: tempfile.TemporaryDirectory | None = None


def _canned_clip(request) -> Path:
    """A test pattern for this (size, rate, length), rendered once per process and shared by all emulators."""
    global _CANNED_DIR
    key = (request.size(), request.frame_rate, request.num_frames)
    with _CANNED_LOCK:
        path = _CANNED.get(key)
        if path is None or not path.exists():
            if _CANNED_DIR is None:
                _CANNED_DIR = tempfile.TemporaryDirectory(prefix="fal-emulator-canned-")
            path = _render_testsrc(request, Path(_CANNED_DIR.name) / f"{len(_CANNED)}")
            _CANNED[key] = path
    return path


# --------------------------------------------------------------------------- the emulator


class FalEmulator:
    """A fal-compatible HTTPS server on loopback; see the module docstring.

    ``with FalEmulator(drift=0.3) as emu: ...`` or ``emu.start()`` / ``emu.stop()``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str = DEFAULT_KEY,
        drift: float | None = 0.0,
        latency: float = 0.0,
        queue_delay: float = 0.0,
        canned: bool = False,
        canned_clip: str | os.PathLike | None = None,
        workers: int = 2,
        validate_on: str = "submit",
        renderer: str | Callable[[Any, Path], Path] = "auto",
        apps: tuple[str, ...] | None = None,
        state_dir: str | os.PathLike | None = None,
        safety_trigger: str | None = "[unsafe]",
        max_body_bytes: int = 64 * 1024 * 1024,
        log_interval: float = 0.1,
        max_records: int = 10_000,
    ) -> None:
        from ..request import ENDPOINT_ID

        if validate_on not in ("submit", "result"):
            raise ValueError("validate_on must be 'submit' or 'result'")
        self._bind_host = host
        self._requested_port = port
        self.key = key
        self.drift = drift
        self.latency = float(latency)
        self.queue_delay = float(queue_delay)
        self.canned = bool(canned or canned_clip)
        self.canned_clip = Path(canned_clip) if canned_clip else None
        self.workers = max(1, int(workers))
        self.validate_on = validate_on
        self.renderer = renderer
        self.apps = tuple(apps) if apps else (ENDPOINT_ID,)
        self.state_dir = Path(state_dir) if state_dir else None
        self.safety_trigger = safety_trigger
        self.max_body_bytes = max_body_bytes
        self.log_interval = log_interval
        self.max_records = max_records  # ``received`` keeps the newest this many

        self.counts: Counter[str] = Counter()
        self.tls_connections = 0  # TLS connections accepted (handshakes completed), whatever they then asked
        self.submits: Counter[str] = Counter()  # accepted (paid) submits per app id
        self.received: list[Received] = []
        self.jobs: dict[str, Job] = {}
        self.uploads: list[Upload] = []
        self.renderer_used: str | None = None

        self._lock = threading.RLock()
        self._faults: list[Fault] = []
        self._job_faults: list[JobFault] = []
        self._cdn_tokens: set[str] = set()
        self._pending_puts: dict[str, tuple[str, str, str]] = {}
        self._slots = threading.Semaphore(self.workers)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: _TLSServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._root: Path | None = None
        self.tls: TLSFiles | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "FalEmulator":
        if self._server is not None:
            return self
        if self.state_dir is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._root = self.state_dir
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="fal-emulator-")
            self._root = Path(self._tmp.name)
        for sub in ("files", "media", "work", "jobs"):
            (self._root / sub).mkdir(parents=True, exist_ok=True)
        self.tls = make_tls_files(self._root / "tls")
        port = self._requested_port
        port_file = self._root / "port"
        if port == 0 and self.state_dir is not None and port_file.exists():
            port = int(port_file.read_text().strip() or 0)  # same host: clients re-attach
        self._stop.clear()
        self._server = _TLSServer((self._bind_host, port), self, self.tls.server_context())
        self.port = self._server.server_address[1]
        port_file.write_text(str(self.port))
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fal-emulator", daemon=True
        )
        self._serve_thread.start()
        self._load_jobs()
        _log.debug("fal emulator listening on %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving; unfinished jobs stay in ``state_dir`` (when set) and resume on the next start."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        for t in list(self._threads):
            t.join(timeout=5)
        self._threads.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "FalEmulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def host(self) -> str:
        """``127.0.0.1:port``: the value for FAL_QUEUE_RUN_HOST."""
        if self.port is None:
            raise RuntimeError("the emulator is not started")
        return f"{self._bind_host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://{self.host}"

    @property
    def run_host(self) -> str:
        """FAL_RUN_HOST: fal_client builds ``https://{FAL_RUN_HOST}/{app}``, so a path prefix keeps run apart from queue."""
        return f"{self.host}/run"

    @property
    def rest_url(self) -> str:
        return f"{self.base_url}/rest"

    @property
    def cdn_url(self) -> str:
        return f"{self.base_url}/cdn"

    @property
    def cert_path(self) -> Path:
        """The CA certificate (PEM) that signs the emulator's server certificate."""
        assert self.tls is not None, "the emulator is not started"
        return self.tls.ca_cert

    @property
    def ca_bundle_path(self) -> Path:
        """certifi's roots plus ``cert_path``: what SSL_CERT_FILE points at."""
        assert self.tls is not None, "the emulator is not started"
        return self.tls.bundle

    def env(self) -> dict[str, str]:
        """Environment variables that point fal_client (and composer's fal backend) here."""
        return {
            "FAL_RUN_HOST": self.run_host,
            "FAL_QUEUE_RUN_HOST": self.host,
            "FAL_KEY": self.key,
            "SSL_CERT_FILE": str(self.ca_bundle_path),
            "COMPOSER_FAL_REST_URL": self.rest_url,
            "COMPOSER_FAL_CDN_URL": self.cdn_url,
        }

    def fal_client_urls(self) -> dict[str, str]:
        """Values for fal_client.client's module-level URL constants."""
        return {
            "RUN_URL_FORMAT": f"https://{self.run_host}/",
            "QUEUE_URL_FORMAT": f"https://{self.host}/",
            "REST_URL": self.rest_url,
            "CDN_URL": self.cdn_url,
        }

    @contextlib.contextmanager
    def patched_fal_client(self, *, set_env: bool = True) -> Iterator["FalEmulator"]:
        """Point an already imported fal_client at this emulator (and restore it after)."""
        import fal_client.client as fc

        saved = {name: getattr(fc, name) for name in self.fal_client_urls()}
        saved_env = {k: os.environ.get(k) for k in self.env()}
        try:
            for name, value in self.fal_client_urls().items():
                setattr(fc, name, value)
            if set_env:
                os.environ.update(self.env())
            yield self
        finally:
            for name, value in saved.items():
                setattr(fc, name, value)
            if set_env:
                for k, v in saved_env.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    # ------------------------------------------------------------------ faults

    def add_fault(self, fault: Fault | JobFault) -> Fault | JobFault:
        with self._lock:
            (self._job_faults if isinstance(fault, JobFault) else self._faults).append(fault)
        return fault

    def fail(self, stage: str, status: int = 500, *, times: int | None = 1, body: Any = None,
             headers: dict[str, str] | None = None, ingress: bool = False, after_accept: bool = False) -> Fault:
        """The next ``times`` calls of ``stage`` are answered with HTTP ``status``."""
        return self.add_fault(Fault(stage, "status", status=status, times=times, body=body,
                                    headers=dict(headers or {}), ingress=ingress, after_accept=after_accept))

    def drop(self, stage: str, *, times: int | None = 1, after_accept: bool = False) -> Fault:
        """The next ``times`` calls of ``stage`` lose their connection before any answer."""
        return self.add_fault(Fault(stage, "drop", times=times, after_accept=after_accept))

    def delay(self, stage: str, seconds: float, *, times: int | None = 1) -> Fault:
        return self.add_fault(Fault(stage, "delay", seconds=seconds, times=times))

    def truncate_downloads(self, *, times: int | None = 1, fraction: float = 0.5, cut: bool = False) -> Fault:
        return self.add_fault(Fault("download", "truncate", times=times, fraction=fraction, cut=cut))

    def slow_queue(self, seconds: float, *, times: int | None = 1) -> JobFault:
        return self.add_fault(JobFault("slow_queue", seconds=seconds, times=times))

    def fail_generation(self, *, status: int = 500, error: str = "Internal Server Error",
                        error_type: str | None = "runner_server_error", times: int | None = 1) -> JobFault:
        return self.add_fault(JobFault("error", status=status, error=error, error_type=error_type, times=times))

    def reject_safety(self, *, field: str = "prompt", times: int | None = 1) -> JobFault:
        return self.add_fault(JobFault("safety", field=field, times=times))

    def hold(self, *, times: int | None = 1) -> JobFault:
        """The next ``times`` jobs stay IN_PROGRESS until ``release()``."""
        return self.add_fault(JobFault("hold", times=times))

    def release(self, request_id: str | None = None) -> None:
        """Let a held job (or every held job) finish."""
        with self._lock:
            jobs = [self.jobs[request_id]] if request_id else list(self.jobs.values())
        for job in jobs:
            job._release.set()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._job_faults.clear()

    def _take_fault(self, stage: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.stage == stage and (fault.times is None or fault.hits < fault.times):
                    fault.hits += 1
                    return fault
        return None

    def _take_job_faults(self) -> list[JobFault]:
        taken = []
        with self._lock:
            for fault in self._job_faults:
                if fault.times is None or fault.hits < fault.times:
                    fault.hits += 1
                    taken.append(JobFault(**{**asdict(fault), "times": 1, "hits": 0}))
        return taken

    # ------------------------------------------------------------------ what tests look at

    def submit_count(self, app_id: str | None = None) -> int:
        """Accepted (paid) submits, for one app or all."""
        with self._lock:
            return self.submits[app_id] if app_id else sum(self.submits.values())

    def submitted_bodies(self, app_id: str | None = None) -> list[Any]:
        with self._lock:
            return [j.body for j in self.jobs.values() if not j.sync and (app_id is None or j.app_id == app_id)]

    def received_for(self, stage: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.stage == stage]

    def job(self, request_id: str) -> Job:
        with self._lock:
            return self.jobs[request_id]

    def wait_for_state(self, request_id: str, state: str, timeout: float = 10.0) -> Job:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                job = self.jobs.get(request_id)
            if job is not None and job.state == state:
                return job
            time.sleep(0.01)
        raise TimeoutError(f"request {request_id} did not reach {state} in {timeout}s")

    def wait_for_submit(self, count: int = 1, timeout: float = 10.0) -> list[str]:
        """Wait until ``count`` jobs were accepted; their ids, oldest first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                ids = [j.id for j in sorted(self.jobs.values(), key=lambda j: j.created) if not j.sync]
            if len(ids) >= count:
                return ids
            time.sleep(0.01)
        raise TimeoutError(f"fewer than {count} submits in {timeout}s")

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "counts": dict(self.counts),
                "tls_connections": self.tls_connections,
                "submits": dict(self.submits),
                "jobs": {
                    j.id: {"app_id": j.app_id, "state": j.state, "cancelled": j.cancelled,
                           "result_fetches": j.result_fetches, "error": (j.error or {}).get("error_type"),
                           "media": [asdict(m) for m in j.media]}
                    for j in self.jobs.values()
                },
                "uploads": [asdict(u) for u in self.uploads],
                "renderer": self.renderer_used,
            }

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        parts = [unquote(p) for p in split.path.split("/") if p]
        query = parse_qs(split.query)
        stage, route = self._route(h.command, parts)
        auth = h.headers.get("Authorization", "")
        record = Received(h.command, split.path, stage, None, 0, False, time.time())
        try:
            raw = _read_body(h, self.max_body_bytes)
        except (_Dropped, ValueError):
            self._count(stage, "too_large")
            self._reply(h, 413, {"detail": "Request entity too large"}, record=record)
            h.close_connection = True
            return
        record.size = len(raw)
        if raw and (h.headers.get("Content-Type", "").startswith("application/json")):
            try:
                record.json = json.loads(raw)
            except ValueError:
                record.json = None
        with self._lock:
            self.received.append(record)
            if len(self.received) > self.max_records:
                del self.received[: len(self.received) - self.max_records]
            self.counts[stage] += 1
        try:
            if route is None:
                self._reply(h, 404 if h.command in ("GET", "HEAD", "POST") else 405,
                            {"detail": "Not Found"}, record=record)
                return
            if stage in ("upload", "download"):
                record.authorized = True  # checked by the route (CDN token / signed URL / public)
            elif auth != f"Key {self.key}":
                self._count(stage, "unauthorized")
                self._reply(h, 401, {"detail": "Authentication is required" if not auth else "Invalid credentials"},
                            record=record)
                return
            else:
                record.authorized = True
            fault = self._take_fault(stage) if stage in STAGES else None
            if fault is not None:
                record.fault = fault.action
                if fault.action == "delay":
                    time.sleep(fault.seconds)
                    fault = None
                elif not fault.after_accept and fault.action in ("status", "drop"):
                    self._apply_fault(h, fault, record)
                    return
            route(h, parts, query, raw, record, fault)
        except _Dropped:
            record.status = None
            self._drop(h)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            h.close_connection = True
        except Exception as exc:  # a bug in the emulator: answer 500 and log it
            _log.exception("fal emulator failed on %s %s", h.command, split.path)
            with contextlib.suppress(Exception):
                self._reply(h, 500, {"detail": f"emulator error: {type(exc).__name__}"}, record=record)

    def _route(self, method: str, parts: list[str]):
        if not parts:
            return "other", None
        head = parts[0]
        if head == "_emulator":
            return "admin", self._admin
        if head == "cdn":
            if parts[1:3] == ["files", "upload"] and method == "POST":
                if len(parts) > 3:
                    return "upload", self._multipart_unsupported
                return "upload", self._cdn_upload
            if parts[1:2] == ["files"] and len(parts) == 3 and method in ("GET", "HEAD"):
                return "download", self._download
            if parts[1:2] == ["put"] and len(parts) == 3 and method == "PUT":
                return "upload", self._signed_put
            return "other", None
        if head == "rest":
            if parts[1:] == ["storage", "auth", "token"] and method == "POST":
                return "token", self._cdn_token
            if parts[1:] == ["storage", "upload", "initiate"] and method == "POST":
                return "token", self._storage_initiate
            return "other", None
        if head == "run":
            return ("run", self._run) if method == "POST" and len(parts) >= 3 else ("other", None)
        if "requests" in parts[2:]:
            i = parts.index("requests", 2)
            tail = parts[i + 2:]
            if len(parts) < i + 2:
                return "other", None
            if tail == [] and method == "GET":
                return "result", self._result
            if tail == ["status"] and method == "GET":
                return "status", self._status
            if tail == ["cancel"] and method == "PUT":
                return "cancel", self._cancel
            return "other", None
        if method == "POST" and len(parts) >= 2:
            return "submit", self._submit
        return "other", None

    # ------------------------------------------------------------------ replies

    def _count_connection(self) -> None:
        with self._lock:
            self.tls_connections += 1

    def _count(self, stage: str, what: str) -> None:
        with self._lock:
            self.counts[f"{stage}_{what}"] += 1

    def _reply(self, h: _Handler, status: int, payload: Any = None, *, headers: dict[str, str] | None = None,
               raw: bytes | None = None, content_type: str = "application/json", record: Received | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode("utf-8")
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)
        if record is not None:
            record.status = status

    def _drop(self, h: _Handler) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError, ValueError):
            h.wfile.flush()
        with contextlib.suppress(OSError, ValueError):
            h.connection.shutdown(socket.SHUT_RDWR)

    def _apply_fault(self, h: _Handler, fault: Fault, record: Received, request_id: str | None = None) -> None:
        self._count(record.stage, f"fault_{fault.action}")
        if fault.action == "drop":
            record.status = None
            self._drop(h)
            return
        headers = dict(fault.headers)
        if fault.ingress:
            text = f"<html><head><title>{fault.status}</title></head><body><center><h1>{fault.status}</h1></center><hr><center>nginx</center></body></html>"
            self._reply(h, fault.status, raw=text.encode(), content_type="text/html", headers=headers, record=record)
            return
        if request_id:
            headers.setdefault("x-fal-request-id", request_id)
        body = fault.body
        if body is None:
            body = {"detail": "Too Many Requests" if fault.status == 429 else f"Injected HTTP {fault.status}"}
        self._reply(h, fault.status, body, headers=headers, record=record)

    # ------------------------------------------------------------------ queue endpoints

    def _queue_urls(self, app_id: str, request_id: str) -> dict[str, str]:
        owner_alias = "/".join(app_id.split("/")[:2])
        base = f"{self.base_url}/{owner_alias}/requests/{request_id}"
        return {"response_url": base, "status_url": base + "/status", "cancel_url": base + "/cancel"}

    def _submit(self, h, parts, query, raw, record, fault) -> None:
        app_id = "/".join(parts)
        if app_id not in self.apps:
            self._reply(h, 404, {"detail": f"Application '{app_id}' not found"}, record=record)
            return
        body = record.json
        if body is None and raw:
            self._reply(h, 422, {"detail": [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]},
                        record=record)
            return
        media: list[MediaRef] = []
        if self.validate_on == "submit":
            detail = validate_input(body)
            if not detail:
                media, detail = self._resolve_media(body)
            if detail:
                self._count("submit", "rejected")
                self._reply(h, 422, {"detail": detail}, record=record)
                return
        job = Job(id=str(uuid.uuid4()), app_id=app_id, body=body, created=time.time(), media=media,
                  faults=self._take_job_faults())
        with self._lock:
            self.jobs[job.id] = job
            self.submits[app_id] += 1
        record.request_id = job.id
        self._persist(job)
        self._log(job, f"Request {job.id} queued")
        self._spawn(job)
        if fault is not None:  # after_accept: the job is queued, the answer is lost
            self._apply_fault(h, fault, record, request_id=job.id)
            return
        payload = {"request_id": job.id, **self._queue_urls(app_id, job.id),
                   "queue_position": self._queue_position(job)}
        self._reply(h, 200, payload, headers={"x-fal-request-id": job.id}, record=record)

    def _find_job(self, parts: list[str]) -> Job | None:
        i = parts.index("requests", 2)
        app_prefix = "/".join(parts[:i])
        with self._lock:
            job = self.jobs.get(parts[i + 1])
        if job is None or job.sync:
            return None
        if "/".join(job.app_id.split("/")[: len(parts[:i])]) != app_prefix:
            return None
        return job

    def _queue_position(self, job: Job) -> int:
        with self._lock:
            waiting = sorted((j for j in self.jobs.values() if j.state == "IN_QUEUE" and not j.sync),
                             key=lambda j: j.created)
        for i, j in enumerate(waiting):
            if j.id == job.id:
                return i
        return 0

    def _status(self, h, parts, query, raw, record, fault) -> None:
        job = self._find_job(parts)
        if job is None:
            self._reply(h, 404, {"detail": "Request not found"}, record=record)
            return
        record.request_id = job.id
        job.status_polls += 1
        with_logs = query.get("logs", ["0"])[-1].lower() in ("1", "true", "yes")
        with self._lock:
            state = job.state
            logs = [dict(entry) for entry in job.logs] if with_logs else None
        payload: dict[str, Any] = {"status": state, "request_id": job.id, **self._queue_urls(job.app_id, job.id)}
        if state == "IN_QUEUE":
            payload["queue_position"] = self._queue_position(job)
        else:
            payload["logs"] = logs
        if state == "COMPLETED":
            elapsed = (job.finished or time.time()) - (job.started or job.created)
            payload["metrics"] = {"inference_time": round(elapsed, 3)}
            if job.error:
                payload["error"] = job.error.get("error")
                payload["error_type"] = job.error.get("error_type")
        if fault is not None:
            self._apply_fault(h, fault, record, request_id=job.id)
            return
        self._reply(h, 200 if state == "COMPLETED" else 202, payload,
                    headers={"x-fal-request-id": job.id}, record=record)

    def _result(self, h, parts, query, raw, record, fault) -> None:
        job = self._find_job(parts)
        if job is None:
            self._reply(h, 404, {"detail": "Request not found"}, record=record)
            return
        record.request_id = job.id
        if fault is not None:
            self._apply_fault(h, fault, record, request_id=job.id)
            return
        headers = {"x-fal-request-id": job.id}
        if job.state != "COMPLETED":
            self._reply(h, 400, {"detail": "Request is still in progress"}, headers=headers, record=record)
            return
        if job.error:
            self._reply(h, job.error["status"], job.error["body"], headers={**headers, **job.error.get("headers", {})},
                        record=record)
            return
        job.result_fetches += 1
        self._count("result", "ok")
        self._reply(h, 200, job.result, headers=headers, record=record)

    def _cancel(self, h, parts, query, raw, record, fault) -> None:
        job = self._find_job(parts)
        if job is None:
            self._reply(h, 404, {"detail": "Request not found"}, record=record)
            return
        record.request_id = job.id
        if fault is not None:
            self._apply_fault(h, fault, record, request_id=job.id)
            return
        with self._lock:
            done = job.state == "COMPLETED"
            if not done:
                job.cancelled = True
                job._cancel.set()
        if done:
            self._reply(h, 400, {"status": "ALREADY_COMPLETED"}, record=record)
            return
        self._count("cancel", "ok")
        self._finish(job, error={
            "status": 400, "body": {"detail": "Request was cancelled", "error_type": "client_cancelled"},
            "headers": {"X-Fal-Error-Type": "client_cancelled"}, "error": "Request was cancelled",
            "error_type": "client_cancelled"})
        self._reply(h, 202, {"status": "CANCELLATION_REQUESTED"}, record=record)

    def _run(self, h, parts, query, raw, record, fault) -> None:
        app_id = "/".join(parts[1:])
        if app_id not in self.apps:
            self._reply(h, 404, {"detail": f"Application '{app_id}' not found"}, record=record)
            return
        body = record.json
        detail = validate_input(body)
        media: list[MediaRef] = []
        if not detail:
            media, detail = self._resolve_media(body)
        if detail:
            self._reply(h, 422, {"detail": detail}, record=record)
            return
        job = Job(id=str(uuid.uuid4()), app_id=app_id, body=body, created=time.time(), media=media,
                  faults=self._take_job_faults(), sync=True)
        with self._lock:
            self.jobs[job.id] = job
        record.request_id = job.id
        self._run_job(job, use_slot=False)
        if fault is not None:
            self._apply_fault(h, fault, record, request_id=job.id)
            return
        if job.error:
            self._reply(h, job.error["status"], job.error["body"], headers=job.error.get("headers", {}), record=record)
            return
        self._reply(h, 200, job.result, headers={"x-fal-request-id": job.id}, record=record)

    # ------------------------------------------------------------------ storage / CDN endpoints

    def _cdn_token(self, h, parts, query, raw, record, fault) -> None:
        if fault is not None:
            self._apply_fault(h, fault, record)
            return
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._cdn_tokens.add(token)
        expires = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
        self._reply(h, 200, {"token": token, "token_type": "Bearer", "base_url": self.cdn_url, "expires_at": expires},
                    record=record)

    def _store_upload(self, data: bytes, file_name: str, content_type: str, via: str, stored: str | None = None) -> Upload:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(file_name) or "upload.bin")[:80]
        stored = stored or f"{uuid.uuid4().hex[:12]}-{safe}"
        path = self._root / "files" / stored
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        upload = Upload(name=stored, file_name=file_name, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                        content_type=content_type, via=via, url=f"{self.cdn_url}/files/{stored}")
        with self._lock:
            self.uploads.append(upload)
            self.counts["upload_ok"] += 1
        return upload

    def _cdn_upload(self, h, parts, query, raw, record, fault) -> None:
        auth = h.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        with self._lock:
            ok = scheme.lower() == "bearer" and token in self._cdn_tokens
        if not ok:
            record.authorized = False
            self._reply(h, 401, {"detail": "Invalid CDN token"}, record=record)
            return
        if fault is not None:
            self._apply_fault(h, fault, record)
            return
        content_type = h.headers.get("Content-Type", "application/octet-stream")
        upload = self._store_upload(raw, h.headers.get("X-Fal-File-Name", "upload.bin"), content_type, "v3")
        self._reply(h, 200, {"access_url": upload.url, "content_type": content_type}, record=record)

    def _multipart_unsupported(self, h, parts, query, raw, record, fault) -> None:
        self._reply(h, 501, {"detail": "multipart uploads (over 100 MB) are not emulated"}, record=record)

    def _storage_initiate(self, h, parts, query, raw, record, fault) -> None:
        if fault is not None:
            self._apply_fault(h, fault, record)
            return
        body = record.json if isinstance(record.json, dict) else {}
        file_name = str(body.get("file_name") or "upload.bin")
        content_type = str(body.get("content_type") or "application/octet-stream")
        token = secrets.token_urlsafe(18)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(file_name))[:80]
        stored = f"{uuid.uuid4().hex[:12]}-{safe}"
        with self._lock:
            self._pending_puts[token] = (stored, file_name, content_type)
        self._reply(h, 200, {"upload_url": f"{self.cdn_url}/put/{token}", "file_url": f"{self.cdn_url}/files/{stored}"},
                    record=record)

    def _signed_put(self, h, parts, query, raw, record, fault) -> None:
        with self._lock:
            pending = self._pending_puts.pop(parts[2], None)
        if pending is None:
            self._reply(h, 403, {"detail": "Invalid or used upload URL"}, record=record)
            return
        if fault is not None:
            with self._lock:
                self._pending_puts[parts[2]] = pending
            self._apply_fault(h, fault, record)
            return
        stored, file_name, content_type = pending
        self._store_upload(raw, file_name, h.headers.get("Content-Type", content_type), "storage", stored=stored)
        self._reply(h, 200, {}, record=record)

    def _download(self, h, parts, query, raw, record, fault) -> None:
        name = parts[2]
        path = self._root / "files" / name
        if "/" in name or name.startswith(".") or not path.is_file():
            self._reply(h, 404, {"detail": "File not found"}, record=record)
            return
        data = path.read_bytes()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if fault is not None and fault.action == "truncate":
            self._count("download", "fault_truncate")
            keep = max(0, min(len(data) - 1, int(len(data) * fault.fraction)))
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(keep if fault.cut else len(data)))
            h.end_headers()
            h.wfile.write(data[:keep])
            record.status = 200
            if not fault.cut:
                raise _Dropped()
            return
        if fault is not None:
            self._apply_fault(h, fault, record)
            return
        self._count("download", "ok")
        self._reply(h, 200, raw=data, content_type=content_type, record=record)

    # ------------------------------------------------------------------ control endpoints

    def _admin(self, h, parts, query, raw, record, fault) -> None:
        action = parts[1] if len(parts) > 1 else ""
        body = record.json if isinstance(record.json, dict) else {}
        if action == "stats" and h.command == "GET":
            self._reply(h, 200, self.stats(), record=record)
        elif action == "faults" and h.command == "POST":
            try:
                if "kind" in body:
                    self.add_fault(JobFault(**body))
                else:
                    self.add_fault(Fault(**body))
            except (TypeError, ValueError) as exc:
                self._reply(h, 422, {"detail": str(exc)}, record=record)
                return
            self._reply(h, 200, {"ok": True}, record=record)
        elif action == "release" and h.command == "POST":
            self.release(body.get("request_id"))
            self._reply(h, 200, {"ok": True}, record=record)
        elif action == "clear" and h.command == "POST":
            self.clear_faults()
            self._reply(h, 200, {"ok": True}, record=record)
        else:
            self._reply(h, 404, {"detail": "Not Found"}, record=record)

    # ------------------------------------------------------------------ media

    def _resolve_media(self, body: dict[str, Any]) -> tuple[list[MediaRef], list[dict[str, Any]]]:
        refs: list[MediaRef] = []
        errors: list[dict[str, Any]] = []
        for group, key in (("images", "image_url"), ("videos", "video_url")):
            for i, item in enumerate(body.get(group) or []):
                url = item.get(key, "") if isinstance(item, dict) else ""
                loc = ["body", group, i, key]
                try:
                    refs.append(self._resolve_url(url, f"{group}[{i}].{key}"))
                except ValueError as exc:
                    errors.append({"loc": loc, "msg": str(exc), "type": "file_download_error",
                                   "url": f"{ERRORS_URL}#file_download_error", "input": _short(url)})
        return refs, errors

    def _resolve_url(self, url: str, field_name: str) -> MediaRef:
        if url.startswith("data:"):
            header, sep, payload = url[5:].partition(",")
            if not sep:
                raise ValueError("Malformed data URI")
            content_type = header.split(";")[0] or "application/octet-stream"
            try:
                data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote(payload).encode()
            except (binascii.Error, ValueError):
                raise ValueError("Malformed base64 in data URI") from None
            digest = hashlib.sha256(data).hexdigest()
            ext = mimetypes.guess_extension(content_type) or ".bin"
            path = self._root / "media" / f"{digest[:24]}{ext}"
            if not path.exists():
                tmp = path.with_name(path.name + f".{uuid.uuid4().hex[:6]}.part")
                tmp.write_bytes(data)
                os.replace(tmp, path)
            return MediaRef(field_name, "data", str(path), len(data), digest, content_type)
        prefix = f"{self.cdn_url}/files/"
        if url.startswith(prefix):
            name = unquote(url[len(prefix):])
            path = self._root / "files" / name
            if "/" in name or not path.is_file():
                raise ValueError(f"Could not download file from URL: {url}")
            data = path.read_bytes()
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return MediaRef(field_name, "cdn", str(path), len(data), hashlib.sha256(data).hexdigest(), content_type)
        raise ValueError(f"Could not download file from URL: {_short(url, 80)}")

    # ------------------------------------------------------------------ jobs

    def _spawn(self, job: Job) -> None:
        t = threading.Thread(target=self._run_job, args=(job,), name=f"fal-job-{job.id[:8]}", daemon=True)
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _log(self, job: Job, message: str, level: str = "INFO") -> None:
        with self._lock:
            job.logs.append({"message": message, "level": level, "source": "user", "timestamp": _now_iso()})

    def _interrupted(self, job: Job) -> bool:
        return job._cancel.is_set() or self._stop.is_set()

    def _sleep(self, job: Job, seconds: float) -> bool:
        """Sleep unless cancelled or stopping; True when interrupted."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return self._interrupted(job)
            if job._cancel.wait(min(left, 0.05)) or self._stop.is_set():
                return True

    def _set_state(self, job: Job, state: str) -> None:
        with self._lock:
            if job.state == "COMPLETED":
                return
            job.state = state
            if state == "IN_PROGRESS":
                job.started = time.time()
        self._persist(job)

    def _finish(self, job: Job, *, result: dict | None = None, error: dict | None = None) -> None:
        with self._lock:
            if job.state == "COMPLETED":
                return
            job.result, job.error = result, error
            job.state = "COMPLETED"
            job.finished = time.time()
        self._log(job, "Request failed" if error else "Request completed", "ERROR" if error else "INFO")
        self._persist(job)
        job._done.set()

    def _run_job(self, job: Job, use_slot: bool = True) -> None:
        try:
            wait = self.queue_delay + sum(f.seconds for f in job.faults if f.kind == "slow_queue")
            if wait and self._sleep(job, wait):
                return
            if use_slot:
                while not self._slots.acquire(timeout=0.05):
                    if self._interrupted(job):
                        return
            try:
                if self._interrupted(job):
                    return
                self._set_state(job, "IN_PROGRESS")
                self._process(job)
            finally:
                if use_slot:
                    self._slots.release()
        except Exception as exc:  # never leave a job hanging
            _log.exception("fal emulator job %s failed", job.id)
            self._finish(job, error=self._server_error(f"{type(exc).__name__}: {exc}", "runner_server_error", 500))

    @staticmethod
    def _server_error(message: str, error_type: str | None, status: int) -> dict[str, Any]:
        headers = {"X-Fal-Retryable": "true" if status >= 500 else "false"}
        body: dict[str, Any] = {"detail": message}
        if error_type:
            headers["X-Fal-Error-Type"] = error_type
            body["error_type"] = error_type
        return {"status": status, "body": body, "headers": headers, "error": message, "error_type": error_type}

    @staticmethod
    def _validation_error(detail: list[dict[str, Any]]) -> dict[str, Any]:
        return {"status": 422, "body": {"detail": detail}, "headers": {"X-Fal-Retryable": "false"},
                "error": "Unprocessable Entity", "error_type": None}

    def _safety_error(self, job: Job, field_name: str) -> dict[str, Any]:
        value = job.body.get(field_name) if isinstance(job.body, dict) else None
        detail = [{"loc": ["body", field_name], "msg": SAFETY_MESSAGE, "type": "content_policy_violation",
                   "url": f"{ERRORS_URL}#content_policy_violation", "input": _short(value)}]
        return {"status": 422, "body": {"detail": detail},
                "headers": {"X-Fal-Error-Type": "content_policy_violation", "X-Fal-Retryable": "false"},
                "error": SAFETY_MESSAGE, "error_type": "content_policy_violation"}

    def _process(self, job: Job) -> None:
        from ..backends.base import file_url
        from ..request import GenerationRequest

        body = job.body
        if self.validate_on == "result" and not job.sync:
            detail = validate_input(body)
            if not detail:
                job.media, detail = self._resolve_media(body)
            if detail:
                self._finish(job, error=self._validation_error(detail))
                return
        request = GenerationRequest.model_validate(body)
        self._log(job, f"Generating {request.num_frames} frames at {'x'.join(map(str, request.size()))}, "
                       f"{request.frame_rate} fps, {len(request.images)} image(s), {len(request.videos)} video(s)")
        if job.held:
            self._log(job, "Waiting (held by the test)")
            while not job._release.wait(0.05):
                if self._interrupted(job):
                    return
        safety = next((f for f in job.faults if f.kind == "safety"), None)
        if safety is None and self.safety_trigger and self.safety_trigger in request.prompt:
            safety = JobFault("safety", field="prompt")
        if safety is not None:
            if self._sleep(job, self.latency):
                return
            self._finish(job, error=self._safety_error(job, safety.field))
            return
        failure = next((f for f in job.faults if f.kind == "error"), None)
        if failure is not None:
            if self._sleep(job, self.latency):
                return
            self._finish(job, error=self._server_error(failure.error, failure.error_type, failure.status))
            return

        seed = request.seed if request.seed is not None else int.from_bytes(hashlib.sha256(job.id.encode()).digest()[:4], "big")
        by_field = {m.field: m for m in job.media}
        images = [img.model_copy(update={"image_url": file_url(Path(by_field[f"images[{i}].image_url"].path))})
                  for i, img in enumerate(request.images)]
        videos = [vid.model_copy(update={"video_url": file_url(Path(by_field[f"videos[{i}].video_url"].path))})
                  for i, vid in enumerate(request.videos)]
        local = request.model_copy(update={"images": images, "videos": videos, "seed": seed})

        t0 = time.monotonic()
        dest = self._root / "files" / f"{job.id}.mp4"
        try:
            if self.canned:
                if self._progress_sleep(job, self.latency):
                    return
                src = self.canned_clip or self._canned_for(local)
                shutil.copyfile(src, dest.with_suffix(".part"))
                os.replace(dest.with_suffix(".part"), dest)
            else:
                if self._progress_sleep(job, self.latency):
                    return
                workdir = self._root / "work" / job.id
                workdir.mkdir(parents=True, exist_ok=True)
                try:
                    out = self._render(local, workdir)
                    shutil.move(str(out), dest.with_suffix(".part"))
                    os.replace(dest.with_suffix(".part"), dest)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
        except Exception as exc:
            from ..errors import MediaError

            if isinstance(exc, MediaError):
                detail = [{"loc": ["body"], "msg": f"Could not process the conditioning media: {exc}",
                           "type": "invalid_media", "url": f"{ERRORS_URL}#invalid_media"}]
                self._finish(job, error=self._validation_error(detail))
                return
            raise
        self._log(job, f"Generated in {time.monotonic() - t0:.2f}s")
        job.output = str(dest)
        result = {
            "video": {"url": f"{self.cdn_url}/files/{dest.name}", "content_type": "video/mp4",
                      "file_name": dest.name, "file_size": dest.stat().st_size},
            "prompt": request.prompt,
            "seed": seed,
        }
        self._finish(job, result=result)

    def _progress_sleep(self, job: Job, seconds: float) -> bool:
        """Sleep ``seconds`` in steps, logging progress like a sampler does; True when interrupted."""
        if seconds <= 0:
            return self._interrupted(job)
        steps = max(1, round(seconds / max(self.log_interval, 0.01)))
        for i in range(steps):
            if self._sleep(job, seconds / steps):
                return True
            self._log(job, f"step {i + 1}/{steps}")
        return False

    def _render(self, request, workdir: Path) -> Path:
        renderer = self.renderer
        if callable(renderer):
            self.renderer_used = getattr(renderer, "__name__", "callable")
            return Path(renderer(request, workdir))
        if renderer in ("auto", "preview"):
            try:
                from ..backends.preview import PreviewBackend
            except ImportError:
                if renderer == "preview":
                    raise
            else:
                self.renderer_used = "preview"
                return Path(PreviewBackend(drift=self.drift).generate(request, workdir).path)
        self.renderer_used = "testsrc"
        return _render_testsrc(request, workdir)

    def _canned_for(self, request) -> Path:
        """One test-pattern clip per (size, rate, length), made once per process, then copied."""
        self.renderer_used = "canned"
        return _canned_clip(request)

    # ------------------------------------------------------------------ persistence

    def _persist(self, job: Job) -> None:
        if self.state_dir is None or job.sync:
            return
        path = self._root / "jobs" / f"{job.id}.json"
        with self._lock:
            data = json.dumps(job.to_json())
        tmp = path.with_name(path.name + f".{threading.get_ident()}.tmp")
        tmp.write_text(data)
        os.replace(tmp, path)

    def _load_jobs(self) -> None:
        if self.state_dir is None:
            return
        for path in sorted((self._root / "jobs").glob("*.json")):
            try:
                job = Job.from_json(json.loads(path.read_text()))
            except (ValueError, TypeError):
                continue
            job.faults = [f for f in job.faults if f.kind != "hold"]
            with self._lock:
                self.jobs[job.id] = job
            if job.state != "COMPLETED":  # the emulator stopped mid-job: run it again
                job.state = "IN_QUEUE"
                self._log(job, "Emulator restarted; request re-queued")
                self._spawn(job)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(prog="python -m composer.testing.fal_emulator",
                                     description="Serve a fal-compatible emulator on loopback HTTPS.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default=DEFAULT_KEY, help="the FAL_KEY clients must send")
    parser.add_argument("--drift", type=float, default=0.0, help="colour drift of the preview renderer")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each generation takes on top of rendering")
    parser.add_argument("--queue-delay", type=float, default=0.0, help="seconds each request waits IN_QUEUE")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--canned", action="store_true", help="return a test pattern after --latency, no rendering")
    parser.add_argument("--canned-clip", default=None, help="return this file for every request")
    parser.add_argument("--validate-on", choices=("submit", "result"), default="submit")
    parser.add_argument("--state-dir", default=None, help="keep jobs, files and certificates here across restarts")
    args = parser.parse_args(argv)

    emu = FalEmulator(host=args.host, port=args.port, key=args.key, drift=args.drift, latency=args.latency,
                      queue_delay=args.queue_delay, workers=args.workers, canned=args.canned,
                      canned_clip=args.canned_clip, validate_on=args.validate_on, state_dir=args.state_dir)
    emu.start()
    for k, v in emu.env().items():
        print(f"export {k}={v}")
    print(f"# fal emulator on {emu.base_url} (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
