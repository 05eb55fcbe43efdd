"""Issue 13's partial renders: scenes that are not adjacent written alone and joined by cuts,
the film's audio as is, a timeline of what was written, a quiet Ctrl-C, errors naming what
the user gave."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import composer
from composer.errors import ComposerError, MediaError
from composer.media import VideoReader, ffmpeg_exe, probe
from composer.rendering.pipeline import part_ranges

RATE = 48000
BOARD = """\
version: 1
audio: {file: noise.wav, fade_in: 1s, fade_out: 1s}
output: {resolution: 480p, fps: 8}
defaults: {segment: {frames: 17, overlap: 9}}
scenes:
  - {id: red, duration: 2s, prompt: red}
  - {id: green, duration: 2s, prompt: green}
  - {id: blue, duration: 2s, prompt: blue, transition: continue}
  - {id: magenta, duration: 2s, prompt: magenta}
"""
FPS, TOTAL = 8, 64  # four 2 s scenes


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The board with a steady noise soundtrack (made by ffmpeg), its whole film rendered once
    into a cache the parts then reuse."""
    folder = tmp_path_factory.mktemp("partial")
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"anoisesrc=d=12:c=white:a=0.3:r={RATE}:seed=7",
                    "-ac", "1", str(folder / "noise.wav")], check=True)
    board = folder / "board.yaml"
    board.write_text(BOARD, encoding="utf-8")
    cache = folder / "cache"
    whole = composer.render(board, folder / "whole.mp4", cache=cache, review=False)
    return {"folder": folder, "board": board, "cache": cache, "whole": whole.output}


def frames_of(path: Path) -> np.ndarray:
    with VideoReader(path) as reader:
        return np.stack(list(reader)).astype(np.int16)


def pcm(path: Path) -> np.ndarray:
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", str(RATE),
                          "-f", "f32le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).astype(np.float64)


def rms(samples: np.ndarray, start_s: float, end_s: float) -> float:
    return float(np.sqrt(np.mean(samples[round(start_s * RATE):round(end_s * RATE)] ** 2)))


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "composer", *args], capture_output=True, text=True, cwd=cwd)


def test_scenes_merge_into_ranges_in_film_order(film):
    p = composer.plan(composer.load(film["board"]))
    assert part_ranges(p, ["magenta", "red"], None) == [(0, 16), (48, 64)]
    assert part_ranges(p, ["blue", "green", "green"], None) == [(16, 48)]  # adjacent: one range
    assert part_ranges(p, ["red", "magenta"], (8, 56)) == [(8, 16), (48, 56)]  # --range intersects
    assert part_ranges(p, None, (8, 200)) == [(8, 64)]
    assert part_ranges(p, None, None) is None
    with pytest.raises(ComposerError, match="selects no frames"):
        part_ranges(p, ["red"], (20, 30))


def test_scenes_apart_are_written_alone_joined_by_a_cut(film):
    folder = film["folder"]
    r = cli("render", "board.yaml", "-o", "part.mp4", "--scene", "magenta", "--scene", "red", "--cache-dir", "cache",
            cwd=folder)
    assert r.returncode == 0, r.stderr
    assert "(32 frames of the film's 64 in 2 pieces joined by cuts, 00:00:04.000)" in r.stdout
    part, whole = frames_of(folder / "part.mp4"), frames_of(film["whole"])
    assert len(part) == 32
    # the part is the film's own frames 0-15 then 48-63 (re-encoded: a level or two apart at most)
    assert np.abs(part[:16] - whole[:16]).mean() < 2
    assert np.abs(part[16:] - whole[48:]).mean() < 2
    assert np.abs(part[16] - whole[16]).mean() > 10  # not the frames in between
    manifest = json.loads((folder / "part.manifest.json").read_text())
    assert manifest["output"]["range"] == [[0, 16], [48, 64]]
    assert manifest["output"]["ranges"] == [[0, 16], [48, 64]]
    scenes = {s["scene"] for s in manifest["segments"]}
    assert scenes == {"red", "magenta"}  # green and blue were not needed
    # the review page and the seam measures read the part's ranges too
    assert "this file holds film frames 0–16, 48–64" in (folder / "part.review.html").read_text(encoding="utf-8")
    assert any(int(p.stem[1:]) >= 48 for p in (folder / "part.review").glob("f*.jpg"))
    seams = cli("seams", "part.manifest.json", cwd=folder)
    assert seams.returncode == 0, seams.stderr


def test_only_the_segments_the_ranges_need_are_generated(film, tmp_path):
    result = composer.render(film["board"], tmp_path / "part.mp4", cache=tmp_path / "cache",
                             scenes=["red", "magenta"], review=False)
    p = result.plan
    wanted = {s.index for s in p.segments if s.scene in ("red", "magenta")}
    assert set(result.outcomes) == wanted and result.generated == len(wanted)


def test_a_part_carries_the_films_audio_as_is(film, tmp_path):
    """A part's edges are not faded; the storyboard's fades sound at the film's own start and end only."""
    source = pcm(film["folder"] / "noise.wav")
    steady = rms(source, 0, 12)
    out = tmp_path / "green.mp4"
    composer.render(film["board"], out, cache=film["cache"], scenes=["green"], review=False)  # film 2 s - 4 s
    part = pcm(out)
    assert abs(len(part) / RATE - 2.0) < 0.03
    for got, want in [(rms(part, 0, 0.1), rms(source, 2.0, 2.1)), (rms(part, 1.9, 2.0), rms(source, 3.9, 4.0))]:
        assert abs(got - want) < 0.1 * want, (got, want)

    out = tmp_path / "two.mp4"
    composer.render(film["board"], out, cache=film["cache"], scenes=["green", "magenta"], review=False)
    part = pcm(out)  # film 2 s - 4 s, cut, then 6 s - 8 s (the film's end)
    for got, want in [(rms(part, 0, 0.1), rms(source, 2.0, 2.1)), (rms(part, 1.9, 2.0), rms(source, 3.9, 4.0)),
                      (rms(part, 2.0, 2.1), rms(source, 6.0, 6.1))]:
        assert abs(got - want) < 0.1 * want, (got, want)
    assert rms(part, 3.9, 4.0) < 0.2 * steady  # the film's own fade-out is kept

    whole = pcm(film["whole"])
    assert rms(whole, 0, 0.1) < 0.2 * steady and rms(whole, 4, 4.1) > 0.9 * steady


def test_a_part_writes_a_timeline_of_what_it_holds(film, tmp_path):
    import opentimelineio as otio

    out = tmp_path / "part.mp4"
    result = composer.render(film["board"], out, cache=film["cache"], scenes=["magenta", "green"],
                             frame_range="3s-8s", review=False)  # green 3 s - 4 s, magenta 6 s - 8 s
    assert result.assembly["ranges"] == [[24, 32], [48, 64]]
    timeline = otio.adapters.read_from_file(str(out.with_suffix(".otio")))
    video = timeline.video_tracks()[0]
    clips = list(video.find_clips())
    assert [c.name for c in clips] == ["green", "magenta"]
    assert [(c.source_range.start_time.to_frames(), c.source_range.duration.to_frames()) for c in clips] == \
        [(0, 8), (8, 16)]  # the part's own time, from 0
    assert {c.media_reference.target_url for c in clips} == {"part.mp4"}
    assert video.duration().to_frames() == probe(out).num_frames == 24
    assert [list(c.metadata["composer"]["film_range"]) for c in clips] == [[24, 32], [48, 64]]
    audio = list(timeline.audio_tracks()[0].find_clips())
    assert [(c.source_range.start_time.to_frames(), c.source_range.duration.to_frames()) for c in audio] == \
        [(24, 8), (48, 16)]  # the soundtrack under those film frames
    assert timeline.audio_tracks()[0].duration().to_frames() == 24
    assert [list(r) for r in timeline.metadata["composer"]["ranges"]] == [[24, 32], [48, 64]]


def test_an_encoder_failure_names_the_users_output(film, tmp_path):
    from composer.assemble import assemble

    result = composer.render(film["board"], tmp_path / "ok.mp4", cache=film["cache"], review=False)
    videos = {i: o.video for i, o in result.outcomes.items()}
    out = tmp_path / "film.mp4"
    with pytest.raises(MediaError) as info:  # libx264 refuses the preset when it opens
        assemble(result.plan, videos, out, board=composer.load(film["board"]), preset="no-such-preset")
    message = str(info.value)
    assert str(out) in message and ".partial-" not in message and "encod" in message, message
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_a_clip_broken_during_assembly_names_the_output_and_the_segment(film, tmp_path):
    import shutil

    from composer.events import AssemblyProgress

    cache = tmp_path / "cache"
    shutil.copytree(film["cache"], cache)
    result = composer.render(film["board"], tmp_path / "ok.mp4", cache=cache, review=False)
    last = result.plan.segments[-1]
    clip = result.outcomes[last.index].video
    broken = []

    def on_event(event):
        if isinstance(event, AssemblyProgress) and not broken:  # the last chain is not read yet
            clip.write_bytes(clip.read_bytes()[:2000])
            broken.append(clip)

    out = tmp_path / "film.mp4"
    # the film's encoded pieces would be taken as they are, never reading the clip: without them the
    # assembly reads every clip again
    shutil.rmtree(cache / "pieces")
    with pytest.raises(MediaError) as info:
        composer.render(film["board"], out, cache=cache, review=False, on_event=on_event)
    message = str(info.value)
    assert broken and message.startswith(f"{out}: not written: {last.label}: "), message
    assert ".partial-" not in message and "run-" not in message and str(clip) not in message


LONG = """\
version: 1
output: {resolution: 480p, fps: 24}
scenes:
  - {id: a, duration: 8s, prompt: red}
  - {id: b, duration: 8s, prompt: green}
  - {id: c, duration: 8s, prompt: blue}
"""


def test_ctrl_c_prints_one_line_and_the_same_command_resumes(tmp_path):
    (tmp_path / "long.yaml").write_text(LONG, encoding="utf-8")
    args = ["render", "long.yaml", "-o", "long.mp4", "--cache-dir", "cache", "--no-review"]
    # its own process group, as a terminal's Ctrl-C reaches composer and every child it started
    proc = subprocess.Popen([sys.executable, "-m", "composer", *args], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("cache/segments/*/*/meta.json")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no segment reached the cache"
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[0]
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, out
    for temporary in (".partial-", "/tmp/", "run-", "FAILED", "Traceback"):
        assert temporary not in out, out
    lines = [line for line in out.splitlines() if "safe in the cache" in line]
    assert len(lines) == 1, out
    said = re.fullmatch(r"interrupted: (\d+) of 6 segments are safe in the cache; resume with: composer (.+)", lines[0])
    assert said and said.group(2) == " ".join(args), lines[0]
    assert out.strip().splitlines()[-1] == lines[0]  # nothing after it
    safe = int(said.group(1))
    assert safe >= 1 and not list(tmp_path.glob(".long.mp4.partial-*"))

    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    cached = int(re.search(r"(\d+) from cache", again.stdout).group(1))
    assert cached >= safe and probe(tmp_path / "long.mp4").num_frames == 24 * 24
