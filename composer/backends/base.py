"""The Backend interface: one GenerationRequest in, one local video file out.

Requests reach a backend with local media as ``file://`` URLs (keyframe images,
the previous segment's tail clip); each backend turns them into what its model
needs (the preview reads them, fal uploads them).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

from ..request import GenerationRequest
from .fal_catalog import output_size as endpoint_output_size


@dataclass(frozen=True)
class BackendEvent:
    """Something a backend reports while working: queue position, a log line, progress."""

    kind: str  # "queued" | "log" | "progress" | "submitted" | "retry"
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerateContext:
    """What the scheduler tells a backend about the segment it is making.

    ``on_submitted`` must be called with the backend's request id the moment a
    paid request is accepted (the scheduler journals it); ``resume_request_id`` is
    an id journalled by an earlier, interrupted run: fetch it instead of paying again.
    ``confirm_resubmit(reason)`` is called before a request is bought anew because the
    journalled one cannot be fetched (unknown or expired); it raises to refuse.
    ``segment_index`` and ``film_start``/``film_end`` say which segment this is and which film
    frames its clip covers (frame 0 of the clip is film frame ``film_start``; its overlap with
    the predecessor is the first ``overlap`` frames); None/0 when the caller is not a film render.
    """

    label: str = ""
    on_event: Callable[[BackendEvent], None] | None = None
    on_submitted: Callable[[str], None] | None = None
    resume_request_id: str | None = None
    cancelled: Callable[[], bool] | None = None
    confirm_resubmit: Callable[[str], None] | None = None
    segment_index: int | None = None
    film_start: int | None = None
    film_end: int | None = None
    overlap: int = 0

    @property
    def film_range(self) -> range | None:
        """The film frames this clip covers, ``range(film_start, film_end)`` (None if unknown)."""
        if self.film_start is None or self.film_end is None:
            return None
        return range(self.film_start, self.film_end)

    def emit(self, kind: str, message: str = "", **data: Any) -> None:
        if self.on_event is not None:
            self.on_event(BackendEvent(kind, message, data))


@dataclass(frozen=True)
class GenerationResult:
    """A backend's clip. ``num_frames``: the frame count the backend has already established for
    ``path`` (decoded it, or wrote exactly that many frames); None when it did not check, and the
    scheduler then probes the file itself."""

    path: Path
    request_id: str | None = None
    cost_usd: float = 0.0
    seed: int | None = None
    num_frames: int | None = None


class Backend(ABC):
    """Makes one clip for one request. ``name`` and ``version`` enter cache keys.

    ``paid``: whether a request costs money (budgets, ledgers and confirmations ask this, never
    the name). ``estimate_cost`` and ``output_size`` are what the planner prices and sizes a
    film with; the defaults are a free backend with the LTX endpoint's geometry.
    """

    name: str = "abstract"
    version: str = "0"
    endpoint_id: str = ""
    paid: bool = False
    # whether ``GenerationResult.num_frames`` comes from decoding the clip it returns (then the
    # scheduler trusts it); otherwise the clip is probed before it may enter the cache
    verifies_clips: bool = False

    @abstractmethod
    def generate(self, request: GenerationRequest, workdir: Path, ctx: GenerateContext | None = None) -> GenerationResult:
        """Make the clip for ``request`` under ``workdir`` and return its path."""

    def estimate_cost(self, request: GenerationRequest) -> float:
        """USD one ``request`` is expected to cost on this backend."""
        return 0.0

    def output_size(self, resolution: str, aspect_ratio: str) -> tuple[int, int]:
        """(width, height) of the clips this backend makes at ``resolution`` and ``aspect_ratio``."""
        return endpoint_output_size(resolution, aspect_ratio)  # the LTX endpoint's, which the preview mimics

    def identity(self) -> str:
        """What a cache key records of this backend (changes invalidate cached segments)."""
        return f"{self.name}/{self.version}/{self.endpoint_id}"

    def preflight(self) -> None:  # noqa: B027 - an optional hook: most backends need nothing checked
        """Fail in seconds, before the first request, if this backend cannot work here (a key, a host).

        Raise ``BackendError`` with one line saying what to do. The default checks nothing.
        """

    def close(self) -> None:  # noqa: B027 - an optional hook: most backends hold nothing to release
        """Release resources (connections, threads)."""


def local_path(url: str) -> Path | None:
    """The local file a ``file://`` URL names, or None for other URLs."""
    parsed = urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def file_url(path: Path) -> str:
    return Path(path).resolve().as_uri()
