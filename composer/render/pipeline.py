"""The render pipeline, top to bottom: load → plan → render segments → assemble
→ manifest. ``render()`` is what the CLI's ``composer render`` and library users call.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..backends import Backend, get_backend
from ..errors import Cancelled, RenderFailed
from ..manifest import manifest_path_for, write_manifest
from ..plan import RenderPlan, plan as make_plan
from ..storyboard import Storyboard, load
from .cache import SegmentCache
from .events import Event, RenderFinished, RenderStarted
from .scheduler import Scheduler, SegmentOutcome


@dataclass
class RenderResult:
    """What a render produced: the film, its manifest, and each segment's outcome."""

    output: Path | None
    manifest: Path | None
    plan: RenderPlan
    outcomes: dict[int, SegmentOutcome]
    cost_usd: float
    assembly: dict[str, Any] = field(default_factory=dict)

    @property
    def cached(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == "cached")

    @property
    def generated(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == "generated")


def resolve_board(board: Storyboard | str | Path) -> Storyboard:
    return board if isinstance(board, Storyboard) else load(board)


def render(
    board: Storyboard | str | Path,
    output: str | Path,
    *,
    backend: Backend | str = "preview",
    cache: SegmentCache | str | Path | None = None,
    jobs: int = 2,
    max_cost: float | None = None,
    on_event: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    codec: str = "h264",
    backend_options: dict[str, Any] | None = None,
) -> RenderResult:
    """Render a storyboard to ``output`` (an MP4, or .mov for prores/dnxhr).

    Finished segments are kept in the cache whatever happens, so running the same
    render again resumes where this one stopped and pays for nothing twice.
    """
    from ..assemble import assemble

    emit = on_event or (lambda e: None)
    board = resolve_board(board)
    plan = make_plan(board)
    output = Path(output)
    if not isinstance(cache, SegmentCache):
        cache = SegmentCache(cache)
    if isinstance(backend, str):
        backend = get_backend(backend, **(backend_options or {}))
    workdir = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=cache.root / "tmp"))
    try:
        scheduler = Scheduler(plan, board, backend, cache, workdir=workdir, jobs=jobs, max_cost=max_cost,
                              on_event=emit, cancel=cancel)
        cached = scheduler.cached()
        todo = [s for s in plan.segments if not cached[s.index]]
        emit(RenderStarted(len(plan.segments), len(plan.segments) - len(todo), len(todo),
                           round(sum(s.cost_usd for s in todo), 6) if backend.paid else 0.0))
        outcomes = scheduler.run()
        cost = round(sum(o.cost_usd for o in outcomes.values()), 6)
        failed = [o for o in outcomes.values() if not o.ok]
        if failed:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"cancelled: {len(plan.segments) - len(failed)} of {len(plan.segments)} segments "
                                f"are in the cache; run again to resume")
            emit(RenderFinished(None, len(failed)))
            raise RenderFailed(_failure_summary(plan, outcomes), [o.error or "" for o in failed])
        started = time.monotonic()
        report = assemble(plan, {i: o.video for i, o in outcomes.items()}, output, board=board,
                          on_event=emit, cancel=cancel, codec=codec)
        report["seconds"] = round(time.monotonic() - started, 3)
        manifest = write_manifest(manifest_path_for(output), _manifest(board, plan, backend, scheduler, outcomes, report, output, cost))
        emit(RenderFinished(str(output), 0))
        return RenderResult(output, manifest, plan, outcomes, cost, report)
    finally:
        backend.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _failure_summary(plan: RenderPlan, outcomes: dict[int, SegmentOutcome]) -> str:
    failed = [o for o in outcomes.values() if o.status == "failed"]
    skipped = sum(1 for o in outcomes.values() if o.status == "skipped")
    done = sum(1 for o in outcomes.values() if o.ok)
    first = failed[0] if failed else None
    head = f"{len(failed)} segment(s) failed" + (f", {skipped} not attempted" if skipped else "")
    detail = f"; first: {first.error}" if first else ""
    return (f"{head}{detail}. {done} of {len(plan.segments)} segments are safe in the cache: "
            "fix the cause and run the same command again to resume")


def _manifest(board, plan, backend, scheduler, outcomes, report, output, cost) -> dict[str, Any]:
    seams = {s["segment"]: s for s in report.get("seams", [])}
    transforms = report.get("transforms", {})
    segments = []
    for seg in plan.segments:
        o = outcomes[seg.index]
        segments.append({
            "index": seg.index, "chain": seg.chain, "scene": seg.scene,
            "cache_key": o.key, "cache_hit": o.status == "cached", "status": o.status,
            "request_id": o.request_id, "seconds": round(o.seconds, 3), "cost_usd": o.cost_usd,
            "seed": o.seed, "request": seg.request,
            "colour": transforms.get(seg.index), "seam": seams.get(seg.index),
        })
    return {
        "storyboard": {"source": board.source, "hash": plan.storyboard_hash, "title": board.title},
        "output": {"path": str(output), "frames": report.get("frames"), "fps": plan.fps,
                   "width": plan.width, "height": plan.height, "codec": report.get("codec"),
                   "audio": report.get("audio")},
        "backend": backend.identity(),
        "cost_usd": cost,
        "requests_made": sum(1 for o in outcomes.values() if o.status == "generated"),
        "cache_hits": sum(1 for o in outcomes.values() if o.status == "cached"),
        "assembly": {k: v for k, v in report.items() if k not in ("seams", "transforms")},
        "segments": segments,
        "plan": plan.model_dump(mode="json"),
    }
