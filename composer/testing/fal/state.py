"""Shared records of the fal emulator: constants, what it received, jobs and uploads.

Plain data only, so every other module of the package can import it.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, UTC
from typing import Any


from .faults import JobFault

_log = logging.getLogger("composer.testing.fal_emulator")

DEFAULT_KEY = "emulator-key-id:emulator-key-secret"
ERRORS_URL = "https://docs.fal.ai/errors"
SAFETY_MESSAGE = "The content was flagged by a content checker."

STAGES = ("submit", "status", "result", "cancel", "run", "token", "upload", "download")
HTTP_ACTIONS = ("status", "drop", "delay", "truncate")
JOB_FAULTS = ("slow_queue", "error", "safety", "hold")
APP_ID = "fal-ai/ltx-video-13b-distilled/multiconditioning"



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
    def from_json(cls, data: dict[str, Any]) -> Job:
        data = dict(data)
        data["media"] = [MediaRef(**m) for m in data.get("media", [])]
        data["faults"] = [JobFault(**f) for f in data.get("faults", [])]
        return cls(**data)




def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


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



class _Dropped(Exception):
    """Raised inside a handler to end the connection without an answer."""
