"""Stitch rendered segments into one film, streaming.

Each segment is decoded once; its overlap head is compared with its
predecessor's tail as shown to fit a colour transform (composed along the chain,
held to the chain's look), its shown frames are corrected, chains dissolve into
each other where the storyboard crossfades, and one encoder writes the film (or,
beside a cache, one piece per segment, so a re-render encodes only what changed).
Frames stay I420 (yuv420p, BT.709 limited) from decoder to encoder; only small
RGB copies are made for fitting. Memory holds a few overlaps' frames, whatever
the film's length.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import itertools
import json
import queue
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence

import cv2
import numpy as np

from .atomic import atomic_path
from .colour import ChainColourMatcher, SegmentColour
from .colour.continuity import LOOK
from .errors import Cancelled, MediaError
from .metrics import frame_delta_e
from .pieces import Piece, PieceStore, code_fingerprint
from .planner import PlannedChain, PlannedSegment, RenderPlan
from .events import AssemblyProgress, Event
from .storyboard.models import ColourSpec, Storyboard

SMALL_WIDTH = 256  # frames kept for fitting and measuring are shrunk to this width
PIX_FMT = "yuv420p"  # what flows from the decoders to the encoder


def _small_of(frame: np.ndarray) -> np.ndarray:
    """A small RGB copy of an I420 frame, for fitting and measuring."""
    from .yuv import i420_small_rgb

    return i420_small_rgb(frame, SMALL_WIDTH)


def _apply(colour: SegmentColour | None, frame: np.ndarray, index: int) -> np.ndarray:
    """Frame ``index`` of a segment (I420) as shown: its transform, then its share of the residual field."""
    if colour is None:
        return frame
    from .yuv import I420Transform

    field = colour.residual.grid if colour.residual is not None else None
    return I420Transform(colour.at(index), field, colour.residual_weight(index)).apply(frame)


def _seam_step(last: np.ndarray, first: np.ndarray) -> float:
    """The colour step the dissolve spreads: the old segment's last frame as shown (small RGB) to
    the new one's first shown frame (I420), as the manifest's ``seam_delta_e``."""
    return round(frame_delta_e(last, _small_of(first)), 3)


def _check_length(seg: PlannedSegment, video: Path, frames: int) -> None:
    if frames < seg.num_frames:
        raise MediaError(f"{seg.label}: {video} holds {frames} frames, the plan needs {seg.num_frames}")


class ChainStream:
    """One chain's segments streamed in order through its colour matcher.

    Each segment's re-generated overlap head is compared with its predecessor's
    tail as shown to fit its colour; the film shows the overlap as a dissolve from
    that tail to the corrected head, so whatever the fit leaves is spread over the
    overlap instead of landing on one frame. The assembler shows every frame
    ``next_segment`` yields; the scheduler calls ``follow`` to learn a segment's
    tail as shown (``full_tail``), which conditions the next segment, without
    decoding more of it than its head and tail.
    """

    def __init__(self, chain: PlannedChain, plan: RenderPlan, spec: ColourSpec, keep_full_tail: bool = False,
                 keep_samples: bool = False):
        self.plan = plan
        self.segments = [plan.segments[i] for i in chain.segments]
        self.spec = spec
        self.matcher = None if spec.method == "none" else ChainColourMatcher(spec)
        self.tail: list[np.ndarray] | None = None  # small copies of the previous segment's tail as shown
        self.pending: list[np.ndarray] = []  # its last shown frames, held back to dissolve into the next head
        self.last: np.ndarray | None = None  # small copy of its last shown frame, for the seam's measured step
        self.keep_full_tail = keep_full_tail
        self.keep_samples = keep_samples  # write a decoded last-frame sample beside its video for next time
        self.position = 0  # index in the chain of the next segment to stream
        # decisions are kept only beside cached videos, and only where there is something to decide
        self._history: Any = None
        if keep_samples and self.matcher is not None:
            self._history = hashlib.sha256(json.dumps(
                {"version": DECISION_VERSION, "code": code_fingerprint(), "colour": spec.model_dump(mode="json"),
                 "size": [plan.width, plan.height]}, sort_keys=True).encode())

    def _geometry(self) -> tuple[PlannedSegment, int, int, int, bool]:
        j = self.position
        seg = self.segments[j]
        nxt = self.segments[j + 1] if j + 1 < len(self.segments) else None
        first_shown = seg.shown_start - seg.output_start_frame
        last_shown = first_shown + (seg.shown_end - seg.shown_start) - 1
        new_look = j > 0 and seg.scene != self.segments[j - 1].scene
        return seg, first_shown, last_shown, nxt.overlap if nxt is not None else 0, new_look

    def _colour(self, video: Path, head: list[np.ndarray], first: np.ndarray, first_shown: int, last_shown: int,
                next_overlap: int, new_look: bool, record: dict[str, Any],
                last: np.ndarray | None = None) -> SegmentColour | None:
        """Settle the segment's colour from its head (small raw frames), its first shown
        frame and its last (``last``, or the sample kept beside the video, or one seek)."""
        if self.matcher is None:
            return None
        samples = {first_shown: first}
        if last_shown > first_shown:
            samples[last_shown] = last if last is not None else _last_sample(video, last_shown, self.plan,
                                                                             self.keep_samples)
        if self.tail is not None and head:
            k = min(len(head), len(self.tail))
            head, tail = head[-k:], self.tail[-k:]
            record["raw_overlap_delta_e"] = round(float(np.mean(
                [frame_delta_e(h, t) for h, t in zip(head[-3:], tail[-3:])])), 3)
            # a continue scene may change its look on purpose: hold it to its own from here
            colour = self.matcher.follow(head, tail, samples, last_shown + 1, next_overlap, new_anchor=new_look)
        else:
            colour = self.matcher.start(samples, last_shown + 1, next_overlap)
        # as it would be read back from a kept decision (rounded residual and weights), so a film made
        # from kept decisions is the film made without them, frame for frame
        record["transform"] = colour.to_dict()
        return SegmentColour.from_dict(record["transform"])

    def next_segment(self, video: Path, record: dict[str, Any]) -> Iterator[np.ndarray]:
        """The film frames this segment shows, colour-corrected; fills ``record``.

        The first frames are the dissolve across the overlap with the previous
        segment's held-back tail; this segment's own last frames are held back in
        turn when another segment of the chain follows.
        """
        from .media import VideoReader

        seg, first_shown, last_shown, next_overlap, new_look = self._geometry()
        pending, self.pending = self.pending, []
        blend_from = first_shown - len(pending)  # head frames shown dissolving over ``pending``
        hold_from = last_shown + 1 - min(next_overlap, last_shown + 1 - first_shown)
        keep_from = last_shown + 1 - next_overlap if next_overlap else last_shown + 1
        head_small: list[np.ndarray] = []
        head_full: list[np.ndarray] = []
        last: np.ndarray | None = None
        tail_raw: list[tuple[int, np.ndarray]] = []  # (index, raw frame) of the frames the next seam compares
        colour: SegmentColour | None = None
        digest = self._advance(video, first_shown, last_shown, next_overlap, new_look)
        kept = self._recall(video, digest)
        if kept is not None:  # decided by an earlier assembly of the same chain: nothing to estimate
            colour, stored = kept
            record.update(stored)
        # one decoding thread: it still outpaces the encoder it feeds several times over, and ffmpeg's
        # frame threads cost a quarter more CPU for the same frames (measured on 480p segments)
        reader = VideoReader(video, size=(self.plan.width, self.plan.height), pix_fmt=PIX_FMT, threads=1)
        _check_length(seg, video, len(reader))
        if len(pending) > first_shown:  # more held back than this head re-generates: show those as they were
            yield from pending[: len(pending) - first_shown]
            pending = pending[len(pending) - first_shown:]
        before: np.ndarray | None = None  # the last head frame as shown, for the seam's continuity
        lookahead: list[tuple[int, np.ndarray]] | None = [] if self._continuity() and kept is None else None
        with reader:
            for local, frame in enumerate(reader):
                if local > last_shown:
                    break
                if local >= keep_from:
                    tail_raw.append((local, frame if self.keep_full_tail else _small_of(frame)))
                if local < first_shown:
                    if kept is None:
                        head_small.append(_small_of(frame))
                    if local >= blend_from:
                        head_full.append(frame)
                    continue
                if local == first_shown:
                    if kept is None:
                        colour = self._colour(video, head_small, _small_of(frame), first_shown, last_shown,
                                              next_overlap, new_look, record)
                    if colour is not None and head_small:
                        before = colour.apply(head_small[-1], first_shown - 1)
                    head_small.clear()
                    n = len(head_full)
                    for j, (before_frame, raw) in enumerate(zip(pending, head_full)):
                        after = _apply(colour, raw, blend_from + j)
                        w = (j + 1) / (n + 1)
                        yield cv2.addWeighted(before_frame, 1.0 - w, after, w, 0.0)
                    head_full.clear()
                todo = [(local, frame)]
                if lookahead is not None and colour is not None and before is not None:
                    # hold the first generated frames back until the seam's continuity is settled
                    lookahead.append((local, frame))
                    if len(lookahead) < LOOK and local < last_shown:
                        continue
                    colour = self._seam_fix(colour, before, [(i, _small_of(f)) for i, f in lookahead], record)
                    todo, lookahead = lookahead, None
                for index, raw in todo:
                    out = _apply(colour, raw, index)
                    if index == first_shown and kept is None:
                        if self.last is not None:
                            record["seam_delta_e"] = _seam_step(self.last, out)
                        # settled (the seam's continuity too), and kept before the first frame is shown: a
                        # chain's last segment is not read past its last frame
                        self._remember(video, digest, record)
                    if index == last_shown:
                        last = _small_of(out)
                    if index >= hold_from:
                        self.pending.append(out)
                    else:
                        yield out
        self._finish_segment(colour, tail_raw, record)
        self.last = last

    # -- decisions kept beside a cached segment ------------------------------
    # A segment's colour is a function of its chain up to it (each video, the colour settings, the
    # geometry), so a re-render of unchanged segments reads it back instead of estimating it again
    # (the overlap fit, the hold, the seam's optical flows); any change upstream gives another digest.

    def _advance(self, video: Path, *geometry: Any) -> str | None:
        """The digest naming this segment's decision: the chain so far and this segment."""
        if self._history is None:
            return None
        try:
            st = video.stat()
            ident = [video.parent.name, st.st_size, st.st_mtime_ns, *geometry]
        except OSError:
            self._history = None  # the reader says what is wrong with the file; nothing is kept from here
            return None
        self._history.update(json.dumps(ident).encode())
        return self._history.hexdigest()[:24]

    def _recall(self, video: Path, digest: str | None) -> tuple[SegmentColour, dict[str, Any]] | None:
        if digest is None or self.matcher is None:
            return None
        try:
            data = json.loads(decision_path(video, digest).read_text())
            colour = SegmentColour.from_dict(data["record"]["transform"])
            self.matcher.restore(data["matcher"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none kept, or unreadable: estimated again (and kept anew)
        return colour, dict(data["record"])

    def _remember(self, video: Path, digest: str | None, record: dict[str, Any]) -> None:
        if digest is None or self.matcher is None or "transform" not in record:
            return
        data = {"record": {k: v for k, v in record.items() if k != "full_tail"}, "matcher": self.matcher.state()}
        try:
            with atomic_path(decision_path(video, digest), fsync=False, make_parents=False) as tmp:
                tmp.write_text(json.dumps(data))
        except (OSError, TypeError, ValueError):  # a read-only cache only costs the next assembly the estimate
            pass

    def _continuity(self) -> bool:
        return self.matcher is not None and self.spec.continuity and self.tail is not None

    def _seam_fix(self, colour: SegmentColour, before: np.ndarray, after: list[tuple[int, np.ndarray]],
                  record: dict[str, Any]) -> SegmentColour:
        """``colour`` with the continuity fix across its seam (or as it is, when there is no fast step)."""
        from .colour.continuity import estimate_seam_fix

        if not after:
            return colour
        fix = estimate_seam_fix(before, [colour.apply(f, i) for i, f in after], after[0][0])
        if fix is None:
            return colour
        record["transform"] = replace(colour, seam_fix=fix).to_dict()
        return SegmentColour.from_dict(record["transform"])

    def follow(self, video: Path, record: dict[str, Any]) -> None:
        """Advance past one segment without showing it: settle its colour from its
        head, first shown and last frames, and fill ``record["full_tail"]`` with its
        last frames as shown. The record and the decision kept beside a cached video
        are those ``next_segment`` makes (with ``keep_full_tail``), so an assembly that
        comes after reads the decision back instead of estimating it again."""
        from .media import VideoReader

        seg, first_shown, last_shown, next_overlap, new_look = self._geometry()
        previous_last, self.pending, self.last = self.last, [], None
        size = (self.plan.width, self.plan.height)
        keep_from = last_shown + 1 - next_overlap if next_overlap else last_shown + 1
        digest = self._advance(video, first_shown, last_shown, next_overlap, new_look)
        kept = self._recall(video, digest) if self.keep_full_tail else None
        continuity = self._continuity() and kept is None
        look = min(LOOK, last_shown + 1 - first_shown) if continuity else 1
        tail_start = min(keep_from, last_shown)
        head_end = first_shown + look if kept is None else 0
        # one pass: an H.264 segment has one keyframe, so seeking to its tail would decode the head again
        reader = VideoReader(video, size=size, count=last_shown + 1, pix_fmt=PIX_FMT)
        _check_length(seg, video, reader.info.num_frames)
        head, tail = [], []
        first_raw: np.ndarray | None = None
        with reader:
            for i, f in enumerate(reader):
                if i < head_end:
                    head.append(_small_of(f))
                if i == first_shown:
                    first_raw = f
                if i >= tail_start:
                    tail.append(f)
        last = _small_of(tail[-1])
        if self.keep_samples:
            _store_last_sample(video, last_shown, last)
        colour: SegmentColour | None
        if kept is not None:
            colour, stored = kept
            record.update(stored)
        else:
            colour = self._colour(video, head[:first_shown], head[first_shown], first_shown, last_shown,
                                  next_overlap, new_look, record, last=last)
            if continuity and colour is not None and first_shown > 0:
                before = colour.apply(head[first_shown - 1], first_shown - 1)
                colour = self._seam_fix(colour, before, list(enumerate(head))[first_shown:], record)
            if self.keep_full_tail and colour is not None and first_raw is not None:
                if previous_last is not None:
                    record["seam_delta_e"] = _seam_step(previous_last, _apply(colour, first_raw, first_shown))
                self._remember(video, digest, record)
        tail_raw = [(tail_start + i, f) for i, f in enumerate(tail) if tail_start + i >= keep_from]
        if not self.keep_full_tail:
            tail_raw = [(i, _small_of(f)) for i, f in tail_raw]
        self._finish_segment(colour, tail_raw, record)
        if self.keep_full_tail and self.tail:
            self.last = self.tail[-1]  # the last frame as shown, for the next seam's measured step

    def _finish_segment(self, colour: SegmentColour | None, tail_raw: list[tuple[int, np.ndarray]],
                        record: dict[str, Any]) -> None:
        # the next segment re-generates these frames; compare it with them as shown (some may
        # lie in this segment's own head when the overlap is longer than its new frames)
        if self.keep_full_tail:  # I420 frames: correct them, then shrink
            record["full_tail"] = [_apply(colour, f, i) for i, f in tail_raw]
            shown_tail = [_small_of(f) for f in record["full_tail"]]
        else:  # small RGB copies already
            shown_tail = [f if colour is None else colour.apply(f, i) for i, f in tail_raw]
        self.tail = shown_tail or None
        self.position += 1


# -- the last-frame sample, kept beside a segment's video ---------------------------
# The hold needs a segment's last frame before its first is shown; H.264 segments have
# one keyframe, so seeking there decodes the whole segment a second time. The scheduler
# decodes that frame anyway when it conditions the next segment, and keeps a small copy.

DECISION_VERSION = "1"  # how a decision is kept; the code that makes it (code_fingerprint) names it too


def decision_path(video: Path, digest: str) -> Path:
    return video.with_name(f"{video.name}.colour-{digest}.json")


SAMPLE_VERSION = "i420-1"  # how the copy was made; another way must not reuse it


def sample_path(video: Path, index: int) -> Path:
    return video.with_name(f"{video.name}.frame{index}.{SAMPLE_VERSION}.npy")


def _store_last_sample(video: Path, index: int, frame: np.ndarray) -> None:
    path = sample_path(video, index)
    if path.exists():
        return
    try:
        with atomic_path(path, fsync=False, make_parents=False) as tmp, open(tmp, "wb") as f:
            np.save(f, frame, allow_pickle=False)
    except OSError:  # a read-only folder only costs the next assembly one more decode
        pass


def keep_last_sample(plan: RenderPlan, seg: PlannedSegment, video: Path) -> None:
    """Decode ``seg``'s last shown frame once and keep its small copy beside ``video``
    (what assembling with ``keep_samples`` does for a segment that has none)."""
    first_shown = seg.shown_start - seg.output_start_frame
    last_shown = seg.shown_end - seg.output_start_frame - 1
    if last_shown > first_shown:
        _last_sample(video, last_shown, plan, keep=True)


def _last_sample(video: Path, index: int, plan: RenderPlan, keep: bool) -> np.ndarray:
    from .media import read_frames

    path = sample_path(video, index)
    try:
        if path.stat().st_mtime_ns >= video.stat().st_mtime_ns:
            frame = np.load(path, allow_pickle=False)
            if frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[1] == min(SMALL_WIDTH, plan.width):
                return frame
    except (OSError, ValueError):
        pass
    frame = _small_of(read_frames(video, start=index, count=1, size=(plan.width, plan.height), pix_fmt=PIX_FMT)[0])
    if keep:
        _store_last_sample(video, index, frame)
    return frame


def _chain_frames(chain: PlannedChain, plan: RenderPlan, videos: Mapping[int, Path], spec: ColourSpec,
                  records: dict[int, dict[str, Any]], keep_samples: bool = False) -> Generator[np.ndarray, None, None]:
    stream = ChainStream(chain, plan, spec, keep_samples=keep_samples)
    for seg in stream.segments:
        record: dict[str, Any] = {}
        records[seg.index] = record
        video = videos[seg.index]
        try:
            yield from stream.next_segment(video, record)
        except MediaError as exc:
            # the user knows the segment, not where the cache keeps its clip
            if not str(exc).startswith(seg.label):
                exc.args = (f"{seg.label}: its clip does not decode ({str(exc).removeprefix(f'{video}: ')})",)
            raise


class FilmCursor:
    """Film frames on demand, in increasing film order, chains dissolving where they overlap.

    ``frame(f)`` may skip ahead: a chain is streamed from its own start even when ``f``
    falls later (the frames passed over still set its colour state), so a frame is the
    same whichever frames were asked for before it.
    """

    def __init__(self, plan: RenderPlan, videos: Mapping[int, Path], spec: ColourSpec,
                 records: dict[int, dict[str, Any]], keep_samples: bool = False):
        self.plan, self.videos, self.spec, self.records = plan, videos, spec, records
        self.keep_samples = keep_samples
        self._open: dict[int, tuple[Generator[np.ndarray, None, None], list[int]]] = {}
        self._next = 0

    def frame(self, f: int) -> np.ndarray:
        if f < self._next:
            raise ValueError(f"film frame {f} asked for after frame {self._next - 1}")
        self._next = f + 1
        plan = self.plan
        covering = [c for c in plan.chains if c.start_frame <= f < c.end_frame]
        frames = []
        for chain in covering:
            if chain.index not in self._open:
                self._open[chain.index] = (_chain_frames(chain, plan, self.videos, self.spec, self.records,
                                                         self.keep_samples), [chain.start_frame])
            it, pos = self._open[chain.index]
            while pos[0] < f:  # frames before the range still set the chain's colour state
                next(it)
                pos[0] += 1
            frames.append(next(it))
            pos[0] += 1
        for index in [i for i in self._open if plan.chains[i].end_frame <= f + 1]:
            self._open.pop(index)[0].close()
        if len(frames) == 1:
            return frames[0]
        incoming = covering[-1]
        t = (f - incoming.start_frame + 0.5) / incoming.fade_in
        return cv2.addWeighted(frames[0], 1.0 - t, frames[1], t, 0.0)

    def close(self) -> None:
        for it, _ in self._open.values():
            it.close()
        self._open.clear()


def film_frames(plan: RenderPlan, videos: Mapping[int, Path], spec: ColourSpec,
                records: dict[int, dict[str, Any]], start: int = 0, end: int | None = None,
                keep_samples: bool = False, ranges: Sequence[tuple[int, int]] | None = None) -> Iterator[np.ndarray]:
    """Film frames ``start``..``end-1`` in order (or those of each of ``ranges``, one after
    another: a cut between them), chains dissolving where they overlap.

    A chain is streamed from its own start even when ``start`` falls later, so a
    partial render shows exactly the colours of the full film.
    """
    end = plan.total_frames if end is None else end
    wanted = itertools.chain.from_iterable(range(a, b) for a, b in ranges) if ranges is not None else range(start, end)
    cursor = FilmCursor(plan, videos, spec, records, keep_samples)
    try:
        for f in wanted:
            yield cursor.frame(f)
    finally:
        cursor.close()


FEED_BYTES = 64 << 20  # frames held for the encoder: a 480p film's seam estimate no longer starves it


def feed_depth(width: int, height: int) -> int:
    """How many I420 frames the encoder feed holds: ``FEED_BYTES`` of them, 8 to 128. The assembler
    stops at each seam to settle its colour (about 0.4 s); frames queued ahead keep the encoder busy
    meanwhile (a cached 44 s 480p re-render: 16.7-18.0 s against 18.6-20.5 s with 8)."""
    return max(8, min(128, FEED_BYTES // max(1, width * height * 3 // 2)))


class _EncoderFeed:
    """Hands frames to the encoder's pipe on a thread of its own, a few frames ahead, so
    decoding and colour work on the next frames overlap the encoder taking this one.
    A write that fails is raised on the next ``put`` (or by ``finish``)."""

    def __init__(self, writer: Any, depth: int = 8, pace: Callable[[], None] | None = None):
        self.writer = writer
        self.pace = pace or (lambda: None)
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="encoder-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self._error is None:
                try:
                    self.pace()
                    self.writer.write(frame)
                except BaseException as exc:  # noqa: BLE001 - raised in the assembler's thread
                    self._error = exc

    def put(self, frame: np.ndarray) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(frame)

    def finish(self) -> None:
        """Wait until every frame is in the encoder's pipe; raise what a write raised."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Drop the frames not yet written and stop the thread (the writer is closed after)."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._queue.put(None)
        self._thread.join()


def assemble(plan: RenderPlan, videos: Mapping[int, Path], output: Path, *, board: Storyboard | None = None,
             on_event: Callable[[Event], None] | None = None, cancel: threading.Event | None = None,
             codec: str = "h264", crf: int = 18, preset: str = "veryfast",
             colour: ColourSpec | None = None, frames: tuple[int, int] | Sequence[tuple[int, int]] | None = None,
             keep_samples: bool = False, on_frame: Callable[[int, np.ndarray], None] | None = None,
             pace: Callable[[], None] | None = None, pieces: PieceStore | None = None) -> dict[str, Any]:
    """Write the film for ``plan`` (or just its film frames ``frames=(start, end)``, or
    several such ranges in film order, joined by hard cuts, picture and sound alike)
    from its segments' ``videos`` to ``output`` atomically. ``keep_samples``: the
    videos live in the segment cache, so a decoded last-frame sample may be kept
    beside each for the next assembly. A part carries the film's audio for its
    frames as is: the storyboard's fades sound only at the film's own start and end.
    ``on_frame(film_frame, frame)`` sees each I420 frame as it goes to the encoder
    (the review page's thumbnails are grabbed there). ``pace()``, when given, is called before
    each frame is made and before each is encoded; it may wait (``rendering.landing.Foreground``:
    the scheduler's work on a chain's critical path goes first). With ``pieces``, a whole film is
    encoded piece by piece into that store and joined by stream copy; a piece already there
    (the same clips, colour settings, encoder and code) is neither made nor encoded again, and
    ``on_frame`` then sees the piece's decoded frames (only those in its ``frames`` set, if it has
    one), unless it keeps what it made: ``tag``, ``saved(film_frame) -> bytes | None`` and
    ``restore(film_frame, data)``, whose bytes are kept with the piece and handed back.

    Returns a report: frames written, codec, audio, per-seam colour jumps and
    per-segment transforms (for the manifest).
    """
    from .media import atomic_output

    emit = on_event or (lambda e: None)
    spec = colour or (board.defaults.colour if board is not None else ColourSpec(**plan.colour))
    audio_path, audio = None, None
    if plan.audio is not None and board is not None:
        audio_path = board.resolve(plan.audio["file"])
        audio = plan.audio
    records: dict[int, dict[str, Any]] = {}
    kept_pieces: dict[str, int] = {}
    ranges = _film_ranges(plan, frames)
    total = sum(b - a for a, b in ranges)
    written = 0
    output = Path(output)
    with atomic_output(output) as tmp:
        video_only = tmp.with_name(tmp.stem + ".video" + tmp.suffix) if audio_path else tmp
        if pieces is not None and ranges == [(0, plan.total_frames)]:
            written = _assemble_pieces(plan, videos, video_only, pieces, spec, records, codec=codec, crf=crf,
                                       preset=preset, keep_samples=keep_samples, on_frame=on_frame, pace=pace,
                                       emit=emit, cancel=cancel, counts=kept_pieces)
        else:
            written = _assemble_one(plan, videos, video_only, spec, records, ranges, codec=codec, crf=crf,
                                    preset=preset, keep_samples=keep_samples, on_frame=on_frame, pace=pace,
                                    emit=emit, cancel=cancel)
        if written != total:
            raise MediaError(f"assembled {written} frames, the plan has {total}")
        if audio_path is not None and audio is not None:
            from .media import mux_audio
            from .timecode import Timecode

            secs = lambda key: Timecode.parse(audio[key]).to_seconds(plan.fps)
            try:
                whole = ranges == [(0, plan.total_frames)]
                mux_audio(video_only, audio_path, tmp, offset_s=secs("offset"), volume=audio["volume"],
                          fade_in_s=secs("fade_in"), fade_out_s=secs("fade_out"), duration_s=plan.total_frames / plan.fps,
                          spans_s=None if whole else [(a / plan.fps, b / plan.fps) for a, b in ranges])
            finally:
                video_only.unlink(missing_ok=True)
    seams = []
    for seg in plan.segments:
        if seg.depends_on is None:
            continue
        after = records.get(seg.index, {})
        if "seam_delta_e" in after:
            seams.append({"segment": seg.index, "film_frame": seg.seam_frame, "delta_e": after["seam_delta_e"],
                          "raw_overlap_delta_e": after.get("raw_overlap_delta_e")})
    transforms = {i: r["transform"] for i, r in records.items() if "transform" in r}
    report = {"frames": written, "range": [ranges[0][0], ranges[0][1]] if len(ranges) == 1 else [list(r) for r in ranges],
              "ranges": [list(r) for r in ranges], "codec": codec, "audio": str(audio_path) if audio_path else None,
              "colour": spec.model_dump(mode="json"), "seams": seams, "transforms": transforms}
    if kept_pieces:
        report["pieces"] = kept_pieces
    return report


def _hand_over(feed: _EncoderFeed, number: int, frame: np.ndarray, pace: Callable[[], None] | None,
               on_frame: Callable[[int, np.ndarray], None] | None) -> None:
    """One film frame to the encoder: after the critical path's turn, past ``on_frame``."""
    if pace is not None:
        pace()
    if on_frame is not None:
        on_frame(number, frame)
    feed.put(frame)


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("assembly cancelled; no output written, segments kept in the cache")


def _assemble_one(plan: RenderPlan, videos: Mapping[int, Path], out: Path, spec: ColourSpec,
                  records: dict[int, dict[str, Any]], ranges: list[tuple[int, int]], *, codec: str, crf: int,
                  preset: str, keep_samples: bool, on_frame: Callable[[int, np.ndarray], None] | None,
                  pace: Callable[[], None] | None, emit: Callable[[Event], None],
                  cancel: threading.Event | None) -> int:
    """The film's ``ranges`` through one encoder into ``out``; frames written."""
    from .media import VideoWriter

    total = sum(b - a for a, b in ranges)
    written = 0
    writer = VideoWriter(out, plan.width, plan.height, plan.fps, codec=codec, crf=crf, preset=preset,
                         input_pix_fmt=PIX_FMT)
    with writer:
        feed = _EncoderFeed(writer, depth=feed_depth(plan.width, plan.height), pace=pace)
        numbers = itertools.chain.from_iterable(range(a, b) for a, b in ranges)  # film frame of each
        try:
            for frame in film_frames(plan, videos, spec, records, keep_samples=keep_samples, ranges=ranges):
                _hand_over(feed, next(numbers, -1), frame, pace, on_frame)
                written += 1
                if written % 12 == 0 or written == total:
                    emit(AssemblyProgress(written, total))
                    _check_cancel(cancel)
        except BaseException:
            feed.abort()
            raise
        feed.finish()
    return written


def _snapshot(records: dict[int, dict[str, Any]], segments: Sequence[int]) -> dict[str, Any]:
    """The contributing segments' records as they stand (plain JSON), kept with a piece."""
    return json.loads(json.dumps({str(i): {k: v for k, v in records[i].items() if k != "full_tail"}
                                  for i in segments if i in records}))


class _PieceRun:
    """Consecutive pieces still to make, through one encoder that starts a new file at each
    piece's first frame (an IDR frame), so every piece decodes alone."""

    def __init__(self, plan: RenderPlan, stage: Path, number: int, start: int, cuts: list[int], suffix: str,
                 codec: str, crf: int, preset: str, pace: Callable[[], None] | None):
        from .media import VideoWriter

        self.stage, self.number, self.suffix = stage, number, suffix
        split = [c - start for c in cuts if c > start]
        name = f"run{number:03d}-%04d{suffix}" if split else f"run{number:03d}{suffix}"
        self.writer = VideoWriter(stage / name, plan.width, plan.height, plan.fps, codec=codec, crf=crf,
                                  preset=preset, input_pix_fmt=PIX_FMT, split_at=split)
        self.writer.open()
        self.feed = _EncoderFeed(self.writer, depth=feed_depth(plan.width, plan.height), pace=pace)
        self.pieces: list[tuple[int, str, int, int, dict[str, Any]]] = []  # (slot, key, start, end, meta)

    def finish(self) -> list[Path]:
        """Close the encoder; the file of each piece, in order."""
        self.feed.finish()
        self.writer.close()
        if self.writer.split_at:
            files = sorted(self.stage.glob(f"run{self.number:03d}-*{self.suffix}"))
        else:
            files = [self.writer.path]
        if len(files) != len(self.pieces):
            raise MediaError(f"the encoder wrote {len(files)} pieces, {len(self.pieces)} were made")
        return files

    def abort(self) -> None:
        self.feed.abort()
        self.writer.abort()


def _assemble_pieces(plan: RenderPlan, videos: Mapping[int, Path], out: Path, store: PieceStore, spec: ColourSpec,
                     records: dict[int, dict[str, Any]], *, codec: str, crf: int, preset: str, keep_samples: bool,
                     on_frame: Callable[[int, np.ndarray], None] | None, pace: Callable[[], None] | None,
                     emit: Callable[[Event], None], cancel: threading.Event | None,
                     counts: dict[str, int]) -> int:
    """The whole film into ``out``, piece by piece: a piece in ``store`` is taken as it is, the
    others are made (the cursor passes over taken ones) and encoded, then kept; all joined by
    stream copy. ``records`` ends as the records kept with the pieces, in film order;
    ``counts`` says how many pieces were ``taken`` and ``made``."""
    from .media.join import join_clips
    from .media.writer import NoSpaceError
    from .pieces import clip_digest, code_fingerprint, piece_bounds, piece_contributors, piece_key

    suffix = out.suffix or ".mp4"
    settings = {"code": code_fingerprint(), "codec": codec, "crf": crf, "preset": preset, "suffix": suffix,
                "colour": spec.model_dump(mode="json")}
    bounds = piece_bounds(plan)
    cuts = [a for a, _ in bounds]
    total = plan.total_frames
    digests: dict[int, str] = {}
    slots: list[Path | None] = []
    snapshots: list[dict[str, Any]] = []
    written = 0
    cursor = FilmCursor(plan, videos, spec, records, keep_samples)
    run: _PieceRun | None = None
    runs = 0
    counts.update(taken=0, made=0)

    def close_run() -> None:
        nonlocal run
        if run is None:
            return
        finished, run = run, None
        for (slot, key, _, _, meta), clip in zip(finished.pieces, finished.finish()):
            slots[slot] = store.put(key, clip, meta)

    with store.staging(out.parent) as stage:
        try:
            for a, b in bounds:
                segments = piece_contributors(plan, a, b)
                for i in segments:
                    if i not in digests:
                        digests[i] = clip_digest(videos[i])  # waits for a segment still generating
                key = piece_key(plan, a, b, digests, settings)
                hit = store.lookup(key, suffix)
                if hit is not None and hit.meta.get("frames") == b - a:
                    close_run()
                    counts["taken"] += 1
                    slots.append(hit.video)
                    snapshots.append(hit.meta.get("records", {}))
                    if on_frame is not None:
                        _replay(hit, plan, a, b, on_frame)
                    written += b - a
                    if written < total:
                        emit(AssemblyProgress(written, total))
                    _check_cancel(cancel)
                    continue
                counts["made"] += 1
                if run is None:
                    run = _PieceRun(plan, stage, runs, a, cuts, suffix, codec, crf, preset, pace)
                    runs += 1
                for f in range(a, b):
                    _hand_over(run.feed, f, cursor.frame(f), pace, on_frame)
                    written += 1
                    if written % 12 == 0 and written < total:
                        emit(AssemblyProgress(written, total))
                        _check_cancel(cancel)
                snap = _snapshot(records, segments)
                meta = {"frames": b - a, "records": snap, **_stills(on_frame, a, b)}
                run.pieces.append((len(slots), key, a, b, meta))
                slots.append(None)
                snapshots.append(snap)
            close_run()
        except NoSpaceError as exc:
            if run is not None:
                run.abort()
            if Path(exc.path).is_relative_to(store.root) and not _same_disk(store.root, out.parent):
                raise MediaError(f"no space left on device in the cache folder {store.root} while encoding the "
                                 f"film's pieces ({exc.detail}): free some, or give --cache-dir on another disk"
                                 ) from exc
            raise
        except BaseException:
            if run is not None:
                run.abort()
            raise
        finally:
            cursor.close()
        _check_cancel(cancel)
        join_clips([p for p in slots if p is not None], out)
        emit(AssemblyProgress(written, total))  # the film is whole: written, not yet renamed
    # each piece kept its segments' records as they stood when it ended: the last piece a
    # segment reaches holds its record as the whole film leaves it
    records.clear()
    for snap in snapshots:
        for index, record in snap.items():
            records.setdefault(int(index), {}).update(record)
    return written


def _same_disk(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return True


def _wanted(on_frame: Callable[[int, np.ndarray], None], start: int, end: int) -> list[int]:
    wanted = getattr(on_frame, "frames", None)
    return [f for f in range(start, end) if wanted is None or f in wanted]


def _stills(on_frame: Callable[[int, np.ndarray], None] | None, start: int, end: int) -> dict[str, Any]:
    """What ``on_frame`` made of a piece's frames, if it keeps that (see ``assemble``)."""
    saved = getattr(on_frame, "saved", None)
    if on_frame is None or saved is None:
        return {}
    kept = {str(f): base64.b64encode(data).decode() for f in _wanted(on_frame, start, end)
            if (data := saved(f)) is not None}
    return {"stills": {str(getattr(on_frame, "tag", "")): kept}}


def _replay(piece: Piece, plan: RenderPlan, start: int, end: int, on_frame: Callable[[int, np.ndarray], None]) -> None:
    """Hand ``on_frame`` a kept piece's frames: what it kept of them (``restore``), or the
    frames it wants decoded from the piece."""
    from .media import VideoReader

    need = _wanted(on_frame, start, end)
    restore = getattr(on_frame, "restore", None)
    kept = piece.meta.get("stills", {}).get(str(getattr(on_frame, "tag", ""))) if restore is not None else None
    if kept is not None and restore is not None:
        with contextlib.suppress(ValueError, TypeError, binascii.Error):
            for f in [f for f in need if str(f) in kept]:
                restore(f, base64.b64decode(kept[str(f)]))
                need.remove(f)
    if not need:
        return
    select = [f - start for f in need] if len(need) < end - start else None
    with VideoReader(piece.video, size=(plan.width, plan.height), pix_fmt=PIX_FMT, select=select) as reader:
        for f, frame in zip(need, reader):
            on_frame(f, frame)

def _film_ranges(plan: RenderPlan, frames: tuple[int, int] | Sequence[tuple[int, int]] | None) -> list[tuple[int, int]]:
    """``assemble``'s ``frames`` as film ranges in film order (one ``(start, end)`` pair, or several)."""
    if frames is None:
        return [(0, plan.total_frames)]
    items: list[Any] = list(frames)
    pairs: list[Any] = [items] if len(items) == 2 and all(isinstance(x, int) for x in items) else items
    ranges = sorted((int(a), int(b)) for a, b in pairs)
    if not ranges or any(not 0 <= a < b <= plan.total_frames for a, b in ranges):
        raise ValueError(f"frames must be ranges within the film's {plan.total_frames} frames, not {frames}")
    if any(b > c for (_, b), (c, _) in itertools.pairwise(ranges)):
        raise ValueError(f"frames must not overlap: {frames}")
    return ranges


def assemble_chain(plan: RenderPlan, chain_index: int, videos: Mapping[int, Path], output: Path, *,
                   board: Storyboard | None = None, codec: str = "h264", crf: int = 18,
                   preset: str = "veryfast") -> int:
    """Write one chain's own media (film frames chain.start..chain.end, colour-matched,
    no dissolve baked in) for editors who re-time cuts and dissolves themselves."""
    from .media import VideoWriter, atomic_output

    chain = plan.chains[chain_index]
    spec = board.defaults.colour if board is not None else ColourSpec(**plan.colour)
    written = 0
    with atomic_output(output) as tmp, VideoWriter(tmp, plan.width, plan.height, plan.fps, codec=codec, crf=crf,
                                                   preset=preset, input_pix_fmt=PIX_FMT) as writer:
        for frame in _chain_frames(chain, plan, videos, spec, {}):
            writer.write(frame)
            written += 1
    expected = chain.end_frame - chain.start_frame
    if written != expected:
        raise MediaError(f"chain {chain_index}: wrote {written} frames, expected {expected}")
    return written
