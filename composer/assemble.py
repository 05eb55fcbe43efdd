"""Stitch rendered segments into one film, streaming.

Each segment is decoded once; its overlap head is compared with its
predecessor's tail as shown to fit a colour transform (composed along the chain,
held to the chain's look), its shown frames are corrected, chains dissolve into
each other where the storyboard crossfades, and one encoder writes the film.
Memory holds a few overlaps' frames, whatever the film's length.
"""
from __future__ import annotations

import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from .colour import ChainColourMatcher, ColourConfig, SegmentColour
from .errors import Cancelled, MediaError
from .metrics import frame_delta_e
from .plan import PlannedChain, PlannedSegment, RenderPlan
from .render.events import AssemblyProgress, Event
from .storyboard.models import ColourSpec, Storyboard

SMALL_WIDTH = 256  # frames kept for fitting and measuring are shrunk to this width


def _small(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if w <= SMALL_WIDTH:
        return frame.copy()
    return cv2.resize(frame, (SMALL_WIDTH, max(1, round(h * SMALL_WIDTH / w))), interpolation=cv2.INTER_AREA)


def _colour_config(spec: ColourSpec) -> ColourConfig:
    return ColourConfig(method=spec.method, strength=spec.strength, anchor=spec.anchor)


def _segment_frames(seg: PlannedSegment, video: Path, plan: RenderPlan, matcher: ChainColourMatcher | None,
                    tail: list[np.ndarray] | None, next_overlap: int, new_look: bool,
                    record: dict[str, Any], keep_full_tail: bool = False) -> Iterator[np.ndarray]:
    """The shown, colour-corrected frames of one segment; fills ``record`` as it goes.

    The colour of a segment is settled when its first shown frame arrives: by then
    its re-generated overlap head has streamed past, and its last frame (the only
    sample from further on) was read ahead with one seek.
    """
    from .media import VideoReader, read_frames

    size = (plan.width, plan.height)
    reader = VideoReader(video, size=size)
    if len(reader) < seg.num_frames:
        reader.close()
        raise MediaError(f"{seg.label}: {video} holds {len(reader)} frames, the plan needs {seg.num_frames}")
    shown = seg.shown_end - seg.shown_start
    first_shown = seg.shown_start - seg.output_start_frame
    last_shown = first_shown + shown - 1
    head: list[np.ndarray] = []
    keep_from = last_shown + 1 - next_overlap if next_overlap else None
    tail_raw: list[tuple[int, np.ndarray]] = []  # (index, small raw frame) of the frames the next seam compares
    colour: SegmentColour | None = None
    with reader:
        for local, frame in enumerate(reader):
            if keep_from is not None and local >= keep_from:
                tail_raw.append((local, frame if keep_full_tail else _small(frame)))
            if local < first_shown:
                head.append(_small(frame))
                continue
            if local > last_shown:
                break
            if local == first_shown and matcher is not None:
                samples = {local: _small(frame)}
                if last_shown > local:
                    samples[last_shown] = _small(read_frames(video, start=last_shown, count=1, size=size)[0])
                if tail is not None and head:
                    record["raw_overlap_delta_e"] = round(float(np.mean(
                        [frame_delta_e(h, t) for h, t in zip(head[-3:], tail[-3:])])), 3)
                    # a continue scene may change its look on purpose: hold it to its own from here
                    colour = matcher.follow(head, tail, samples, last_shown + 1, next_overlap, new_anchor=new_look)
                else:
                    colour = matcher.start(samples, last_shown + 1, next_overlap)
                record["transform"] = colour.to_dict()
                head.clear()
            out = frame if colour is None else colour.apply(frame, local)
            if local == first_shown:
                record["first"] = _small(out)
            if local == last_shown:
                record["last"] = _small(out)
            yield out
    # the next segment re-generates these frames; compare it with them as shown (some may
    # lie in this segment's own head when the overlap is longer than its new frames)
    shown_tail = [f if colour is None else colour.apply(f, i) for i, f in tail_raw]
    if keep_full_tail:
        record["full_tail"] = shown_tail
        shown_tail = [_small(f) for f in shown_tail]
    record["tail"] = shown_tail


class ChainStream:
    """One chain's segments streamed in order through its colour matcher.

    The assembler shows every frame it yields; the scheduler uses the same stream
    to condition a segment on its predecessor's tail as shown (``full_tail``).
    """

    def __init__(self, chain: PlannedChain, plan: RenderPlan, spec: ColourSpec, keep_full_tail: bool = False):
        self.plan = plan
        self.segments = [plan.segments[i] for i in chain.segments]
        self.matcher = None if spec.method == "none" else ChainColourMatcher(_colour_config(spec))
        self.tail: list[np.ndarray] | None = None
        self.keep_full_tail = keep_full_tail
        self.position = 0  # index in the chain of the next segment to stream

    def next_segment(self, video: Path, record: dict[str, Any]) -> Iterator[np.ndarray]:
        j = self.position
        seg = self.segments[j]
        nxt = self.segments[j + 1] if j + 1 < len(self.segments) else None
        new_look = j > 0 and seg.scene != self.segments[j - 1].scene
        yield from _segment_frames(seg, video, self.plan, self.matcher, self.tail,
                                   nxt.overlap if nxt is not None else 0, new_look, record, self.keep_full_tail)
        self.tail = record.pop("tail", None)
        self.position += 1


def _chain_frames(chain: PlannedChain, plan: RenderPlan, videos: dict[int, Path], spec: ColourSpec,
                  records: dict[int, dict[str, Any]]) -> Iterator[np.ndarray]:
    stream = ChainStream(chain, plan, spec)
    for seg in stream.segments:
        record: dict[str, Any] = {}
        records[seg.index] = record
        yield from stream.next_segment(videos[seg.index], record)


def film_frames(plan: RenderPlan, videos: dict[int, Path], spec: ColourSpec,
                records: dict[int, dict[str, Any]], start: int = 0, end: int | None = None) -> Iterator[np.ndarray]:
    """Film frames ``start``..``end-1`` in order, chains dissolving where they overlap.

    A chain is streamed from its own start even when ``start`` falls later, so a
    partial render shows exactly the colours of the full film.
    """
    end = plan.total_frames if end is None else end
    open_chains: dict[int, tuple[Iterator[np.ndarray], list[int]]] = {}
    try:
        for f in range(start, end):
            covering = [c for c in plan.chains if c.start_frame <= f < c.end_frame]
            frames = []
            for chain in covering:
                if chain.index not in open_chains:
                    open_chains[chain.index] = (_chain_frames(chain, plan, videos, spec, records), [chain.start_frame])
                it, pos = open_chains[chain.index]
                while pos[0] < f:  # frames before the range still set the chain's colour state
                    next(it)
                    pos[0] += 1
                frames.append(next(it))
                pos[0] += 1
            for index in [i for i in open_chains if plan.chains[i].end_frame <= f + 1]:
                open_chains.pop(index)[0].close()
            if len(frames) == 1:
                yield frames[0]
            else:
                incoming = covering[-1]
                t = (f - incoming.start_frame + 0.5) / incoming.fade_in
                yield cv2.addWeighted(frames[0], 1.0 - t, frames[1], t, 0.0)
    finally:
        for it, _ in open_chains.values():
            it.close()


def assemble(plan: RenderPlan, videos: dict[int, Path], output: Path, *, board: Storyboard | None = None,
             on_event: Callable[[Event], None] | None = None, cancel: threading.Event | None = None,
             codec: str = "h264", crf: int = 18, preset: str = "veryfast",
             colour: ColourSpec | None = None, frames: tuple[int, int] | None = None) -> dict[str, Any]:
    """Write the film for ``plan`` (or just its film frames ``frames=(start, end)``)
    from its segments' ``videos`` to ``output`` atomically.

    Returns a report: frames written, codec, audio, per-seam colour jumps and
    per-segment transforms (for the manifest).
    """
    from .media import VideoWriter, atomic_output

    emit = on_event or (lambda e: None)
    spec = colour or (board.defaults.colour if board is not None else ColourSpec(**plan.colour))
    audio_path, audio = None, None
    if plan.audio is not None and board is not None:
        audio_path = board.resolve(plan.audio["file"])
        audio = plan.audio
    records: dict[int, dict[str, Any]] = {}
    first, stop = frames if frames is not None else (0, plan.total_frames)
    total = stop - first
    written = 0
    output = Path(output)
    with atomic_output(output) as tmp:
        video_only = tmp.with_name(tmp.stem + ".video" + tmp.suffix) if audio_path else tmp
        writer = VideoWriter(video_only, plan.width, plan.height, plan.fps, codec=codec, crf=crf, preset=preset)
        with writer:
            for frame in film_frames(plan, videos, spec, records, first, stop):
                writer.write(frame)
                written += 1
                if written % 12 == 0 or written == total:
                    emit(AssemblyProgress(written, total))
                    if cancel is not None and cancel.is_set():
                        raise Cancelled("assembly cancelled; no output written, segments kept in the cache")
        if written != total:
            raise MediaError(f"assembled {written} frames, the plan has {total}")
        if audio_path is not None:
            from .media import mux_audio
            from .timecode import Timecode

            secs = lambda key: Timecode.parse(audio[key]).to_seconds(plan.fps)  # noqa: E731
            try:
                mux_audio(video_only, audio_path, tmp, offset_s=secs("offset") + first / plan.fps, volume=audio["volume"],
                          fade_in_s=secs("fade_in"), fade_out_s=secs("fade_out"), duration_s=total / plan.fps)
            finally:
                video_only.unlink(missing_ok=True)
    seams = []
    for seg in plan.segments:
        if seg.depends_on is None:
            continue
        before, after = records.get(seg.depends_on, {}), records.get(seg.index, {})
        if "last" in before and "first" in after:
            seams.append({"segment": seg.index, "film_frame": seg.seam_frame,
                          "delta_e": round(frame_delta_e(before["last"], after["first"]), 3),
                          "raw_overlap_delta_e": after.get("raw_overlap_delta_e")})
    transforms = {i: r["transform"] for i, r in records.items() if "transform" in r}
    return {"frames": written, "range": [first, stop], "codec": codec, "audio": str(audio_path) if audio_path else None,
            "colour": spec.model_dump(mode="json"), "seams": seams, "transforms": transforms}


def assemble_chain(plan: RenderPlan, chain_index: int, videos: dict[int, Path], output: Path, *,
                   board: Storyboard | None = None, codec: str = "h264", crf: int = 18,
                   preset: str = "veryfast") -> int:
    """Write one chain's own media (film frames chain.start..chain.end, colour-matched,
    no dissolve baked in) for editors who re-time cuts and dissolves themselves."""
    from .media import VideoWriter, atomic_output

    chain = plan.chains[chain_index]
    spec = board.defaults.colour if board is not None else ColourSpec(**plan.colour)
    written = 0
    with atomic_output(output) as tmp:
        with VideoWriter(tmp, plan.width, plan.height, plan.fps, codec=codec, crf=crf, preset=preset) as writer:
            for frame in _chain_frames(chain, plan, videos, spec, {}):
                writer.write(frame)
                written += 1
    expected = chain.end_frame - chain.start_frame
    if written != expected:
        raise MediaError(f"chain {chain_index}: wrote {written} frames, expected {expected}")
    return written
