"""Segments as they land: a mapping from segment index to its clip that blocks until the
scheduler has finished that segment, so the assembler can stitch the film in order while
later segments are still being generated.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ..errors import Cancelled, ComposerError

POLL_S = 0.25  # how often a waiting reader looks at the cancel flag


class SegmentUnavailable(ComposerError):
    """A segment the film needs failed, was skipped or will never land; the render's own
    failure summary (from the scheduler's outcomes) is what the user sees."""


class LandedVideos(Mapping[int, Path]):
    """Segment index → clip, filled by ``landed`` / ``failed`` as segments finish.

    Reading an index that has not landed waits for it; one that failed (or any, once
    ``close`` said nothing more will land) raises ``SegmentUnavailable``, and a set
    ``cancel`` raises ``Cancelled``. ``landed_at`` / ``read_at`` keep the monotonic times
    a segment landed and was first asked for (the streaming test reads them).
    """

    def __init__(self, wanted: Iterable[int], cancel: threading.Event | None = None):
        self._wanted = sorted(set(wanted))
        self._cond = threading.Condition()
        self._videos: dict[int, Path] = {}
        self._failed: dict[int, str] = {}
        self._closed: str | None = None
        self._cancel = cancel
        self.landed_at: dict[int, float] = {}
        self.read_at: dict[int, float] = {}

    # -- the scheduler's side ----------------------------------------------
    def landed(self, index: int, video: Path) -> None:
        with self._cond:
            self._videos[index] = Path(video)
            self.landed_at.setdefault(index, time.monotonic())
            self._cond.notify_all()

    def failed(self, index: int, why: str) -> None:
        with self._cond:
            self._failed[index] = why
            self._cond.notify_all()

    def close(self, why: str = "the render stopped") -> None:
        """Nothing more will land: readers waiting for a missing segment stop waiting."""
        with self._cond:
            if self._closed is None:
                self._closed = why
            self._cond.notify_all()

    # -- the assembler's side ----------------------------------------------
    def __getitem__(self, index: int) -> Path:
        with self._cond:
            self.read_at.setdefault(index, time.monotonic())
            while True:
                if index in self._videos:
                    return self._videos[index]
                if index in self._failed:
                    raise SegmentUnavailable(f"segment {index}: {self._failed[index]}")
                if self._closed is not None:
                    raise SegmentUnavailable(f"segment {index} did not land: {self._closed}")
                if self._cancel is not None and self._cancel.is_set():
                    raise Cancelled("assembly cancelled; no output written, segments kept in the cache")
                self._cond.wait(POLL_S)

    def __iter__(self) -> Iterator[int]:
        return iter(self._wanted)

    def __len__(self) -> int:
        return len(self._wanted)

    def __contains__(self, index: object) -> bool:
        return index in self._wanted
