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
Input is validated against fal's published JSON schema (``fal-input-schema.json``, package
data) plus LTX's frame-grid rules written from the reference (``validation.py``), never
with composer's own request model, and refused with 422 and a fal/FastAPI-style body
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

Modules: ``server`` (HTTPS, routing, auth, public API), ``queue`` (submit/status/result/
cancel/run, jobs, persisted state), ``cdn`` (token, uploads, downloads, media URLs),
``validation`` (schema + LTX rules), ``generation`` (renderers, canned clips, error bodies),
``drift`` (drift kinds), ``faults`` (fault kinds and injection), ``state`` (records),
``host`` (the emulator state every mixin may use, declared once for the type checker).

Command line: ``python -m composer.testing.fal --port 8443 --drift 0.5
--latency 0.2`` prints ``export`` lines and serves until Ctrl-C.
"""
from __future__ import annotations

from .faults import HTTP_ACTIONS, JOB_FAULTS, STAGES, Fault, JobFault
from .server import FalEmulator
from .state import DEFAULT_KEY, ERRORS_URL, SAFETY_MESSAGE, Job, MediaRef, Received, Upload
from .validation import validate_input

__all__ = [
           "DEFAULT_KEY",
           "ERRORS_URL",
           "HTTP_ACTIONS",
           "JOB_FAULTS",
           "SAFETY_MESSAGE",
           "STAGES",
           "FalEmulator",
           "Fault",
           "Job",
           "JobFault",
           "MediaRef",
           "Received",
           "Upload",
           "validate_input",
]
