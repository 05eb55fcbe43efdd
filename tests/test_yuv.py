"""composer.yuv: I420 layout, RGB conversions, small copies and colour transforms on the planes."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from composer.colour import ColourTransform
from composer.media import read_frames, write_clip
from composer.yuv import (
    I420Transform,
    _field_planes,
    i420_planes,
    i420_shape,
    i420_size,
    i420_small_rgb,
    i420_to_rgb,
    rgb_to_i420,
)

W, H = 320, 240


def smooth_frame(seed: int, w: int = W, h: int = H, noise: float = 1.0) -> np.ndarray:
    """A natural-ish frame: smooth colour blobs over the whole gamut, a little noise."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.uniform(10, 245, (6, 8, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img += rng.normal(0, noise, (h, w, 3)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16))


def rgb_reference(t: ColourTransform, x: np.ndarray, field: np.ndarray | None, weight: float = 1.0) -> np.ndarray:
    """What the RGB pipeline does: ``t.apply(x) + weight * bilinear(field)``."""
    out = t.apply(x).astype(np.float32)
    if field is not None:
        out += weight * cv2.resize(field, (x.shape[1], x.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


MATRIX = np.array([[1.06, 0.05, -0.03, 4.0], [0.03, 0.93, 0.05, -3.0], [-0.04, 0.07, 1.09, 2.0]])
CURVES = np.clip(255.0 * (np.arange(256) / 255.0)[None, :] ** np.array([[0.9], [1.0], [1.1]]), 0, 255)
TRANSFORMS = {
    "identity": ColourTransform(),
    "gain": ColourTransform.affine(np.eye(3) * 1.08),  # grey-preserving: no Cb/Cr into Y'
    "diagonal": ColourTransform.affine(np.hstack([np.diag([1.1, 0.95, 0.9]), [[3.0], [-2.0], [5.0]]])),
    "matrix": ColourTransform.affine(MATRIX),
    "mixing": ColourTransform.affine(np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5]])),
    "curves": ColourTransform(matrix=MATRIX, post=CURVES),
    "pre-curves": ColourTransform(pre=CURVES),
}
FIELD = np.random.default_rng(7).normal(0.0, 5.0, (9, 16, 3)).astype(np.float32)


# --------------------------------------------------------------------------- layout


def test_layout_is_ffmpeg_i420_with_bt709_limited_codes():
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[:, :, 0] = 255  # pure red: BT.709 limited Y'CbCr (63, 102, 240)
    rgb[:2, :2] = 255  # a white 2x2 block (235, 128, 128)
    buf = rgb_to_i420(rgb)
    assert buf.shape == i420_shape(6, 4) == (6, 6) and buf.dtype == np.uint8 and buf.flags.c_contiguous
    assert i420_size(buf) == (6, 4)
    y, u, v = i420_planes(buf)
    assert y.shape == (4, 6) and u.shape == v.shape == (2, 3)
    flat = buf.reshape(-1)
    assert np.shares_memory(y, buf) and np.shares_memory(u, buf) and np.shares_memory(v, buf)
    assert u[0, 0] == flat[24] and v[0, 0] == flat[24 + 6]  # Y(24) then U(6) then V(6)
    assert y[0, 0] == 235 and (u[0, 0], v[0, 0]) == (128, 128)
    assert y[3, 5] == 63 and (u[1, 2], v[1, 2]) == (102, 240)


def test_greys_map_to_limited_range_and_back_exactly():
    levels = np.arange(256, dtype=np.uint8)
    rgb = np.repeat(np.repeat(levels.reshape(16, 16, 1), 3, axis=2), 2, axis=0).repeat(2, axis=1)
    buf = rgb_to_i420(rgb)
    y, u, v = i420_planes(buf)
    assert y.min() == 16 and y.max() == 235
    assert np.all(u == 128) and np.all(v == 128)
    back = i420_to_rgb(buf)
    assert diff(back, rgb).max() <= 1  # 256 levels through 220 codes


def test_odd_sizes_and_bad_arrays_are_refused():
    with pytest.raises(ValueError, match="even"):
        rgb_to_i420(np.zeros((5, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="even"):
        i420_shape(7, 4)
    with pytest.raises(ValueError):
        i420_to_rgb(np.zeros((6, 6), np.float32))
    with pytest.raises(ValueError):
        i420_planes(np.zeros((7, 6), np.uint8))  # rows not a multiple of 3
    with pytest.raises(ValueError):
        I420Transform(ColourTransform(), np.zeros((9, 16), np.float32))


def test_rgb_round_trip_is_close_on_smooth_frames():
    x = smooth_frame(1)
    d = diff(i420_to_rgb(rgb_to_i420(x)), x)
    assert d.mean() < 1.0 and np.percentile(d, 99) <= 3


def test_i420_to_rgb_matches_the_zscale_decode(tmp_path):
    """The same file decoded to rgb24 by ffmpeg (zscale) and to yuv420p + i420_to_rgb."""
    frames = [smooth_frame(i, noise=2.0) for i in range(3)]
    frames[1][60:120, 100:160] = (240, 240, 40)  # a sharp edge: chroma siting shows there
    path = tmp_path / "c.mp4"
    write_clip(frames, path, 24)
    rgb = read_frames(path)
    yuv = read_frames(path, pix_fmt="yuv420p")
    assert len(rgb) == len(yuv) == 3
    for a, b in zip(rgb, yuv):
        d = diff(a, i420_to_rgb(b))
        assert d.mean() < 1.0 and np.percentile(d, 99) <= 2, (d.mean(), np.percentile(d, 99))
        assert abs(float(a.astype(np.float32).mean() - i420_to_rgb(b).astype(np.float32).mean())) < 0.3  # no bias


def _small(rgb: np.ndarray) -> np.ndarray:
    """The full frame area-shrunk to 256 wide: what fitting used before frames stayed I420."""
    return cv2.resize(rgb, (256, round(rgb.shape[0] * 256 / rgb.shape[1])), interpolation=cv2.INTER_AREA)


def test_small_rgb_agrees_with_small_of_the_full_frame():
    x = smooth_frame(2, 1280, 720, noise=3.0)
    buf = rgb_to_i420(x)
    small = i420_small_rgb(buf)
    assert small.shape == (144, 256, 3)
    assert diff(small, _small(i420_to_rgb(buf))).mean() < 1.0
    assert diff(small, _small(x)).mean() < 1.5
    tiny = rgb_to_i420(smooth_frame(3, 128, 72))
    assert np.array_equal(i420_small_rgb(tiny), i420_to_rgb(tiny))  # narrower than width: as is, like _small


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("with_field", [False, True], ids=["plain", "field"])
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_matches_the_rgb_path(name, with_field):
    t = TRANSFORMS[name]
    field = FIELD if with_field else None
    x = smooth_frame(4)
    buf = rgb_to_i420(x)
    before = buf.copy()
    got = i420_to_rgb(I420Transform(t, field).apply(buf))
    want = rgb_reference(t, x, field)
    d = diff(got, want)
    # the input's own 4:2:0 loss is ~0.8 of this mean; a wrong matrix or field sign gives several levels
    assert d.mean() < 1.3 and np.percentile(d, 99) <= 5 and d.max() <= 14, (d.mean(), d.max())
    # against the RGB result taken through 4:2:0 once (what encoding it would give), tighter
    assert diff(got, i420_to_rgb(rgb_to_i420(want))).mean() < 1.0
    assert np.array_equal(buf, before)  # the input is never written


def test_transform_clips_like_rgb_on_bright_frames_for_seam_sized_gains():
    """Channels pushed past 255 clip as in RGB (the decoder clips): 5% of values clip here.
    (Far past white, where Y' itself passes code 255, the YUV path cannot: a known limit.)"""
    x = smooth_frame(5)
    x[:, : W // 2] = np.clip(x[:, : W // 2].astype(np.int16) + 25, 0, 255).astype(np.uint8)
    t = ColourTransform.affine(np.hstack([np.diag([1.08, 1.05, 1.03]), [[3.0], [0.0], [-2.0]]]))
    want = t.apply(x)
    assert (want == 255).mean() > 0.03
    d = diff(i420_to_rgb(I420Transform(t).apply(rgb_to_i420(x))), want)
    assert d.mean() < 1.2 and np.percentile(d, 99) <= 5 and d.max() <= 10


def test_identity_without_field_returns_the_input_itself():
    buf = rgb_to_i420(smooth_frame(6))
    assert I420Transform(ColourTransform()).apply(buf) is buf
    assert I420Transform(ColourTransform(), FIELD, field_weight=0.0).apply(buf) is buf
    assert I420Transform(ColourTransform(), np.zeros((9, 16, 3), np.float32)).apply(buf) is buf
    assert I420Transform(ColourTransform(), FIELD).apply(buf) is not buf
    assert I420Transform(TRANSFORMS["matrix"]).apply(buf) is not buf


def test_field_weight_ramps_the_field():
    x = smooth_frame(8)
    buf = rgb_to_i420(x)
    field = np.full((3, 4, 3), (8.0, -6.0, 4.0), np.float32)
    tr = I420Transform(TRANSFORMS["matrix"], field)
    for weight in (0.0, 0.25, 0.5, 1.0):
        got = i420_to_rgb(tr.apply(buf, field_weight=weight))
        want = rgb_reference(TRANSFORMS["matrix"], x, field, weight)
        assert diff(got, want).mean() < 1.2, weight
    means = [i420_to_rgb(tr.apply(buf, field_weight=w)).astype(np.float32).mean(axis=(0, 1)) for w in (0.0, 1.0)]
    assert np.allclose(means[1] - means[0], (8.0, -6.0, 4.0), atol=0.6)
    assert np.array_equal(tr.apply(buf, field_weight=0.5), I420Transform(TRANSFORMS["matrix"], field, 0.5).apply(buf))


def test_field_planes_are_prepared_once_per_field_and_size():
    _field_planes.cache_clear()
    buf = rgb_to_i420(smooth_frame(9))
    for _ in range(3):  # one I420Transform per frame, as a ramped segment builds them
        I420Transform(TRANSFORMS["diagonal"], FIELD.copy()).apply(buf)
    info = _field_planes.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_large_fields_keep_their_size():
    """A field far beyond ±16 levels (the finest step's reach) is scaled down, not clipped."""
    x = np.full((H, W, 3), 100, np.uint8)
    field = np.full((2, 2, 3), (90.0, -80.0, 60.0), np.float32)
    got = i420_to_rgb(I420Transform(ColourTransform(), field).apply(rgb_to_i420(x)))
    assert diff(got, rgb_reference(ColourTransform(), x, field)).max() <= 2
