"""How composer talks to fal through ``fal_client``: hosts, the submit guard, error details.

fal_client keeps its hosts in module globals and retries by itself; this module
points it at the configured hosts, wraps its HTTP client so a submit whose bytes
may have left is never resent blindly, and isolates the one reach into its
private ``SyncClient._client`` (checked by ``check_fal_client_layout``).
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import re
import threading
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any

import fal_client
import fal_client.client as _fc
import httpx

from ..errors import BackendError

# --------------------------------------------------------------------------- where fal lives

_URL_NAMES = ("RUN_URL_FORMAT", "QUEUE_URL_FORMAT", "REST_URL", "CDN_URL")
# fal_client's values as imported (its own reading of FAL_RUN_HOST / FAL_QUEUE_RUN_HOST).
_PRISTINE = {name: getattr(_fc, name) for name in _URL_NAMES}
_CONFIG_LOCK = threading.Lock()


def fal_urls(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """fal_client's URL constants as the environment asks for them now."""
    env = os.environ if environ is None else environ
    urls = dict(_PRISTINE)
    run_host = env.get("FAL_RUN_HOST", "").strip()
    queue_host = env.get("FAL_QUEUE_RUN_HOST", "").strip() or (f"queue.{run_host}" if run_host else "")
    if run_host:
        urls["RUN_URL_FORMAT"] = f"https://{run_host}/"
    if queue_host:
        urls["QUEUE_URL_FORMAT"] = f"https://{queue_host}/"
    if env.get("COMPOSER_FAL_REST_URL", "").strip():
        urls["REST_URL"] = env["COMPOSER_FAL_REST_URL"].strip().rstrip("/")
    if env.get("COMPOSER_FAL_CDN_URL", "").strip():
        urls["CDN_URL"] = env["COMPOSER_FAL_CDN_URL"].strip().rstrip("/")
    return urls


def configure_fal_client(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Set fal_client's module-level URLs from the environment (see the module docstring)."""
    urls = fal_urls(environ)
    with _CONFIG_LOCK:
        for name, value in urls.items():
            if getattr(_fc, name) != value:
                setattr(_fc, name, value)
    return urls


# --------------------------------------------------------------------------- submit guard


class SubmitOutcomeUnknown(Exception):
    """The connection broke after a submit was sent: it may have been queued and billed.

    Deliberately not an ``httpx`` exception, so fal_client's retry loop lets it through.
    """


# Failures after which the server cannot hold a complete request: safe to send again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError, httpx.WriteTimeout,
             httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.ProxyError)


class _GuardedStream(httpx.SyncByteStream):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._inner
        except httpx.TransportError as exc:
            raise SubmitOutcomeUnknown(f"connection lost while reading the answer to a submit ({type(exc).__name__})") from exc

    def close(self) -> None:
        self._inner.close()


class _SubmitGuard(httpx.BaseTransport):
    """An httpx transport that refuses to let an ambiguous submit failure be retried blindly."""

    def __init__(self, inner: httpx.BaseTransport, guarded_paths: frozenset[str]) -> None:
        self._inner = inner
        self._guarded = guarded_paths  # by path, whatever the host (fal_client may switch to a backup domain)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        guarded = request.method == "POST" and request.url.path in self._guarded
        try:
            response = self._inner.handle_request(request)
        except _NOT_SENT:
            raise
        except httpx.TransportError as exc:
            if guarded:
                raise SubmitOutcomeUnknown(
                    f"connection lost after the submit was sent ({type(exc).__name__})"
                ) from exc
            raise
        if guarded:
            response = httpx.Response(response.status_code, headers=response.headers,
                                      stream=_GuardedStream(response.stream),
                                      extensions=response.extensions)
        return response

    def close(self) -> None:
        self._inner.close()


@dataclasses.dataclass(frozen=True)
class _GuardedSyncClient(fal_client.SyncClient):
    """fal_client's SyncClient, with ``_SubmitGuard`` under its usual transport."""

    guarded_paths: tuple[str, ...] = ()
    # shared with the backend's download client; None: httpx builds its own
    ssl_context: Any = dataclasses.field(default=None, repr=False)
    # the caller's transport (not closed here); None: an httpx.HTTPTransport of our own
    transport: httpx.BaseTransport | None = dataclasses.field(default=None, repr=False)

    @cached_property
    def _client(self) -> httpx.Client:  # overrides fal_client's private property: see check_fal_client_layout
        verify = self.ssl_context if self.ssl_context is not None else True
        base = _Borrowed(self.transport) if self.transport is not None else httpx.HTTPTransport(verify=verify)
        inner = _SubmitGuard(base, frozenset(self.guarded_paths))
        backup = getattr(_fc, "BackupDomainTransport", None)
        transport = backup(transport=inner) if backup is not None else inner
        return httpx.Client(
            transport=transport,
            headers={"Authorization": self._auth.header_value,
                     "User-Agent": getattr(_fc, "USER_AGENT", "fal-client (python)")},
            timeout=self.default_timeout,
            follow_redirects=True,
        )

    def close(self) -> None:
        client = self.__dict__.get("_client")
        if client is not None:
            client.close()


class _Borrowed(httpx.BaseTransport):
    """An injected transport, used but never closed by us: its owner closes it."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._inner.handle_request(request)

    def close(self) -> None:
        pass


def check_fal_client_layout(cls: type = fal_client.SyncClient) -> None:
    """Fail loudly unless ``cls`` keeps its HTTP client where ``_GuardedSyncClient`` replaces it.

    fal_client 1.0.3's ``SyncClient`` builds its ``httpx.Client`` in the private cached
    property ``_client`` and sends every call through it; composer overrides that property to
    put ``_SubmitGuard`` (and an injected transport) underneath. If a fal_client release moves
    it, the override would silently stop guarding submits, so this raises instead.
    """
    attr = inspect.getattr_static(cls, "_client", None)
    if not isinstance(attr, cached_property):
        version = getattr(fal_client, "__version__", "?")
        raise BackendError(
            f"fal_client {version}: {cls.__name__}._client is no longer a functools.cached_property "
            f"(found {type(attr).__name__}); composer's fal backend replaces it to guard paid submits and was "
            "written against fal_client 1.0.3: update composer/backends/fal.py or install fal-client==1.0.3",
            retryable=False)


def _built_http_client(client: _GuardedSyncClient) -> httpx.Client:
    """Build ``client``'s httpx.Client now (the one place that touches fal_client's private ``_client``)."""
    check_fal_client_layout()
    return client._client


# --------------------------------------------------------------------------- errors


def _fal_client_retries(response: httpx.Response | None) -> bool:
    """Whether fal_client's own loop already retried this answer (mirrors ``_should_retry_response``)."""
    if response is None:
        return False
    code = response.status_code
    if code in (408, 409, 429):
        return True
    if code in (502, 503, 504) and "x-fal-request-id" not in response.headers:
        try:
            return "nginx" in response.text
        except (UnicodeDecodeError, httpx.HTTPError):  # an unread or undecodable body: not nginx's page
            return False
    return False


def _detail(exc: fal_client.FalClientHTTPError) -> tuple[str, list[dict[str, Any]]]:
    """(text, field errors) of a fal error answer."""
    items: list[dict[str, Any]] = []
    text = ""
    try:
        body = exc.response.json()
    except (ValueError, httpx.HTTPError):  # not JSON (or not read): no structured detail
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        items = [d for d in detail if isinstance(d, dict)]
        parts = []
        for d in items:
            loc = [str(p) for p in d.get("loc", []) if p != "body"]
            where = ".".join(loc) if loc else "request"
            where = re.sub(r"\.(\d+)(?=\.|$)", r"[\1]", where)
            value = d.get("input")
            got = f" (got {value!r})" if isinstance(value, (int, float, bool)) else ""
            parts.append(f"{where}: {d.get('msg', d.get('type', 'invalid'))}{got}")
        text = "; ".join(parts)
    elif isinstance(detail, str):
        text = detail
    if not text:
        text = (str(exc) or exc.response.reason_phrase or "")[:500]
    return text, items


PROBE_REQUEST_ID = "00000000-0000-4000-8000-000000000000"


def probe_queue(endpoint_id: str, timeout: float, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Ask fal's queue host for a free status of a request that does not exist.

    Returns ``{"status": code, "seconds": s}`` when it answered, else ``{"error": exc, "seconds": s}``.
    Never waits much past ``timeout``: name resolution is not covered by httpx's timeouts, so the
    request runs in a helper thread that is abandoned when late.
    """
    import time

    env = os.environ if environ is None else environ
    queue = fal_urls(dict(env))["QUEUE_URL_FORMAT"]
    owner_alias = "/".join(endpoint_id.split("/")[:2])
    url = f"{queue}{owner_alias}/requests/{PROBE_REQUEST_ID}/status"
    key = env.get("FAL_KEY", "").strip()
    headers = {"Authorization": f"Key {key}"} if key else {}
    answer: dict[str, Any] = {}

    def ask() -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False) as http:
                answer["status"] = http.get(url, headers=headers).status_code
        except Exception as exc:  # noqa: BLE001 — runs in a helper thread: any failure means "unreachable"; say which
            answer["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=ask, name="fal-queue-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    answer["seconds"] = time.monotonic() - started
    return answer
