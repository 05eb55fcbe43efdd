"""Progress on the terminal, drawn from the render's event stream.

On a TTY: ``rich.progress`` bars (segments, then assembly frames) that fit the
terminal's width and redraw in place; notable events are printed above them.
Elsewhere: one log line per event. ``quiet`` prints nothing.
"""
from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

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

if TYPE_CHECKING:  # rich costs 60 ms to import: only a terminal's bars need it
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID


def _first_line(e: SegmentFailed) -> str:
    return e.error.splitlines()[0].removeprefix(f"{e.label}: ") if e.error else ""


class Progress:
    """An event handler that reports progress to ``stream`` (stderr by default)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, tty: bool | None = None,
                 width: int | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty() if tty is None else tty
        self.total = self.done = self.cached = self.failed = 0
        self.cost = 0.0
        self._lock = threading.Lock()
        self._last_frames = -1
        self._bars: RichProgress | None = None
        self._segments: TaskID | None = None
        self._assembly: TaskID | None = None
        self._width = width

    # -- dispatch -----------------------------------------------------------
    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.tty:
                self._tty(event)
            else:
                self._plain(event)

    def close(self) -> None:
        with self._lock:
            if self._bars is not None:
                self._bars.refresh()
                self._bars.stop()
                self._bars = None

    # -- log lines (not a terminal) ----------------------------------------
    def _plain(self, e: Event) -> None:
        if isinstance(e, RenderStarted):
            self._line(self._started_text(e))
        elif isinstance(e, SegmentStarted):
            self._line(f"{e.label}: generating")
        elif isinstance(e, SegmentLog):
            if e.kind in ("queued", "retry", "log"):
                self._line(f"segment {e.index}: {e.message}")
        elif isinstance(e, SegmentDone):
            self._line(f"{e.label}: {'cached' if e.cached else f'done in {e.seconds:.1f}s'}")
        elif isinstance(e, SegmentFailed):
            self._line(f"{e.label}: {'skipped' if e.skipped else 'FAILED'}: {_first_line(e)}")
        elif isinstance(e, AssemblyProgress):
            step = max(1, e.frames_total // 10)
            if e.frames_done == e.frames_total or e.frames_done // step != self._last_frames // step:
                self._line(f"assembling: {e.frames_done}/{e.frames_total} frames")
            self._last_frames = e.frames_done

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    @staticmethod
    def _started_text(e: RenderStarted) -> str:
        return (f"{e.segments} segments: {e.cached} cached, {e.to_generate} to generate"
                + (f" (estimated ${e.estimated_cost_usd:.2f})" if e.estimated_cost_usd else ""))

    # -- bars (a terminal) ---------------------------------------------------
    def _ensure_bars(self) -> RichProgress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        if self._bars is None:
            console = Console(file=self.stream, force_terminal=True, width=self._width,
                              highlight=False, soft_wrap=False)
            # Columns shrink to the terminal instead of wrapping; the description is cut first.
            self._bars = RichProgress(
                TextColumn("{task.description}", style="bold"),
                BarColumn(bar_width=None),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                TimeRemainingColumn(),
                console=console, auto_refresh=False, transient=False, expand=False,
            )
            self._bars.start()
        return self._bars

    def _tty(self, e: Event) -> None:
        bars = self._ensure_bars()
        if isinstance(e, RenderStarted):
            self.total = e.segments
            bars.console.print(self._started_text(e), overflow="ellipsis", no_wrap=True)
            self.done = self.cached = self.failed = 0
            if self._segments is None:
                self._segments = bars.add_task("segments", total=e.segments, note="")
            else:  # a second render through the same display (watch): start the bar again
                bars.reset(self._segments, total=e.segments)
        elif isinstance(e, SegmentDone):
            self.done += 1
            self.cached += e.cached
        elif isinstance(e, SegmentFailed):
            self.failed += 1
            bars.console.print(f"{e.label}: {'skipped' if e.skipped else 'FAILED'}: {_first_line(e)}",
                               overflow="ellipsis", no_wrap=True, markup=False)
        elif isinstance(e, CostIncurred):
            self.cost = e.total_usd
        elif isinstance(e, AssemblyProgress):
            if self._assembly is None:
                self._assembly = bars.add_task("assembling", total=e.frames_total, note="frames")
            bars.update(self._assembly, completed=e.frames_done, total=e.frames_total)
        if self._segments is not None:
            note = f"cached {self.cached}, failed {self.failed}" + (f", ${self.cost:.2f}" if self.cost else "")
            bars.update(self._segments, completed=self.done + self.failed, note=note)
        bars.refresh()
