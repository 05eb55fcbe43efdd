"""composer.media: probe, decode, encode, images, audio — against real ffmpeg runs."""
from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from composer.errors import MediaError
from composer.media import (
    VideoReader,
    VideoWriter,
    _proc,
    atomic_output,
    ffmpeg_cmd,
    ffmpeg_exe,
    fit_image,
    load_image,
    mux_audio,
    probe,
    read_frames,
    save_image,
    verify,
    write_clip,
)

W, H, N = 320, 240, 30


def make_frames(n: int = N, w: int = W, h: int = H) -> list[np.ndarray]:
    """Frames that differ from each other: a moving square on a changing, smooth background."""
    frames = []
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        f = np.empty((h, w, 3), np.uint8)
        f[..., 0] = (xx * 200 // w + i * 3) % 256
        f[..., 1] = (yy * 180 // h + 40) % 256
        f[..., 2] = 60 + (i * 5) % 150
        x0 = 10 + i * 6
        f[60:120, x0 : x0 + 50] = (240, 240, 40)
        frames.append(f)
    return frames


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return make_frames()


@pytest.fixture(scope="module")
def clip(tmp_path_factory, frames) -> Path:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    assert write_clip(frames, path, 24) == N
    return path


@pytest.fixture(scope="module")
def tone(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    subprocess.run(
        ffmpeg_cmd("-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=3", str(path)), check=True
    )
    return path


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------- binary and probe


def test_ffmpeg_exe_is_runnable_and_env_override(monkeypatch, tmp_path):
    exe = ffmpeg_exe()
    out = subprocess.run([exe, "-version"], capture_output=True, text=True)
    assert out.returncode == 0 and "ffmpeg version" in out.stdout
    monkeypatch.setenv("COMPOSER_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(MediaError, match="COMPOSER_FFMPEG"):
        ffmpeg_exe()
    monkeypatch.setenv("COMPOSER_FFMPEG", exe)
    assert ffmpeg_exe() == exe


def test_probe_reports_exact_numbers(clip):
    info = probe(clip)
    assert (info.width, info.height) == (W, H)
    assert info.fps == Fraction(24)
    assert info.num_frames == N
    assert info.duration == pytest.approx(N / 24, abs=1e-6)
    assert info.has_audio is False
    assert info.codec == "h264"
    assert info.pix_fmt == "yuv420p"
    assert info.color_matrix == "bt709"


def test_probe_ntsc_rate_is_exact_fraction(tmp_path):
    path = tmp_path / "ntsc.mp4"
    write_clip(make_frames(12, 64, 48), path, Fraction(30000, 1001))
    info = probe(path)
    assert info.fps == Fraction(30000, 1001)
    assert info.num_frames == 12


def test_awkward_file_names(tmp_path):
    """Names ffmpeg could mistake for an option or a protocol are passed safely."""
    for name in ("-dash.mp4", "a:b c.mp4", "ünï cödé.mp4"):
        path = tmp_path / name
        write_clip(make_frames(3, 64, 48), path, 24)
        assert probe(path).num_frames == 3
        assert len(read_frames(path, -2)) == 2


def test_probe_missing_and_non_media_files(tmp_path):
    with pytest.raises(MediaError, match="nope.mp4"):
        probe(tmp_path / "nope.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError, match="notes.mp4"):
        probe(text)
    wav = tmp_path / "silence.wav"
    subprocess.run(ffmpeg_cmd("-v", "error", "-f", "lavfi", "-i", "anullsrc=d=0.2", str(wav)), check=True)
    with pytest.raises(MediaError, match="no video stream"):
        probe(wav)


# --------------------------------------------------------------------------- reader / writer


def test_round_trip_frame_count_and_pixels(clip, frames):
    decoded = read_frames(clip)
    assert len(decoded) == N
    assert decoded[0].shape == (H, W, 3) and decoded[0].dtype == np.uint8
    for i, (got, want) in enumerate(zip(decoded, frames)):
        assert mean_abs(got, want) < 2.5, i
    # each decoded frame is closest to its own source frame (order kept, none dropped)
    for i in (0, 7, 29):
        diffs = [mean_abs(decoded[i], f) for f in frames]
        assert int(np.argmin(diffs)) == i


def test_round_trip_has_no_level_bias(tmp_path):
    """Flat greys come back at the same level (swscale's fast path loses about half a level)."""
    levels = list(range(16, 240, 16))
    path = tmp_path / "greys.mp4"
    write_clip([np.full((48, 64, 3), v, np.uint8) for v in levels], path, 24)
    decoded = read_frames(path)
    errors = [int(f[24, 32, 1]) - v for f, v in zip(decoded, levels)]
    assert max(abs(e) for e in errors) <= 1
    assert abs(np.mean(errors)) < 0.3


def test_reader_scales_and_closes_early(clip):
    with VideoReader(clip, size=(160, 120)) as reader:
        proc = reader._proc
        assert proc is not None
        first = next(iter(reader))
        assert first.shape == (120, 160, 3)
    assert proc.poll() is not None  # ffmpeg is gone after an early exit
    assert len(VideoReader(clip)) == N


def test_read_frames_last_n_equal_full_decode(clip):
    full = read_frames(clip)
    last = read_frames(clip, -9)
    assert len(last) == 9
    assert all(np.array_equal(a, b) for a, b in zip(last, full[-9:]))
    middle = read_frames(clip, 5, 4)
    assert len(middle) == 4
    assert all(np.array_equal(a, b) for a, b in zip(middle, full[5:9]))
    assert read_frames(clip, N - 2, 10) and len(read_frames(clip, N - 2, 10)) == 2


def test_seeking_range_reads_are_frame_exact(tmp_path):
    frames = make_frames(120, 160, 120)
    path = tmp_path / "long.mp4"
    with VideoWriter(path, 160, 120, Fraction(30000, 1001), gop=12) as writer:
        writer.write_all(frames)
    assert probe(path).cfr
    full = read_frames(path)
    for start, count in ((100, 9), (-9, None), (48, 1), (61, 500)):
        part = read_frames(path, start, count)
        want = full[start:] if count is None else full[start : start + count]
        assert len(part) == len(want)
        assert all(np.array_equal(a, b) for a, b in zip(part, want)), (start, count)


def test_truncated_file_raises(tmp_path, clip):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(MediaError, match="cut.mp4"):
        probe(cut)
    with pytest.raises(MediaError, match="cut.mp4"):
        read_frames(cut)


def test_corrupt_payload_raises_on_decode(tmp_path):
    path = tmp_path / "big.mp4"
    write_clip(make_frames(48), path, 24, crf=20)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 4000] = bytes(b ^ 0x5A for b in data[mid : mid + 4000])
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(MediaError, match="bad.mp4"):
        verify(bad)
    with pytest.raises(MediaError, match="bad.mp4"):
        read_frames(bad)


def test_writer_tags_bt709_and_faststart(tmp_path, frames):
    path = tmp_path / "tagged.mp4"
    with VideoWriter(path, W, H, 25) as writer:
        writer.write_all(frames[:10])
    info = probe(path)
    assert info.color_matrix == "bt709" and info.color_range == "tv" and info.fps == 25
    head = path.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and head.find(b"moov") < max(head.find(b"mdat"), 4096)


def test_writer_rejects_wrong_frames_and_reports_encoder_failure(tmp_path, frames):
    writer = VideoWriter(tmp_path / "x.mp4", W, H, 24)
    with pytest.raises(ValueError):
        writer.write(np.zeros((H, W + 2, 3), np.uint8))
    writer.abort()
    with pytest.raises(MediaError, match="missing-dir"), VideoWriter(tmp_path / "missing-dir" / "x.mp4", W, H, 24) as bad:
        for f in frames:
            bad.write(f)


def test_writer_error_inside_block_deletes_output(tmp_path, frames):
    path = tmp_path / "aborted.mp4"
    with pytest.raises(RuntimeError), VideoWriter(path, W, H, 24) as writer:
        writer.write(frames[0])
        raise RuntimeError("boom")
    assert not path.exists()


@pytest.mark.parametrize(("codec", "suffix", "want_codec", "want_pix"), [
    ("prores", ".mov", "prores", "yuv422p10le"),
    ("dnxhr", ".mov", "dnxhd", "yuv422p"),
])  # fmt: skip
def test_editing_codecs(tmp_path, frames, codec, suffix, want_codec, want_pix):
    path = tmp_path / f"edit{suffix}"
    with VideoWriter(path, W, H, 24, codec=codec) as writer:
        writer.write_all(frames[:5])
    info = probe(path)
    assert (info.codec, info.pix_fmt, info.num_frames) == (want_codec, want_pix, 5)
    assert mean_abs(read_frames(path, 2, 1)[0], frames[2]) < 2.0


def test_atomic_output_renames_on_success_and_cleans_on_error(tmp_path):
    final = tmp_path / "film.mp4"
    with atomic_output(final) as tmp:
        assert tmp.parent == final.parent and tmp.suffix == ".mp4" and tmp != final
        tmp.write_bytes(b"data")
    assert final.read_bytes() == b"data"
    with pytest.raises(KeyError), atomic_output(final) as tmp:
        tmp.write_bytes(b"half")
        raise KeyError("x")
    assert final.read_bytes() == b"data"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


# --------------------------------------------------------------------------- images


def test_fit_cover_and_contain():
    img = np.zeros((500, 1200, 3), np.uint8)
    img[:, :60] = (255, 0, 0)  # a red strip on the far left
    img[:, 60:1140] = (0, 200, 0)
    cover = fit_image(img, 848, 480, "cover")
    assert cover.shape == (480, 848, 3)
    assert cover[:, :, 0].max() < 60  # the red strip was cropped away
    assert cover[240, 424, 1] > 150
    contain = fit_image(img, 480, 480, "contain")
    assert contain.shape == (480, 480, 3)
    assert contain[:100].max() == 0 and contain[-100:].max() == 0  # black bars top and bottom
    assert contain[240, 240, 1] > 150
    assert contain[240, 5, 0] > 150  # the whole width is kept, red strip included
    tall = fit_image(np.full((900, 300, 3), 99, np.uint8), 848, 480, "contain")
    assert tall.shape == (480, 848, 3) and tall[:, :200].max() == 0 and tall[240, 424, 0] == 99


def test_image_save_load_and_data_uri(tmp_path):
    import base64

    img = (np.arange(60 * 80 * 3) % 251).astype(np.uint8).reshape(60, 80, 3)
    path = save_image(img, tmp_path / "a.png")
    assert np.array_equal(load_image(path), img)
    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    assert np.array_equal(load_image(uri), img)
    with pytest.raises(MediaError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(MediaError, match="junk.png"):
        load_image(junk)


# --------------------------------------------------------------------------- audio


def test_mux_audio_trims_to_video_duration(tmp_path, clip, tone):
    out = tmp_path / "with_audio.mp4"
    mux_audio(clip, tone, out, offset_s=0.5, fade_in_s=0.1, fade_out_s=0.2, volume=0.5)
    info = probe(out)
    assert info.has_audio and info.audio_codec == "aac"
    assert info.num_frames == N
    assert info.container_duration == pytest.approx(N / 24, abs=0.06)
    # video stream copied, not re-encoded
    assert all(np.array_equal(a, b) for a, b in zip(read_frames(out, 0, 3), read_frames(clip, 0, 3)))


def test_mux_audio_pads_short_audio(tmp_path, clip):
    short = tmp_path / "blip.wav"
    subprocess.run(ffmpeg_cmd("-v", "error", "-f", "lavfi", "-i", "sine=duration=0.3", str(short)), check=True)
    out = tmp_path / "padded.mp4"
    mux_audio(clip, short, out, start_s=0.2)
    info = probe(out)
    assert info.has_audio
    assert info.container_duration == pytest.approx(N / 24, abs=0.06)


def test_mux_audio_rejects_file_without_audio(tmp_path, clip):
    with pytest.raises(MediaError, match="no audio"):
        mux_audio(clip, clip, tmp_path / "o.mp4")


def test_writer_muxes_audio_to_video_length(tmp_path, frames, tone):
    path = tmp_path / "av.mp4"
    with VideoWriter(path, W, H, 24, audio=tone) as writer:
        writer.write_all(frames)
    info = probe(path)
    assert info.has_audio and info.num_frames == N
    assert info.container_duration == pytest.approx(N / 24, abs=0.06)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["av.mp4"]  # no temporary left behind


def test_stop_process_kills_a_stubborn_child():
    proc = subprocess.Popen(ffmpeg_cmd("-v", "error", "-re", "-f", "lavfi", "-i", "testsrc", "-f", "null", "-"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    _proc.stop_process(proc, timeout=2)
    assert proc.poll() is not None


def _run_py(code: str, **env: str) -> str:
    import os
    import sys

    full = {k: v for k, v in os.environ.items() if k != "OPENCV_FOR_THREADS_NUM"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=full).stdout


def test_streaming_runs_opencv_serially_unless_the_user_set_it(tmp_path, clip):
    code = ("import cv2, sys; from composer.media import VideoReader; before = cv2.getNumThreads(); "
            f"n = sum(1 for _ in VideoReader({str(clip)!r}, pix_fmt='yuv420p')); print(before, cv2.getNumThreads(), n)")
    before, after, n = _run_py(code).split()
    assert int(n) == N and int(after) == 1 and int(before) >= 1
    kept = _run_py(code, OPENCV_FOR_THREADS_NUM="2").split()
    assert kept[1] == kept[0]  # the user's setting stands


def test_frame_pipes_are_widened(tmp_path, clip):
    import fcntl

    reader = VideoReader(clip, pix_fmt="yuv420p")
    try:
        assert reader.read() is not None
        assert fcntl.fcntl(reader._proc.stdout.fileno(), fcntl.F_GETPIPE_SZ) == _proc.PIPE_BYTES
    finally:
        reader.close()


def test_single_threaded_decode_gives_the_same_frames(clip):
    one = VideoReader(clip, pix_fmt="yuv420p", threads=1)
    assert one.command()[one.command().index("-threads") + 1] == "1"
    assert "-threads" not in VideoReader(clip, pix_fmt="yuv420p").command()
    a, b = list(one), list(VideoReader(clip, pix_fmt="yuv420p"))
    assert len(a) == len(b) == N and all(np.array_equal(x, y) for x, y in zip(a, b))
