"""Progress on the terminal, drawn from the render's event stream.

On a TTY: one status line redrawn in place (segments done/cached/failed, ETA,
then assembly frames). Elsewhere: one log line per event. ``quiet`` prints nothing.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from ..events import (
    AssemblyProgress,
    CostIncurred,
    Event,
    RenderStarted,
    SegmentDone,
    SegmentFailed,
    SegmentLog,
    SegmentStarted,
)


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m:02d}:{s:02d}"


class Progress:
    """An event handler that reports progress to ``stream``."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = self.done = self.cached = self.failed = 0
        self.generated_seconds: list[float] = []
        self.started = time.monotonic()
        self.running: dict[int, str] = {}
        self.cost = 0.0
        self._lock = threading.Lock()
        self._last_frames = -1
        self._line_open = False

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        with self._lock:
            self._handle(event)

    def _handle(self, e: Event) -> None:
        if isinstance(e, RenderStarted):
            self.total = e.segments
            self._log(f"{e.segments} segments: {e.cached} cached, {e.to_generate} to generate"
                      + (f" (estimated ${e.estimated_cost_usd:.2f})" if e.estimated_cost_usd else ""))
        elif isinstance(e, SegmentStarted):
            self.running[e.index] = "started"
            if not self.tty:
                self._log(f"{e.label}: generating")
        elif isinstance(e, SegmentLog):
            self.running[e.index] = e.message or e.kind
            if not self.tty and e.kind in ("queued", "retry", "log"):
                self._log(f"segment {e.index}: {e.message}")
        elif isinstance(e, SegmentDone):
            self.running.pop(e.index, None)
            self.done += 1
            if e.cached:
                self.cached += 1
            else:
                self.generated_seconds.append(e.seconds)
            if not self.tty:
                self._log(f"{e.label}: {'cached' if e.cached else f'done in {e.seconds:.1f}s'}")
        elif isinstance(e, SegmentFailed):
            self.running.pop(e.index, None)
            self.failed += 1
            first_line = e.error.splitlines()[0].removeprefix(f"{e.label}: ") if e.error else ""
            self._log(f"{e.label}: {'skipped' if e.skipped else 'FAILED'}: {first_line}", force=True)
        elif isinstance(e, CostIncurred):
            self.cost = e.total_usd
        elif isinstance(e, AssemblyProgress):
            step = max(1, e.frames_total // 10)
            if self.tty:
                self._status(f"assembling {_bar(e.frames_done, e.frames_total)} {e.frames_done}/{e.frames_total} frames")
            elif e.frames_done == e.frames_total or e.frames_done // step != self._last_frames // step:
                self._log(f"assembling: {e.frames_done}/{e.frames_total} frames")
            self._last_frames = e.frames_done
            if e.frames_done == e.frames_total:
                self._close_line()
            return
        if self.tty and self.total:
            self._status(self._segments_line())

    def _segments_line(self) -> str:
        remaining = self.total - self.done - self.failed
        eta = None
        if self.generated_seconds and remaining:
            eta = sum(self.generated_seconds) / len(self.generated_seconds) * remaining
        elif not remaining:
            eta = 0.0
        cost = f" ${self.cost:.2f}" if self.cost else ""
        return (f"segments {_bar(self.done + self.failed, self.total)} {self.done}/{self.total} "
                f"(cached {self.cached}, failed {self.failed}){cost} ETA {_eta(eta)}")

    def _status(self, text: str) -> None:
        self.stream.write("\r\x1b[2K" + text)
        self.stream.flush()
        self._line_open = True

    def _close_line(self) -> None:
        if self._line_open:
            self.stream.write("\n")
            self._line_open = False

    def _log(self, text: str, force: bool = False) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + "\n")
            self._line_open = False
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            self._close_line()
