"""Run a RenderPlan's segments against a backend: a chain's segments in order,
independent chains concurrently (a bridged plan: each request once all its parents are
in the cache), every result through the segment cache.

A paid segment is leased, journalled (an intent before the submit, the id after it) and
written to the cost ledger through ``composer.store.PaidRequest``; a budget stops before a
request would cross it; a failure stops only its own chain.
"""
from __future__ import annotations

import contextlib
import errno
import heapq
import re
import threading
import time
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from collections.abc import Callable

from ..atomic import atomic_path
from ..backends.base import Backend, BackendEvent, GenerateContext, file_url
from ..errors import BudgetExceeded, Cancelled, ComposerError, MediaError
from ..planner import PlannedSegment, RenderPlan, request_depths
from ..request import GenerationRequest
from ..storyboard.models import Storyboard
from ..store import PaidRequest
from ..store.base import Busy, default_owner, lease_ttl_s
from .cache import SegmentCache, file_sha256, segment_key
from .heal import SeamGate
from .landing import Foreground
from ..events import (
    CostIncurred,
    Event,
    SegmentDone,
    SegmentFailed,
    SegmentLog,
    SegmentQueued,
    SegmentStarted,
)


@dataclass
class SegmentOutcome:
    index: int
    key: str | None = None
    status: str = "pending"  # cached | generated | failed | skipped | pending
    video: Path | None = None
    request_id: str | None = None
    seconds: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    error_type: str | None = None  # the exception's class name, e.g. "BudgetExceeded", "SafetyRejected"
    seed: int | None = None
    gate: dict[str, Any] | None = None  # the seam gate's decision (rendering.heal), when it judged this seam

    @property
    def ok(self) -> bool:
        return self.status in ("cached", "generated")


@dataclass
class _ChainRun:
    """Where one chain's rendering stands (a chain can be set aside and picked up again)."""

    segments: list[PlannedSegment]
    position: int = 0
    broken: str | None = None
    stream: Any = None


@dataclass
class Budget:
    """Money this run may still spend; requests in flight count against it."""

    limit_usd: float | None
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, cost: float, label: str) -> None:
        with self._lock:
            if self.limit_usd is not None and self.spent_usd + self.reserved_usd + cost > self.limit_usd + 1e-9:
                raise BudgetExceeded(
                    f"{label}: starting it (${cost:.2f}) would cross --max-cost ${self.limit_usd:.2f} "
                    f"(spent ${self.spent_usd:.2f}, in flight ${self.reserved_usd:.2f})"
                )
            self.reserved_usd += cost

    def settle(self, cost: float, paid: bool) -> None:
        with self._lock:
            self.reserved_usd -= cost
            if paid:
                self.spent_usd += cost


class MediaResolver:
    """Keys and local files for a segment's conditioning media (fitted keyframes)."""

    def __init__(self, board: Storyboard, plan: RenderPlan, cache: SegmentCache):
        self.board, self.plan, self.cache = board, plan, cache
        self._hashes: dict[Path, str] = {}
        self._lock = threading.Lock()

    def image_hash(self, source: str) -> str:
        path = self.board.resolve(source)
        with self._lock:
            if path not in self._hashes:
                try:
                    self._hashes[path] = file_sha256(path)
                except OSError as exc:
                    raise MediaError(f"cannot read keyframe image {source}: {exc}") from None
            return self._hashes[path]

    def media_hashes(self, seg: PlannedSegment) -> list[str]:
        # a skeleton frame's pixels are its skeleton's key (a parent); only which frame is its own
        return [f"{c.source.split('@', 1)[1] if is_skeleton_frame(c.source) else self.image_hash(c.source)}:{c.fit}"
                for c in seg.conditioning if c.kind == "image"]

    def fitted_image(self, source: str, fit: Literal["cover", "contain"]) -> Path:
        from ..media import fit_image, load_image, save_image

        name = f"{self.image_hash(source)[:24]}-{fit}-{self.plan.width}x{self.plan.height}.png"
        out = self.cache.media_path(name)
        if not out.exists():
            img = fit_image(load_image(self.board.resolve(source)), self.plan.width, self.plan.height, fit)
            with atomic_path(out) as tmp:
                save_image(img, tmp)
        return out


def is_skeleton_frame(source: str) -> bool:
    return source.startswith("skeleton:")


def skeleton_frame(source: str) -> tuple[int, int]:
    """``skeleton:<segment>@<frame>`` as (skeleton segment index, frame)."""
    index, frame = source.split(":", 1)[1].split("@")
    return int(index), int(frame)


def tail_mode(board: Storyboard) -> str:
    colour = board.defaults.colour
    return "raw" if colour.method == "none" else colour.tail


def overlap_spec(board: Storyboard, seg: PlannedSegment) -> dict[str, Any]:
    """What a segment's conditioning tail depends on besides its parent's key."""
    if seg.role != "chain":
        # bridged: an anchor's colour is settled only after the bridge before it, so a bridge is
        # conditioned on its neighbours as generated; anchors and skeletons take no clip at all
        frames = seg.overlap if seg.role == "bridge" else 0
        return {"frames": frames, "strength": board.defaults.segment.overlap_strength, "tail": "raw",
                "role": seg.role}
    spec: dict[str, Any] = {"frames": seg.overlap, "strength": board.defaults.segment.overlap_strength,
                            "tail": tail_mode(board)}
    if seg.overlap and spec["tail"] == "corrected":  # the tail's pixels then follow the colour settings
        colour = board.defaults.colour.model_dump(mode="json")
        if colour.get("spatial") is True:  # added later: at its default it keeps existing keys valid
            del colour["spatial"]
        spec["colour"] = colour
    return spec


def compute_keys(plan: RenderPlan, board: Storyboard, backend: Backend, media: MediaResolver,
                 kept: Callable[[int, str], str] | None = None) -> dict[int, str]:
    """Every segment's cache key, chained on all its parents' keys (a parent's key before its children's).
    ``kept`` maps a segment's planned key to the key of the take the seam gate kept."""
    keys: dict[int, str] = {}
    depths = request_depths(plan.segments)
    for seg in sorted(plan.segments, key=lambda s: (depths[s.index], s.index)):
        req = seg.generation_request()
        key = segment_key(
            backend=backend.identity(),
            request_without_urls=req.without_urls(),
            media_hashes=media.media_hashes(seg),
            parent_key=[keys[p] for p in seg.parents],
            overlap=overlap_spec(board, seg),
        )
        keys[seg.index] = kept(seg.index, key) if kept is not None else key
    return {i: keys[i] for i in sorted(keys)}


class Scheduler:
    """Renders every segment of a plan that is not in the cache."""

    def __init__(self, plan: RenderPlan, board: Storyboard, backend: Backend, cache: SegmentCache, *,
                 workdir: Path, jobs: int = 2, max_cost: float | None = None,
                 on_event: Callable[[Event], None] | None = None, cancel: threading.Event | None = None,
                 only: set[int] | None = None, heal: int = 0,
                 on_landed: Callable[[int, Path], None] | None = None, foreground: Foreground | None = None):
        self.plan, self.board, self.backend, self.cache = plan, board, backend, cache
        self.workdir = Path(workdir)
        self.jobs = max(1, jobs)
        self.budget = Budget(max_cost)
        self.emit = on_event or (lambda e: None)
        self.cancel = cancel or threading.Event()
        self.media = MediaResolver(board, plan, cache)
        self.gate = SeamGate(plan, board, cache, heal, self.emit)
        # told of each segment's clip once it is final (after the seam gate), for assembly as they land
        self.on_landed = on_landed
        # the streaming assembler waits while a chain's next submit is being prepared
        self.foreground = foreground or Foreground()
        self.keys = compute_keys(plan, board, backend, self.media, self.gate.resolve if self.gate.on else None)
        self.owner = default_owner()  # who holds this run's leases
        self.only = only  # segments needed (a partial render); None = all
        self._shown_tails: dict[int, list[Any]] = {}  # parent index -> its last frames as shown (corrected tails)
        # bridged: which frames the anchors take from each skeleton, decoded in one pass when first asked for
        self._skeleton_wants: dict[int, set[int]] = {}
        for s in plan.segments:
            for c in s.conditioning:
                if c.kind == "image" and is_skeleton_frame(c.source):
                    i, f = skeleton_frame(c.source)
                    self._skeleton_wants.setdefault(i, set()).add(f)
        self._skeleton_locks: dict[int, threading.Lock] = {}
        self.outcomes: dict[int, SegmentOutcome] = {s.index: SegmentOutcome(s.index, self.keys[s.index]) for s in plan.segments}

    def cached(self) -> dict[int, bool]:
        return {i: self.cache.has(k) for i, k in self.keys.items()}

    def run(self) -> dict[int, SegmentOutcome]:
        if self.plan.mode == "bridged":
            return self._run_graph()
        chains = [[self.plan.segments[i] for i in c.segments] for c in self.plan.chains]
        if self.only is not None:
            chains = [[s for s in ch if s.index in self.only] for ch in chains]
            chains = [ch for ch in chains if ch]
        for ch in chains:
            for s in ch:
                self.emit(SegmentQueued(s.index, s.label))
        queue = deque(_ChainRun(ch) for ch in chains)
        lock = threading.Lock()

        def worker() -> None:
            # A chain whose next segment another machine is making goes to the back of the
            # queue while other chains wait: machines sharing a cache spread over the chains.
            while True:
                with lock:
                    if not queue:
                        return
                    run = queue.popleft()
                    others = bool(queue)
                if not self._run_chain(run, defer=others):
                    with lock:
                        queue.append(run)
                    time.sleep(0.25)  # each look at a lease is a request to the store: not too often

        workers = min(self.jobs, len(chains))
        if workers <= 1:
            worker()
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chain") as pool:
                for f in [pool.submit(worker) for _ in range(workers)]:
                    f.result()
        return self.outcomes

    def _run_graph(self) -> dict[int, SegmentOutcome]:
        """Run the plan's DAG: a request starts once all its parents are in the cache (skeletons
        first, then anchors side by side, then bridges), ``jobs`` at a time. A failure skips
        only what depends on it."""
        wanted = [s for s in self.plan.segments if self.only is None or s.index in self.only]
        index = {s.index for s in wanted}
        depths = request_depths(self.plan.segments)
        for s in wanted:
            self.emit(SegmentQueued(s.index, s.label))
        waiting = {s.index: {p for p in s.parents if p in index} for s in wanted}
        children: dict[int, list[int]] = {s.index: [] for s in wanted}
        for s in wanted:
            for p in waiting[s.index]:
                children[p].append(s.index)
        ready = [(depths[i], i) for i, ps in waiting.items() if not ps]
        heapq.heapify(ready)
        streams: dict[int, Any] = {}  # chain -> its colour stream, for sequential chains with corrected tails
        cond = threading.Condition()
        busy = [0]

        def step(seg: PlannedSegment, others: bool) -> bool:
            """Run one segment; False when deferred (leased by another machine while other work waits)."""
            out = self.outcomes[seg.index]
            broken = [p for p in seg.parents if p in index and not self.outcomes[p].ok]
            if broken or self.cancel.is_set():
                out.status = "skipped"
                out.error = f"not rendered: {self.plan.segments[broken[0]].label} failed" if broken else "cancelled"
                self.emit(SegmentFailed(seg.index, seg.label, out.error, skipped=True))
                return True
            try:
                if others and self._leased_elsewhere(seg):
                    return False
                if seg.role == "chain" and seg.depends_on is not None and tail_mode(self.board) == "corrected" \
                        and not self.cache.has(self.keys[seg.index]):
                    stream = streams.get(seg.chain)
                    if stream is None:
                        from ..assemble import ChainStream

                        stream = streams[seg.chain] = ChainStream(
                            self.plan.chains[seg.chain], self.plan, self.board.defaults.colour,
                            keep_full_tail=True, keep_samples=True)
                    with self.foreground.busy():
                        self._follow_chain(stream, seg.depends_on)
                self._run_segment(seg, out)
                self._landed(out)
            except ComposerError as exc:
                out.status, out.error, out.error_type = "failed", self._said(seg, exc), type(exc).__name__
                self.emit(SegmentFailed(seg.index, seg.label, out.error))
            except Exception as exc:  # noqa: BLE001 — a bug in one segment must not lose the others' (paid) work
                out.status, out.error = "failed", f"internal error: {exc!r}"
                self.emit(SegmentFailed(seg.index, seg.label, out.error + "\n" + traceback.format_exc()))
            return True

        def worker() -> None:
            while True:
                with cond:
                    while not ready and busy[0]:
                        cond.wait()
                    if not ready:
                        return
                    _, i = heapq.heappop(ready)
                    busy[0] += 1
                    others = bool(ready)
                done = step(self.plan.segments[i], others)
                with cond:
                    busy[0] -= 1
                    if done:
                        for child in children[i]:
                            waiting[child].discard(i)
                            if not waiting[child]:
                                heapq.heappush(ready, (depths[child], child))
                    else:
                        heapq.heappush(ready, (depths[i] + 1, i))  # behind the other ready work
                    cond.notify_all()
                if not done:
                    time.sleep(0.25)  # each look at a lease is a request to the store: not too often

        workers = max(1, min(self.jobs, len(wanted)))
        if workers == 1:
            worker()
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="graph") as pool:
                for f in [pool.submit(worker) for _ in range(workers)]:
                    f.result()
        return self.outcomes

    def _run_chain(self, run: _ChainRun, *, defer: bool = False) -> bool:
        """Render the chain's remaining segments in order; False when deferred (its next segment is
        leased by another machine and ``defer`` allows taking other work meanwhile)."""
        chain = run.segments
        if run.stream is None and tail_mode(self.board) == "corrected" and len(chain) > 1:
            from ..assemble import ChainStream

            run.stream = ChainStream(self.plan.chains[chain[0].chain], self.plan, self.board.defaults.colour,
                                     keep_full_tail=True, keep_samples=True)
        stream = run.stream
        while run.position < len(chain):
            seg = chain[run.position]
            out = self.outcomes[seg.index]
            if run.broken is not None or self.cancel.is_set():
                out.status, out.error = "skipped", run.broken or "cancelled"
                self.emit(SegmentFailed(seg.index, seg.label, out.error, skipped=True))
                run.position += 1
                continue
            try:
                if defer and self._leased_elsewhere(seg):
                    return False
                if stream is not None and seg.depends_on is not None and not self.cache.has(self.keys[seg.index]):
                    with self.foreground.busy():
                        self._follow_chain(stream, seg.depends_on)
                self._run_segment(self.gate.segment(seg), out)
                self._heal(seg, out)  # the seam gate (rendering.heal), before any successor is submitted
                nxt = chain[run.position + 1] if run.position + 1 < len(chain) else None
                if stream is not None and nxt is not None and not self.cache.has(self.keys[nxt.index]):
                    # the successor's tail first; the assembler, told of this segment meanwhile, waits for it
                    with self.foreground.busy():
                        self._landed(out)
                        # a failure here is the successor's: its own follow repeats it and fails as its own
                        with contextlib.suppress(Exception):
                            self._follow_chain(stream, seg.index)
                else:
                    self._landed(out)
            except ComposerError as exc:
                out.status, out.error, out.error_type = "failed", self._said(seg, exc), type(exc).__name__
                run.broken = f"not rendered: {seg.label} failed"
                self.emit(SegmentFailed(seg.index, seg.label, out.error))
            except Exception as exc:  # noqa: BLE001 — a bug in one segment must not lose the other chains' (paid) work
                out.status, out.error = "failed", f"internal error: {exc!r}"
                run.broken = f"not rendered: {seg.label} failed"
                self.emit(SegmentFailed(seg.index, seg.label, out.error + "\n" + traceback.format_exc()))
            run.position += 1
        return True

    def _leased_elsewhere(self, seg: PlannedSegment) -> bool:
        """Whether another run holds the lease of an unpublished paid segment right now."""
        if not self.backend.paid:
            return False
        key = self.keys[seg.index]
        if self.cache.has(key):
            return False
        got = self.cache.claim(key, self.owner, lease_ttl_s())
        if isinstance(got, Busy):
            return True
        self.cache.store.release(got)
        return False

    def _said(self, seg: PlannedSegment, exc: Exception) -> str:
        """The error as the user should read it: the run's scratch files (removed when the run
        ends) are named as what they are, the segment's working copy, never by their temp path."""
        text = str(exc)
        scratch = re.compile(re.escape(str(self.workdir)) + r"[^\s'\":,;)]*")
        if scratch.search(text):
            text = scratch.sub(f"the working copy of {seg.label}", text)
        return text

    def _landed(self, out: SegmentOutcome) -> None:
        if self.on_landed is not None and out.video is not None:
            self.on_landed(out.index, out.video)

    def _heal(self, seg: PlannedSegment, out: SegmentOutcome) -> None:
        """Judge ``seg``'s seam, re-rolling it while it fails; successors then chain on the kept take's key."""
        if not self.gate.on:
            return
        if self.gate.judge(seg, out, lambda take, o: self._run_segment(take, o, key=o.key),
                           lambda i: self.outcomes[i].video):
            self.keys = compute_keys(self.plan, self.board, self.backend, self.media, self.gate.resolve)
            for i, o in self.outcomes.items():
                if o.status == "pending":
                    o.key = self.keys[i]

    def _run_segment(self, seg: PlannedSegment, out: SegmentOutcome, key: str | None = None) -> None:
        key = key or self.keys[seg.index]
        started = time.monotonic()
        entry = self.cache.lookup(key)
        if entry is None and self.cancel.is_set():
            raise Cancelled("cancelled")
        paid = None
        if entry is None and self.backend.paid:
            # the lease: machines sharing the cache never pay twice for one segment
            paid = PaidRequest(
                self.cache.store, key, label=seg.label, cost=seg.cost_usd, backend=self.backend.identity(),
                record={"segment": seg.index, "scene": seg.scene}, consent=self.cache.consent, owner=self.owner,
                cancelled=self.cancel.is_set,
                on_wait=lambda busy: self.emit(SegmentLog(seg.index, "log", f"another render ({busy.owner}) is "
                                                          "making this segment; waiting for it", {})))
            entry = paid.acquire(lookup=False)
            if entry is None:
                entry = self.cache.lookup(key)  # published by another machine while we waited
                if entry is not None:
                    paid.done()
        if entry is not None:
            out.status, out.video, out.request_id = "cached", entry.video, entry.meta.get("request_id")
            out.seed = entry.meta.get("seed")
            self.emit(SegmentDone(seg.index, seg.label, cached=True, seconds=0.0, request_id=out.request_id))
            return
        try:
            self._generate(seg, out, key, paid, started)
        except BaseException as exc:
            if paid is not None:
                paid.failed(exc)
            raise

    def _generate(self, seg: PlannedSegment, out: SegmentOutcome, key: str, paid: PaidRequest | None,
                  started: float) -> None:
        self.emit(SegmentStarted(seg.index, seg.label))
        with self.foreground.busy():
            request = self._materialise(seg)
        cost = self.backend.estimate_cost(request) if paid is not None else 0.0
        resume_id = paid.resume_id if paid is not None else None
        # re-attaching to a request already paid for costs nothing new
        reserved = [cost if resume_id is None else 0.0]
        self.budget.reserve(reserved[0], seg.label)

        def confirm_resubmit(reason: str) -> None:
            assert paid is not None
            paid.confirm_resubmit(reason)  # raises unless a person agreed to pay again
            self.budget.reserve(cost, seg.label)
            reserved[0] += cost

        if paid is not None:
            paid.cost = cost
            paid.intend()
        ctx = GenerateContext(
            label=seg.label,
            on_event=lambda ev: self._backend_event(seg, ev),
            on_submitted=paid.on_submitted if paid is not None else None,
            resume_request_id=resume_id,
            cancelled=self.cancel.is_set,
            confirm_resubmit=confirm_resubmit if paid is not None else None,
            segment_index=seg.index,
            # a skeleton is not film footage (its own frame rate, never shown)
            film_start=seg.output_start_frame if seg.shown else None,
            film_end=seg.output_start_frame + seg.num_frames if seg.shown else None,
            overlap=seg.overlap if seg.role == "chain" or seg.role == "bridge" else 0,
        )
        segdir = self.workdir / f"seg{seg.index:04d}"
        segdir.mkdir(parents=True, exist_ok=True)
        try:
            result = self.backend.generate(request, segdir, ctx)
        except BaseException as exc:
            self.budget.settle(reserved[0], paid=False)
            if _out_of_space(exc):  # the backend names its scratch file; the user gave the cache
                from ..media.writer import NoSpaceError

                rid = (paid.submitted_id or paid.resume_id) if paid is not None else None
                kept = (f" (fal request {rid} is journalled: the next run fetches it, it is not paid again)"
                        if rid else "")
                raise NoSpaceError(self.cache.root, f"the video of {seg.label}; the disk is full: free some "
                                   f"space there or choose another --cache-dir{kept}") from exc
            raise
        self.budget.settle(reserved[0], paid=True)
        # the ledger first: the money is spent whatever the clip turns out to be
        newly_paid = paid.settle(result.request_id) if paid is not None else False
        if newly_paid:
            self.emit(CostIncurred(seg.index, cost, self.budget.spent_usd))
        self._check_output(seg, result.path, result.num_frames if self.backend.verifies_clips else None)
        meta = {
            "segment": seg.index, "scene": seg.scene, "backend": self.backend.identity(),
            "request_id": result.request_id, "seed": result.seed if result.seed is not None else seg.seed,
            "num_frames": seg.num_frames,
            "cost_usd": cost if (paid is not None and result.request_id) else 0.0,  # what this segment cost, ever
        }
        entry = paid.publish(result.path, meta) if paid is not None else self.cache.publish(key, result.path, meta)
        out.status, out.video, out.request_id = "generated", entry.video, result.request_id
        out.seconds = time.monotonic() - started
        out.cost_usd = cost if newly_paid else 0.0
        out.seed = entry.meta.get("seed")
        self.emit(SegmentDone(seg.index, seg.label, cached=False, seconds=out.seconds, cost_usd=out.cost_usd,
                              request_id=result.request_id))

    def _backend_event(self, seg: PlannedSegment, ev: BackendEvent) -> None:
        self.emit(SegmentLog(seg.index, ev.kind, ev.message, dict(ev.data)))

    def _materialise(self, seg: PlannedSegment) -> GenerationRequest:
        """The segment's request with its media as local file:// URLs."""
        body: dict[str, Any] = dict(seg.request)
        images = [dict(i) for i in body.get("images", [])]
        videos = [dict(v) for v in body.get("videos", [])]
        # the planner lists conditioning videos first, then images, each in its request's order
        image_conds = [c for c in seg.conditioning if c.kind == "image"]
        video_conds = [c for c in seg.conditioning if c.kind == "video"]
        for item, c in zip(images, image_conds, strict=True):
            if is_skeleton_frame(c.source):
                item["image_url"] = file_url(self._skeleton_frame(c.source))
            else:
                item["image_url"] = file_url(self.media.fitted_image(c.source, c.fit or "cover"))
        for item, c in zip(videos, video_conds, strict=True):
            what, parent = c.source.split(":", 1)
            frames = c.num_frames or seg.overlap
            clip = self._head_clip(int(parent), frames) if what == "head" else self._tail_clip(int(parent), frames)
            item["video_url"] = file_url(clip)
        body["images"], body["videos"] = images, videos
        return GenerationRequest.model_validate(body)

    def _follow_chain(self, stream: Any, parent: int) -> None:
        """Stream the chain's colour matching up to ``parent``: its shown tail conditions the next segment."""
        while stream.position < len(stream.segments) and stream.segments[stream.position].index <= parent:
            seg = stream.segments[stream.position]
            video = self.outcomes[seg.index].video
            if video is None:
                raise MediaError(f"{seg.label} has no video to condition on")
            record: dict[str, Any] = {}
            stream.follow(video, record)
            if seg.index == parent:
                self._shown_tails[parent] = record["full_tail"]  # I420 frames

    def _tail_clip(self, parent: int, frames: int) -> Path:
        """The last ``frames`` frames of the parent's actual output, as a small MP4."""
        return self._conditioning_clip(parent, frames, "tail")

    def _head_clip(self, parent: int, frames: int) -> Path:
        """The first ``frames`` frames of the parent's output (the next anchor's head, for a bridge)."""
        return self._conditioning_clip(parent, frames, "head")

    def _conditioning_clip(self, parent: int, frames: int, end: Literal["head", "tail"]) -> Path:
        from ..media import read_frames, write_clip
        from ..media.writer import NoSpaceError

        src = self.outcomes[parent].video
        if src is None:
            raise MediaError(f"segment {parent} has no video to condition on")
        out = self.workdir / f"{end}{parent:04d}x{frames}.mp4"
        if not out.exists():
            n = self.plan.segments[parent].num_frames
            shown = self._shown_tails.pop(parent, None) if end == "tail" else None
            clip = (shown[-frames:] if shown is not None
                    else read_frames(src, start=n - frames if end == "tail" else 0, count=frames, pix_fmt="yuv420p"))
            if len(clip) != frames:
                raise MediaError(f"segment {parent}: expected {frames} {end} frames, decoded {len(clip)}")
            # ultrafast: on the critical path of every dependent segment, ~3x quicker than veryfast at the
            # same crf 12 quality; bigger (a 1280x720 17-frame preview tail: ~1.0 MB vs ~0.66 MB), still
            # under the 2 MB the fal backend sends inline as a data URI.
            try:
                with atomic_path(out, fsync=False) as tmp:  # the run's own scratch folder: no durability needed
                    write_clip(clip, tmp, self.plan.fps, preset="ultrafast", pix_fmt="yuv420p")
            except (OSError, MediaError) as exc:
                if not _out_of_space(exc):
                    raise
                which = "last" if end == "tail" else "first"
                raise NoSpaceError(self.cache.root, f"the {which} {frames} frames of segment {parent}, which "
                                   "condition the next segment; the disk is full: free some space there or choose "
                                   "another --cache-dir") from exc
        return out

    def _skeleton_frame(self, source: str) -> Path:
        """A skeleton frame (``skeleton:<segment>@<frame>``) fitted to the film's size, as a PNG.

        The first anchor to ask decodes its skeleton once for every frame the plan takes from it:
        a skeleton has few keyframes, so a decode per anchor would read most of it again each time
        (at 10 minutes, some 70 anchors on 4 skeletons of 1201 frames)."""
        index, frame = skeleton_frame(source)
        out = self._skeleton_png(index, frame)
        if not out.exists():
            with self._skeleton_locks.setdefault(index, threading.Lock()):
                if not out.exists():
                    self._extract_skeleton(index, sorted(self._skeleton_wants.get(index, set()) | {frame}))
        if not out.exists():
            raise MediaError(f"skeleton {index}: cannot decode frame {frame}")
        return out

    def _skeleton_png(self, index: int, frame: int) -> Path:
        return self.workdir / f"skeleton{index:04d}@{frame}-{self.plan.width}x{self.plan.height}.png"

    def _extract_skeleton(self, index: int, frames: list[int]) -> None:
        from ..media import VideoReader, fit_image, save_image

        src = self.outcomes[index].video
        if src is None:
            raise MediaError(f"skeleton {index} has no video to take frame {frames[0]} from")
        missing = [f for f in frames if not self._skeleton_png(index, f).exists()]
        if not missing:
            return
        with VideoReader(src, select=missing) as reader:
            for f, got in zip(missing, reader):
                with atomic_path(self._skeleton_png(index, f), fsync=False) as tmp:
                    save_image(fit_image(got, self.plan.width, self.plan.height, "cover"), tmp)

    def _check_output(self, seg: PlannedSegment, path: Path, num_frames: int | None = None) -> None:
        """The backend's clip has the segment's frame count. ``num_frames`` is the count the backend
        already established (``GenerationResult.num_frames``); the file is probed only without one."""
        if num_frames is None:
            from ..media import probe

            num_frames = probe(path).num_frames
        if num_frames != seg.num_frames:
            raise MediaError(f"{seg.label}: backend returned {num_frames} frames, expected {seg.num_frames}")


def _out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a full disk."""
    from ..media.writer import NoSpaceError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NoSpaceError) or (isinstance(seen, OSError) and seen.errno == errno.ENOSPC):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
