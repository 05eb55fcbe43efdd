"""The planner: Storyboard → RenderPlan, a pure function.

No I/O, no clock, no randomness: the same storyboard gives the same plan, byte
for byte. It cuts each chain of scenes into 8k+1-frame segments (fewest requests,
then balanced lengths, seams on prompt changes where free), places keyframes on
the 8-frame grid, derives seeds and builds every request but its media URLs.
"""
from __future__ import annotations

import bisect
import hashlib
import json
from typing import Any, Literal, Protocol
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, PrivateAttr

from .errors import PlanError
from .request import MAX_FRAMES, GenerationRequest, canonical_json
from .storyboard.models import Scene, Storyboard, params_dict

PLAN_VERSION = 1
Mode = Literal["sequential", "bridged"]
Role = Literal["chain", "anchor", "bridge", "skeleton"]
# A skeleton trades frame rate for reach: one request covers up to 1440 new frames; below this
# rate (or the film's, if lower) the chain gets several skeleton requests instead.
SKELETON_MIN_FPS = 8
SKELETON_RESOLUTION = "480p"
BRIDGED_MIN_SEGMENTS = 3  # shorter chains gain nothing from anchors and bridges: they stay sequential
_ALIGN = 4  # a prompt change within this many frames of a seam counts as on it
_MISALIGNED = 10**12  # cost of a prompt change inside a segment: above any imbalance
# A bound on planning work (the loader's film-length limit stops real boards long before:
# 4 h at 60 fps in one chain is about 16,000 segments).
MAX_CHAIN_SEGMENTS = 100_000


class Pricing(Protocol):
    """What the planner asks a backend (any ``Backend`` is one): a request's price, a clip's pixel size."""

    def estimate_cost(self, request: GenerationRequest) -> float: ...

    def output_size(self, resolution: str, aspect_ratio: str) -> tuple[int, int]: ...


def _list_pricing() -> Pricing:
    """The default: fal's list price and geometry (the only paid endpoint), from a data-only module."""
    from .backends.fal_catalog import FAL_PRICING

    return FAL_PRICING


class _Plain(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Conditioning(_Plain):
    """One conditioning input of a segment's request (index-aligned with the request's lists)."""

    kind: Literal["image", "video"]
    source: str  # the image path as written in the storyboard, or "tail:<segment>"
    start_frame: int  # inside the segment
    strength: float
    film_frame: int  # where start_frame lands in the film
    scene: str | None = None
    keyframe: int | None = None  # index in its scene's keyframes
    fit: Literal["cover", "contain"] | None = None
    num_frames: int | None = None  # length of a conditioning video


class Snap(_Plain):
    """A keyframe moved onto LTX's 8-frame grid (or out of a conditioned overlap)."""

    scene: str
    keyframe: int
    wanted_frame: int
    used_frame: int
    segment: int

    @property
    def delta(self) -> int:
        return self.used_frame - self.wanted_frame


class PlannedSegment(_Plain):
    """One request. ``depends_on``: the film-order predecessor whose tail this segment's head
    overlaps (None for a chain's first segment and for a skeleton); ``parents``: the segments whose
    pixels condition this one's request (the render DAG). Sequentially the two agree; in bridged
    mode an anchor's parent is its skeleton and a bridge has two (the anchors on either side).
    A skeleton is a request that is never shown (``shown_start == shown_end``; its frames are at
    its own request's frame rate)."""

    index: int
    chain: int
    scene: str  # the scene whose prompt this segment renders
    index_in_scene: int
    depends_on: int | None
    output_start_frame: int  # film frame of this segment's frame 0 (may precede its scene on a crossfade)
    num_frames: int
    overlap: int  # frames at its head that repeat its predecessor's tail
    seam_frame: int  # film frame of its first generated frame
    shown_start: int  # film frames this segment contributes: [shown_start, shown_end)
    shown_end: int
    prompt: str
    seed: int
    cost_usd: float
    conditioning: list[Conditioning]
    request: dict[str, Any]
    role: Role = "chain"
    parents: list[int] = []

    @property
    def label(self) -> str:
        if self.role == "skeleton":
            return f"skeleton {self.index} (chain {self.chain})"
        return f"segment {self.index} (scene '{self.scene}')"

    @property
    def shown(self) -> bool:
        """Whether the film shows this segment (a skeleton only conditions anchors)."""
        return self.role != "skeleton"

    def generation_request(self) -> GenerationRequest:
        return GenerationRequest.model_validate(self.request)


class PlannedChain(_Plain):
    index: int
    scenes: list[str]
    start_frame: int  # film frames this chain renders: [start_frame, end_frame)
    end_frame: int
    fade_in: int  # frames dissolving from the previous chain (crossfade)
    fade_out: int  # frames dissolving into the next chain
    segments: list[int]


class PlannedScene(_Plain):
    id: str
    start_frame: int
    end_frame: int
    chain: int
    transition: str


class RenderPlan(_Plain):
    plan_version: int
    storyboard_hash: str
    title: str
    fps: int
    resolution: str
    aspect_ratio: str
    width: int
    height: int
    total_frames: int
    duration_s: float
    requests: int
    estimated_cost_usd: float
    critical_path: int  # the longest chain of dependent requests (over ``parents``)
    critical_chain: int
    mode: Mode = "sequential"
    colour: dict[str, Any]
    audio: dict[str, Any] | None
    scenes: list[PlannedScene]
    chains: list[PlannedChain]
    segments: list[PlannedSegment]
    snaps: list[Snap]
    _board: Storyboard | None = PrivateAttr(default=None)

    @property
    def storyboard(self) -> Storyboard | None:
        """The storyboard this plan was made from (when made in this process)."""
        return self._board

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"

    def only(self, needed: set[int]) -> RenderPlan:
        """A view of this plan listing just the ``needed`` segments, with their count and cost."""
        return self.model_copy(update={
            "segments": [s for s in self.segments if s.index in needed], "requests": len(needed),
            "estimated_cost_usd": round(sum(self.segments[i].cost_usd for i in needed), 6)})

    def segment(self, index: int) -> PlannedSegment:
        return self.segments[index]


def draft_board(board: Storyboard) -> Storyboard:
    """The same storyboard for cheap iteration: 480p and fewer inference steps.

    Every request differs from the full-quality one, so draft segments get cache
    keys of their own and never mix with final ones.
    """
    draft_params = {"first_pass_num_inference_steps": 4, "second_pass_num_inference_steps": 4,
                    "second_pass_skip_initial_steps": 2, "enable_detail_pass": False}
    data = board.model_dump(mode="json", exclude_unset=True)
    data.setdefault("output", {})["resolution"] = "480p"
    defaults = data.setdefault("defaults", {})
    defaults["params"] = {**defaults.get("params", {}), **draft_params}
    for scene in data["scenes"]:
        if scene.get("params"):
            scene["params"] = {k: v for k, v in scene["params"].items() if k not in draft_params}
    out = Storyboard.model_validate(data).located(board.source, board.base_dir)
    return out


def frame_range_segments(plan: RenderPlan, start: int, end: int) -> set[int]:
    """Segments needed to show film frames [start, end): those shown there, the ones before them
    in their chain (its colour composes from its first segment) and every request they depend on.

    A segment shows its re-generated overlap too, dissolving over its predecessor's tail.
    """
    needed: set[int] = set()
    for chain in plan.chains:
        if chain.end_frame <= start or chain.start_frame >= end:
            continue
        for i in chain.segments:
            seg = plan.segments[i]
            if seg.shown_start - (seg.overlap if seg.depends_on is not None else 0) < end:
                needed.add(i)
    todo = list(needed)
    while todo:  # a bridge needs the anchor after it, an anchor its skeleton
        for p in plan.segments[todo.pop()].parents:
            if p not in needed:
                needed.add(p)
                todo.append(p)
    return needed


def descendants(plan: RenderPlan, index: int) -> list[int]:
    """``index`` and every request whose pixels follow from it (children over ``parents``), in plan
    order: what a new take of that segment re-renders. Sequentially, the rest of its chain."""
    children: dict[int, list[int]] = {}
    for s in plan.segments:
        for p in s.parents:
            children.setdefault(p, []).append(s.index)
    found, todo = {index}, [index]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return sorted(found)


def with_mode(board: Storyboard, mode: Mode | None) -> Storyboard:
    """The storyboard with ``defaults.render.mode`` set to ``mode`` (the board itself for None)."""
    if mode is None or mode == board.defaults.render.mode:
        return board
    render_spec = board.defaults.render.model_copy(update={"mode": mode})
    defaults = board.defaults.model_copy(update={"render": render_spec})
    return board.model_copy(update={"defaults": defaults})


def request_depths(segments: Sequence[PlannedSegment]) -> dict[int, int]:
    """Each request's depth in the render DAG: 1 + its deepest parent's (1 with no parents)."""
    by_index = {s.index: s for s in segments}
    depth: dict[int, int] = {}

    def visit(i: int) -> int:
        stack = [i]
        while stack:  # iterative: a 16,000-segment sequential chain is that deep
            top = stack[-1]
            waiting = [p for p in by_index[top].parents if p not in depth]
            if waiting:
                stack.extend(waiting)
                continue
            depth[top] = 1 + max((depth[p] for p in by_index[top].parents), default=0)
            stack.pop()
        return depth[i]

    for s in segments:
        visit(s.index)
    return depth


def storyboard_hash(board: Storyboard) -> str:
    return hashlib.sha256(canonical_json(board.model_dump(mode="json")).encode()).hexdigest()


def derive_seed(base: int, scene_id: str, index: int) -> int:
    """A segment's seed: stable under inserting or removing other scenes."""
    digest = hashlib.sha256(f"{base}/{scene_id}/{index}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def segment_lengths(total: int, max_frames: int, overlap: int, changes: Sequence[int] = ()) -> list[int]:
    """num_frames of each segment covering ``total`` frames of one chain.

    Fewest requests first; then seams (a segment's first generated frame) on the
    prompt changes in ``changes`` (chain-relative frames) where possible; then
    lengths as even as possible. Every length is 8k+1; the first segment's frames
    are all new, later ones repeat ``overlap`` frames of their predecessor.
    """
    units = max(1, -(-(total - 1) // 8))  # new frames beyond the first, in 8-frame chunks
    a_max = (max_frames - 1) // 8
    b_max = (max_frames - overlap) // 8
    if b_max < 1:
        raise PlanError(f"overlap {overlap} leaves no new frames in a {max_frames}-frame segment")
    n = 1 if units <= a_max else 1 + -(-(units - a_max) // b_max)
    if n > MAX_CHAIN_SEGMENTS:
        raise PlanError(f"a chain of {total} frames needs {n} segments; composer plans at most "
                        f"{MAX_CHAIN_SEGMENTS} per chain (split the film with cuts, or shorten it)")
    requested = 8 * units + 1 + (n - 1) * overlap
    points = sorted(p for p in set(changes) if _ALIGN < p < total)

    def seam(u: int) -> int:
        return 1 + 8 * u

    def cost(j: int, u0: int, u1: int) -> int:
        frames = 8 * (u1 - u0) + (1 if j == 0 else overlap)
        imbalance = (n * frames - requested) ** 2
        lo = 0 if j == 0 else seam(u0) + _ALIGN + 1
        hi = seam(u1) - _ALIGN - 1 if j < n - 1 else total
        inside = bisect.bisect_right(points, hi) - bisect.bisect_left(points, lo) if hi >= lo else 0
        return imbalance + _MISALIGNED * inside

    # best[u] = cost of the first j segments ending at unit u; back[j][u] = where segment j began.
    # Back-pointers (not whole paths per state) keep this linear in n: with the fewest
    # segments only about b_max states are feasible at each j.
    best: dict[int, int] = {0: 0}
    back: list[dict[int, int]] = []
    for j in range(n):
        remaining = n - j - 1
        step_max = a_max if j == 0 else b_max
        nxt: dict[int, int] = {}
        came: dict[int, int] = {}
        for u0 in sorted(best):
            c0 = best[u0]
            for step in range(1, step_max + 1):
                u1 = u0 + step
                if u1 > units or (remaining and units - u1 < remaining) or units - u1 > remaining * b_max:
                    continue
                if remaining == 0 and u1 != units:
                    continue
                c = c0 + cost(j, u0, u1)
                if u1 not in nxt or c < nxt[u1]:
                    nxt[u1] = c
                    came[u1] = u0
        best = nxt
        back.append(came)
    seam_list = [units]
    for j in range(n - 1, 0, -1):
        seam_list.append(back[j][seam_list[-1]])
    seams = tuple(reversed(seam_list))
    lengths, prev = [], 0
    for j, u in enumerate(seams):
        lengths.append(8 * (u - prev) + (1 if j == 0 else overlap))
        prev = u
    return lengths


def plan(board: Storyboard, *, pricing: Pricing | None = None) -> RenderPlan:
    """Turn a validated storyboard into the full render plan.

    ``pricing`` (a backend, say) prices each request and sizes the film; by default fal's
    list price, so a plan says what a paid render would cost.
    """
    pricing = _list_pricing() if pricing is None else pricing
    fps = board.output.fps
    seg_spec = board.defaults.segment
    width, height = pricing.output_size(board.output.resolution, board.output.aspect_ratio)

    starts, frames = [], []
    cursor = 0
    for scene in board.scenes:
        starts.append(cursor)
        n = scene.duration.to_frames(fps)
        if n <= 0:
            raise PlanError(f"scene '{scene.id}': duration is under one frame at {fps} fps")
        frames.append(n)
        cursor += n
    total_frames = cursor

    groups: list[list[int]] = []
    for i, scene in enumerate(board.scenes):
        if i == 0 or scene.chain_break:
            groups.append([i])
        else:
            groups[-1].append(i)

    def fade(i: int) -> int:
        xf = board.scenes[i].crossfade if i < len(board.scenes) else None
        return xf.to_frames(fps) if xf is not None else 0

    scenes_out: list[PlannedScene] = []
    chains: list[PlannedChain] = []
    stubs: list[dict] = []  # plain dicts until _finish prices and validates them
    snaps: list[Snap] = []
    bridged: list[tuple[int, int, int, list[tuple[int, int, str]], list[int]]] = []
    for c, group in enumerate(groups):
        first, last = group[0], group[-1]
        lead_in = fade(first) // 2
        lead_out = fade(last + 1) - fade(last + 1) // 2
        start = starts[first] - lead_in
        end = starts[last] + frames[last] + lead_out
        length = end - start
        for i in group:
            s = board.scenes[i]
            transition = s.transition if isinstance(s.transition, str) else f"crossfade {s.crossfade}"
            scenes_out.append(PlannedScene(id=s.id, start_frame=starts[i], end_frame=starts[i] + frames[i], chain=c,
                                           transition=transition))

        # prompt timeline of this chain: (chain-relative frame, scene index, prompt)
        timeline: list[tuple[int, int, str]] = []
        for i in group:
            timeline.append((max(0, starts[i] - start), i, board.scenes[i].prompt))
            for beat in sorted(board.scenes[i].beats, key=lambda b: b.at.to_frames(fps)):
                timeline.append((starts[i] + beat.at.to_frames(fps) - start, i, beat.prompt))
        timeline.sort(key=lambda t: t[0])
        changes = [t[0] for t in timeline[1:]]
        lengths = segment_lengths(length, seg_spec.frames, seg_spec.overlap, changes)

        local_starts, seams = [], []
        pos = 0
        for j, n in enumerate(lengths):
            ov = 0 if j == 0 else seg_spec.overlap
            local_starts.append(pos)
            seams.append(pos + ov)
            pos += n - seg_spec.overlap
        chain_segments = []
        first_index = len(stubs)
        for j, n in enumerate(lengths):
            ov = 0 if j == 0 else seg_spec.overlap
            probe = min(seams[j] + _ALIGN, length - 1)
            k = bisect.bisect_right([t[0] for t in timeline], probe) - 1
            _, scene_idx, prompt_text = timeline[max(k, 0)]
            scene = board.scenes[scene_idx]
            shown_end = seams[j + 1] if j + 1 < len(lengths) else length
            stubs.append(
                _segment_stub(
                    index=first_index + j, chain=c, scene=scene, n=n, overlap=ov,
                    output_start=start + local_starts[j], seam=start + seams[j],
                    shown=(start + seams[j], start + shown_end), prompt=prompt_text,
                    depends_on=(first_index + j - 1) if j else None, board=board,
                )
            )
            chain_segments.append(first_index + j)
        _place_keyframes(board, group, starts, start, stubs, chain_segments, snaps, fps)
        if board.defaults.render.mode == "bridged" and len(chain_segments) >= BRIDGED_MIN_SEGMENTS:
            bridged.append((c, start, length, timeline, chain_segments))
        chains.append(PlannedChain(index=c, scenes=[board.scenes[i].id for i in group], start_frame=start,
                                   end_frame=end, fade_in=fade(first) if c else 0, fade_out=fade(last + 1),
                                   segments=chain_segments))

    for c, start, length, timeline, chain_segments in bridged:
        snaps[:] = _make_bridged(board, c, start, length, timeline, chain_segments, stubs, snaps, fps)
    segments = _finish(board, stubs, pricing)
    total_cost = round(sum(s.cost_usd for s in segments), 6)
    depths = request_depths(segments)
    deepest = max(segments, key=lambda s: (depths[s.index], -s.chain))
    audio = board.audio.model_dump(mode="json") if board.audio else None
    result = RenderPlan(
        plan_version=PLAN_VERSION,
        storyboard_hash=storyboard_hash(board),
        title=board.title,
        fps=fps,
        resolution=board.output.resolution,
        aspect_ratio=board.output.aspect_ratio,
        width=width,
        height=height,
        total_frames=total_frames,
        duration_s=round(total_frames / fps, 6),
        requests=len(segments),
        estimated_cost_usd=total_cost,
        critical_path=depths[deepest.index],
        critical_chain=deepest.chain,
        mode=board.defaults.render.mode,
        colour=board.defaults.colour.model_dump(mode="json"),
        audio=audio,
        scenes=scenes_out,
        chains=chains,
        segments=segments,
        snaps=snaps,
    )
    result._board = board
    return result


def _segment_stub(*, index, chain, scene: Scene, n, overlap, output_start, seam, shown, prompt, depends_on, board) -> dict:
    conditioning = []
    if depends_on is not None:
        conditioning.append({"kind": "video", "source": f"tail:{depends_on}", "start_frame": 0,
                             "strength": board.defaults.segment.overlap_strength, "film_frame": output_start,
                             "num_frames": overlap})
    return {"index": index, "chain": chain, "scene": scene.id, "n": n, "overlap": overlap, "output_start": output_start,
            "seam": seam, "shown": shown, "prompt": prompt, "depends_on": depends_on, "conditioning": conditioning,
            "role": "chain", "parents": [depends_on] if depends_on is not None else []}


def skeleton_rate(fps: int, length: int) -> int:
    """The frame rate of a chain's skeleton: the film's, lowered until one request covers the chain,
    but not below SKELETON_MIN_FPS (longer chains then get several skeleton requests)."""
    if length <= 1:
        return fps
    reach = (MAX_FRAMES - 1) * fps // (length - 1)  # the highest rate at which one request covers it
    return max(1, min(fps, max(reach, SKELETON_MIN_FPS)))


def _skeleton_pieces(units: int) -> list[tuple[int, int]]:
    """Split ``units`` 8-frame chunks into the fewest requests of at most 1440 new frames, evenly:
    each piece (first unit, last unit), the pieces sharing their boundary frames."""
    per = (MAX_FRAMES - 1) // 8
    count = max(1, -(-units // per))
    cuts = [round(k * units / count) for k in range(count + 1)]
    return [(cuts[k], cuts[k + 1]) for k in range(count)]


def _make_bridged(board: Storyboard, chain: int, start: int, length: int, timeline: list[tuple[int, int, str]],
                  chain_segments: list[int], stubs: list[dict], snaps: list[Snap], fps: int) -> list[Snap]:
    """Turn one chain's sequential stubs into anchors (even) and bridges (odd), and append its
    skeleton request(s). The film layout (lengths, starts, overlaps, shown ranges) is untouched;
    only parents and conditioning change. Returns the snaps, pointing at their new segments."""
    spec = board.defaults.segment
    rate = skeleton_rate(fps, length)
    units = max(1, -(-((length - 1) * rate) // (fps * 8)))
    pieces = _skeleton_pieces(units)
    first_skeleton = len(stubs)
    moved: dict[tuple[str, int], int] = {}
    for j, idx in enumerate(chain_segments):
        seg = stubs[idx]
        if j % 2 == 0:
            continue
        # a bridge: its tail is the next anchor's head, so keyframes there belong to that anchor
        seg["role"] = "bridge"
        if j + 1 < len(chain_segments):
            nxt = stubs[chain_segments[j + 1]]
            end_start = seg["n"] - spec.overlap
            keep = []
            for cond in seg["conditioning"]:
                if cond["kind"] == "image" and cond["start_frame"] >= end_start:
                    nxt["conditioning"].append({**cond, "start_frame": cond["film_frame"] - nxt["output_start"]})
                    moved[(cond["scene"], cond["keyframe"])] = nxt["index"]
                else:
                    keep.append(cond)
            keep.append({"kind": "video", "source": f"head:{nxt['index']}", "start_frame": end_start,
                         "strength": spec.overlap_strength, "film_frame": seg["output_start"] + end_start,
                         "num_frames": spec.overlap})
            seg["conditioning"] = keep
            seg["parents"] = [chain_segments[j - 1], nxt["index"]]
    wants: list[tuple[dict, int, int]] = []  # (anchor, skeleton piece, frame in it)
    for idx in chain_segments[::2]:
        seg = stubs[idx]
        seg["role"] = "anchor"
        seg["conditioning"] = [c for c in seg["conditioning"] if c["kind"] != "video"]
        seg["parents"] = []
        if not any(c["kind"] == "image" and c["start_frame"] == 0 for c in seg["conditioning"]):
            g = round((seg["output_start"] - start) * rate / fps)  # its first frame in skeleton frames
            p = next(k for k, (u0, u1) in enumerate(pieces) if g <= 8 * u1)
            wants.append((seg, p, g - 8 * pieces[p][0]))
    used = sorted({p for _, p, _ in wants})  # a skeleton no anchor needs is not bought
    for seg, p, frame in wants:
        skeleton = first_skeleton + used.index(p)
        seg["parents"] = [skeleton]
        seg["conditioning"].append({
            "kind": "image", "source": f"skeleton:{skeleton}@{frame}", "start_frame": 0,
            "strength": board.defaults.render.skeleton_strength, "film_frame": seg["output_start"], "fit": "cover"})
    keyframes = [c for idx in chain_segments for c in stubs[idx]["conditioning"]
                 if c["kind"] == "image" and c.get("scene") is not None]
    frames = [t[0] for t in timeline]
    for p in used:
        u0, u1 = pieces[p]
        first = start + (8 * u0 * fps + rate // 2) // rate
        last = min(start + length - 1, start + (8 * u1 * fps + rate // 2) // rate)
        n = 8 * (u1 - u0) + 1
        lo = bisect.bisect_right(frames, first - start) - 1
        hi = bisect.bisect_right(frames, last - start)
        prompts = list(dict.fromkeys(t[2] for t in timeline[max(lo, 0):hi]))
        _, scene_idx, _ = timeline[max(lo, 0)]
        conds, taken = [], set()
        for kf in sorted(keyframes, key=lambda c: c["film_frame"]):
            if not first <= kf["film_frame"] <= last:
                continue
            local = min(n - 1, round(((kf["film_frame"] - start) * rate / fps - 8 * u0) / 8) * 8)
            local -= local % 8
            if local in taken:  # two keyframes closer than 8 skeleton frames: the first one pins it
                continue
            taken.add(local)
            conds.append({"kind": "image", "source": kf["source"], "start_frame": local, "strength": kf["strength"],
                          "film_frame": kf["film_frame"], "fit": kf["fit"]})
        stubs.append({
            "index": len(stubs), "chain": chain, "scene": board.scenes[scene_idx].id, "n": n, "overlap": 0,
            "output_start": first, "seam": first, "shown": (first, first), "prompt": ". Then ".join(prompts),
            "depends_on": None, "conditioning": conds, "role": "skeleton", "parents": [], "piece": p, "rate": rate,
        })
    return [s.model_copy(update={"segment": moved[(s.scene, s.keyframe)]}) if (s.scene, s.keyframe) in moved else s
            for s in snaps]


def _place_keyframes(board, group, starts, chain_start, segments, chain_segments, snaps, fps) -> None:
    """Put each keyframe on the nearest 8-frame-grid frame that a segment generates."""
    for i in group:
        scene = board.scenes[i]
        for k, kf in enumerate(scene.keyframes):
            wanted = starts[i] + kf.at.to_frames(fps)
            best = None
            for idx in chain_segments:
                seg = segments[idx]
                first, stop = seg["shown"]
                if not (first - 16 <= wanted < stop + 16):
                    continue
                lo_local = 0 if seg["overlap"] == 0 else -(-seg["overlap"] // 8) * 8
                for local in range(lo_local, seg["n"], 8):
                    film = seg["output_start"] + local
                    if first <= film < stop:
                        key = (abs(film - wanted), film)
                        if best is None or key < best[0]:
                            best = (key, idx, local, film)
            if best is None:
                raise PlanError(f"scene '{scene.id}': keyframe at {kf.at} cannot be placed in any segment")
            _, idx, local, film = best
            seg = segments[idx]
            taken = [c for c in seg["conditioning"] if c["kind"] == "image" and c["start_frame"] == local]
            if taken:
                raise PlanError(
                    f"scene '{scene.id}': keyframes {taken[0]['keyframe']} and {k} land on the same frame "
                    f"({film}) after snapping to LTX's 8-frame grid; move one of them"
                )
            seg["conditioning"].append({"kind": "image", "source": kf.image, "start_frame": local, "strength": kf.strength,
                                        "film_frame": film, "scene": scene.id, "keyframe": k, "fit": kf.fit})
            if film != wanted:
                snaps.append(Snap(scene=scene.id, keyframe=k, wanted_frame=wanted, used_frame=film, segment=idx))


def _finish(board: Storyboard, stubs: list[dict], pricing: Pricing) -> list[PlannedSegment]:
    """Seeds, prompts and full requests, once every segment's scene is known (skeletons are
    seeded and shaped apart, so the film's segments stay as they are in sequential mode)."""
    per_scene: dict[str, int] = {}
    out = []
    for stub in stubs:
        scene = board.scene(stub["scene"])
        skeleton = stub["role"] == "skeleton"
        k = stub["piece"] if skeleton else per_scene.get(scene.id, 0)
        if not skeleton:
            per_scene[scene.id] = k + 1
        scene_params = params_dict(scene.params)
        fixed_seed = scene_params.pop("seed", None)
        if skeleton:
            seed = derive_seed(board.defaults.seed, f"skeleton/{scene.id}", k)
            scene_params = {}
        elif k in scene.seeds:
            seed = scene.seeds[k]
        elif fixed_seed is not None:
            seed = fixed_seed if k == 0 else derive_seed(fixed_seed, scene.id, k)
        else:
            seed = derive_seed(board.defaults.seed, scene.id, k)
        style = scene.style if scene.style is not None else board.defaults.style
        prompt = f"{stub['prompt']}, {style}" if style else stub["prompt"]
        fields: dict[str, Any] = {}
        if board.defaults.negative_prompt is not None:
            fields["negative_prompt"] = board.defaults.negative_prompt
        fields.update(params_dict(board.defaults.params))
        fields.update(scene_params)
        shape: dict[str, Any] = {"frame_rate": board.output.fps, "resolution": board.output.resolution}
        if skeleton:  # cheap: 480p, no detail pass (which doubles the price), at the skeleton's rate
            fields["enable_detail_pass"] = False
            shape = {"frame_rate": stub["rate"], "resolution": SKELETON_RESOLUTION}
        conditioning = sorted(stub["conditioning"], key=lambda c: (c["kind"] != "video", c["start_frame"]))
        images = [{"image_url": _image_url(c), "start_frame_num": c["start_frame"],
                   "strength": c["strength"]} for c in conditioning if c["kind"] == "image"]
        videos = [{"video_url": c["source"], "start_frame_num": c["start_frame"], "strength": c["strength"]}
                  for c in conditioning if c["kind"] == "video"]
        request = GenerationRequest(
            prompt=prompt, num_frames=stub["n"], aspect_ratio=board.output.aspect_ratio,
            seed=seed, images=images, videos=videos, **shape, **fields,
        )
        video_conds = [c for c in conditioning if c["kind"] == "video"]
        image_conds = [c for c in conditioning if c["kind"] == "image"]
        out.append(PlannedSegment(
            index=stub["index"], chain=stub["chain"], scene=scene.id, index_in_scene=k,
            depends_on=stub["depends_on"], output_start_frame=stub["output_start"], num_frames=stub["n"],
            overlap=stub["overlap"], seam_frame=stub["seam"], shown_start=stub["shown"][0],
            shown_end=stub["shown"][1], prompt=prompt, seed=seed, cost_usd=pricing.estimate_cost(request),
            conditioning=[Conditioning(**c) for c in video_conds + image_conds],
            request=request.to_endpoint_json(), role=stub["role"], parents=stub["parents"],
        ))
    return out


def _image_url(c: dict) -> str:
    """A planned image's placeholder URL (the scheduler puts the real file there)."""
    if c.get("scene") is not None:
        return f"keyframe:{c['scene']}/{c['keyframe']}"
    if c["source"].startswith("skeleton:"):
        return c["source"]
    return f"image:{c['source']}"  # a storyboard image on a skeleton (not a placed keyframe)
