"""Fault injection for the fal emulator: HTTP-level faults (status, drop, delay, truncate),
job-level ones (slow queue, result error, safety rejection, hold-and-release) and a ruined take.
To add a fault: name it in HTTP_ACTIONS / JOB_FAULTS, then act on it in ``FaultsMixin``.
"""
from __future__ import annotations

import contextlib
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .host import EmulatorHost


STAGES = ("submit", "status", "result", "cancel", "run", "token", "upload", "download")
HTTP_ACTIONS = ("status", "drop", "delay", "truncate")
JOB_FAULTS = ("slow_queue", "error", "safety", "hold")


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
class RuinFault:
    """A ruined take: the next ``times`` jobs whose request has ``seed`` (``None``: any job) come
    back with every frame from ``from_frame`` on (the generated frames after the conditioning
    video) at ``gain`` times their exposure. The model's answer is fine otherwise, so only a
    check of what the clip shows across the seam can tell; a re-roll (a new seed) is unharmed."""

    seed: int | None = None
    gain: float = 0.3
    from_frame: int = 0
    times: int | None = 1
    hits: int = 0
    ruined: list[str] = field(default_factory=list)  # request seeds it hit, in order

    def __post_init__(self) -> None:
        if self.gain <= 0 or self.from_frame < 0:
            raise ValueError("a ruin needs gain > 0 and from_frame >= 0")


_F = TypeVar("_F", "Fault", "JobFault")


class FaultsMixin(EmulatorHost):
    """Arming, taking and applying faults; mixed into ``FalEmulator``."""

    def add_fault(self, fault: _F) -> _F:
        with self._lock:
            if isinstance(fault, JobFault):
                self._job_faults.append(fault)
            else:
                self._faults.append(fault)
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

    def ruin_take(self, *, seed: int | None = None, gain: float = 0.3, from_frame: int = 0,
                  times: int | None = 1) -> RuinFault:
        """The next ``times`` jobs with ``seed`` (any, when None) return a take ruined from ``from_frame`` on."""
        fault = RuinFault(seed=seed, gain=gain, from_frame=from_frame, times=times)
        with self._lock:
            self._ruins().append(fault)
        return fault

    def _ruins(self) -> list[RuinFault]:
        # kept off the constructor: only tests that ruin takes ever create the list
        return self.__dict__.setdefault("_ruin_faults", [])

    def _ruin_clip(self, seed: int | None, clip: Path) -> Path:
        """``clip`` as the model made it, or ruined (in place) when a ruin fault matches ``seed``."""
        with self._lock:
            fault = next((f for f in self._ruins() if (f.seed is None or f.seed == seed)
                          and (f.times is None or f.hits < f.times)), None)
            if fault is None:
                return clip
            fault.hits += 1
            fault.ruined.append(str(seed))
        import numpy as np

        from ...atomic import atomic_path
        from ...media import probe, read_frames, write_clip

        info = probe(clip)
        frames = read_frames(clip)
        for i in range(fault.from_frame, len(frames)):
            frames[i] = np.clip(frames[i].astype(np.float32) * fault.gain, 0, 255).astype(np.uint8)
        with atomic_path(clip) as tmp:
            write_clip(frames, tmp, info.fps)
        return clip

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._job_faults.clear()
            self._ruins().clear()

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


    def _drop(self, h: Any) -> None:
        h.close_connection = True
        with contextlib.suppress(OSError, ValueError):
            h.wfile.flush()
        with contextlib.suppress(OSError, ValueError):
            h.connection.shutdown(socket.SHUT_RDWR)

    def _apply_fault(self, h: Any, fault: Fault, record: Any, request_id: str | None = None) -> None:
        self._count(record.stage, f"fault_{fault.action}")
        if fault.action == "drop":
            record.status = None
            self._drop(h)
            return
        headers = dict(fault.headers)
        if fault.ingress:
            text = (f"<html><head><title>{fault.status}</title></head><body><center><h1>{fault.status}</h1></center>"
                    "<hr><center>nginx</center></body></html>")
            self._reply(h, fault.status, raw=text.encode(), content_type="text/html", headers=headers, record=record)
            return
        if request_id:
            headers.setdefault("x-fal-request-id", request_id)
        body = fault.body
        if body is None:
            body = {"detail": "Too Many Requests" if fault.status == 429 else f"Injected HTTP {fault.status}"}
        self._reply(h, fault.status, body, headers=headers, record=record)

    # ------------------------------------------------------------------ queue endpoints

