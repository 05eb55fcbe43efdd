"""OpenTimelineIO interchange: a rendered film as an editor's timeline, and back.

Export (``export_timeline``): the film as one video track at the plan's fps, one
clip per scene, each a frame-exact range of the film file; keyframes and beats
are markers on their scene's clip (name = image path or prompt, the details in
``marker.metadata['composer']``); the storyboard's settings sit in
``timeline.metadata['composer']``; its soundtrack is an audio track (one clip from
its in-point, trimmed to the film). ``write_otio`` picks the format by suffix.
(Export and import stay in one file because they are one job: both sides of the same
metadata layout, which must change together.)

Per-chain export (``export_per_chain``): each chain (a run of scenes joined by
``continue``) as its own media file, *without* any dissolve baked in, holding the
frames the chain rendered beyond its cut points (the halves of its crossfades,
plus ``handles`` extra frames each side if the render wrote them). Scenes are
clips on their chain's media, and every crossfade is an OTIO ``SMPTE_Dissolve``
transition between the chain clips, so an editor can re-time cuts and dissolves
and the NLE draws the dissolve once. The render writes those chain files (the
assembler's per-chain frames before the dissolve) and calls this function with
their paths; the handle frames come from the plan (``chain.start_frame`` /
``end_frame`` against its scenes).

Import (``import_timeline``): a timeline (ours, re-cut by an editor, or one from
another tool, gaps included) becomes a storyboard skeleton: one scene per clip
with the clip's length, the prompt from its first marker (or its name), beats
from later markers, crossfades from transitions, ``output.fps`` from the rate.
Keyframe times come back as the user wrote them where the marker was not moved.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, get_args
from collections.abc import Iterable, Sequence

import opentimelineio as otio

from .version import __version__
from .atomic import atomic_path
from .errors import OtioError
from .planner import PlannedChain, PlannedScene, RenderPlan
from .storyboard.models import (
    SCENE_ID,
    Audio,
    Beat,
    Crossfade,
    Defaults,
    EndpointParams,
    Keyframe,
    Output,
    Scene,
    Storyboard,
    params_dict,
)
from .timecode import Timecode, format_frames

__all__ = [
    "OtioError",
    "export_per_chain",
    "export_timeline",
    "import_timeline",
    "read_timeline",
    "timeline_to_storyboard",
    "write_otio",
]

DISSOLVE = otio.schema.TransitionTypes.SMPTE_Dissolve
_IMAGE_EXT = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".exr")
_MEDIA_EXT = re.compile(r"\.(mp4|mov|mxf|mkv|avi|webm|m4v|r3d|braw|ari|dng|exr|dpx|wav|aif|aiff)$", re.I)
# Suffix → format written by the maintained OTIO adapters of the `editors` extra.
EDITOR_FORMATS = {".edl": "CMX 3600 EDL", ".xml": "FCP 7 XML", ".fcpxml": "FCPX XML"}
_GENERIC_MARKER = re.compile(r"^(marker|untitled|new marker)?\s*\d*$", re.I)


# --------------------------------------------------------------------------- export


def export_timeline(plan: RenderPlan, board: Storyboard, media_url: str,
                    ranges: Sequence[tuple[int, int]] | None = None) -> otio.schema.Timeline:
    """The rendered film (``media_url``) as a timeline: one clip per scene at its exact frames.

    With ``ranges`` (film frames ``[start, end)`` in film order) ``media_url`` is a part
    holding those ranges one after another: the timeline is that file in its own time
    from 0, a clip per scene piece, the soundtrack's matching pieces on the audio track.
    """
    fps = plan.fps
    pieces = _pieces(plan, ranges)
    length = sum(b - a for a, b in ranges) if ranges is not None else plan.total_frames
    whole = _range(0, length, fps)
    track = otio.schema.Track(name="composer", kind=otio.schema.TrackKind.Video)
    markers = _markers(plan, board)
    for ps, start, end, at in pieces:
        meta = _scene_meta(board, ps)
        if ranges is not None:
            meta["film_range"] = [start, end]
        clip = otio.schema.Clip(
            name=ps.id,
            media_reference=otio.schema.ExternalReference(target_url=media_url, available_range=whole),
            source_range=_range(at, end - start, fps),
            metadata={"composer": meta},
        )
        for m in markers.get(ps.id, []):
            frame = _clamp(m["film_frame"], ps)
            if ranges is None or start <= frame < end:
                clip.markers.append(_marker(m, frame - start + at, fps))
        track.append(clip)
    meta = _board_meta(plan, board, mode="film" if ranges is None else "part", media=media_url)
    if ranges is not None:
        meta["ranges"] = [list(r) for r in ranges]
    timeline = otio.schema.Timeline(name=_title(plan, board), global_start_time=otio.opentime.RationalTime(0, fps),
                                    metadata={"composer": meta})
    timeline.tracks.append(track)
    _append_audio(timeline, plan, board, ranges)
    return timeline


def _pieces(plan: RenderPlan, ranges: Sequence[tuple[int, int]] | None) -> list[tuple[PlannedScene, int, int, int]]:
    """(scene, film start, film end, frame in the written file) of each scene's piece, in order."""
    if ranges is None:
        return [(ps, ps.start_frame, ps.end_frame, ps.start_frame) for ps in plan.scenes]
    out = []
    at = 0
    for a, b in ranges:
        for ps in plan.scenes:
            start, end = max(a, ps.start_frame), min(b, ps.end_frame)
            if start < end:
                out.append((ps, start, end, at + start - a))
        at += b - a
    return out


def export_per_chain(plan: RenderPlan, board: Storyboard, media_urls: dict[int, str],
                     handles: int = 0) -> otio.schema.Timeline:
    """Each chain's own media (no dissolve baked in) with crossfades as OTIO transitions.

    ``media_urls[c]`` is chain ``c``'s file: film frames ``chain.start_frame`` to
    ``chain.end_frame`` (its crossfade halves included), plus ``handles`` more
    frames each side when the render wrote them (0 for what it writes today).
    """
    if handles < 0:
        raise OtioError(f"handles must be ≥ 0 (got {handles})")
    missing = [c.index for c in plan.chains if c.index not in media_urls]
    if missing:
        raise OtioError(f"no media for chain(s) {', '.join(map(str, missing))}: give one file per chain")
    fps = plan.fps
    markers = _markers(plan, board)
    track = otio.schema.Track(name="composer chains", kind=otio.schema.TrackKind.Video)
    for chain in plan.chains:
        scenes = [ps for ps in plan.scenes if ps.chain == chain.index]
        available = _range(0, chain.end_frame - chain.start_frame + 2 * handles, fps)
        offset = handles - chain.start_frame  # film frame → frame of this chain's media
        if chain.index and chain.fade_in:
            prev = plan.chains[chain.index - 1]
            cut = scenes[0].start_frame
            before, after = cut - chain.start_frame, prev.end_frame - cut
            if before < 0 or after < 0 or before + after != chain.fade_in:
                raise OtioError(f"chain {chain.index}: crossfade of {chain.fade_in} frames does not straddle its cut")
            track.append(otio.schema.Transition(
                name=f"{scenes[0].id} crossfade", transition_type=DISSOLVE,
                in_offset=otio.opentime.RationalTime(before, fps), out_offset=otio.opentime.RationalTime(after, fps),
                metadata={"composer": {"frames": chain.fade_in, "cut_frame": cut, "chain": chain.index}},
            ))
        for ps in scenes:
            clip = otio.schema.Clip(
                name=ps.id,
                media_reference=otio.schema.ExternalReference(target_url=media_urls[chain.index],
                                                              available_range=available),
                source_range=_range(ps.start_frame + offset, ps.end_frame - ps.start_frame, fps),
                metadata={"composer": _scene_meta(board, ps)},
            )
            for m in markers.get(ps.id, []):
                clip.markers.append(_marker(m, _clamp(m["film_frame"], ps) + offset, fps))
            track.append(clip)
    meta = _board_meta(plan, board, mode="per-chain", media=None)
    meta["handles"] = handles
    meta["chains"] = [_chain_meta(c, media_urls[c.index], handles) for c in plan.chains]
    timeline = otio.schema.Timeline(name=_title(plan, board), global_start_time=otio.opentime.RationalTime(0, fps),
                                    metadata={"composer": meta})
    timeline.tracks.append(track)
    _append_audio(timeline, plan, board)
    return timeline


def _append_audio(timeline: otio.schema.Timeline, plan: RenderPlan, board: Storyboard,
                  ranges: Sequence[tuple[int, int]] | None = None) -> None:
    """The storyboard's soundtrack as an audio track: one clip from its in-point, trimmed to the
    film (or, for a part, one clip per range: the soundtrack under those film frames)."""
    if board.audio is None:
        return
    audio = board.audio
    fps = plan.fps
    path = board.resolve(audio.file).resolve()
    offset = audio.offset.to_frames(fps)
    # The range the film uses: editors' XML formats need one, and probing the file is not this module's job.
    available = _range(0, offset + plan.total_frames, fps)
    track = otio.schema.Track(name="audio", kind=otio.schema.TrackKind.Audio)
    for a, b in ranges if ranges is not None else [(0, plan.total_frames)]:
        meta = {"kind": "audio", **audio.model_dump(mode="json"), "file_path": str(path)}
        if ranges is not None:
            meta["film_range"] = [a, b]
        track.append(otio.schema.Clip(
            name=Path(audio.file).name,
            media_reference=otio.schema.ExternalReference(
                target_url=otio.url_utils.url_from_filepath(str(path)), available_range=available),
            source_range=_range(offset + a, b - a, fps),
            metadata={"composer": meta},
        ))
    timeline.tracks.append(track)


def write_otio(timeline: otio.schema.Timeline, path: str | Path) -> Path:
    """Write ``timeline`` to ``path`` atomically, the adapter chosen by its suffix.

    .otio/.otioz are built in; .edl, .xml (FCP 7) and .fcpxml need the ``editors`` extra.
    An EDL has one video track, so the audio track and the markers' metadata stay in .otio only.
    """
    path = Path(path)
    try:
        adapter = otio.adapters.from_filepath(str(path)).name
    except Exception as exc:  # noqa: BLE001 -- an unknown suffix; adapters raise many kinds
        if path.suffix.lower() in EDITOR_FORMATS:
            raise OtioError(f"{path}: writing {EDITOR_FORMATS[path.suffix.lower()]} needs the OTIO adapters: "
                            "pip install 'composer[editors]'") from None
        raise OtioError(f"{path}: cannot write a timeline with this suffix ({exc}); use .otio, "
                        + ", ".join(EDITOR_FORMATS)) from None
    try:
        with atomic_path(path, make_parents=False) as tmp:
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name=adapter)
    except OSError as exc:
        raise OtioError(f"{path}: cannot write: {exc}") from None
    except Exception as exc:  # noqa: BLE001 -- adapters (plugins too) raise many kinds
        raise OtioError(f"{path}: cannot write the timeline: {exc}") from None
    return path


def _range(start: int, duration: int, fps: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(start, fps), otio.opentime.RationalTime(duration, fps))


def _title(plan: RenderPlan, board: Storyboard) -> str:
    return plan.title or (Path(board.source).stem if board.source != "<string>" else "composer film")


def _clamp(frame: int, ps: PlannedScene) -> int:
    """A marker's frame inside its scene's clip (a keyframe snapped into a dissolve sits at the cut)."""
    return min(max(frame, ps.start_frame), ps.end_frame - 1)


def _markers(plan: RenderPlan, board: Storyboard) -> dict[str, list[dict[str, Any]]]:
    """Per scene, its keyframes and beats as marker data, in film order."""
    fps = plan.fps
    placed: dict[tuple[str, int], tuple[int, int]] = {}
    for seg in plan.segments:
        for c in seg.conditioning:
            if c.kind == "image" and c.scene is not None and c.keyframe is not None:
                placed[(c.scene, c.keyframe)] = (c.film_frame, seg.index)
    out: dict[str, list[dict[str, Any]]] = {}
    for ps in plan.scenes:
        scene = board.scene(ps.id)
        items = []
        for k, kf in enumerate(scene.keyframes):
            wanted = ps.start_frame + kf.at.to_frames(fps)
            film, seg_index = placed.get((scene.id, k), (wanted, None))
            # Where the marker sits in its clip: import compares it to tell an untouched marker from a moved one.
            clip_frame = _clamp(film, ps) - ps.start_frame
            meta = {"kind": "keyframe", "scene": scene.id, "index": k, "image": kf.image,
                    "image_path": str(board.resolve(kf.image).resolve()), "strength": kf.strength, "fit": kf.fit,
                    "at": str(kf.at), "wanted_frame": wanted, "film_frame": film, "clip_frame": clip_frame}
            if seg_index is not None:
                meta["segment"] = seg_index
            items.append(meta)
        for k, beat in enumerate(scene.beats):
            film = ps.start_frame + beat.at.to_frames(fps)
            items.append({"kind": "beat", "scene": scene.id, "index": k, "prompt": beat.prompt,
                          "at": str(beat.at), "film_frame": film})
        items.sort(key=lambda m: (m["film_frame"], m["kind"] != "keyframe", m["index"]))
        out[ps.id] = items
    return out


def _marker(meta: dict[str, Any], frame: int, fps: int) -> otio.schema.Marker:
    if meta["kind"] == "keyframe":
        return otio.schema.Marker(
            name=meta["image"], marked_range=_range(frame, 1, fps), color=otio.schema.MarkerColor.GREEN,
            comment=f"keyframe {meta['index']} of scene {meta['scene']}: strength {meta['strength']}, fit {meta['fit']}",
            metadata={"composer": meta},
        )
    return otio.schema.Marker(
        name=meta["prompt"], marked_range=_range(frame, 0, fps), color=otio.schema.MarkerColor.YELLOW,
        comment=f"beat {meta['index']} of scene {meta['scene']}", metadata={"composer": meta},
    )


def _transition_json(scene: Scene) -> Any:
    return scene.transition if isinstance(scene.transition, str) else {"crossfade": str(scene.crossfade)}


def _scene_meta(board: Storyboard, ps: PlannedScene) -> dict[str, Any]:
    scene = board.scene(ps.id)
    meta: dict[str, Any] = {"scene": scene.id, "prompt": scene.prompt, "duration": str(scene.duration),
                            "transition": _transition_json(scene), "chain": ps.chain,
                            "start_frame": ps.start_frame, "end_frame": ps.end_frame}
    if scene.style is not None:
        meta["style"] = scene.style
    params = params_dict(scene.params)
    if params:
        meta["params"] = params
    return meta


def _board_meta(plan: RenderPlan, board: Storyboard, *, mode: str, media: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "composer_version": __version__, "mode": mode, "title": board.title, "storyboard_hash": plan.storyboard_hash,
        "source": board.source, "resolution": plan.resolution, "aspect_ratio": plan.aspect_ratio,
        "width": plan.width, "height": plan.height, "fps": plan.fps, "total_frames": plan.total_frames,
        "segment": board.defaults.segment.model_dump(mode="json"),
        "defaults": _without_none(board.defaults.model_dump(mode="json", exclude_defaults=True)),
        "requests": plan.requests,
    }
    if board.audio is not None:
        meta["audio"] = {**board.audio.model_dump(mode="json"), "file_path": str(board.resolve(board.audio.file).resolve())}
    if media is not None:
        meta["media"] = media
    return meta


def _chain_meta(chain: PlannedChain, media: str, handles: int) -> dict[str, Any]:
    return {"index": chain.index, "scenes": list(chain.scenes), "media": media, "start_frame": chain.start_frame,
            "end_frame": chain.end_frame, "fade_in": chain.fade_in, "fade_out": chain.fade_out,
            "media_first_film_frame": chain.start_frame - handles}


def _without_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _without_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_without_none(x) for x in v]
    return v


# --------------------------------------------------------------------------- import


def read_timeline(path: str | Path) -> otio.schema.Timeline:
    """Read a timeline file with any OTIO adapter (the first timeline of a collection)."""
    path = Path(path)
    if not path.is_file():
        raise OtioError(f"{path}: file not found")
    try:
        result = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # noqa: BLE001 -- adapters raise many kinds
        raise OtioError(f"{path}: cannot read the timeline: {exc}") from None
    if isinstance(result, otio.schema.Timeline):
        return result
    if isinstance(result, otio.schema.SerializableCollection):
        for item in result.find_children(descended_from_type=otio.schema.Timeline, shallow_search=False):
            return item
    raise OtioError(f"{path}: holds no timeline (found {type(result).__name__})")


def import_timeline(path: str | Path, *, relative_to: str | Path | None = None,
                    warnings: list[str] | None = None) -> str:
    """A timeline file as storyboard skeleton YAML text (notes on what was guessed at the top).

    Keyframe image paths are written relative to ``relative_to`` (the folder the
    storyboard will live in; default: the timeline's folder). What could not be
    placed (a keyframe trimmed away) is also appended to ``warnings``, one line each.
    """
    path = Path(path)
    timeline = read_timeline(path)
    board, notes = timeline_to_storyboard(timeline, relative_to=relative_to or path.resolve().parent,
                                          name=path.stem, warnings=warnings)
    from .storyboard.dump import to_yaml

    fps = board.output.fps
    total = sum(s.duration.to_frames(fps) for s in board.scenes)
    head = [f"# Storyboard imported from {path.name}: {len(board.scenes)} scene(s), "
            f"{format_frames(total, fps)} ({total} frames at {fps} fps)."]
    head += [f"# note: {_one_line(n)}" for n in notes]
    return "\n".join(head) + "\n" + to_yaml(board)


def timeline_to_storyboard(timeline: otio.schema.Timeline, *, relative_to: str | Path | None = None,
                           name: str = "", warnings: list[str] | None = None) -> tuple[Storyboard, list[str]]:
    """A ``Storyboard`` skeleton for ``timeline`` and notes on what had to be guessed or dropped.

    Keyframes that could not be placed are also appended to ``warnings``.
    """
    notes: list[str] = []
    warnings = warnings if warnings is not None else []
    tmeta = _plain(timeline.metadata.get("composer")) or {}
    if not isinstance(tmeta, dict):
        tmeta = {}
    mode = tmeta.get("mode")
    track = _main_track(timeline, notes)
    rate = _rate(timeline, track)
    fps = min(60, max(1, round(rate)))
    frame_rate = rate if abs(rate - fps) <= 0.002 * fps else float(fps)
    if abs(rate - fps) > 1e-9:
        notes.append(f"timeline rate {rate:g} fps: the storyboard uses {fps} fps"
                     + (" with the same frame counts" if frame_rate == rate else ", keeping times"))

    def frames(t: otio.opentime.RationalTime) -> int:
        return int(round(t.value_rescaled_to(frame_rate)))

    entries = _entries(track, frames, notes)
    if not entries:
        raise OtioError("the timeline's track holds no clips")

    scenes: list[Scene] = []
    ids: set[str] = set()
    for i, e in enumerate(entries):
        n = e["frames"]
        meta = e["meta"]
        sid = _unique_id(meta.get("scene") if isinstance(meta.get("scene"), str) else None,
                         e["name"], "gap" if e["gap"] else f"shot-{i + 1}", ids)
        prompt, beats, keyframes = _prompts(e, n, fps, frame_rate, relative_to, notes, sid, warnings)
        if e["gap"]:
            prompt = (f"Placeholder for a gap in the edit ({n} frames at {format_frames(e['start'], fps)}): "
                      "describe this shot")
            notes.append(f"scene '{sid}': a gap of {n} frames became a placeholder scene; write its prompt")
        transition = _transition(e, entries[i - 1] if i else None, scenes[-1] if scenes else None,
                                 n, fps, mode, notes, sid)
        fields: dict[str, Any] = {"id": sid, "duration": _time_text(n, fps, meta.get("duration")), "prompt": prompt,
                                      "transition": transition, "keyframes": keyframes, "beats": beats}
        if isinstance(meta.get("style"), str):
            fields["style"] = meta["style"]
        if isinstance(meta.get("params"), dict):
            try:
                fields["params"] = EndpointParams.model_validate(meta["params"])
            except ValueError:
                notes.append(f"scene '{sid}': its params in the timeline are not valid; left out")
        scenes.append(Scene.model_validate(fields))

    top: dict[str, Any] = {"title": _title_of(timeline, tmeta, name), "scenes": scenes}
    output: dict[str, Any] = {"fps": fps}
    for key in ("resolution", "aspect_ratio"):
        if tmeta.get(key) in get_args(Output.model_fields[key].annotation):
            output[key] = tmeta[key]
    top["output"] = Output.model_validate(output)
    if isinstance(tmeta.get("defaults"), dict):
        try:
            top["defaults"] = Defaults.model_validate(tmeta["defaults"])
        except ValueError:
            notes.append("the storyboard defaults stored in the timeline are not valid; left out")
    if isinstance(tmeta.get("audio"), dict):
        audio = dict(tmeta["audio"])
        file_path = audio.pop("file_path", None)
        if isinstance(file_path, str) and file_path:
            audio["file"] = _relative(file_path, relative_to)
        try:
            top["audio"] = Audio.model_validate(audio)
        except ValueError:
            notes.append("the audio stored in the timeline is not valid; left out")
    board = Storyboard.model_validate(top)
    return board, notes


def _main_track(timeline: otio.schema.Timeline, notes: list[str]) -> otio.schema.Track:
    tracks = list(timeline.video_tracks()) or [t for t in timeline.tracks if isinstance(t, otio.schema.Track)]
    if not tracks:
        raise OtioError("the timeline has no video track")
    if len(tracks) > 1:
        notes.append(f"the timeline has {len(tracks)} video tracks: only the first ('{tracks[0].name}') was read")
    return tracks[0]


def _rate(timeline: otio.schema.Timeline, track: otio.schema.Track) -> float:
    start = timeline.global_start_time
    if start is not None and start.rate > 1:
        return float(start.rate)
    for item in track:
        if isinstance(item, otio.core.Item):
            try:
                rate = item.trimmed_range().duration.rate
            except Exception:  # noqa: BLE001 -- an item without a range has no rate to offer
                continue
            if rate > 1:
                return float(rate)
    return 24.0


def _entries(track: otio.schema.Track, frames, notes: list[str]) -> list[dict[str, Any]]:
    """The track's items in order (clips and gaps), each with the transition before it."""
    out: list[dict[str, Any]] = []
    pending: otio.schema.Transition | None = None
    cursor = 0
    items = list(track)
    for idx, item in enumerate(items):
        if isinstance(item, otio.schema.Transition):
            if not out:
                notes.append(f"transition '{item.name}' before the first clip (from black) was left out")
            elif idx == len(items) - 1:
                notes.append(f"transition '{item.name}' after the last clip (to black) was left out")
            else:
                pending = item
            continue
        if not isinstance(item, otio.core.Item):
            continue
        try:
            rng = item.trimmed_range()
        except Exception as exc:  # noqa: BLE001 -- OTIO raises its own kinds for items without a range
            raise OtioError(f"item '{item.name}' has no length: {exc}") from None
        n = frames(rng.duration)
        if n <= 0:
            pending = None
            continue
        gap = isinstance(item, otio.schema.Gap)
        ref = getattr(item, "media_reference", None)
        media = ref.target_url if isinstance(ref, otio.schema.ExternalReference) else None
        meta = _plain(item.metadata.get("composer")) or {}
        out.append({
            "item": item, "gap": gap, "name": item.name or "", "frames": n, "start": cursor, "src_start": frames(rng.start_time),
            "media": media, "meta": meta if isinstance(meta, dict) else {}, "transition": pending,
        })
        cursor += n
        pending = None
    return out


def _prompts(e: dict[str, Any], n: int, fps: int, frame_rate: float, relative_to, notes: list[str],
             sid: str, warnings: list[str]) -> tuple[str, list[Beat], list[Keyframe]]:
    """The scene's prompt, beats and keyframes from its clip's metadata, markers and name."""
    item, meta = e["item"], e["meta"]
    texts: list[tuple[int, str, dict[str, Any]]] = []
    keyframes: list[Keyframe] = []
    kf_frames: set[int] = set()
    for marker in sorted(item.markers, key=lambda m: m.marked_range.start_time.value_rescaled_to(frame_rate)):
        at = int(round(marker.marked_range.start_time.value_rescaled_to(frame_rate))) - e["src_start"]
        mmeta = _plain(marker.metadata.get("composer")) or {}
        mmeta = mmeta if isinstance(mmeta, dict) else {}
        label = _marker_text(marker)
        kind = mmeta.get("kind")
        is_keyframe = kind == "keyframe" or (kind is None and label.lower().endswith(_IMAGE_EXT))
        # The user's own time, where the marker still sits where the export put it (head untrimmed, not moved).
        written = mmeta.get("at") if is_keyframe and at == mmeta.get("clip_frame") else None
        if isinstance(written, str):
            try:
                user_frame = Timecode.parse(written).to_frames(fps)
            except ValueError:
                written = None
            else:
                at = user_frame if 0 <= user_frame < n else at
        if not 0 <= at < n:
            notes.append(f"scene '{sid}': marker '{_short(label)}' lies outside the clip's range; left out")
            if is_keyframe:
                when = mmeta.get("at") if isinstance(mmeta.get("at"), str) else _time_text(at, fps)
                warnings.append(f"scene '{sid}': keyframe {label} at {when} falls outside the clip "
                                f"({n} frames after the edit); not placed")
            continue
        if is_keyframe:
            if at in kf_frames:
                notes.append(f"scene '{sid}': two keyframes at frame {at}; kept the first")
                continue
            image = _image_path(mmeta, label, relative_to)
            fields: dict[str, Any] = {"at": _time_text(at, fps, written or mmeta.get("at")), "image": image}
            for key in ("strength", "fit"):
                if key in mmeta:
                    fields[key] = mmeta[key]
            try:
                keyframes.append(Keyframe.model_validate(fields))
            except ValueError:
                keyframes.append(Keyframe(at=fields["at"], image=image))
            kf_frames.add(at)
            continue
        marker_prompt = mmeta.get("prompt")
        text = marker_prompt if kind == "beat" and isinstance(marker_prompt, str) else label
        if text.strip():
            texts.append((at, text, mmeta))

    if isinstance(meta.get("prompt"), str) and meta["prompt"].strip():
        prompt = meta["prompt"]
    elif texts:
        prompt = texts.pop(0)[1]
    else:
        prompt = _name_prompt(e)
    beats: list[Beat] = []
    used: set[int] = set()
    for at, text, mmeta in texts:
        if at <= 0:
            notes.append(f"scene '{sid}': marker '{_short(text)}' at the clip's first frame is not a beat; left out")
            continue
        if at in used:
            notes.append(f"scene '{sid}': two markers at frame {at}; kept the first as a beat")
            continue
        used.add(at)
        beats.append(Beat(at=_time_text(at, fps, mmeta.get("at")), prompt=text))
    return prompt, beats, keyframes


def _marker_text(marker: otio.schema.Marker) -> str:
    name = (marker.name or "").strip()
    comment = (getattr(marker, "comment", "") or "").strip()
    if comment and (not name or _GENERIC_MARKER.match(name)):
        return comment
    return name


def _name_prompt(e: dict[str, Any]) -> str:
    name = _MEDIA_EXT.sub("", e["name"]).strip()
    if not name and e["media"]:
        name = _MEDIA_EXT.sub("", Path(e["media"]).name)
    return name or "Describe this shot"


def _image_path(mmeta: dict[str, Any], label: str, relative_to) -> str:
    absolute = mmeta.get("image_path")
    if isinstance(absolute, str) and absolute:
        return _relative(absolute, relative_to)
    image = mmeta.get("image")
    return image if isinstance(image, str) and image else label


def _relative(absolute: str, relative_to) -> str:
    """A stored absolute path as the storyboard should write it (relative to its folder where possible)."""
    if relative_to is None:
        return absolute
    try:
        return Path(os.path.relpath(absolute, Path(relative_to).resolve())).as_posix()
    except ValueError:  # another drive
        return absolute


def _transition(e: dict[str, Any], prev: dict[str, Any] | None, prev_scene: Scene | None, n: int, fps: int,
                mode: str | None, notes: list[str], sid: str) -> Any:
    if prev is None or prev_scene is None:
        return "cut"
    prev_n = prev["frames"]
    limit = min(n, prev_n)
    tr: otio.schema.Transition | None = e["transition"]
    if tr is not None:
        f = int(round(tr.in_offset.value_rescaled_to(fps) + tr.out_offset.value_rescaled_to(fps)))
        if tr.transition_type != DISSOLVE:
            notes.append(f"scene '{sid}': transition '{tr.transition_type or tr.name}' became a crossfade")
        before, after = (int(round(t.value_rescaled_to(fps))) for t in (tr.in_offset, tr.out_offset))
        if abs(before - after) > 1:
            notes.append(f"scene '{sid}': the dissolve ran {before} frames before the cut and {after} after; "
                         "a storyboard crossfade is centred on the cut, which stays where it was")
        written = _meta_crossfade(e["meta"].get("transition"))
        return _crossfade(f, limit, fps, notes, sid, written)
    meta_tr = e["meta"].get("transition")
    if isinstance(meta_tr, dict) and "crossfade" in meta_tr:
        if mode == "per-chain":
            return "cut"  # the editor removed the dissolve
        try:
            f = Timecode.parse(meta_tr["crossfade"]).to_frames(fps)
        except ValueError:
            return "cut"
        return _crossfade(f, limit, fps, notes, sid, meta_tr["crossfade"])
    if meta_tr == "continue":
        return "continue" if not prev["gap"] and not e["gap"] else "cut"
    if meta_tr == "cut":
        return "cut"
    if (not e["gap"] and not prev["gap"] and e["media"] and e["media"] == prev["media"]
            and prev["src_start"] + prev_n == e["src_start"]):
        return "continue"  # the same take carries on uncut
    return "cut"


def _meta_crossfade(meta_tr: Any) -> str | None:
    return meta_tr["crossfade"] if isinstance(meta_tr, dict) and isinstance(meta_tr.get("crossfade"), str) else None


def _crossfade(f: int, limit: int, fps: int, notes: list[str], sid: str, text: str | None = None) -> Any:
    if f < 2:
        notes.append(f"scene '{sid}': a {f}-frame dissolve is too short for a crossfade; made a cut")
        return "cut"
    if f > limit:
        notes.append(f"scene '{sid}': dissolve of {f} frames shortened to {limit} (the shorter scene's length)")
        f, text = limit, None
    return Crossfade(crossfade=_time_text(f, fps, text))


def _time_text(frames: int, fps: int, written: Any = None) -> str:
    """``frames`` as a timecode: the storyboard's own text when it still means the same, else seconds or frames."""
    if isinstance(written, str):
        try:
            if Timecode.parse(written).to_frames(fps) == frames:
                return written
        except ValueError:
            pass
    return f"{frames // fps}s" if frames % fps == 0 else f"{frames}f"


def _unique_id(preferred: str | None, name: str, fallback: str, taken: set[str]) -> str:
    base = preferred if preferred and SCENE_ID.match(preferred) else _slug(name) or fallback
    sid, k = base, 2
    while sid in taken:
        sid, k = f"{base}-{k}", k + 1
    taken.add(sid)
    return sid


def _slug(name: str) -> str:
    name = _MEDIA_EXT.sub("", name.strip())
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    slug = re.sub(r"^[^A-Za-z0-9]+", "", slug)[:48]
    return slug.rstrip("-_.")


def _title_of(timeline: otio.schema.Timeline, tmeta: dict[str, Any], name: str) -> str:
    if isinstance(tmeta.get("title"), str) and tmeta.get("title"):
        return tmeta["title"]
    return timeline.name or name


def _plain(v: Any) -> Any:
    """OTIO's AnyDictionary / AnyVector as plain dicts and lists."""
    if v is None or isinstance(v, (str, bytes, int, float, bool)):
        return v
    if hasattr(v, "items"):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, Iterable):
        return [_plain(x) for x in v]
    return v


def _short(text: str, n: int = 40) -> str:
    text = _one_line(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
