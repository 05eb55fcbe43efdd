"""What the emulator's mixins may assume of the ``FalEmulator`` they are mixed into.

Mostly declarations: ``server.FalEmulator`` sets these attributes and defines the methods.
"""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import Fault, JobFault
    from .state import Job, MediaRef, Received, Upload


class EmulatorHost:
    """Base of every mixin, so each one type-checks against the whole emulator's state."""

    key: str
    drift: float | Mapping[str, Any] | None  # a strength, or {"kinds": [...], "amount": x}
    latency: float
    queue_delay: float
    canned: bool
    canned_clip: Path | None
    concurrency: int
    workers: int
    peak_running: int
    validate_on: str
    renderer: str | Callable[[Any, Path], Path]
    apps: tuple[str, ...]
    state_dir: Path | None
    safety_trigger: str | None
    max_body_bytes: int
    log_interval: float
    max_records: int
    counts: Counter[str]
    submits: Counter[str]
    received: list[Received]
    jobs: dict[str, Job]
    uploads: list[Upload]
    renderer_used: str | None
    _lock: threading.RLock
    _faults: list[Fault]
    _job_faults: list[JobFault]
    _cdn_tokens: set[str]
    _pending_puts: dict[str, tuple[str, str, str]]
    _slot_cond: threading.Condition
    _waiting: list[tuple[float, str]]
    _running: int
    _stop: threading.Event
    _threads: list[threading.Thread]
    _root: Path | None

    @property
    def _started_root(self) -> Path:
        """The state folder; only a started emulator has one."""
        if self._root is None:
            raise RuntimeError("the fal emulator is not started (call start() or use it as a context manager)")
        return self._root

    if TYPE_CHECKING:
        # Defined by the other mixins or by FalEmulator; declared here for the type checker only.
        @property
        def base_url(self) -> str: ...
        @property
        def cdn_url(self) -> str: ...
        def _reply(self, h: Any, status: int, payload: Any = None, *, headers: dict[str, str] | None = None,
                   raw: bytes | None = None, content_type: str = "application/json",
                   record: Received | None = None) -> None: ...
        def _count(self, stage: str, what: str) -> None: ...
        def _apply_fault(self, h: Any, fault: Fault, record: Any, request_id: str | None = None) -> None: ...
        def _take_job_faults(self) -> list[JobFault]: ...
        def _resolve_media(self, body: dict[str, Any]) -> tuple[list[MediaRef], list[dict[str, Any]]]: ...
        def _finish(self, job: Job, *, result: dict | None = None, error: dict | None = None) -> None: ...
        def _log(self, job: Job, message: str, level: str = "INFO") -> None: ...
        def _interrupted(self, job: Job) -> bool: ...
        def _sleep(self, job: Job, seconds: float) -> bool: ...
        def _process(self, job: Job) -> None: ...
        @staticmethod
        def _server_error(message: str, error_type: str | None, status: int) -> dict[str, Any]: ...


__all__ = ["EmulatorHost"]
