"""The fal backend: LTX-Video 13B distilled multiconditioning through ``fal_client``.

One ``generate`` call = one paid queue request: local ``file://`` media become
data URIs (small) or fal CDN uploads (large), the request is submitted, its
status is polled with logs (reported as ``queued`` / ``log`` events), the result
is fetched and its video downloaded, checked (decodes, right frame count) and
written atomically into ``workdir``. (One job, a paid request's life from submit to a
verified file, so it stays one file; how fal_client is driven lives in ``fal_transport``.)

Where fal lives. fal_client reads ``FAL_RUN_HOST`` / ``FAL_QUEUE_RUN_HOST`` once,
when it is imported, and keeps its storage hosts in module constants
(``REST_URL``, ``CDN_URL``). This backend re-reads those two variables, plus
``COMPOSER_FAL_REST_URL`` / ``COMPOSER_FAL_CDN_URL``, from its environment (``env=``,
else ``os.environ``) each time it generates and sets fal_client's module-level URLs to
match (``configure_fal_client``), so the environment decides whatever the import
order. Unset, fal_client's own values stand. That is how the test suite points it at
``composer.testing.FalEmulator``. fal_client reads those URLs at call time, so they are
process-wide: backends with different hosts in one process would race.

Retries: who retries what.
- fal_client (1.0.3, ``_maybe_retry_request``) retries every submit, status,
  result, cancel and upload call by itself, up to 10 attempts with exponential
  backoff from 0.1 s (capped at 30 s) and jitter, on: any ``httpx`` transport
  error or timeout (connect, read, write, a dropped connection), HTTP 408, 409,
  429, and 502/503/504 answers that look like an nginx ingress error (no
  ``x-fal-request-id`` header, "nginx" in the body). It does not retry other 5xx.
- We therefore retry, ``retries`` times with our own backoff + jitter, only what
  fal_client gives up on immediately: 5xx answers (500, and 502-504 from fal's
  own servers). Transport errors, timeouts and 429 that escape fal_client have
  already been retried ten times; retrying them again would multiply the
  attempts, so they become a ``BackendError(retryable=True)`` for the scheduler,
  which knows the request id (``on_submitted``) and re-attaches instead of paying
  again.
- Submit is the one call that costs money, and fal has no idempotency key. A
  dropped connection or read timeout after the submit was sent may mean it was
  queued (and billed) with the answer lost; fal_client would resend it blindly.
  Our HTTP transport (``_SubmitGuard``) turns exactly that case into
  ``SubmitOutcomeUnknown``, which fal_client does not catch, and we raise a
  non-retryable ``BackendError`` saying the request may have been queued:
  paying twice silently is worse than asking a person to check the dashboard.
  Failures where nothing can have reached the queue (connection refused, connect
  timeout, an incomplete write) are still retried by fal_client; an HTTP error
  answer to a submit (429, 5xx) means the queue did not take it, so it is retried.
- 422 → ``RequestRejected``; a content-policy rejection (``error_type`` /
  detail ``type`` ``content_policy_violation``) → ``SafetyRejected``; neither is
  retried. 401/403 → a non-retryable error about FAL_KEY.

Connections: a backend keeps one fal_client client (``_SubmitGuard`` inside) and one
download client for its life, sharing one SSL context, so the segments of every chain
reuse kept-alive TLS connections (``FalBackend.api_client`` / ``download_client``,
closed by ``close()``). Once a poll says COMPLETED the result is fetched directly,
without the extra status poll fal_client's ``handle.get()`` makes first.

Injection, as httpx does it: ``FalBackend(env={...})`` reads FAL_KEY, the hosts and the CA
settings from that mapping instead of ``os.environ``; ``FalBackend(transport=...)`` puts an
``httpx`` transport of the caller's (who keeps and closes it) under both clients.
fal_client keeps its ``httpx.Client`` in the private ``SyncClient._client``; replacing it is
this module's one reach into fal_client's insides (``_GuardedSyncClient``, checked by
``check_fal_client_layout``).

The key is read from ``FAL_KEY`` when generating, handed to fal_client's
``SyncClient(key=...)`` (a field it keeps out of its repr), and never logged,
printed, written or put into a message (server text is redacted just in case).
The video is downloaded without the key: result URLs are public CDN links and
the key must not travel to another host.
"""
from __future__ import annotations

import hashlib
import errno
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import fal_client
import fal_client.client as _fc
import httpx

from ..atomic import atomic_path
from ..errors import BackendError, Cancelled, RequestRejected, SafetyRejected
from ..request import ENDPOINT_ID, GenerationRequest
from .base import Backend, GenerateContext, GenerationResult, local_path
from .fal_transport import (
    SubmitOutcomeUnknown,
    _Borrowed,
    _built_http_client,
    _detail,
    _fal_client_retries,
    _GuardedSyncClient,
    check_fal_client_layout,
    configure_fal_client,
    fal_urls,
    probe_queue,
)
from .fal_catalog import (
    DETAIL_PASS_MULTIPLIER,
    FAL_PRICING,
    OUTPUT_SIZES,
    PRICE_PER_REQUEST_USD,
    output_size,
    request_cost,
)

__all__ = ["DEFAULT_DATA_URI_MAX_BYTES", "DETAIL_PASS_MULTIPLIER", "OUTPUT_SIZES", "PRICE_PER_REQUEST_USD",
           "FalBackend", "SubmitOutcomeUnknown", "check_fal_client_layout", "configure_fal_client", "fal_urls",
           "output_size", "request_cost"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_DATA_URI_MAX_BYTES = 2 * 1024 * 1024  # bigger local media are uploaded to fal's CDN
DEFAULT_DOWNLOAD_MAX_BYTES = 2 * 1024**3

class FalBackend(Backend):
    """Generates each segment with fal's LTX-Video 13B distilled multiconditioning endpoint.

    ``poll_interval`` (default 0.1 s, fal_client's own ``DEFAULT_QUEUE_POLL_INTERVAL``): time
    between one request's status polls. Each poll also brings the request's new log lines. A
    longer interval adds, on average, half of it to every segment's wait after fal has finished,
    and in a chain that wait is on the critical path. ``max_poll_rate`` (default 160 a second,
    what 40 requests polled every 0.25 s made) bounds all requests' polls together: with many
    requests in flight each is polled less often.
    One HTTP client for fal's API and one for downloads are kept for the backend's life and
    shared by all threads; ``close()`` closes them.
    """

    verifies_clips = True  # it wrote (preview) or decoded (fal) the clip it returns

    name = "fal"
    version = "1"
    paid = True

    def __init__(
        self,
        endpoint_id: str = ENDPOINT_ID,
        *,
        retries: int = 4,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        jitter: bool = True,
        poll_interval: float = 0.1,
        max_poll_rate: float = 160.0,
        max_wait: float | None = None,
        timeout: float = 120.0,
        data_uri_max_bytes: int = DEFAULT_DATA_URI_MAX_BYTES,
        download_max_bytes: int = DEFAULT_DOWNLOAD_MAX_BYTES,
        download_retries: int = 3,
        failed_resubmits: int = 2,
        verify_output: bool = True,
        transport: httpx.BaseTransport | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.endpoint_id = endpoint_id
        self.transport = transport  # the caller's; used by both clients, closed by its owner
        self._env = dict(env) if env is not None else None  # None: os.environ, read at each use
        self.retries = max(0, int(retries))
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.jitter = jitter
        self.poll_interval = float(poll_interval)
        self.max_poll_rate = float(max_poll_rate)
        self._waiting = 0  # requests being polled now, across threads
        self.max_wait = max_wait
        self.timeout = float(timeout)
        self.data_uri_max_bytes = int(data_uri_max_bytes)
        self.download_max_bytes = int(download_max_bytes)
        self.download_retries = max(0, int(download_retries))
        # fal does not bill a request that failed on its side (5xx): such a one is bought again, a few times
        self.failed_resubmits = max(0, int(failed_resubmits))
        self.verify_output = verify_output
        self._uploads: dict[tuple, str] = {}  # (file, size, mtime, storage hosts) → URL, for this backend's life
        self._upload_locks: dict[tuple, threading.Lock] = {}
        self._uploads_lock = threading.Lock()
        # HTTP clients kept for this backend's life (see ``api_client``), by what they were built from.
        self._api_clients: dict[tuple, _GuardedSyncClient] = {}
        self._download_clients: dict[tuple, httpx.Client] = {}
        self._ssl_contexts: dict[tuple, Any] = {}  # one CA bundle load for both clients
        self._clients_lock = threading.Lock()

    @property
    def env(self) -> Mapping[str, str]:
        """Where FAL_KEY, fal's hosts and the CA settings come from: the injected mapping, or os.environ."""
        return os.environ if self._env is None else self._env

    def estimate_cost(self, request: GenerationRequest) -> float:
        """fal's price: per request whatever its length, twice with the detail pass."""
        return FAL_PRICING.estimate_cost(request)

    def output_size(self, resolution: str, aspect_ratio: str) -> tuple[int, int]:
        return FAL_PRICING.output_size(resolution, aspect_ratio)

    def preflight(self, timeout: float = 3.0) -> None:
        """A key is set and fal's queue host answers, in seconds: not fal_client's retry loop."""
        key = self.env.get("FAL_KEY", "").strip()
        if not key:
            raise BackendError("FAL_KEY is not set: export your fal API key (https://fal.ai/dashboard/keys) "
                               "to use the fal backend; nothing was spent", retryable=False)
        # a host that took the connection and then dropped it is there: the render's own retries deal with
        # a flaky line, and "unreachable" would be untrue
        dropped = (httpx.RemoteProtocolError, httpx.ReadError)
        answer = probe_queue(self.endpoint_id, timeout, self.env)
        for _ in range(2):  # an unanswered probe may be one bad moment; a refused or dropped connection is not
            if "status" in answer or isinstance(answer.get("error"), (httpx.ConnectError, *dropped)):
                break
            answer = probe_queue(self.endpoint_id, timeout, self.env)
        if isinstance(answer.get("error"), dropped):
            _log.info("fal's queue dropped the probe's connection (%s); going on", type(answer["error"]).__name__)
            return
        if "status" not in answer:
            exc = answer.get("error")
            why = f"{type(exc).__name__}" if exc is not None else f"no answer within {timeout:g}s"
            host = fal_urls(dict(self.env))["QUEUE_URL_FORMAT"].split("/")[2]
            raise BackendError(f"fal's queue ({host}) is unreachable ({why}): no network, a firewall or a proxy "
                               "in the way; `composer doctor` says more; nothing was spent", retryable=False)
        if answer["status"] in (401, 403):
            raise BackendError(f"fal refused FAL_KEY (HTTP {answer['status']}): check the key; nothing was spent",
                               retryable=False)

    def poll_every(self) -> float:
        """Seconds between one request's polls now: ``poll_interval``, longer when so many are in
        flight that all of them together would poll more than ``max_poll_rate`` times a second."""
        rate = self.max_poll_rate if self.max_poll_rate > 0 else float("inf")
        return max(self.poll_interval, self._waiting / rate)

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (0-based): exponential, capped, with jitter."""
        delay = min(self.max_delay, self.base_delay * (2**attempt))
        if self.jitter:
            delay *= random.uniform(0.5, 1.5)
        return min(delay, self.max_delay)

    def generate(self, request: GenerationRequest, workdir: Path, ctx: GenerateContext | None = None) -> GenerationResult:
        key = self.env.get("FAL_KEY", "").strip()
        ctx = ctx or GenerateContext()
        if not key:
            raise BackendError(
                "FAL_KEY is not set: export your fal API key (https://fal.ai/dashboard/keys) to use the fal backend",
                segment=ctx.label or None, retryable=False)
        return _Run(self, request, Path(workdir), ctx, key).execute()

    def api_client(self, key: str, submit_path: str) -> _GuardedSyncClient:
        """The fal_client client for ``key``, made once and shared by every ``generate`` (and thread).

        One ``httpx.Client`` per backend: its SSL context (the CA bundle loaded once) and its
        keep-alive connections serve every request of every chain, instead of a new context and
        TLS handshake per segment. httpx's pool is thread-safe; a pooled connection is reused
        only while the server has not closed it and it has been idle under httpx's 5 s
        keep-alive expiry, so a submit is not sent into a connection known to be dead.
        A new one is made when the key, the submit path or the CA settings change.
        """
        ident = (hashlib.sha256(key.encode()).hexdigest(), submit_path) + _ca_settings(self.env)  # not the key
        with self._clients_lock:
            client = self._api_clients.get(ident)
            if client is None:
                client = _GuardedSyncClient(key=key, default_timeout=self.timeout, guarded_paths=(submit_path,),
                                            ssl_context=self._ssl_context(), transport=self.transport)
                _built_http_client(client)  # under the lock: one httpx.Client, whatever the threads
                self._api_clients[ident] = client
            return client

    def download_client(self) -> httpx.Client:
        """The ``httpx.Client`` that downloads results (no Authorization header), one per backend."""
        ident = _ca_settings(self.env)
        with self._clients_lock:
            client = self._download_clients.get(ident)
            if client is None:
                transport = _Borrowed(self.transport) if self.transport is not None else None
                client = httpx.Client(timeout=httpx.Timeout(self.timeout, connect=30.0), follow_redirects=True,
                                      verify=self._ssl_context(), transport=transport)
                self._download_clients[ident] = client
            return client

    def _ssl_context(self) -> Any:
        """The SSL context both clients verify with (as httpx would build it: SSL_CERT_FILE / SSL_CERT_DIR
        of ``env``, else certifi's bundle), made once per CA setting. Called with ``_clients_lock`` held."""
        ident = _ca_settings(self.env)
        context = self._ssl_contexts.get(ident)
        if context is None:
            cafile, capath = ident
            if cafile or capath:
                context = ssl.create_default_context(cafile=cafile or None, capath=capath or None)
            else:
                context = httpx.create_ssl_context()
            self._ssl_contexts[ident] = context
        return context

    def close(self) -> None:
        with self._uploads_lock:
            self._uploads.clear()
            self._upload_locks.clear()
        with self._clients_lock:
            clients: list[_GuardedSyncClient | httpx.Client] = [*self._api_clients.values(), *self._download_clients.values()]
            self._api_clients.clear()
            self._download_clients.clear()
            self._ssl_contexts.clear()
        for client in clients:
            try:
                client.close()
            except Exception as exc:  # noqa: BLE001 - closing is best effort, whatever the client raises
                _log.debug("closing an HTTP client failed: %s", type(exc).__name__)


def _ca_settings(env: Mapping[str, str]) -> tuple[str, str]:
    """What httpx reads from the environment when it builds a client's SSL context."""
    return env.get("SSL_CERT_FILE", ""), env.get("SSL_CERT_DIR", "")


def _fetch_result(handle: Any) -> Any:
    """The result of a request already seen COMPLETED: ``handle.get()`` without the status poll it
    makes first (one round trip less per segment), through fal_client's own retrying request."""
    retrying = getattr(_fc, "_maybe_retry_request", None)
    raise_for_status = getattr(_fc, "_raise_for_status", None)
    if retrying is None or raise_for_status is None:  # another fal_client: its public way
        return handle.get()
    response = retrying(handle.client, "GET", handle.response_url,
                        timeout=getattr(_fc, "QUEUE_POLL_TIMEOUT", httpx.Timeout(120.0, connect=30.0)))
    raise_for_status(response)
    return response.json()


class _Gone(Exception):
    """The server does not know the request id (unknown or expired)."""


class _QueuedAnyway(Exception):
    """A submit answered with a server error that names a request id: fal may have queued (and billed) it."""

    def __init__(self, request_id: str, status_code: int):
        super().__init__(request_id)
        self.request_id, self.status_code = request_id, status_code


class _FailedOnServer(Exception):
    """A request that fal ran and that failed on fal's side (its result is a 5xx): not billed."""

    def __init__(self, error: BackendError):
        super().__init__(str(error))
        self.error = error


class _Run:
    """One ``generate`` call's state."""

    def __init__(self, backend: FalBackend, request: GenerationRequest, workdir: Path, ctx: GenerateContext, key: str):
        self.b = backend
        self.request = request
        self.workdir = workdir
        self.ctx = ctx
        self._key = key
        self.segment = ctx.label or None
        self.request_id: str | None = None
        self.client: _GuardedSyncClient | None = None  # the backend's (``FalBackend.api_client``)
        self._seen_logs: set[tuple] = set()

    # ------------------------------------------------------------------ helpers

    def api(self) -> _GuardedSyncClient:
        """The client ``execute`` took from the backend; every request goes through it."""
        if self.client is None:
            raise RuntimeError("the fal client is set by execute(), before any request")
        return self.client

    def redact(self, text: str) -> str:
        return text.replace(self._key, "[FAL_KEY]") if self._key else text

    def error(self, cls: type[BackendError], message: str, *, retryable: bool) -> BackendError:
        if self.request_id:
            message = f"{message} [fal request {self.request_id}]"
        return cls(self.redact(message), segment=self.segment, retryable=retryable)

    def cancelled(self) -> bool:
        return bool(self.ctx.cancelled and self.ctx.cancelled())

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.cancelled():
                return
            time.sleep(min(left, 0.05))

    def cancel_and_raise(self, handle: Any | None) -> None:
        if handle is not None:
            try:
                handle.cancel()
                self.ctx.emit("log", f"cancelled fal request {handle.request_id}")
            except Exception as exc:  # noqa: BLE001 - best effort: the scheduler stops either way
                _log.debug("cancelling fal request %s failed: %s", handle.request_id, type(exc).__name__)
        where = f"; fal request {self.request_id} cancelled" if self.request_id else ""
        raise Cancelled(f"{self.segment + ': ' if self.segment else ''}cancelled{where}")

    def classify(self, exc: fal_client.FalClientHTTPError, stage: str) -> BackendError:
        code = exc.status_code
        text, items = _detail(exc)
        headers = {k.lower(): v for k, v in (exc.response_headers or {}).items()}
        types = {str(d.get("type")) for d in items}
        error_type = exc.error_type or headers.get("x-fal-error-type")
        if error_type == "content_policy_violation" or "content_policy_violation" in types:
            fields = sorted({".".join(str(p) for p in d.get("loc", []) if p != "body") for d in items
                             if d.get("type") == "content_policy_violation"} - {""})
            what = f"; field {', '.join(fields)}" if fields else ""
            said = "; ".join(dict.fromkeys(str(d["msg"]) for d in items
                                           if d.get("type") == "content_policy_violation" and d.get("msg"))) or text
            return self.error(SafetyRejected, f"fal's safety checker rejected the request (content policy "
                                              f"violation{what}): {said}", retryable=False)
        if code == 422 or (code == 400 and stage in ("submit", "run")):
            return self.error(RequestRejected, f"fal refused the request as invalid (HTTP {code}): {text}", retryable=False)
        if code in (401, 403):
            return self.error(BackendError, f"fal refused the credentials (HTTP {code}): check FAL_KEY", retryable=False)
        if code == 404 and stage == "submit":
            return self.error(BackendError, f"fal does not know the endpoint {self.b.endpoint_id!r} (HTTP 404)",
                              retryable=False)
        if code == 429:
            return self.error(BackendError, f"fal rate limit (HTTP 429) at {stage}, after fal_client's own retries",
                              retryable=True)
        if code >= 500:
            kind = f" {error_type}" if error_type else ""
            retryable = headers.get("x-fal-retryable", "true").lower() != "false"
            return self.error(BackendError, f"fal server error (HTTP {code}{kind}) at {stage}: {text}",
                              retryable=retryable)
        return self.error(BackendError, f"fal answered HTTP {code} at {stage}: {text}", retryable=False)

    def call(self, stage: str, fn: Callable[[], T], *, handle: Any | None = None, gone_ok: bool = False) -> T:
        """Run one fal_client call, retrying only what fal_client does not retry itself."""
        attempt = 0
        while True:
            try:
                return fn()
            except SubmitOutcomeUnknown as exc:
                raise self.error(
                    BackendError,
                    f"{exc}; the request may have been queued (and billed) on fal with its id lost, so it was not "
                    "resubmitted automatically. Check https://fal.ai/dashboard/requests before rendering again",
                    retryable=False) from exc
            except fal_client.FalClientHTTPError as exc:
                if gone_ok and exc.status_code in (404, 410):
                    raise _Gone() from exc
                queued = _request_id_of(exc) if stage == "submit" and exc.status_code >= 500 else None
                if queued:  # never retried blindly: ``submit`` follows that request instead
                    raise _QueuedAnyway(queued, exc.status_code) from exc
                err = self.classify(exc, stage)
                if (err.retryable and exc.status_code >= 500 and not _fal_client_retries(exc.response)
                        and attempt < self.b.retries):
                    delay = self.b.backoff(attempt)
                    attempt += 1
                    self.ctx.emit("retry", f"{stage}: HTTP {exc.status_code}; retry {attempt}/{self.b.retries} in "
                                           f"{delay:.2f}s", stage=stage, attempt=attempt, delay=delay,
                                  status=exc.status_code)
                    _log.debug("fal %s: HTTP %s, retry %d in %.2fs", stage, exc.status_code, attempt, delay)
                    self.sleep(delay)
                    if self.cancelled():
                        self.cancel_and_raise(handle)
                    continue
                raise err from exc
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                raise self.error(
                    BackendError,
                    f"cannot reach fal at {stage} ({type(exc).__name__}) after fal_client's own retries",
                    retryable=True) from exc
            except fal_client.FalClientError as exc:
                raise self.error(BackendError, f"fal_client failed at {stage}: {type(exc).__name__}",
                                 retryable=True) from exc

    # ------------------------------------------------------------------ the flow

    def execute(self) -> GenerationResult:
        if self.cancelled():
            self.cancel_and_raise(None)
        configure_fal_client(self.b.env)
        submit_path = httpx.URL(_fc.QUEUE_URL_FORMAT + self.b.endpoint_id).path
        self.client = self.b.api_client(self._key, submit_path)
        handle, status = None, None
        if self.ctx.resume_request_id:
            handle, status = self.reattach(self.ctx.resume_request_id)
        if handle is None:
            handle = self.submit()
        for attempt in range(self.b.failed_resubmits + 1):
            try:
                result = self.wait(handle, status)
                break
            except _FailedOnServer as failed:
                if attempt >= self.b.failed_resubmits:
                    raise failed.error from None
                self.ctx.emit("log", f"fal request {handle.request_id} failed on fal's side ({failed.error}); fal "
                                     "does not bill server errors (HTTP 5xx), so it is submitted again")
                handle, status = self.submit(), None
        video = result.get("video") if isinstance(result, dict) else None
        url = video.get("url") if isinstance(video, dict) else None
        if not isinstance(url, str) or not url:
            raise self.error(BackendError, "fal's result has no video URL", retryable=False)
        dest = self.workdir / f"fal-{handle.request_id}.mp4"
        frames = self.download_and_verify(url, dest)
        seed = result.get("seed")
        return GenerationResult(path=dest, request_id=handle.request_id, cost_usd=self.b.estimate_cost(self.request),
                                seed=seed if isinstance(seed, int) else None, num_frames=frames)

    def reattach(self, request_id: str) -> tuple[Any | None, Any]:
        """A handle on a request an earlier run submitted, or (None, None) when it must be submitted anew."""
        handle = self.api().get_handle(self.b.endpoint_id, request_id)
        try:
            status = self.call("status", lambda: handle.status(with_logs=True), handle=handle, gone_ok=True)
        except _Gone:
            if self.ctx.confirm_resubmit is not None:  # it may have expired: buying anew is the caller's call
                self.ctx.confirm_resubmit(f"fal answers that request {request_id} is unknown or expired")
            self.ctx.emit("log", f"fal request {request_id} is unknown or expired; submitting anew")
            return None, None
        self.request_id = request_id
        if (isinstance(status, fal_client.Completed) and status.error
                and status.error_type != "content_policy_violation" and not self._deterministic_failure(handle)):
            # A request that failed on fal's side (fal does not bill those) or was cancelled
            # will fail the same way when fetched again: make a new one.
            self.ctx.emit("log", f"fal request {request_id} had failed ({status.error_type or status.error}); "
                                 "submitting anew")
            self.request_id = None
            return None, None
        self.ctx.emit("log", f"re-attached to fal request {request_id}")
        return handle, status

    def _deterministic_failure(self, handle: Any) -> bool:
        """Whether a failed request's result is a rejection (4xx) rather than a server failure."""
        try:
            handle.get()
        except fal_client.FalClientHTTPError as exc:
            return 400 <= exc.status_code < 500 and exc.status_code not in (408, 429, 499) and (
                exc.error_type != "client_cancelled")
        except Exception:  # noqa: BLE001 - the result could not be read at all: not a known rejection
            return False
        return False

    def submit(self) -> Any:
        body = self.prepare_body()
        if self.cancelled():
            self.cancel_and_raise(None)
        handle, unknown = None, 0
        while handle is None:
            try:
                handle = self.call("submit", lambda: self.api().submit(self.b.endpoint_id, body))
            except _QueuedAnyway as queued:
                handle = self.follow_queued(queued)  # None: fal does not know it, so nothing was bought
                unknown += handle is None
                if handle is None and unknown > self.b.retries:
                    raise self.error(BackendError, f"fal server error (HTTP {queued.status_code}) at submit, "
                                     f"{unknown} times", retryable=True) from queued
        self.request_id = handle.request_id
        _log.debug("fal request %s submitted for %s", handle.request_id, self.segment or "a segment")
        if self.ctx.on_submitted is not None:
            self.ctx.on_submitted(handle.request_id)
        self.ctx.emit("submitted", f"fal request {handle.request_id}", request_id=handle.request_id)
        return handle

    def follow_queued(self, queued: _QueuedAnyway) -> Any | None:
        """A handle on the request a failed submit answer named, when fal knows it (submitting again
        would pay twice); None when fal does not, and the submit may be tried again."""
        handle = self.api().get_handle(self.b.endpoint_id, queued.request_id)
        try:
            self.call("status", lambda: handle.status(with_logs=False), handle=handle, gone_ok=True)
        except _Gone:
            self.ctx.emit("log", f"submit: HTTP {queued.status_code}; fal does not know request "
                                 f"{queued.request_id}, submitting again")
            return None
        self.ctx.emit("log", f"submit: HTTP {queued.status_code}, but fal queued it as request {queued.request_id}: "
                             "following that request, not paying again")
        return handle

    def wait(self, handle: Any, status: Any = None) -> dict[str, Any]:
        with self.b._clients_lock:
            self.b._waiting += 1
        try:
            return self._wait(handle, status)
        finally:
            with self.b._clients_lock:
                self.b._waiting -= 1

    def _wait(self, handle: Any, status: Any = None) -> dict[str, Any]:
        started = time.monotonic()
        last_position = None
        while True:
            if self.cancelled():
                self.cancel_and_raise(handle)
            if status is None:
                status = self.call("status", lambda: handle.status(with_logs=True), handle=handle)
            if isinstance(status, fal_client.Queued):
                if status.position != last_position:
                    last_position = status.position
                    self.ctx.emit("queued", f"queue position {status.position}", position=status.position)
            else:
                self.emit_logs(getattr(status, "logs", None))
            if isinstance(status, fal_client.Completed):
                if status.error:
                    self.raise_failed(handle, status)
                break
            if self.b.max_wait is not None and time.monotonic() - started > self.b.max_wait:
                raise self.error(BackendError, f"fal request not finished after {self.b.max_wait:.0f}s",
                                 retryable=True)
            self.sleep(self.b.poll_every())
            status = None
        return self.call("result", lambda: _fetch_result(handle), handle=handle)

    def emit_logs(self, logs: list[dict[str, Any]] | None) -> None:
        for entry in logs or []:
            if not isinstance(entry, dict):
                continue
            key = (entry.get("timestamp"), entry.get("message"))
            if key in self._seen_logs:
                continue
            self._seen_logs.add(key)
            self.ctx.emit("log", self.redact(str(entry.get("message", ""))), level=entry.get("level"))

    def raise_failed(self, handle: Any, status: Any) -> None:
        """A request that completed with an error: fetch its result once for the details, then raise."""
        try:
            handle.get()
        except fal_client.FalClientHTTPError as exc:
            error = self.classify(exc, "result")
            if exc.status_code >= 500 and error.retryable:
                raise _FailedOnServer(error) from exc
            raise error from exc
        except Exception as exc:  # noqa: BLE001 - no details to add: the status below says enough
            _log.debug("fetching the failed result gave %s", type(exc).__name__)
        text = f"{status.error}" + (f" ({status.error_type})" if status.error_type else "")
        if status.error_type == "content_policy_violation":
            raise self.error(SafetyRejected, f"fal's safety checker rejected the request: {text}", retryable=False)
        raise self.error(BackendError, f"fal request failed: {text}", retryable=True)

    # ------------------------------------------------------------------ media

    def prepare_body(self) -> dict[str, Any]:
        body = self.request.to_endpoint_json()
        for group, key in (("images", "image_url"), ("videos", "video_url")):
            for i, item in enumerate(body.get(group) or []):
                item[key] = self.media_url(item[key], f"{group}[{i}].{key}")
        return body

    def media_url(self, url: str, where: str) -> str:
        path = local_path(url)
        if path is None:  # https:// or data: already: fal reads it
            return url
        if not path.is_file():
            raise self.error(BackendError, f"conditioning media {where} not found: {path}", retryable=False)
        size = path.stat().st_size
        if size <= self.b.data_uri_max_bytes:
            return fal_client.encode_file(path)
        return self.upload(path, size, where)

    def upload(self, path: Path, size: int, where: str) -> str:
        stat = path.stat()
        cache_key = (str(path.resolve()), size, stat.st_mtime_ns, _fc.CDN_URL, _fc.REST_URL)
        with self.b._uploads_lock:  # one upload per file, even when chains race for the same keyframe
            file_lock = self.b._upload_locks.setdefault(cache_key, threading.Lock())
        with file_lock:
            with self.b._uploads_lock:
                cached = self.b._uploads.get(cache_key)
            if cached:
                return cached
            url = self.call("upload", lambda: self.api().upload_file(path))
            with self.b._uploads_lock:
                self.b._uploads[cache_key] = url
        self.ctx.emit("log", f"uploaded {where} ({size / 1e6:.1f} MB) to fal storage")
        return url

    # ------------------------------------------------------------------ download

    def download_and_verify(self, url: str, dest: Path) -> int | None:
        """Download the result to ``dest``; its frame count when verified (``verify_output``), else None."""
        attempt = 0
        while True:
            try:
                self.download(url, dest)
                return self.verify(dest) if self.b.verify_output else None
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                dest.unlink(missing_ok=True)
                raise self.error(BackendError, f"no space left on device writing {dest} (downloading the result "
                                 f"video; {dest.parent} is full)", retryable=False) from exc
            except _DownloadFailed as exc:
                dest.unlink(missing_ok=True)
                if not exc.retryable or attempt >= self.b.download_retries:
                    raise self.error(BackendError, f"downloading the result video failed: {exc}",
                                     retryable=exc.retryable) from exc
                delay = self.b.backoff(attempt)
                attempt += 1
                self.ctx.emit("retry", f"download: {exc}; retry {attempt}/{self.b.download_retries} in {delay:.2f}s",
                              stage="download", attempt=attempt, delay=delay)
                self.sleep(delay)

    def download(self, url: str, dest: Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        limit = self.b.download_max_bytes
        try:
            # No Authorization header: the key is for fal's API, not for whatever host serves the file.
            http = self.b.download_client()
            with http.stream("GET", url) as response, atomic_path(dest) as tmp:
                if response.status_code != 200:
                    raise _DownloadFailed(f"HTTP {response.status_code}",
                                          retryable=response.status_code >= 500 or response.status_code == 429)
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                if expected is not None and expected > limit:
                    raise _DownloadFailed(f"the video is {expected} bytes, over the {limit}-byte limit",
                                          retryable=False)
                written = 0
                with open(tmp, "wb") as f:
                    try:
                        for chunk in response.iter_bytes():
                            written += len(chunk)
                            if written > limit:
                                raise _DownloadFailed(f"the video is over the {limit}-byte limit",
                                                      retryable=False)
                            f.write(chunk)
                    except httpx.TransportError as exc:
                        raise _DownloadFailed(
                            f"truncated: the connection ended after {response.num_bytes_downloaded} of "
                            f"{expected if expected is not None else 'unknown'} bytes ({type(exc).__name__})",
                            retryable=True) from exc
                if expected is not None and response.num_bytes_downloaded != expected:
                    raise _DownloadFailed(
                        f"truncated: got {response.num_bytes_downloaded} of {expected} bytes", retryable=True)
                if written == 0:
                    raise _DownloadFailed("empty file", retryable=True)
        except httpx.HTTPError as exc:
            raise _DownloadFailed(f"transfer failed ({type(exc).__name__}: {exc})", retryable=True) from exc

    def verify(self, path: Path) -> int:
        """Check that the video decodes and has the requested frame count; return that count."""
        try:
            frames, width, height = probe_video(path)
        except _CorruptVideo as exc:
            raise _DownloadFailed(f"the downloaded video does not decode ({exc}); truncated or corrupt",
                                  retryable=True) from exc
        want = self.request.num_frames
        if frames != want:
            raise _DownloadFailed(f"the video has {frames} frames, {want} were requested", retryable=False)
        expected_size = self.b.output_size(self.request.resolution, self.request.aspect_ratio)
        if width and height and (width, height) != expected_size:
            self.ctx.emit("log", f"fal returned {width}x{height}, expected {expected_size[0]}x{expected_size[1]}",
                          width=width, height=height)
        return frames


def _request_id_of(exc: fal_client.FalClientHTTPError) -> str | None:
    """The request id an error answer carries (fal's ``x-fal-request-id`` header), if any."""
    headers = {k.lower(): v for k, v in (exc.response_headers or {}).items()}
    rid = headers.get("x-fal-request-id")
    return rid.strip() if isinstance(rid, str) and rid.strip() else None


class _DownloadFailed(Exception):
    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class _CorruptVideo(Exception):
    pass


def probe_video(path: Path) -> tuple[int, int | None, int | None]:
    """(frame count, width, height) of a video file; ``_CorruptVideo`` when it is truncated or does not decode.

    ``composer.media.probe`` makes a stream-copy pass with ``-xerror``: it catches
    truncation, the one way a TLS download can go wrong.
    """
    from ..errors import MediaError
    from ..media.probe import probe as media_probe

    try:
        info = media_probe(path)
    except MediaError as exc:
        raise _CorruptVideo(str(exc)) from exc
    return info.num_frames, info.width, info.height
