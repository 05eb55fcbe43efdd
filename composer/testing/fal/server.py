"""The fal emulator's HTTPS server: TLS plumbing, routing, auth, recording, the public
``FalEmulator`` API (lifecycle, env, fal_client patching, stats) and the admin endpoints.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit


from .cdn import CdnMixin
from .drift import DriftOption
from .faults import STAGES, Fault, FaultsMixin, JobFault
from .generation import GenerationMixin
from .queue import QueueMixin
from .state import APP_ID, DEFAULT_KEY, _Dropped, Job, Received, Upload, _log
from ..tls import TLSFiles, make_tls_files



# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fal-emulator/1"
    sys_version = ""
    timeout = 60  # idle keep-alive connections end after this

    def _go(self) -> None:
        self.server.emulator._dispatch(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _go

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s %s", self.address_string(), format % args)


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], emulator: FalEmulator, context) -> None:
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
            super().finish_request(conn, client_address)  # builds RequestHandlerClass over the TLS socket
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



class FalEmulator(FaultsMixin, CdnMixin, QueueMixin, GenerationMixin):
    """A fal-compatible HTTPS server on loopback; see the module docstring.

    ``with FalEmulator(drift=0.3) as emu: ...`` or ``emu.start()`` / ``emu.stop()``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str = DEFAULT_KEY,
        drift: DriftOption = 0.0,
        latency: float = 0.0,
        queue_delay: float = 0.0,
        canned: bool = False,
        canned_clip: str | os.PathLike | None = None,
        concurrency: int | None = None,
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
        # Like a fal account: at most this many requests run at once (2 for a new account,
        # up to 40 with credits), the rest wait IN_QUEUE. ``workers`` is its older name.
        self.concurrency = max(1, int(concurrency if concurrency is not None else workers))
        self.workers = self.concurrency
        self.peak_running = 0  # the most queue requests that were ever IN_PROGRESS at once
        self.validate_on = validate_on
        self.renderer = renderer
        self.apps = tuple(apps) if apps else (APP_ID,)
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
        self._slot_cond = threading.Condition()
        self._waiting: list[tuple[float, str]] = []  # (submitted, id) of jobs waiting for a slot, oldest first
        self._running = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: _TLSServer | None = None
        self._serve_thread: threading.Thread | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._root: Path | None = None
        self.tls: TLSFiles | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FalEmulator:
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

    def __enter__(self) -> FalEmulator:
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
    def patched_fal_client(self, *, set_env: bool = True) -> Iterator[FalEmulator]:
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

    def submit_count(self, app_id: str | None = None) -> int:
        """Accepted (paid) submits, for one app or all."""
        with self._lock:
            return self.submits[app_id] if app_id else sum(self.submits.values())

    def billed_count(self, app_id: str | None = None) -> int:
        """What fal would bill: accepted submits, less those that failed on fal's side (HTTP 5xx results are
        never billed, by fal's docs); a cancelled or rejected request still counts."""
        free = sum(1 for j in self._queued_jobs(app_id) if j.error and int(j.error.get("status") or 0) >= 500)
        return self.submit_count(app_id) - free

    def submitted_bodies(self, app_id: str | None = None) -> list[Any]:
        return [j.body for j in self._queued_jobs(app_id)]

    def _queued_jobs(self, app_id: str | None) -> list[Job]:
        """The jobs submitted through the queue (not run synchronously), for one app or all."""
        with self._lock:
            return [j for j in self.jobs.values() if not j.sync and (app_id is None or j.app_id == app_id)]

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
                "concurrency": self.concurrency,
                "running": self._running,
                "peak_running": self.peak_running,
                "counts": dict(self.counts),
                "tls_connections": self.tls_connections,
                "submits": dict(self.submits),
                "jobs": {
                    j.id: {"app_id": j.app_id, "state": j.state, "cancelled": j.cancelled,
                           "result_fetches": j.result_fetches, "error": (j.error or {}).get("error_type"),
                           "created": j.created, "started": j.started, "finished": j.finished,
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
        except Exception as exc:  # noqa: BLE001 — a bug in the emulator, whatever it is, must answer 500 and be logged
            _log.exception("fal emulator failed on %s %s", h.command, split.path)
            with contextlib.suppress(OSError, ValueError):  # the client may be gone, its stream closed
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

