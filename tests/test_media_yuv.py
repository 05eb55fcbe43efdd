"""composer.media in yuv420p mode: I420 frames out of VideoReader and into VideoWriter."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from composer.media import VideoReader, VideoWriter, ffmpeg_cmd, probe, read_frames, write_clip
from composer.yuv import i420_to_rgb, rgb_to_i420

W, H, N = 320, 240, 12


def make_frames(n: int = N, w: int = W, h: int = H) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w]
    frames = []
    for i in range(n):
        f = np.empty((h, w, 3), np.uint8)
        f[..., 0] = (xx * 200 // w + i * 3) % 256
        f[..., 1] = (yy * 180 // h + 40) % 256
        f[..., 2] = 60 + (i * 5) % 150
        f[60:120, 10 + i * 6 : 60 + i * 6] = (240, 240, 40)
        frames.append(f)
    return frames


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return make_frames()


@pytest.fixture(scope="module")
def clip(tmp_path_factory, frames) -> Path:
    path = tmp_path_factory.mktemp("yuv") / "clip.mp4"
    write_clip(frames, path, 24)
    return path


def reencode(src: Path, dst: Path, *vf_and_tags: str) -> Path:
    subprocess.run(
        ffmpeg_cmd("-v", "error", "-y", "-i", str(src), *vf_and_tags, "-c:v", "libx264", "-crf", "4", str(dst)),
        check=True,
    )
    return dst


# --------------------------------------------------------------------------- reader


def test_reader_yuv420p_passes_bt709_frames_through_in_i420_layout(clip):
    reader = VideoReader(clip, pix_fmt="yuv420p")
    assert "-vf" not in reader.command()  # already yuv420p BT.709 tv: no conversion at all
    frames = list(reader)
    assert len(frames) == N
    assert all(f.shape == (H * 3 // 2, W) and f.dtype == np.uint8 and f.flags.c_contiguous for f in frames)
    y = frames[0][:H]
    assert y.min() >= 16 and y.max() <= 235 + 4  # limited-range luma codes


def test_reader_yuv420p_decodes_to_the_rgb24_colours(clip):
    rgb = read_frames(clip)
    yuv = read_frames(clip, pix_fmt="yuv420p")
    for a, b in zip(rgb, yuv):
        assert mean_abs(a, i420_to_rgb(b)) < 0.8


def test_read_frames_yuv420p_ranges_are_frame_exact(clip):
    full = read_frames(clip, pix_fmt="yuv420p")
    part = read_frames(clip, 5, 3, pix_fmt="yuv420p")
    assert len(part) == 3 and all(np.array_equal(a, b) for a, b in zip(part, full[5:8]))
    assert np.array_equal(read_frames(clip, -1, pix_fmt="yuv420p")[0], full[-1])


def test_reader_yuv420p_scales(clip):
    reader = VideoReader(clip, size=(160, 120), pix_fmt="yuv420p")
    assert "zscale" in " ".join(reader.command())
    small = list(reader)
    assert small[0].shape == (180, 160)
    want = read_frames(clip, size=(160, 120))[0]
    assert mean_abs(i420_to_rgb(small[0]), want) < 1.5


@pytest.mark.parametrize(
    ("name", "args", "matrix_in"),
    [
        ("bt601", ("-vf", "scale=out_color_matrix=bt601:out_range=tv", "-colorspace", "bt470bg"), "470bg"),
        ("untagged", ("-vf", "scale=out_color_matrix=bt601:out_range=tv,"
                      "setparams=colorspace=unknown:range=unknown:color_primaries=unknown:color_trc=unknown"),
         "170m:rin=limited"),  # untagged is taken as BT.601 limited, as for rgb24
        ("full", ("-vf", "scale=out_color_matrix=bt709:out_range=pc", "-colorspace", "bt709", "-color_range", "pc"),
         "709:rin=full"),
    ],
)  # fmt: skip
def test_reader_yuv420p_converts_other_matrices_and_ranges_to_bt709_tv(tmp_path, clip, frames, name, args, matrix_in):
    src = reencode(clip, tmp_path / f"{name}.mp4", *args)
    reader = VideoReader(src, pix_fmt="yuv420p")
    assert (reader.info.color_matrix is None) == (name == "untagged")
    assert f"zscale=min={matrix_in}" in " ".join(reader.command())
    got = list(reader)
    rgb = read_frames(src)
    for i in (0, N - 1):
        assert mean_abs(i420_to_rgb(got[i]), rgb[i]) < 1.0  # same colours as the rgb24 decode
        assert mean_abs(i420_to_rgb(got[i]), frames[i]) < 2.5  # and as the source


def test_odd_sizes_are_refused_for_yuv420p(tmp_path, clip):
    with pytest.raises(ValueError, match="even"):
        VideoReader(clip, size=(161, 120), pix_fmt="yuv420p")
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "x.mov", 321, 240, 24, codec="prores", input_pix_fmt="yuv420p")


# --------------------------------------------------------------------------- writer


def test_writer_yuv420p_input_is_encoded_untouched(tmp_path, frames):
    """Lossless x264 from I420 input gives back the exact planes: no conversion, no BT.601 guess."""
    bufs = [rgb_to_i420(f) for f in frames[:6]]
    path = tmp_path / "lossless.mp4"
    writer = VideoWriter(path, W, H, 24, crf=0, input_pix_fmt="yuv420p")
    cmd = writer.command()
    assert "-vf" not in cmd
    assert cmd[cmd.index("-i") - 8 : cmd.index("-i")] == [
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
    ]  # fmt: skip
    with writer:
        writer.write_all(bufs)
    info = probe(path)
    assert (info.pix_fmt, info.color_matrix, info.color_range, info.num_frames) == ("yuv420p", "bt709", "tv", 6)
    back = read_frames(path, pix_fmt="yuv420p")
    assert all(np.array_equal(a, b) for a, b in zip(back, bufs))


def test_writer_reader_yuv420p_round_trip_keeps_colour(tmp_path, frames):
    bufs = [rgb_to_i420(f) for f in frames]
    path = tmp_path / "rt.mp4"
    with VideoWriter(path, W, H, 24, input_pix_fmt="yuv420p") as writer:
        writer.write_all(bufs)
    back = read_frames(path, pix_fmt="yuv420p")
    assert len(back) == N
    for i, (a, b) in enumerate(zip(back, bufs)):
        assert mean_abs(a, b) < 1.0, i
        assert mean_abs(read_frames(path, i, 1)[0], frames[i]) < 2.5, i


@pytest.mark.parametrize(("codec", "want_pix"), [("prores", "yuv422p10le"), ("dnxhr", "yuv422p")])
def test_editing_codecs_from_yuv420p_input(tmp_path, frames, codec, want_pix):
    bufs = [rgb_to_i420(f) for f in frames[:4]]
    path = tmp_path / f"{codec}.mov"
    with VideoWriter(path, W, H, 24, codec=codec, input_pix_fmt="yuv420p") as writer:
        writer.write_all(bufs)
    info = probe(path)
    assert (info.pix_fmt, info.color_matrix, info.num_frames) == (want_pix, "bt709", 4)
    ref = tmp_path / f"{codec}-rgb.mov"
    with VideoWriter(ref, W, H, 24, codec=codec) as writer:
        writer.write_all(frames[:4])
    for i in range(4):
        got = read_frames(path, i, 1)[0]
        assert mean_abs(got, i420_to_rgb(bufs[i])) < 1.0
        assert mean_abs(got, read_frames(ref, i, 1)[0]) < 1.5  # the same colours as from RGB input


def test_writer_rejects_rgb_frames_in_yuv420p_mode(tmp_path, frames):
    with VideoWriter(tmp_path / "w.mp4", W, H, 24, input_pix_fmt="yuv420p") as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.write(frames[0])
        writer.write(rgb_to_i420(frames[0]))
    assert probe(tmp_path / "w.mp4").num_frames == 1
