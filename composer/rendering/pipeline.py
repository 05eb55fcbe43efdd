"""The render pipeline, top to bottom: resolve the input → plan → select the part →
schedule segments → assemble → write timelines and manifest. ``render()`` is what the
CLI's ``composer render`` and library users call; ``RenderOptions`` holds its settings.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import Backend, get_backend
from ..errors import Cancelled, ComposerError, MediaError, RenderFailed
from ..events import Event, RenderFinished, RenderStarted, SegmentFailed
from ..manifest import board_timeline, manifest_path_for, write_manifest
from ..pieces import PieceStore
from ..planner import RenderPlan, draft_board, frame_range_segments
from ..planner import plan as make_plan
from ..storyboard import Storyboard, load
from ..timecode import parse_frame_range
from .cache import SegmentCache
from .landing import Foreground, LandedVideos
from .preflight import check_budget, check_output
from .scheduler import Scheduler, SegmentOutcome


@dataclass(frozen=True)
class RenderOptions:
    """How to render: every setting of ``render()`` but what and where.

    ``scenes`` or ``frame_range`` (film frames, end exclusive) render and write only
    that part, generating only the segments it needs; scenes apart are written one after
    another in film order, joined by cuts, with the film's audio under each as it is. ``draft`` renders the storyboard
    at 480p with fewer steps (its cache entries never mix with full quality).
    ``otio`` writes ``film.otio`` beside a whole film; ``per_chain`` also writes each
    chain's own file and ``film.chains.otio``. ``frame_range`` is film frames ``(start, end)``
    or the CLI's text (``"00:10-00:25"``, ``"240f-600f"``). ``max_cost`` is refused up front
    when the uncached part of the plan costs more, unless ``allow_partial``. ``review`` writes ``film.review.html``
    (see ``composer.review``). ``heal`` re-rolls a segment whose seam fails the seam gate up to
    that many times (None: the storyboard's ``defaults.heal``; see ``rendering.heal``).
    """

    backend: Backend | str = "preview"
    backend_options: dict[str, Any] | None = None
    cache: SegmentCache | str | Path | None = None
    jobs: int = 2
    max_cost: float | None = None
    scenes: Sequence[str] | None = None
    frame_range: tuple[int, int] | str | None = None
    draft: bool = False
    codec: str = "h264"
    otio: bool = True
    per_chain: bool = False
    review: bool = True
    allow_partial: bool = False
    heal: int | None = None
    on_event: Callable[[Event], None] | None = None
    cancel: threading.Event | None = None

    def __post_init__(self) -> None:
        # a frozen value: keep no list the caller could change afterwards
        if self.scenes is not None:
            object.__setattr__(self, "scenes", tuple(self.scenes))
        if self.frame_range is not None and not isinstance(self.frame_range, str):
            object.__setattr__(self, "frame_range", tuple(self.frame_range))

    @classmethod
    def of(cls, options: RenderOptions | None = None, **overrides: Any) -> RenderOptions:
        """``options`` (or the defaults) with keyword ``overrides``; an unknown keyword is a TypeError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"render() got an unexpected keyword argument {unknown[0]!r} "
                            f"(options: {', '.join(sorted(known))})")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **overrides) if overrides else base


@dataclass
class RenderResult:
    """What a render produced: the film, its manifest, and each segment's outcome."""

    output: Path | None
    manifest: Path | None
    plan: RenderPlan
    outcomes: dict[int, SegmentOutcome]
    cost_usd: float
    assembly: dict[str, Any] = field(default_factory=dict)
    review: Path | None = None

    @property
    def cached(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == "cached")

    @property
    def generated(self) -> int:
        return sum(1 for o in self.outcomes.values() if o.status == "generated")


def render(board: Storyboard | RenderPlan | str | Path, output: str | Path, *,
           options: RenderOptions | None = None, **settings: Any) -> RenderResult:
    """Render a storyboard (or a plan made in this process, used as it is) to ``output``
    (an MP4, or .mov for prores/dnxhr).

    Settings come as ``options=RenderOptions(...)`` and/or as its field names as keywords
    (``cache=``, ``jobs=``, ``max_cost=``, …; keywords override ``options``). Finished
    segments are kept in the cache whatever happens, so running the same render again
    resumes where this one stopped and pays for nothing twice.
    """
    opts = RenderOptions.of(options, **settings)
    storyboard, plan = resolve_input(board, draft=opts.draft)
    frames = parse_frame_range(opts.frame_range, plan.fps) if opts.frame_range is not None else None
    part, only = partial(plan, opts.scenes, frames)
    output = Path(output)
    check_output(output, opts.codec)
    emit = opts.on_event or _ignore
    cache = opts.cache if isinstance(opts.cache, SegmentCache) else SegmentCache(opts.cache)
    backend = opts.backend
    if isinstance(backend, str):
        backend = get_backend(backend, **(opts.backend_options or {}))
    grabber = _thumb_grabber(plan, only, output) if opts.review else None
    try:
        backend.preflight()
        with _workdir(cache) as workdir:
            outcomes, report = schedule_and_assemble(plan, storyboard, backend, cache, workdir, only, part, output,
                                                     opts, emit, on_frame=grabber)
            cost = round(sum(o.cost_usd for o in outcomes.values()), 6)
            report.update(write_timelines(plan, storyboard, outcomes, output, part, opts))
            manifest = write_manifest(manifest_path_for(output),
                                      _manifest(storyboard, plan, backend, outcomes, report, output, cost))
            page = _write_review(manifest, grabber.folder if grabber is not None else None) if opts.review else None
            emit(RenderFinished(str(output), 0))
            return RenderResult(output, manifest, plan, outcomes, cost, report, page)
    finally:
        backend.close()
        if grabber is not None:
            shutil.rmtree(grabber.folder, ignore_errors=True)  # taken over by the page, or left by a failure


def resolve_input(board: Storyboard | RenderPlan | str | Path, *, draft: bool = False) -> tuple[Storyboard, RenderPlan]:
    """The storyboard and its plan. A plan passed in is used as it is (never planned again)."""
    if isinstance(board, RenderPlan):
        if draft:
            raise ComposerError("draft=True plans the storyboard at 480p: pass the storyboard, not a plan")
        return resolve_board(board), board
    storyboard = resolve_board(board)
    if draft:
        storyboard = draft_board(storyboard)
    return storyboard, make_plan(storyboard)


def resolve_board(board: Storyboard | RenderPlan | str | Path) -> Storyboard:
    """A Storyboard from a storyboard, a plan made in this process, a path or YAML text."""
    if isinstance(board, Storyboard):
        return board
    if isinstance(board, RenderPlan):
        if board.storyboard is None:
            raise ComposerError("this plan was loaded from JSON; render its storyboard instead")
        return board.storyboard
    return load(board)


def partial(plan: RenderPlan, scenes: Sequence[str] | None,
            frame_range: tuple[int, int] | None) -> tuple[list[tuple[int, int]] | None, set[int] | None]:
    """The film ranges a partial render writes (in film order) and the segments they need
    (None, None: everything)."""
    part = part_ranges(plan, scenes, frame_range)
    if part is None:
        return None, None
    return part, set().union(*(frame_range_segments(plan, a, b) for a, b in part))


class _Stop(threading.Event):
    """Set by the render itself (the scheduler failed or was interrupted) or by the user's ``cancel``."""

    def __init__(self, cancel: threading.Event | None):
        super().__init__()
        self._user = cancel

    def is_set(self) -> bool:
        return super().is_set() or (self._user is not None and self._user.is_set())


def schedule_and_assemble(plan: RenderPlan, board: Storyboard, backend: Backend, cache: SegmentCache, workdir: Path,
                          only: set[int] | None, part: list[tuple[int, int]] | None, output: Path, opts: RenderOptions,
                          emit: Callable[[Event], None], on_frame: Callable[[int, Any], None] | None = None,
                          ) -> tuple[dict[int, SegmentOutcome], dict[str, Any]]:
    """Generate the segments and stitch the film while they land: the assembler runs on its own
    thread, reading the clips in film order from a ``LandedVideos`` the scheduler fills.

    A failed or cancelled schedule stops the assembly (its temporary file is removed, so no
    partial film is left) and raises the scheduler's own error; an assembly error is raised
    once the scheduler has finished, so segments already paid for still reach the cache.
    """
    wanted = [s.index for s in plan.segments if only is None or s.index in only]
    stop = _Stop(opts.cancel)
    foreground = Foreground()
    landing = LandedVideos(wanted, stop, foreground)
    done: dict[str, Any] = {}

    def assemble_thread() -> None:
        if done.get("background"):
            background_priority()
        try:
            done["report"] = assemble_film(plan, board, landing, output, part, opts, emit, cancel=stop,
                                           on_frame=on_frame, pace=foreground.pace,
                                           pieces=PieceStore(cache.root / "pieces"))
        except BaseException as exc:  # noqa: BLE001 - handed to the render's thread below
            done["error"] = exc

    thread = threading.Thread(target=assemble_thread, name="assemble", daemon=True)

    def on_event(event: Event) -> None:
        if isinstance(event, RenderStarted) and thread.ident is None:  # not started yet
            # segments still to generate: the assembler (and the ffmpeg children it starts, which
            # inherit its thread's nice value) yields the CPU to the work on the chain's critical
            # path, each segment's tail before its successor's submit; alone it runs at full speed
            done["background"] = event.to_generate > 0
            thread.start()
        emit(event)

    try:
        outcomes = schedule_segments(plan, board, backend, cache, workdir, only, opts, on_event, landing=landing,
                                     foreground=foreground)
    except BaseException:
        stop.set()
        raise
    finally:
        landing.close("the scheduler finished without it")
        if thread.ident is not None:
            thread.join()
    if "error" in done:
        raise done["error"]
    report = done["report"]
    report["streamed"] = True
    return outcomes, report


def schedule_segments(plan: RenderPlan, board: Storyboard, backend: Backend, cache: SegmentCache, workdir: Path,
                      only: set[int] | None, opts: RenderOptions, emit: Callable[[Event], None],
                      landing: LandedVideos | None = None,
                      foreground: Foreground | None = None) -> dict[int, SegmentOutcome]:
    """Generate (or take from the cache) the segments needed; their outcomes, or RenderFailed / Cancelled.
    ``landing`` is told of each segment as it lands (or fails), for assembly as they land; the
    scheduler marks its critical-path work on ``foreground``."""

    def on_event(event: Event) -> None:
        if landing is not None and isinstance(event, SegmentFailed):
            landing.failed(event.index, event.error.splitlines()[0] if event.error else "failed")
        emit(event)

    scheduler = Scheduler(plan, board, backend, cache, workdir=workdir, jobs=opts.jobs, max_cost=opts.max_cost,
                          on_event=on_event, cancel=opts.cancel, only=only,
                          heal=board.defaults.heal if opts.heal is None else opts.heal,
                          on_landed=landing.landed if landing is not None else None, foreground=foreground)
    cached = scheduler.cached()
    wanted = [s for s in plan.segments if only is None or s.index in only]
    todo = [s for s in wanted if not cached[s.index]]
    estimate = _estimate(backend, todo)
    check_budget(estimate, len(todo), opts.max_cost if backend.paid else None, opts.allow_partial)
    emit(RenderStarted(len(wanted), len(wanted) - len(todo), len(todo), estimate))
    outcomes = scheduler.run()
    if only is not None:
        outcomes = {i: o for i, o in outcomes.items() if i in only}
    failed = [o for o in outcomes.values() if not o.ok]
    if failed:
        if opts.cancel is not None and opts.cancel.is_set():
            raise Cancelled(f"cancelled: {len(outcomes) - len(failed)} of {len(outcomes)} segments "
                            f"are in the cache; run again to resume")
        emit(RenderFinished(None, len(failed)))
        raise RenderFailed(_failure_summary(plan, outcomes, opts.max_cost), [o.error or "" for o in failed])
    return outcomes


def assemble_film(plan: RenderPlan, board: Storyboard, videos: Mapping[int, Path], output: Path,
                  part: list[tuple[int, int]] | None, opts: RenderOptions, emit: Callable[[Event], None],
                  cancel: threading.Event | None = None,
                  on_frame: Callable[[int, Any], None] | None = None,
                  pace: Callable[[], None] | None = None, pieces: PieceStore | None = None) -> dict[str, Any]:
    """Colour-match and stitch the segments into ``output``; the assembly report. ``videos`` maps
    segment index to clip (a ``LandedVideos`` waits for each as it is needed); ``pieces`` keeps the
    encoded film in pieces, so the next render encodes only the pieces that changed."""
    from ..assemble import assemble

    started = time.monotonic()
    try:
        report = assemble(plan, videos, output, board=board,
                          on_event=emit, cancel=cancel if cancel is not None else opts.cancel, codec=opts.codec,
                          frames=part, keep_samples=True, on_frame=on_frame, pace=pace, pieces=pieces)
    except MediaError as exc:
        if str(output) not in str(exc):  # say which film was not written, not only what broke
            exc.args = (f"{output}: not written: {exc}",)
        raise
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def write_timelines(plan: RenderPlan, board: Storyboard, outcomes: dict[int, SegmentOutcome], output: Path,
                    part: list[tuple[int, int]] | None, opts: RenderOptions) -> dict[str, Any]:
    """The OTIO timeline of what was written (the film, or the part's ranges in its own time)
    and, for a whole film, per-chain files, as asked; what was written, for the report."""
    written: dict[str, Any] = {}
    if opts.otio:
        from ..otio import export_timeline, write_otio

        timeline = export_timeline(plan, board, output.name, ranges=part)
        written["otio"] = str(write_otio(timeline, output.with_suffix(".otio")))
    if part is not None:
        return written  # per-chain media are whole chains: a part has none of its own
    if opts.per_chain:
        written["chains"] = _write_chain_media(plan, board, outcomes, output, opts.codec)
    return written


def _videos(outcomes: dict[int, SegmentOutcome]) -> dict[int, Path]:
    """Each finished segment's clip (every outcome here succeeded, so each has one)."""
    return {i: o.video for i, o in outcomes.items() if o.video is not None}


def _ignore(event: Event) -> None:
    pass


@contextlib.contextmanager
def _workdir(cache: SegmentCache) -> Iterator[Path]:
    """The run's scratch folder (tail clips), inside the cache so renames stay on one filesystem."""
    path = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=cache.root / "tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _thumb_grabber(plan: RenderPlan, only: set[int] | None, output: Path) -> Any:
    """A ``ThumbGrabber`` for the frames the review page shows (each segment's strip, both sides
    of each seam), so the page needs no second decode of the film."""
    from ..review.page import seam_frames, segment_frames
    from ..review.thumbs import ThumbGrabber

    frames: set[int] = set()
    for seg in plan.segments:
        if only is None or seg.index in only:
            frames.update(segment_frames({"shown_start": seg.shown_start, "shown_end": seg.shown_end}))
            if seg.depends_on is not None:
                frames.update(seam_frames({"film_frame": seg.seam_frame}))
    return ThumbGrabber(frames, output.with_name(f".{output.stem}.thumbs-{os.getpid()}"))


def _write_review(manifest: Path, grabbed: Path | None = None) -> Path | None:
    """The review page beside the film; the film and manifest are already safe, so a page that
    cannot be made is a warning (``composer review`` retries it), never a failed render."""
    import warnings

    from ..review import write_review

    try:
        return write_review(manifest, grabbed=grabbed)
    except ComposerError as exc:
        warnings.warn(f"review page not written: {exc}", stacklevel=2)
        return None


def _write_chain_media(plan: RenderPlan, board: Storyboard, outcomes: dict[int, SegmentOutcome],
                       output: Path, codec: str) -> dict[str, Any]:
    """Each chain's own file (``film.chain00.mp4`` …) and ``film.chains.otio`` laying them out
    with the storyboard's dissolves as OTIO transitions."""
    from ..assemble import assemble_chain
    from ..otio import export_per_chain, write_otio

    videos = _videos(outcomes)
    names = {}
    for chain in plan.chains:
        path = output.with_name(f"{output.stem}.chain{chain.index:02d}{output.suffix}")
        assemble_chain(plan, chain.index, videos, path, board=board, codec=codec)
        names[chain.index] = path.name
    timeline = write_otio(export_per_chain(plan, board, names), output.with_name(output.stem + ".chains.otio"))
    return {"files": list(names.values()), "otio": str(timeline)}


def part_ranges(plan: RenderPlan, scenes: Sequence[str] | None,
                frame_range: tuple[int, int] | None) -> list[tuple[int, int]] | None:
    """The film frames a partial render writes, as ranges [start, end) in film order, or None
    for the whole film. Scenes that touch or overlap make one range; ``frame_range`` with
    ``scenes`` keeps the scenes' frames inside it."""
    if not scenes and frame_range is None:
        return None
    if scenes:
        known = {s.id: s for s in plan.scenes}
        missing = [s for s in scenes if s not in known]
        if missing:
            raise ComposerError(f"no scene {missing[0]!r} in the storyboard (scenes: {', '.join(known)})")
        spans = sorted((known[s].start_frame, known[s].end_frame) for s in set(scenes))
    else:
        spans = [frame_range or (0, plan.total_frames)]  # not None here: checked above
    lo, hi = (max(0, frame_range[0]), frame_range[1]) if frame_range is not None else (0, plan.total_frames)
    hi = min(hi, plan.total_frames)
    ranges: list[tuple[int, int]] = []
    for start, end in spans:
        start, end = max(start, lo), min(end, hi)
        if end <= start:
            continue
        if ranges and start <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(end, ranges[-1][1]))
        else:
            ranges.append((start, end))
    if not ranges:
        raise ComposerError(f"the range selects no frames of a {plan.total_frames}-frame film")
    return ranges


def _estimate(backend: Backend, segments: list[Any]) -> float:
    """What ``segments`` will cost on ``backend``, as it prices them (the plan holds fal's list price)."""
    from ..request import GenerationRequest

    if not backend.paid:
        return 0.0
    return round(sum(backend.estimate_cost(GenerationRequest.model_validate(s.request)) for s in segments), 6)


def _failure_summary(plan: RenderPlan, outcomes: dict[int, SegmentOutcome], max_cost: float | None = None) -> str:
    """One line: what failed, what is safe, and what to do before running the same command again."""
    failed = [o for o in outcomes.values() if o.status == "failed"]
    over_budget = [o for o in failed if o.error_type == "BudgetExceeded"]
    broken = [o for o in failed if o.error_type != "BudgetExceeded"]
    skipped = sum(1 for o in outcomes.values() if o.status == "skipped")
    done = sum(1 for o in outcomes.values() if o.ok)
    parts = []
    if broken:
        more = f" (and {len(broken) - 1} more segment(s) failed)" if len(broken) > 1 else ""
        parts.append(f"{broken[0].error}{more}")
    if over_budget:
        limit = f" ${max_cost:.2f}" if max_cost is not None else ""
        parts.append(f"{len(over_budget)} segment(s) not started: the next request would cross --max-cost{limit}")
    if skipped:
        parts.append(f"{skipped} later segment(s) of the same chain(s) not attempted")
    todo = [plan.segments[o.index] for o in outcomes.values() if not o.ok]
    actions = []
    if any(o.error_type == "SafetyRejected" for o in broken):
        scenes = sorted({plan.segments[o.index].scene for o in broken if o.error_type == "SafetyRejected"})
        actions.append("change what the safety checker rejected (the prompt or keyframe images of scene "
                       + ", ".join(f"'{s}'" for s in scenes) + ")")
    elif broken:
        actions.append("fix the cause")
    if over_budget:
        actions.append(f"raise --max-cost or leave it out (the rest costs about ${sum(s.cost_usd for s in todo):.2f})")
    if not parts:
        parts.append(f"{len(todo)} segment(s) not rendered")
    if not actions:
        actions.append("fix the cause")
    return (f"{'; '.join(parts)}. {done} of {len(plan.segments)} segments are safe in the cache: "
            f"{' and '.join(actions)}, then run the same command again to resume (cached segments are not paid for again)")


def _manifest(board: Storyboard, plan: RenderPlan, backend: Backend, outcomes: dict[int, SegmentOutcome],
              report: dict[str, Any], output: Path, cost: float) -> dict[str, Any]:
    seams = {s["segment"]: s for s in report.get("seams", [])}
    transforms = report.get("transforms", {})
    segments = []
    for seg in plan.segments:
        if seg.index not in outcomes:
            continue
        o = outcomes[seg.index]
        seam = seams.get(seg.index)
        if seam is not None and o.gate:  # the review page reads the decision beside the seam's measures
            seam = {**seam, "gate": {"decision": o.gate["decision"], "kept": o.gate["kept"]}}
        segments.append({
            "index": seg.index, "chain": seg.chain, "scene": seg.scene,
            "cache_key": o.key, "cache_hit": o.status == "cached", "status": o.status,
            "request_id": o.request_id, "seconds": round(o.seconds, 3), "cost_usd": o.cost_usd,
            "seed": o.seed, "request": seg.request,
            "colour": transforms.get(seg.index), "seam": seam, "gate": o.gate,
        })
    return {
        "storyboard": {"source": board.source, "hash": plan.storyboard_hash, "title": board.title},
        "output": {"path": str(output), "frames": report.get("frames"), "range": report.get("range"),
                   "ranges": report.get("ranges"), "fps": plan.fps,
                   "width": plan.width, "height": plan.height, "codec": report.get("codec"),
                   "audio": report.get("audio")},
        "backend": backend.identity(),
        "cost_usd": cost,
        "requests_made": sum(o.gate["requests_this_run"] if o.gate and "requests_this_run" in o.gate
                             else int(o.status == "generated") for o in outcomes.values()),
        "cache_hits": sum(1 for o in outcomes.values() if o.status == "cached"),
        "assembly": {k: v for k, v in report.items() if k not in ("seams", "transforms")},
        "segments": segments,
        "plan": plan.model_dump(mode="json"),
        "timeline": board_timeline(board, plan),
    }


BACKGROUND_NICE = 10


def background_priority() -> None:
    """Lower the calling thread's CPU priority (Linux keeps a nice value per thread, and children
    forked from the thread inherit it); elsewhere a thread id is not a pid, so nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE))
    except (AttributeError, OSError):
        pass
