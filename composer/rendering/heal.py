"""The seam gate's re-roll loop: a segment's seam measured as the film will show it as soon as
the segment lands, re-rolled with new seeds (at most ``heal`` times) while it fails, the best
take kept and recorded in the cache so resumes and successors' keys stay on it.
"""
from __future__ import annotations

import copy
import hashlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import Cancelled, ComposerError
from ..events import SegmentLog
from ..planner import PlannedSegment, RenderPlan
from ..request import canonical_json
from ..seams import measure_seam
from .cache import SegmentCache
from .gate import Sparse, Thresholds, failures, seam_window, severity

if TYPE_CHECKING:
    from ..assemble import ChainStream
    from ..events import Event
    from ..storyboard.models import Storyboard
    from .scheduler import SegmentOutcome

HEAL_MAX = 5  # storyboard and CLI refuse more: each one is a paid request per seam
RECORD_KIND = "seam-gate"

# Renders one take (the segment with the take's seed) into its outcome, whose key is the take's.
RenderTake = Callable[[PlannedSegment, "SegmentOutcome"], None]


def take_seed(seed: int, take: int) -> int:
    """The seed of re-roll ``take`` (take 0 is the planned seed): stable, so a resume asks for the same takes."""
    if take == 0:
        return seed
    return int(hashlib.sha256(f"{seed}/take/{take}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def take_key(slot_key: str, seed: int) -> str:
    """A re-roll's cache key: the planned segment's key (everything its pixels depend on) and the new seed."""
    return hashlib.sha256(canonical_json({"take_of": slot_key, "seed": seed}).encode()).hexdigest()


def record_key(slot_key: str) -> str:
    """Where the gate's decision for the planned segment ``slot_key`` is kept in the cache."""
    return hashlib.sha256(canonical_json({"seam_gate_of": slot_key}).encode()).hexdigest()


def take_segment(seg: PlannedSegment, seed: int) -> PlannedSegment:
    return seg if seed == seg.seed else seg.model_copy(update={"seed": seed, "request": {**seg.request, "seed": seed}})


@dataclass
class _Take:
    take: int
    seed: int
    key: str
    outcome: Any  # SegmentOutcome
    measures: dict[str, Any] | None = None
    severity: float = 0.0
    failures: list[str] = field(default_factory=list)
    state: _ChainState | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"take": self.take, "seed": self.seed, "cache_key": self.key, "measures": self.measures,
                "severity": round(self.severity, 4), "failures": self.failures, "status": self.outcome.status,
                "request_id": self.outcome.request_id, "cost_usd": self.outcome.cost_usd}


@dataclass
class _ChainState:
    """One chain streamed through the assembler's own colour matching, up to a segment."""

    stream: ChainStream
    pos: int  # film frame the stream yields next
    recent: deque[tuple[int, np.ndarray]]  # the last frames it yielded (I420), for the window before a seam

    def fork(self) -> _ChainState:
        # the matcher's state and the held-back frames change as a segment streams; the plan does not
        s = copy.copy(self.stream)
        s.matcher = copy.deepcopy(self.stream.matcher)
        s.pending = list(self.stream.pending)
        s.tail = list(self.stream.tail) if self.stream.tail is not None else None
        return _ChainState(s, self.pos, deque(self.recent, maxlen=self.recent.maxlen))

    def advance(self, video: Path, window: tuple[int, int] = (0, 0)) -> dict[int, np.ndarray]:
        """Stream one more segment; the frames of film ``window`` [lo, hi) seen so far (I420)."""
        lo, hi = window
        seen = {i: f for i, f in self.recent if lo <= i < hi}
        for frame in self.stream.next_segment(video, {}):
            self.recent.append((self.pos, frame))
            if lo <= self.pos < hi:
                seen[self.pos] = frame
            self.pos += 1
        # frames held back to dissolve into the next segment are shown much as they are now
        seen.update((self.pos + i, f) for i, f in enumerate(self.stream.pending) if lo <= self.pos + i < hi)
        return seen


class SeamGate:
    """Decides each seam of a render with ``heal`` > 0: pass, re-rolled, or kept-best-failing.

    The scheduler asks ``resolve`` for every segment's key (a recorded decision puts its kept
    take's key in place of the planned one, so successors chain on what the film shows) and
    calls ``judge`` when a segment has landed, before its successor is submitted.
    """

    def __init__(self, plan: RenderPlan, board: Storyboard, cache: SegmentCache, heal: int,
                 emit: Callable[[Event], None], thresholds: Thresholds | None = None):
        if not 0 <= heal <= HEAL_MAX:
            raise ComposerError(f"heal must be 0–{HEAL_MAX} re-rolls per seam, got {heal}")
        if getattr(plan, "mode", "sequential") == "bridged":
            heal = 0  # the gate judges sequential chains only: a bridge's seams have two parents
        self.plan, self.board, self.cache, self.heal = plan, board, cache, heal
        self.emit, self.thresholds = emit, thresholds or Thresholds()
        self.slots: dict[int, str] = {}  # segment -> the planned (take 0) key
        self.kept: dict[int, str] = {}  # segment -> the kept take's key, decided in this run
        self.kept_seeds: dict[int, int] = {}  # segment -> the kept take's seed (this run's or recorded)
        self._records: dict[str, dict[str, Any] | None] = {}  # slot key -> recorded decision
        self._chains: dict[int, _ChainState] = {}
        self._lock = threading.Lock()

    @property
    def on(self) -> bool:
        return self.heal > 0

    # -- keys -----------------------------------------------------------------------
    def resolve(self, index: int, slot_key: str) -> str:
        """The key segment ``index`` is rendered and chained under: its kept take's, once decided."""
        with self._lock:
            self.slots[index] = slot_key
            if index in self.kept:
                return self.kept[index]
        record = self.recorded(slot_key) if self.on else None
        if record is None:
            return slot_key
        with self._lock:
            self.kept_seeds[index] = int(record["kept"]["seed"])
        return str(record["kept"]["cache_key"])

    def segment(self, seg: PlannedSegment) -> PlannedSegment:
        """``seg`` as the kept take asks for it (its seed), so a kept take missing from the cache is
        rendered again as itself, never as the planned seed under the take's key."""
        with self._lock:
            seed = self.kept_seeds.get(seg.index)
        return take_segment(seg, seed) if seed is not None else seg

    def recorded(self, slot_key: str) -> dict[str, Any] | None:
        with self._lock:
            if slot_key in self._records:
                return self._records[slot_key]
        key = record_key(slot_key)
        entry = self.cache.lookup(key) if self.cache.has(key) else None
        record = entry.meta.get("gate") if entry is not None else None
        with self._lock:
            self._records[slot_key] = record
        return record

    # -- the gate ---------------------------------------------------------------------
    def judge(self, seg: PlannedSegment, out: SegmentOutcome, render_take: RenderTake,
              video_of: Callable[[int], Path | None]) -> bool:
        """Measure ``seg``'s seam and re-roll it while it fails; True when the kept take's key changed."""
        if not self.on or seg.depends_on is None or not out.ok:
            return False
        slot = self.slots[seg.index]
        record = self.recorded(slot)
        if record is not None and self._settled(record):
            out.gate = record  # decided by an earlier run: its kept take is what the scheduler fetched
            return False
        before = self._state_before(seg, video_of)
        if before is None:
            return False  # the seam's frames are not all in this chain (or an earlier segment is missing)
        takes: list[_Take] = []
        stopped: str | None = None
        for t in range(self.heal + 1):
            seed = take_seed(seg.seed, t)
            key = slot if t == 0 else take_key(slot, seed)
            if key == out.key:
                take_out = out
            else:
                take_out = type(out)(seg.index, key)
                if t > 0:
                    self.emit(SegmentLog(seg.index, "log", f"seam gate: {'; '.join(takes[-1].failures)}: "
                                         f"re-rolling with seed {seed} (take {t} of at most {self.heal})", {}))
                try:
                    render_take(take_segment(seg, seed), take_out)
                except Cancelled:
                    raise
                except ComposerError as exc:  # the budget, a failed re-roll: keep the best take so far
                    stopped = f"take {t}: {exc}"
                    self.emit(SegmentLog(seg.index, "log", f"seam gate: stopped re-rolling ({stopped})", {}))
                    break
            takes.append(self._measure(seg, before, t, seed, key, take_out))
            if not takes[-1].failures:
                break
        best = min(takes, key=lambda k: (k.severity if k.measures is not None else float("inf"), k.take))
        if best.state is not None:
            with self._lock:
                self._chains[seg.chain] = best.state
        decision = ("pass" if best.take == 0 and not best.failures else
                    "re-rolled" if not best.failures else "kept-best-failing")
        rec = {"decision": decision, "heal": self.heal, "thresholds": self.thresholds.to_dict(),
               "measures": best.measures, "severity": round(best.severity, 4), "failures": best.failures,
               "kept": {"take": best.take, "seed": best.seed, "cache_key": best.key},
               "rejected": [k.to_dict() for k in takes if k is not best], "stopped": stopped}
        self._publish(slot, best, rec)
        changed = best.key != out.key
        new = [k for k in takes if k.outcome.status == "generated"]
        if changed:
            o = best.outcome
            out.key, out.video, out.seed, out.request_id = best.key, o.video, o.seed, o.request_id
        out.status = "generated" if new else "cached"
        out.cost_usd = round(sum(k.outcome.cost_usd for k in takes), 6)
        out.seconds = sum(k.outcome.seconds for k in takes)
        out.gate = {**rec, "requests_this_run": len(new)}
        with self._lock:
            self.kept[seg.index], self.kept_seeds[seg.index] = best.key, best.seed
        return changed

    def _settled(self, record: dict[str, Any]) -> bool:
        """Whether a recorded decision stands: its take passes, or this run's ``heal`` allows no more takes."""
        tried = len(record.get("rejected", [])) + 1
        return not record.get("failures") or (tried >= self.heal + 1 and not record.get("stopped"))

    def _publish(self, slot: str, best: _Take, rec: dict[str, Any]) -> None:
        video = best.outcome.video
        if video is None:
            return
        self.cache.publish(record_key(slot), video, {"kind": RECORD_KIND, "segment": best.outcome.index,
                                                     "seed": best.seed, "cost_usd": 0.0, "gate": rec})
        with self._lock:
            self._records[slot] = rec

    # -- the film around a seam -------------------------------------------------------------
    def _state_before(self, seg: PlannedSegment, video_of: Callable[[int], Path | None]) -> _ChainState | None:
        """The chain streamed up to (not including) ``seg``, as the assembler streams it."""
        from ..assemble import ChainStream

        chain = self.plan.chains[seg.chain]
        lo, hi = seam_window(seg.seam_frame)
        if lo < chain.start_frame or hi > chain.end_frame:
            return None
        with self._lock:
            state = self._chains.get(seg.chain)
        if state is None or state.stream.position > chain.segments.index(seg.index):
            stream = ChainStream(chain, self.plan, self.board.defaults.colour)
            state = _ChainState(stream, chain.start_frame, deque(maxlen=hi - lo))
        order = chain.segments
        while state.stream.position < order.index(seg.index):
            video = video_of(order[state.stream.position])
            if video is None:
                return None
            state.advance(video)
        with self._lock:
            self._chains[seg.chain] = state
        return state

    def _measure(self, seg: PlannedSegment, before: _ChainState, t: int, seed: int, key: str,
                 out: SegmentOutcome) -> _Take:
        # Measured on the frames as the film shows them (colour-matched, continuity-fixed, the
        # overlap dissolved), not the raw clip: a drift the assembler corrects needs no paid
        # re-roll, and the thresholds were set on films (benchmarks/seams_drift.py).
        from ..yuv import i420_to_rgb

        take = _Take(t, seed, key, out)
        if out.video is None:
            take.severity, take.failures = float("inf"), ["no video"]
            return take
        state = before.fork()
        lo, hi = seam_window(seg.seam_frame)
        frames = {i: i420_to_rgb(f) for i, f in state.advance(out.video, (lo, hi)).items()}
        take.state = state
        if len(frames) < hi - lo:
            take.severity, take.failures = 0.0, []
            return take
        m = measure_seam(Sparse(frames, hi), seg.seam_frame)  # type: ignore[arg-type]
        take.measures = m.to_dict()
        take.severity, take.failures = severity(m, self.thresholds), failures(m, self.thresholds)
        return take


def extra_requests(plan: RenderPlan, heal: int) -> tuple[int, float]:
    """The most a seam gate with ``heal`` can add: requests and their list price."""
    if getattr(plan, "mode", "sequential") == "bridged":
        return 0, 0.0
    seams = [s for s in plan.segments if s.depends_on is not None]
    return heal * len(seams), round(heal * sum(s.cost_usd for s in seams), 6)
