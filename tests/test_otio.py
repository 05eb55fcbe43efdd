"""OpenTimelineIO export and import, read back with opentimelineio itself."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import opentimelineio as otio
import pytest

from composer import load, loads, plan
from composer.otio import (
    OtioError,
    export_per_chain,
    export_timeline,
    import_timeline,
    timeline_to_storyboard,
    write_otio,
)
from composer.storyboard.models import Crossfade

ROOT = Path(__file__).parent.parent
HARBOUR = ROOT / "storyboards" / "harbour.yaml"
RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


@pytest.fixture(scope="module")
def harbour():
    board = load(HARBOUR)
    return board, plan(board)


def clips(timeline) -> list[otio.schema.Clip]:
    return [c for c in timeline.tracks[0] if isinstance(c, otio.schema.Clip)]


def written_and_read(timeline, path: Path):
    write_otio(timeline, path)
    assert not [p for p in path.parent.iterdir() if "partial" in p.name]  # atomic: no leftovers
    return otio.adapters.read_from_file(str(path))


def test_film_timeline_is_frame_exact(harbour, tmp_path: Path) -> None:
    board, p = harbour
    tl = written_and_read(export_timeline(p, board, "harbour.mp4"), tmp_path / "film.otio")
    assert [t.kind for t in tl.tracks] == [otio.schema.TrackKind.Video, otio.schema.TrackKind.Audio]
    cs = clips(tl)
    assert [c.name for c in cs] == [s.id for s in board.scenes]
    for clip, ps in zip(cs, p.scenes):
        rng = clip.source_range
        assert rng.start_time == RT(ps.start_frame, p.fps) and rng.start_time.rate == p.fps
        assert rng.duration == RT(ps.end_frame - ps.start_frame, p.fps)
        ref = clip.media_reference
        assert isinstance(ref, otio.schema.ExternalReference) and ref.target_url == "harbour.mp4"
        assert ref.available_range == TR(RT(0, p.fps), RT(p.total_frames, p.fps))
        assert clip.metadata["composer"]["prompt"] == board.scene(ps.id).prompt
    assert tl.tracks[0].duration() == RT(p.total_frames, p.fps)
    assert tl.global_start_time == RT(0, p.fps)
    meta = tl.metadata["composer"]
    assert meta["title"] == "Harbour" and meta["storyboard_hash"] == p.storyboard_hash
    assert (meta["resolution"], meta["aspect_ratio"], meta["fps"]) == ("480p", "16:9", 24)
    assert (meta["width"], meta["height"]) == (p.width, p.height)
    assert dict(meta["segment"]) == {"frames": 121, "overlap": 17, "overlap_strength": 1.0}


def test_markers_are_keyframes_and_beats_at_their_frames(harbour, tmp_path: Path) -> None:
    board, p = harbour
    tl = written_and_read(export_timeline(p, board, "harbour.mp4"), tmp_path / "film.otio")
    landed = {(c.scene, c.keyframe): c.film_frame for s in p.segments for c in s.conditioning if c.kind == "image"}
    total = 0
    for clip, ps in zip(clips(tl), p.scenes):
        scene = board.scene(ps.id)
        got = {(m.name, int(m.marked_range.start_time.value)) for m in clip.markers}
        want = {(kf.image, min(max(landed[(scene.id, k)], ps.start_frame), ps.end_frame - 1))
                for k, kf in enumerate(scene.keyframes)}
        want |= {(b.prompt, ps.start_frame + b.at.to_frames(p.fps)) for b in scene.beats}
        assert got == want, scene.id
        for m in clip.markers:
            assert m.marked_range.start_time.rate == p.fps
            assert ps.start_frame <= m.marked_range.start_time.value < ps.end_frame  # inside its clip
            assert m.metadata["composer"]["scene"] == scene.id
        total += len(clip.markers)
    assert total == sum(len(s.keyframes) + len(s.beats) for s in board.scenes) == 9
    # the boat keyframe lands exactly at 240 + 6 s; its image is named as in the storyboard
    boat = next(m for m in clips(tl)[1].markers if m.name == "images/boat.png")
    assert boat.marked_range.start_time == RT(384, 24)
    assert Path(boat.metadata["composer"]["image_path"]).is_file()


def test_per_chain_has_dissolves_where_the_storyboard_crossfades(harbour, tmp_path: Path) -> None:
    board, p = harbour
    urls = {c.index: f"chain{c.index}.mp4" for c in p.chains}
    tl = written_and_read(export_per_chain(p, board, urls), tmp_path / "chains.otio")
    items = list(tl.tracks[0])
    transitions = [(i, t) for i, t in enumerate(items) if isinstance(t, otio.schema.Transition)]
    crossfades = {s.id: s.crossfade.to_frames(p.fps) for s in board.scenes if isinstance(s.transition, Crossfade)}
    assert {items[i + 1].name: (t.in_offset + t.out_offset).value for i, t in transitions} == crossfades
    assert crossfades == {"forest": 36, "town": 48}
    for i, t in transitions:
        assert t.transition_type == otio.schema.TransitionTypes.SMPTE_Dissolve
        pre, post = items[i - 1], items[i + 1]
        # the dissolve uses frames the chains rendered beyond the cut, never beyond their media
        assert pre.source_range.end_time_exclusive() + t.out_offset <= pre.media_reference.available_range.end_time_exclusive()
        assert post.source_range.start_time - t.in_offset >= post.media_reference.available_range.start_time
        assert pre.media_reference.target_url != post.media_reference.target_url
    # no dissolve is laid twice: the track is exactly the film's length, scenes at their frames
    assert tl.tracks[0].duration() == RT(p.total_frames, p.fps)
    cs = clips(tl)
    assert [c.name for c in cs] == [s.id for s in board.scenes]
    for clip, ps in zip(cs, p.scenes):
        chain = p.chains[ps.chain]
        assert clip.media_reference.target_url == urls[ps.chain]
        assert clip.source_range.start_time.value == ps.start_frame - chain.start_frame
        assert clip.source_range.duration.value == ps.end_frame - ps.start_frame
        assert clip.media_reference.available_range.duration.value == chain.end_frame - chain.start_frame
        assert tl.tracks[0].range_of_child(clip).start_time.value == ps.start_frame
    # the expanded transitions fit inside the media
    otio.algorithms.track_with_expanded_transitions(tl.tracks[0])
    assert tl.metadata["composer"]["mode"] == "per-chain"


def test_per_chain_handles_and_missing_media(harbour) -> None:
    board, p = harbour
    urls = {c.index: f"c{c.index}.mp4" for c in p.chains}
    tl = export_per_chain(p, board, urls, handles=5)
    for clip, ps in zip(clips(tl), p.scenes):
        chain = p.chains[ps.chain]
        assert clip.source_range.start_time.value == ps.start_frame - chain.start_frame + 5
        assert clip.media_reference.available_range.duration.value == chain.end_frame - chain.start_frame + 10
        for m in clip.markers:  # markers move with the media
            assert clip.source_range.start_time <= m.marked_range.start_time < clip.source_range.end_time_exclusive()
    with pytest.raises(OtioError, match="chain"):
        export_per_chain(p, board, {0: "a.mp4"})


@pytest.mark.parametrize("per_chain", [False, True], ids=["film", "per-chain"])
def test_exported_timeline_imports_back_to_the_storyboard(harbour, tmp_path: Path, per_chain: bool) -> None:
    board, p = harbour
    tl = (export_per_chain(p, board, {c.index: f"c{c.index}.mp4" for c in p.chains}) if per_chain
          else export_timeline(p, board, "harbour.mp4"))
    write_otio(tl, tmp_path / "film.otio")
    text = import_timeline(tmp_path / "film.otio", relative_to=HARBOUR.parent)
    again = loads(text, base_dir=HARBOUR.parent)
    assert [s.duration.to_frames(24) for s in again.scenes] == [s.end_frame - s.start_frame for s in p.scenes]
    assert [s.prompt for s in again.scenes] == [s.prompt for s in board.scenes]
    assert again.model_dump() == board.model_dump()  # everything, even timecodes as written
    assert plan(again).storyboard_hash == p.storyboard_hash


def test_an_editors_recut_becomes_the_new_storyboard(harbour, tmp_path: Path) -> None:
    board, p = harbour
    tl = export_per_chain(p, board, {c.index: f"c{c.index}.mp4" for c in p.chains})
    track = tl.tracks[0]
    dawn = clips(tl)[0]
    dawn.source_range = TR(dawn.source_range.start_time, RT(216, 24))  # trimmed a second off its tail
    dawn.markers.append(otio.schema.Marker(name="Gulls scatter", marked_range=TR(RT(200, 24), RT(0, 24))))
    town_fade = [t for t in track if isinstance(t, otio.schema.Transition)][1]
    town_fade.in_offset, town_fade.out_offset = RT(12, 24), RT(12, 24)  # a shorter dissolve
    first_fade = track.index(next(t for t in track if isinstance(t, otio.schema.Transition)))
    del track[first_fade]  # the forest crossfade became a cut
    write_otio(tl, tmp_path / "recut.otio")
    again = loads(import_timeline(tmp_path / "recut.otio", relative_to=HARBOUR.parent), base_dir=HARBOUR.parent)
    assert again.scenes[0].duration.to_frames(24) == 216
    assert [(b.at.to_frames(24), b.prompt) for b in again.scenes[0].beats][-1] == (200, "Gulls scatter")
    assert again.scene("forest").transition == "cut"
    assert again.scene("town").crossfade.to_frames(24) == 24
    assert again.scene("boat-out").transition == "continue"


def hand_built(rate: float = 24) -> otio.schema.Timeline:
    """A cut from another tool: a gap, a dissolve, repeated names, markers with notes."""
    def clip(name, start, n, url, markers=()):
        return otio.schema.Clip(
            name=name, source_range=TR(RT(start, rate), RT(n, rate)),
            media_reference=otio.schema.ExternalReference(target_url=url), markers=list(markers))

    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(clip("Opening Shot.mov", 100, 48, "file:///m/a.mov", [
        otio.schema.Marker(name="Marker 1", comment="A boat at dawn", marked_range=TR(RT(100, rate), RT(0, rate))),
        otio.schema.Marker(name="gulls rise", marked_range=TR(RT(124, rate), RT(0, rate))),
        otio.schema.Marker(name="trimmed away", marked_range=TR(RT(400, rate), RT(0, rate))),
    ]))
    track.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(12, rate))))
    track.append(clip("B", 0, 60, "file:///m/b.mov"))
    track.append(otio.schema.Transition(transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                                        in_offset=RT(6, rate), out_offset=RT(6, rate)))
    track.append(clip("B", 10, 72, "file:///m/c.mov", [
        otio.schema.Marker(name="stills/dock.png", marked_range=TR(RT(34, rate), RT(1, rate)))]))
    track.append(clip("#3 (take 2)", 82, 30, "file:///m/c.mov"))  # the same take, uncut
    tl = otio.schema.Timeline(name="Rough cut", global_start_time=RT(0, rate))
    tl.tracks.append(track)
    return tl


def test_import_of_a_hand_built_timeline_with_a_gap_and_a_dissolve(tmp_path: Path) -> None:
    otio.adapters.write_to_file(hand_built(), str(tmp_path / "cut.otio"))
    (tmp_path / "stills").mkdir()
    from conftest import make_image

    make_image(tmp_path / "stills" / "dock.png")
    text = import_timeline(tmp_path / "cut.otio")
    board = loads(text, base_dir=tmp_path)
    assert board.title == "Rough cut" and board.output.fps == 24
    assert [s.id for s in board.scenes] == ["Opening-Shot", "gap", "B", "B-2", "3-take-2"]
    assert [s.duration.to_frames(24) for s in board.scenes] == [48, 12, 60, 72, 30]
    first = board.scenes[0]
    assert first.prompt == "A boat at dawn"  # a generic marker name: its note is the text
    assert [(b.at.to_frames(24), b.prompt) for b in first.beats] == [(24, "gulls rise")]
    assert "Placeholder" in board.scenes[1].prompt and board.scenes[1].transition == "cut"
    assert board.scenes[2].prompt == "B" and board.scenes[2].transition == "cut"
    assert board.scenes[3].crossfade.to_frames(24) == 12
    assert [(k.at.to_frames(24), k.image) for k in board.scenes[3].keyframes] == [(24, "stills/dock.png")]
    assert board.scenes[4].transition == "continue"
    assert "gap of 12 frames" in text and "outside the clip" in text  # notes for the person editing it
    assert plan(board).total_frames == 222


def test_import_keeps_the_timeline_rate() -> None:
    board, notes = timeline_to_storyboard(hand_built(rate=25))
    assert board.output.fps == 25
    assert [s.duration.to_frames(25) for s in board.scenes] == [48, 12, 60, 72, 30]
    assert str(board.scenes[2].duration) == "60f" and str(board.scenes[0].duration) == "48f"
    ntsc, notes = timeline_to_storyboard(hand_built(rate=24000 / 1001))
    assert ntsc.output.fps == 24 and [s.duration.to_frames(24) for s in ntsc.scenes] == [48, 12, 60, 72, 30]
    assert any("23.976" in n for n in notes)


def test_import_errors(tmp_path: Path) -> None:
    with pytest.raises(OtioError, match="not found"):
        import_timeline(tmp_path / "missing.otio")
    (tmp_path / "bad.otio").write_text("{not json", encoding="utf-8")
    with pytest.raises(OtioError, match="cannot read"):
        import_timeline(tmp_path / "bad.otio")
    empty = otio.schema.Timeline(name="empty")
    empty.tracks.append(otio.schema.Track(kind=otio.schema.TrackKind.Video))
    with pytest.raises(OtioError, match="no clips"):
        timeline_to_storyboard(empty)


def composer(*commands: list[str], cwd: Path) -> list[subprocess.CompletedProcess]:
    """Run ``python -m composer`` once per command, all at once (each start costs about a second)."""
    procs = [subprocess.Popen([sys.executable, "-m", "composer", *args], cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args in commands]
    out = []
    for args, proc in zip(commands, procs):
        stdout, stderr = proc.communicate(timeout=60)
        out.append(subprocess.CompletedProcess(args, proc.returncode, stdout, stderr))
    return out


def test_cli_export_and_import(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("version: 1\nscenes: []\n", encoding="utf-8")
    film, bad = composer(["export", str(HARBOUR), "--otio", "film.otio"], ["export", "bad.yaml", "--otio", "x.otio"],
                         cwd=tmp_path)
    assert film.returncode == 0, film.stderr
    assert "7 clips, 9 markers" in film.stdout and "does not exist yet" in film.stderr
    tl = otio.adapters.read_from_file(str(tmp_path / "film.otio"))
    assert len(clips(tl)) == 7 and clips(tl)[0].media_reference.target_url == "harbour.mp4"
    assert bad.returncode == 2 and "bad.yaml:" in bad.stderr and not (tmp_path / "x.otio").exists()

    (imported,) = composer(["import", "film.otio", "-o", "board.yaml"], cwd=tmp_path)
    assert imported.returncode == 0 and "7 scenes" in imported.stdout, imported.stderr
    again, original = load(tmp_path / "board.yaml"), load(HARBOUR)
    assert [(s.id, str(s.duration), s.transition, s.prompt) for s in again.scenes] == \
        [(s.id, str(s.duration), s.transition, s.prompt) for s in original.scenes]
    # media paths are written relative to the new board and point at the same files
    assert again.resolve(again.audio.file).resolve() == original.resolve(original.audio.file).resolve()
    assert [again.resolve(k.image).resolve() for s in again.scenes for k in s.keyframes] == \
        [original.resolve(k.image).resolve() for s in original.scenes for k in s.keyframes]


def test_cli_in_process(tmp_path: Path, monkeypatch) -> None:
    from click.testing import CliRunner

    from composer.cli import main

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    r = runner.invoke(main, ["export", str(HARBOUR), "--otio", "chains.otio", "--per-chain"])
    assert r.exit_code == 0, r.output
    tl = otio.adapters.read_from_file("chains.otio")
    assert len([t for t in tl.tracks[0] if isinstance(t, otio.schema.Transition)]) == 2
    assert clips(tl)[0].media_reference.target_url == "harbour.chain00.mp4"
    assert clips(tl)[2].media_reference.target_url == "harbour.chain01.mp4"
    r = runner.invoke(main, ["export", str(HARBOUR), "--otio", "t.otio", "--per-chain", "--media", "out/c{chain}.mp4"])
    assert r.exit_code == 0 and clips(otio.adapters.read_from_file("t.otio"))[2].media_reference.target_url == "out/c1.mp4"

    r = runner.invoke(main, ["import", "missing.otio", "-o", "b.yaml"])
    assert r.exit_code == 2 and "not found" in r.output and not Path("b.yaml").exists()

    write_otio(hand_built(), tmp_path / "cut.otio")
    Path("board.yaml").write_text("old", encoding="utf-8")
    r = runner.invoke(main, ["import", "cut.otio", "-o", "board.yaml"])
    assert r.exit_code == 1 and "--force" in r.output and Path("board.yaml").read_text() == "old"
    r = runner.invoke(main, ["import", "cut.otio", "-o", "board.yaml", "--force"])
    assert r.exit_code == 0, r.output
    assert "prompt: A boat at dawn" in Path("board.yaml").read_text()
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]
    r = runner.invoke(main, ["import", "cut.otio"])  # no -o: printed
    assert r.exit_code == 0 and "id: Opening-Shot" in r.output


def test_film_timeline_has_the_soundtrack_as_an_audio_track(harbour) -> None:
    board, p = harbour
    for tl in (export_timeline(p, board, "harbour.mp4"), export_per_chain(p, board, {c.index: "c.mp4" for c in p.chains})):
        (audio,) = list(tl.audio_tracks())
        (clip,) = list(audio.find_clips())
        assert clip.name == Path(board.audio.file).name
        assert clip.source_range.start_time == RT(board.audio.offset.to_frames(24), 24)
        assert clip.source_range.duration == RT(p.total_frames, 24)  # trimmed to the film
        meta = clip.metadata["composer"]
        assert meta["volume"] == board.audio.volume and meta["offset"] == str(board.audio.offset)
        assert Path(otio.url_utils.filepath_from_url(clip.media_reference.target_url)) == \
            board.resolve(board.audio.file).resolve()
    silent = loads("version: 1\nscenes:\n  - {id: a, duration: 2s, prompt: p}\n")
    assert not list(export_timeline(plan(silent), silent, "a.mp4").audio_tracks())


@pytest.mark.parametrize("suffix", [".edl", ".xml", ".fcpxml"])
def test_editor_formats_write_and_read_back(harbour, tmp_path: Path, suffix: str) -> None:
    board, p = harbour
    back = written_and_read(export_timeline(p, board, "harbour.mp4"), tmp_path / f"film{suffix}")
    (video,) = list(back.video_tracks())
    got = list(video.find_clips())
    assert len(got) == len(p.scenes)
    assert [c.name for c in got] == [s.id for s in p.scenes]
    assert [c.source_range.duration.value_rescaled_to(24) for c in got] == [s.end_frame - s.start_frame for s in p.scenes]
    if suffix != ".edl":  # an EDL holds one video track; both XML formats carry the audio
        (audio,) = list(back.audio_tracks())
        assert [c.source_range.duration.value_rescaled_to(24) for c in audio.find_clips()] == [p.total_frames]
    # and it imports as a storyboard skeleton with the same scenes and lengths (an EDL upper-cases
    # marker text, so its image paths are not checked against the disk here)
    again, _ = timeline_to_storyboard(back, relative_to=HARBOUR.parent)
    assert [(s.id, s.duration.to_frames(24)) for s in again.scenes] == \
        [(s.id, s.end_frame - s.start_frame) for s in p.scenes]


def test_cli_export_picks_the_format_by_suffix(tmp_path: Path) -> None:
    (edl,) = composer(["export", str(HARBOUR), "--otio", "film.edl"], cwd=tmp_path)
    assert edl.returncode == 0, edl.stderr
    text = (tmp_path / "film.edl").read_text()
    assert text.startswith("TITLE: Harbour") and "* FROM CLIP NAME:  dawn" in text


@pytest.mark.parametrize("name", ["quickstart", "vertical", "harbour"])
@pytest.mark.parametrize("per_chain", [False, True])
def test_keyframe_times_come_back_as_written(tmp_path: Path, name: str, per_chain: bool) -> None:
    path = ROOT / "storyboards" / f"{name}.yaml"
    board = load(path)
    p = plan(board)
    tl = (export_per_chain(p, board, {c.index: f"c{c.index}.mp4" for c in p.chains}) if per_chain
          else export_timeline(p, board, "film.mp4"))
    write_otio(tl, tmp_path / "film.otio")
    again = loads(import_timeline(tmp_path / "film.otio", relative_to=path.parent), base_dir=path.parent)
    # `at: 1s` stays `1s`, not the frame the segment grid snapped it to
    assert [[str(k.at) for k in s.keyframes] for s in again.scenes] == \
        [[str(k.at) for k in s.keyframes] for s in board.scenes]


def test_a_keyframe_trimmed_away_is_reported(harbour, tmp_path: Path) -> None:
    board, p = harbour
    tl = export_timeline(p, board, "harbour.mp4")
    sid, kf = next((s.id, s.keyframes[-1]) for s in board.scenes if s.keyframes and s.keyframes[-1].at.to_frames(24) > 0)
    clip = next(c for c in clips(tl) if c.name == sid)
    clip.source_range = TR(clip.source_range.start_time, RT(kf.at.to_frames(24), 24))  # the tail up to the keyframe cut
    write_otio(tl, tmp_path / "cut.otio")
    warnings: list[str] = []
    again = loads(import_timeline(tmp_path / "cut.otio", relative_to=HARBOUR.parent, warnings=warnings),
                  base_dir=HARBOUR.parent)
    assert warnings == [f"scene '{sid}': keyframe {kf.image} at {kf.at} falls outside the clip "
                        f"({kf.at.to_frames(24)} frames after the edit); not placed"]
    assert len(again.scene(sid).keyframes) == len(board.scene(sid).keyframes) - 1
    (cli,) = composer(["import", "cut.otio", "-o", "board.yaml"], cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert f"warning: scene '{sid}': keyframe {kf.image} at {kf.at}" in cli.stderr
