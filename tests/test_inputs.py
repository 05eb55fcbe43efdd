"""Hostile and broken input: each class is refused at its place in the storyboard, in one line, quickly.

Media is made on the spot (real PNG/JPEG bytes, ffmpeg-made video, FIFOs); odd
but valid images (16-bit, grayscale, alpha, CMYK) are rendered and their pixels
looked for in the film.
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from composer.errors import MediaError, PlanError, StoryboardError
from composer.media import ffmpeg_exe, load_image, read_frames
from composer.media.image import image_header
from composer.metrics import frame_delta_e
from composer.planner import segment_lengths
from composer.storyboard import load, loads
from composer.storyboard.limits import Limits

HEAD = "version: 1\noutput: {resolution: 480p, aspect_ratio: 16:9, fps: 12}\n"
SCENE = "scenes:\n  - id: a\n    duration: 2s\n    prompt: x\n"


def keyframe_board(image: str) -> str:
    # the image value sits on line 8, column 25
    return HEAD + SCENE + f"    keyframes:\n      - {{at: 0s, image: {image}}}\n"


def audio_board(file: str) -> str:
    # the audio value sits on line 2, column 8
    return "version: 1\naudio: " + file + "\n" + "output: {resolution: 480p, fps: 12}\n" + SCENE


def png_bytes(width: int, height: int, rows: bytes | None = None) -> bytes:
    """A PNG written by hand, so the header can claim any size without the pixels to match."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows or b"")) + chunk(b"IEND", b"")


def problem_of(path: Path) -> tuple[int, int, str]:
    with pytest.raises(StoryboardError) as info:
        load(path)
    problems = info.value.problems
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert p.location.file == str(path)
    return p.location.line, p.location.col, p.message


@pytest.fixture
def media(board_dir: Path) -> Path:
    """Broken and special files beside the boards."""
    d = board_dir
    (d / "folder.png").mkdir()
    os.mkfifo(d / "pipe.png")
    os.mkfifo(d / "pipe.wav")
    (d / "empty.png").write_bytes(b"")
    (d / "empty.wav").write_bytes(b"")
    (d / "text.png").write_text("hello, I am a text file\n")
    _, buf = cv2.imencode(".png", np.full((40, 60, 3), 90, np.uint8))
    (d / "cut.png").write_bytes(buf.tobytes()[: len(buf) // 2])
    _, buf = cv2.imencode(".jpg", np.full((40, 60, 3), 90, np.uint8))
    (d / "cut.jpg").write_bytes(buf.tobytes()[: len(buf) * 2 // 3])
    (d / "huge.png").write_bytes(png_bytes(20000, 20000))
    (d / "noise.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(256)) * 8)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=64x48:d=1", "-pix_fmt", "yuv420p",
                    str(d / "silent.mp4")], check=True)
    return d


KEYFRAME_CASES = [
    ("folder.png", "image folder.png is a directory"),
    ("pipe.png", "image pipe.png is a named pipe (FIFO)"),
    ("/dev/zero", "image /dev/zero is a device"),
    ("empty.png", "image empty.png is empty (0 bytes)"),
    ("text.png", "not an image (a text file starting 'hello, I am a text file')"),
    ("cut.png", "truncated PNG"),
    ("cut.jpg", "truncated JPEG"),
    ("huge.png", "image is 20000×20000; keyframes may be up to 16384 pixels a side"),
    ("x" * 3000 + ".png", "path too long for the filesystem"),
    ("missing.png", "image not found: missing.png"),
]


@pytest.mark.parametrize("image, fragment", KEYFRAME_CASES, ids=[c[0][:12] for c in KEYFRAME_CASES])
def test_bad_keyframe_image_is_located(media, write_board, image, fragment):
    line, col, message = problem_of(write_board(keyframe_board(image)))
    assert (line, col) == (8, 25)
    assert message.startswith("scene 'a': ")
    assert fragment in message


AUDIO_CASES = [
    ("folder.png", "audio file folder.png is a directory"),
    ("pipe.wav", "audio file pipe.wav is a named pipe (FIFO)"),
    ("/dev/zero", "audio file /dev/zero is a device"),
    ("empty.wav", "audio file empty.wav is empty (0 bytes)"),
    ("noise.wav", "audio file noise.wav: not a readable audio file"),
    ("silent.mp4", "audio file silent.mp4: is a video file with no audio stream"),
    ("text.png", "audio file text.png: not audio (a text file)"),
    ("images/a.png", "audio file images/a.png: is an image, not audio"),
    ("y" * 3000 + ".wav", "path too long for the filesystem"),
]


@pytest.mark.parametrize("file, fragment", AUDIO_CASES, ids=[c[0][:12] for c in AUDIO_CASES])
def test_bad_audio_is_located(media, write_board, file, fragment):
    line, col, message = problem_of(write_board(audio_board(file)))
    assert (line, col) == (2, 8)
    assert fragment in message


def test_good_audio_passes(write_board):
    board = load(write_board(audio_board("audio/tone.wav")))
    assert board.audio is not None and board.audio.file == "audio/tone.wav"


def test_huge_image_header_is_refused_from_its_first_bytes():
    # 20000×20000 RGB would be 1.2 GB decoded; the header alone is 57 bytes here
    data = png_bytes(20000, 20000)
    assert len(data) < 100
    with pytest.raises(MediaError, match="20000×20000"):
        load_image(data)


def test_header_reads_sizes_of_each_format(tmp_path):
    img = np.zeros((30, 50, 3), np.uint8)
    for ext in (".png", ".jpg", ".webp", ".bmp", ".tiff"):
        ok, buf = cv2.imencode(ext, img)
        assert ok
        header = image_header(buf.tobytes())
        assert (header.width, header.height) == (50, 30), ext


def test_extreme_aspect_image_fits_without_a_giant_intermediate():
    strip = np.zeros((2, 16000, 3), np.uint8)
    strip[:, 7999:8001] = 255  # a white mark at the centre
    from composer.media import fit_image

    out = fit_image(strip, 848, 480, "cover")
    assert out.shape == (480, 848, 3)
    assert out[:, 424].mean() > 200 and out[:, 0].mean() < 60


# ---------------------------------------------------------------- the storyboard file itself


def test_board_larger_than_the_cap(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + SCENE + "# " + "x" * 2000 + "\n")
    with pytest.raises(StoryboardError) as info:
        load(path, limits=Limits(max_bytes=1000))
    assert str(info.value).startswith(f"{path}:1:1: file is ")
    assert "COMPOSER_MAX_BOARD_BYTES" in str(info.value)


def test_board_size_cap_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "big.yaml"
    path.write_text(HEAD + SCENE + "# " + "x" * 2000 + "\n")
    monkeypatch.setenv("COMPOSER_MAX_BOARD_BYTES", "1000")
    with pytest.raises(StoryboardError, match="limited to 1000"):
        load(path)
    monkeypatch.setenv("COMPOSER_MAX_BOARD_BYTES", "100000")
    assert load(path).scenes[0].id == "a"


@pytest.mark.parametrize("special", ["fifo", "dir", "/dev/zero"])
def test_board_that_is_not_a_regular_file(tmp_path, special):
    if special == "fifo":
        path = tmp_path / "board.yaml"
        os.mkfifo(path)  # opening it for reading would block forever
    elif special == "dir":
        path = tmp_path / "board.yaml"
        path.mkdir()
    else:
        path = Path(special)
    with pytest.raises(StoryboardError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}:1:1: ")
    assert "directory" in str(info.value) or "not a regular file" in str(info.value)


def alias_bomb(levels: int = 10) -> str:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n" + SCENE


def test_alias_bomb_stops_at_the_alias_that_crosses_the_limit():
    with pytest.raises(StoryboardError) as info:
        loads(alias_bomb())
    (p,) = info.value.problems
    # a4 stands for 66,430 values: the second *a4 on line 7 takes the count past 200,000
    assert (p.location.line, p.location.col) == (7, 15)
    assert "alias expands the document to more than 200000 values" in p.message


def test_deep_nesting_is_refused_at_the_level_that_crosses_the_limit():
    with pytest.raises(StoryboardError) as info:
        loads("version: 1\ntitle: " + "[" * 40 + "]" * 40 + "\n" + SCENE)
    (p,) = info.value.problems
    assert (p.location.line, p.location.col) == (2, 7 + 32)
    assert "nest more than 32 levels" in p.message


STRUCTURE_CASES = [
    # (text, line, col, fragment)
    (HEAD + SCENE + "<<: {a: 1}\n", 7, 1, "merge keys ('<<') are not supported"),
    ("<<: {a: 1}\n", 1, 1, "merge keys ('<<') are not supported"),
    (HEAD + SCENE + "null: 7\n", 7, 1, "key null is not a string"),
    (HEAD + SCENE + "1.5: 7\n", 7, 1, "key 1.5 is not a string"),
    (HEAD + SCENE + "? [a, b]\n: 7\n", 7, 3, "a key must be text"),
    (HEAD + "title: ok\x07\n" + SCENE, 3, 10, "character U+0007 is not allowed"),
    (HEAD + "defaults: {params: {temporal_adain_factor: null}}\n" + SCENE, 3, 44,
     "defaults.params.temporal_adain_factor is null"),
    (HEAD + SCENE + "    params: {enable_detail_pass: ~}\n", 7, 34, "params.enable_detail_pass is null"),
    (HEAD + "scenes:\n  - {id: a, duration: 1:5, prompt: x}\n", 4, 23, "did you mean '1:05' or '1.5s'?"),
    (HEAD + "Scenes: 1\n" + SCENE, 3, 1, "unknown key 'Scenes'"),
    ("# a comment\n\nversion: 1\n", 3, 1, "missing required key 'scenes'"),
    (HEAD + 'title: "a \\ud800"\n' + SCENE, 3, 8, "lone surrogate"),
    (keyframe_board("~nosuchuser/a.png"), 8, 25, "cannot expand '~'"),
    ("version: 1\noutput: {!!int 3fps: 24}\n" + SCENE, 2, 10, "YAML tag '!!int' is not used in storyboards"),
]


@pytest.mark.parametrize("text, line, col, fragment", STRUCTURE_CASES, ids=[c[3][:30] for c in STRUCTURE_CASES])
def test_structure_problem_is_located(text, line, col, fragment):
    with pytest.raises(StoryboardError) as info:
        loads(text, name="b.yaml")
    str(info.value).encode("utf-8")  # printable, whatever the board held
    p = info.value.problems[0]
    assert fragment in p.message, str(p)
    assert (p.location.line, p.location.col) == (line, col), str(p)


def test_json_surrogate_pairs_are_joined():
    board = loads(HEAD + 'title: "clap \\ud83c\\udfac"\n' + SCENE)
    assert board.title == "clap 🎬"


def test_non_utf8_byte_is_located_by_offset(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes((HEAD + "title: caf").encode() + b"\xe9 au lait\n" + SCENE.encode())
    line, col, message = problem_of(path)
    assert (line, col) == (3, 11)
    assert "not UTF-8 text: byte 0xe9" in message


@pytest.mark.parametrize("duration, shown", [("100h", "100:00:00"), ("1000000000s", "277777:46:40"),
                                             ("9999999999f", "231481:28:53")])
def test_film_length_limit(duration, shown):
    with pytest.raises(StoryboardError) as info:
        loads(HEAD + f"scenes:\n  - {{id: a, duration: {duration}, prompt: x}}\n", name="b.yaml")
    (p,) = info.value.problems
    assert (p.location.line, p.location.col) == (4, 23)
    assert f"the film reaches {shown} here; films are limited to 04:00:00" in p.message


def test_film_length_limit_is_configurable(monkeypatch):
    text = HEAD + "scenes:\n  - {id: a, duration: 5h, prompt: x}\n"
    monkeypatch.setenv("COMPOSER_MAX_FILM", "6h")
    assert loads(text).scenes[0].duration.to_seconds() == 5 * 3600
    with pytest.raises(StoryboardError, match="limited to 00:30:00"):
        loads(text.replace("5h", "31m"), limits=Limits(max_film_seconds=1800))


def test_planner_refuses_unbounded_work():
    with pytest.raises(PlanError, match="plans at most 100000 per chain"):
        segment_lengths(24 * 10**9, 121, 17)


# ---------------------------------------------------------------- odd but valid images render


def _reference() -> np.ndarray:
    y, x = np.mgrid[0:480, 0:848]
    ref = np.zeros((480, 848, 3), np.uint8)
    ref[..., 0] = x * 255 // 847
    ref[..., 1] = y * 255 // 479
    ref[..., 2] = 255 - (x * 255 // 847)
    return ref


def _write_variants(d: Path) -> dict[str, np.ndarray]:
    """Files in unusual formats, each with the RGB picture a film should show for it."""
    ref = _reference()
    bgr = ref[..., ::-1]
    gray = cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY)
    out: dict[str, np.ndarray] = {}
    cv2.imwrite(str(d / "deep.png"), bgr.astype(np.uint16) * 257)
    out["deep.png"] = ref
    cv2.imwrite(str(d / "gray.png"), gray)
    out["gray.png"] = np.dstack([gray] * 3)
    cv2.imwrite(str(d / "alpha.png"), np.dstack([bgr, np.full(gray.shape, 200, np.uint8)]))
    out["alpha.png"] = ref
    image = pytest.importorskip("PIL.Image")
    image.fromarray(ref).convert("CMYK").save(d / "cmyk.jpg", quality=95)
    out["cmyk.jpg"] = ref
    return out


def test_unusual_images_are_converted_and_land_in_the_film(board_dir, write_board, tmp_path):
    from composer.rendering import SegmentCache, render

    wanted = _write_variants(board_dir)
    scenes = "".join(
        f"  - id: s{i}\n    duration: 2s\n    prompt: p{i}\n    keyframes: [{{at: 0s, image: {name}}}]\n"
        for i, name in enumerate(wanted)
    )
    path = write_board("version: 1\noutput: {resolution: 480p, aspect_ratio: 16:9, fps: 12}\n"
                       "defaults: {segment: {frames: 33, overlap: 9}}\nscenes:\n" + scenes)
    result = render(path, tmp_path / "film.mp4", cache=SegmentCache(tmp_path / "cache"))
    frames = read_frames(tmp_path / "film.mp4")
    for i, (name, want) in enumerate(wanted.items()):
        first = i * 24  # each scene is a cut, 2 s at 12 fps; the keyframe is its first frame
        here = frame_delta_e(frames[first][:-40], want[:-40])  # the bottom band holds the caption
        assert here < 4.0, (name, here)
    assert result.plan.total_frames == 24 * len(wanted)


# ---------------------------------------------------------------- the CLI: one line, exit 2, no traceback


CLI_CASES = [
    ("bomb", lambda d: alias_bomb(), "alias expands the document"),
    ("long", lambda d: HEAD + "scenes:\n  - {id: a, duration: 100h, prompt: x}\n", "films are limited to"),
    ("longpath", lambda d: audio_board("z" * 3000 + ".wav"), "path too long"),
    ("dir", lambda d: keyframe_board(str(d / "folder.png")), "is a directory"),
    ("empty", lambda d: keyframe_board("empty.png"), "is empty"),
    ("text", lambda d: keyframe_board("text.png"), "not an image"),
    ("huge", lambda d: keyframe_board("huge.png"), "20000×20000"),
    ("merge", lambda d: "<<: {a: 1}\n", "merge keys"),
    ("nullkey", lambda d: HEAD + SCENE + "null: 7\n", "key null is not a string"),
    ("adain", lambda d: HEAD + "defaults: {params: {temporal_adain_factor: null}}\n" + SCENE, "is null"),
]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, "-m", "composer", *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("name, make, fragment", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_validate_reports_one_line_exit_2(media, write_board, name, make, fragment):
    path = write_board(make(media), f"{name}.yaml")
    proc = _cli("validate", str(path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{path}:") and fragment in lines[0], lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("command", [["plan"], ["render", "-o", "{dir}/film.mp4"]])
def test_cli_plan_and_render_refuse_before_any_work(media, write_board, command):
    path = write_board(keyframe_board("text.png"), "text.yaml")
    proc = _cli(command[0], str(path), *[a.format(dir=media) for a in command[1:]])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"{path}:8:25: scene 'a': image text.png: not an image "
                                                "(a text file starting 'hello, I am a text file'); keyframes may be "
                                                "PNG, JPEG, WebP, GIF, BMP, TIFF or AVIF"]
    assert not (media / "film.mp4").exists()
