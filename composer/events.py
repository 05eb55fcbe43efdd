"""Typed events a render emits: the one stream the CLI's progress display and any
GUI consume (segment queued/started/log/done/cached/failed, assembly, cost).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable


@dataclass(frozen=True)
class Event:
    """Base of every render event."""


@dataclass(frozen=True)
class RenderStarted(Event):
    segments: int
    cached: int
    to_generate: int
    estimated_cost_usd: float


@dataclass(frozen=True)
class SegmentQueued(Event):
    index: int
    label: str


@dataclass(frozen=True)
class SegmentStarted(Event):
    index: int
    label: str


@dataclass(frozen=True)
class SegmentLog(Event):
    """A backend's report: queue position, a model log line, a retry."""

    index: int
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentDone(Event):
    index: int
    label: str
    cached: bool
    seconds: float
    cost_usd: float = 0.0
    request_id: str | None = None


@dataclass(frozen=True)
class SegmentFailed(Event):
    index: int
    label: str
    error: str
    skipped: bool = False  # not attempted because an earlier segment of its chain failed


@dataclass(frozen=True)
class CostIncurred(Event):
    index: int
    cost_usd: float
    total_usd: float


@dataclass(frozen=True)
class AssemblyProgress(Event):
    frames_done: int
    frames_total: int


@dataclass(frozen=True)
class RenderFinished(Event):
    output: str | None
    failed: int


EventHandler = Callable[[Event], None]
