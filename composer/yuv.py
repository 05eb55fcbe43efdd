"""Colour work on I420 (yuv420p) frames, BT.709 limited range, without a full RGB frame.

Frames are one contiguous uint8 array of shape ``(H*3//2, W)``: the Y plane (H x W), then
U and V (H/2 x W/2 each), exactly ffmpeg's rawvideo yuv420p layout. Conversions to and from
RGB (0..255 levels), a cheap small RGB copy for fitting, and ``I420Transform``, which applies
a ``ColourTransform`` (+ an optional low-resolution RGB residual field) on the planes.
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import cv2
import numpy as np

from .colour import ColourTransform

__all__ = [
    "RGB_TO_YUV",
    "YUV_TO_RGB",
    "I420Transform",
    "i420_planes",
    "i420_shape",
    "i420_size",
    "i420_small_rgb",
    "i420_to_rgb",
    "rgb_to_i420",
]

_KR, _KB = 0.2126, 0.0722
_KG = 1.0 - _KR - _KB


def _rgb_to_yuv() -> np.ndarray:
    """RGB levels (0..255) → BT.709 8-bit limited-range Y'CbCr codes, 4x4 homogeneous."""
    c = np.eye(4)
    rows = np.array([
        [_KR, _KG, _KB],
        [-_KR / (2 * (1 - _KB)), -_KG / (2 * (1 - _KB)), 0.5],
        [0.5, -_KG / (2 * (1 - _KR)), -_KB / (2 * (1 - _KR))],
    ])  # fmt: skip
    c[:3, :3] = rows * np.array([[219.0], [224.0], [224.0]]) / 255.0
    c[:3, 3] = [16.0, 128.0, 128.0]
    return c


_C = _rgb_to_yuv()
_CI = np.linalg.inv(_C)
RGB_TO_YUV: np.ndarray = _C[:3].copy()  # 3x4, RGB levels → Y'CbCr codes
YUV_TO_RGB: np.ndarray = _CI[:3].copy()  # 3x4, Y'CbCr codes → RGB levels
_RGB2YUV32 = RGB_TO_YUV.astype(np.float32)
_YUV2RGB32 = YUV_TO_RGB.astype(np.float32)
_EPS = 1e-5  # coefficients smaller than this (x 255 levels < 0.003) are dropped


# --------------------------------------------------------------------------- layout


def i420_shape(width: int, height: int) -> tuple[int, int]:
    """The array shape of one I420 frame: ``(height * 3 // 2, width)``; even sizes only."""
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"I420 needs an even width and height, not {width}x{height}")
    return (height * 3 // 2, width)


def i420_size(buf: np.ndarray) -> tuple[int, int]:
    """``(width, height)`` of an I420 frame array (checked)."""
    if buf.dtype != np.uint8 or buf.ndim != 2 or buf.shape[0] % 3:
        raise ValueError(f"expected an I420 uint8 array of shape (H*3//2, W), got {buf.dtype} {buf.shape}")
    width, height = buf.shape[1], buf.shape[0] * 2 // 3
    i420_shape(width, height)
    return width, height


def i420_planes(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (HxW), U and V (H/2 x W/2) planes of a contiguous I420 frame."""
    width, height = i420_size(buf)
    if not buf.flags.c_contiguous:
        raise ValueError("I420 frame must be C-contiguous")
    flat = buf.reshape(-1)
    n = width * height
    q = n // 4
    cw, ch = width // 2, height // 2
    return flat[:n].reshape(height, width), flat[n : n + q].reshape(ch, cw), flat[n + q :].reshape(ch, cw)


def _up(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A chroma plane at full size, bilinear, with MPEG-2/H.264 "left" siting (chroma sample i
    sits on luma column 2i, between rows 2j and 2j+1), as ffmpeg's zscale decodes it."""
    width, height = size
    rows = cv2.resize(plane, (plane.shape[1], height), interpolation=cv2.INTER_LINEAR)  # vertical only
    right = cv2.copyMakeBorder(rows[:, 1:], 0, 0, 0, 1, cv2.BORDER_REPLICATE)
    # even columns are the samples, odd ones the mean of their neighbours: interleave as 2 channels
    return cv2.merge([rows, cv2.addWeighted(rows, 0.5, right, 0.5, 0.0)]).reshape(height, width)


def _down(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A box (area) downscale: centre-sited; cheap."""
    return cv2.resize(plane, size, interpolation=cv2.INTER_AREA)


def _down_left(image: np.ndarray) -> np.ndarray:
    """Half size at left-sited chroma positions: rows 2j, 2j+1 x columns 2i-1, 2i, 2i+1 weighted
    1/4, 1/2, 1/4 (the mean of two 2x2 boxes, one a column to the left)."""
    h, w = image.shape[:2]
    half = (w // 2, h // 2)
    shifted = cv2.copyMakeBorder(image[:, :-1], 0, 0, 1, 0, cv2.BORDER_REPLICATE)
    return cv2.addWeighted(_down(image, half), 0.5, _down(shifted, half), 0.5, 0.0)


# --------------------------------------------------------------------------- conversions


def i420_to_rgb(buf: np.ndarray) -> np.ndarray:
    """An I420 frame (BT.709 limited) as HxWx3 uint8 RGB (chroma upsampled bilinearly, left-sited)."""
    y, u, v = i420_planes(buf)
    size = (y.shape[1], y.shape[0])
    return cv2.transform(cv2.merge([y, _up(u, size), _up(v, size)]), _YUV2RGB32)


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    """An HxWx3 uint8 RGB frame as an I420 frame (BT.709 limited; chroma left-sited, filtered
    1-2-1 across and 1-1 down, as an H.264 decoder places it)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 frame, got {rgb.dtype} {rgb.shape}")
    height, width = rgb.shape[:2]
    out = np.empty(i420_shape(width, height), np.uint8)
    y, u, v = i420_planes(out)
    # 3->3 cv2.transform has a SIMD path; 3->1 does not (several times slower)
    cv2.extractChannel(cv2.transform(rgb, _RGB2YUV32), 0, dst=y)
    _, cu, cv = cv2.split(cv2.transform(_down_left(rgb), _RGB2YUV32))
    np.copyto(u, cu)
    np.copyto(v, cv)
    return out


def i420_small_rgb(buf: np.ndarray, width: int = 256) -> np.ndarray:
    """A small RGB copy (``width`` wide, INTER_AREA, like ``assemble._small`` of the RGB frame),
    made by shrinking the planes first and converting only the small image."""
    y, u, v = i420_planes(buf)
    h, w = y.shape
    if w <= width:
        return i420_to_rgb(buf)
    size = (width, max(1, round(h * width / w)))
    return cv2.transform(cv2.merge([_down(y, size), _down(u, size), _down(v, size)]), _YUV2RGB32)


# --------------------------------------------------------------------------- the transform


class _Field(NamedTuple):
    """A residual field on one frame size: planes holding ``128 + scale * delta`` (uint8)."""

    y_full: np.ndarray  # H x W
    y_half: np.ndarray  # H/2 x W/2 (the Y delta where it meets the chroma term)
    u: np.ndarray  # H/2 x W/2
    v: np.ndarray  # H/2 x W/2
    scale: float
    peak_y: float  # max |Y delta|, levels


@functools.lru_cache(maxsize=8)
def _field_planes(data: bytes, grid: tuple[int, int], width: int, height: int) -> _Field | None:
    """An RGB residual field as Y'CbCr delta planes (C·field, no offset), bilinearly upsampled
    from the grid; None when the field is zero. Cached per (field, frame size)."""
    field = np.frombuffer(data, np.float32).reshape(grid[0], grid[1], 3).astype(np.float64)
    yuv = (field @ _C[:3, :3].T).astype(np.float32)
    full = cv2.resize(yuv[..., 0], (width, height), interpolation=cv2.INTER_LINEAR)
    half = cv2.resize(yuv, (width // 2, height // 2), interpolation=cv2.INTER_LINEAR)
    peak_y = float(np.abs(full).max())
    peak = max(peak_y, float(np.abs(half).max()))
    if peak < 1e-3:
        return None
    scale = min(8.0, 127.0 / peak)  # the finest step that keeps every delta within ±127

    def biased(p: np.ndarray) -> np.ndarray:
        q = np.ascontiguousarray(np.clip(np.rint(128.0 + scale * p), 0, 255).astype(np.uint8))
        q.setflags(write=False)
        return q

    return _Field(biased(full), biased(half[..., 0]), biased(half[..., 1]), biased(half[..., 2]), scale, peak_y)


class I420Transform:
    """A ``ColourTransform`` (RGB, 0..255 levels), then ``field_weight`` x an additive RGB
    residual ``field`` (float32 ``(gh, gw, 3)`` levels, upsampled bilinearly), on I420 frames.

    Matrix-only transforms run as the exact Y'CbCr affine N = C·M·C⁻¹ on the planes (Y′ from
    Y and upsampled Cb/Cr, Cb′/Cr′ from Cb/Cr and a 2x2-mean Y) with uint8 OpenCV calls; the
    field becomes C·field, prepared once per (field, frame size) and added in the same call.
    Transforms with curves go through RGB for the frame. Cheap to build (one per frame is fine).
    """

    def __init__(self, transform: ColourTransform, field: np.ndarray | None = None, field_weight: float = 1.0):
        self.transform = transform
        if field is not None:
            field = np.ascontiguousarray(field, dtype=np.float32)
            if field.ndim != 3 or field.shape[2] != 3 or not np.all(np.isfinite(field)):
                raise ValueError(f"field must be a finite (gh, gw, 3) array, got {field.shape}")
        self.field = field
        self.field_weight = float(field_weight)
        self.uses_curves = transform.pre is not None or transform.post is not None
        m = np.eye(4)
        m[:3] = transform.matrix
        self.yuv_matrix: np.ndarray = (_C @ m @ _CI)[:3]  # 3x4 on Y'CbCr codes

    @property
    def is_identity(self) -> bool:
        return self.transform.is_identity and (self.field is None or self.field_weight == 0.0)

    def _field(self, width: int, height: int) -> _Field | None:
        if self.field is None:
            return None
        f = self.field
        return _field_planes(f.tobytes(), (f.shape[0], f.shape[1]), width, height)

    def apply(self, buf: np.ndarray, field_weight: float | None = None) -> np.ndarray:
        """The transformed I420 frame (a new array; ``buf`` itself when there is nothing to do).

        ``field_weight`` overrides the weight given at construction (a per-frame ramp).
        """
        width, height = i420_size(buf)
        weight = self.field_weight if field_weight is None else float(field_weight)
        prepared = self._field(width, height) if weight != 0.0 else None
        if self.transform.is_identity and prepared is None:
            return buf
        if self.uses_curves:
            out = rgb_to_i420(self.transform.apply(i420_to_rgb(buf)))
            if prepared is not None:
                k = weight / prepared.scale
                for plane, fp in zip(i420_planes(out), (prepared.y_full, prepared.u, prepared.v)):
                    cv2.addWeighted(plane, 1.0, fp, k, -128.0 * k, dst=plane)
            return out
        return self._apply_affine(buf, width, height, weight, prepared)

    def _apply_affine(
        self, buf: np.ndarray, width: int, height: int, weight: float, prepared: _Field | None
    ) -> np.ndarray:
        # Y' = a Y + b U + c V + d (+ w fy); U', V' = rows 1, 2 of N on (2x2-mean Y, U, V) (+ w fu, w fv).
        # b U + c V (+ w fy) is formed at half size as a 128-biased uint8 plane scaled by s, then
        # upsampled once and added to a Y in one addWeighted: a handful of uint8 OpenCV calls.
        y, u, v = i420_planes(buf)
        out = np.empty_like(buf)
        oy, ou, ov = i420_planes(out)
        half = (width // 2, height // 2)
        n = self.yuv_matrix
        a, b, c, d = (float(x) for x in n[0])
        k = 0.0 if prepared is None else weight / prepared.scale  # field planes hold 128 + scale * delta
        chroma_to_y = abs(b) >= _EPS or abs(c) >= _EPS
        uses_y = abs(n[1, 0]) >= _EPS or abs(n[2, 0]) >= _EPS
        first = _down(y, half) if uses_y else u  # channel 0 only feeds rows 1 and 2
        bound = 128.0 * (abs(b) + abs(c)) + (abs(weight) * prepared.peak_y if prepared is not None else 0.0)
        s = min(4.0, 127.0 / bound) if chroma_to_y else 1.0
        rows = np.array(n, dtype=np.float64)
        rows[0] = [0.0, s * b, s * c, 128.0 - 128.0 * s * (b + c)]
        contrib, tu, tv = cv2.split(cv2.transform(cv2.merge([first, u, v]), rows.astype(np.float32)))
        if prepared is not None:
            cv2.addWeighted(tu, 1.0, prepared.u, k, -128.0 * k, dst=ou)
            cv2.addWeighted(tv, 1.0, prepared.v, k, -128.0 * k, dst=ov)
        else:
            np.copyto(ou, tu)
            np.copyto(ov, tv)
        if chroma_to_y:
            if prepared is not None:
                cv2.addWeighted(contrib, 1.0, prepared.y_half, s * k, -128.0 * s * k, dst=contrib)
            up = _up(contrib, (width, height))
            cv2.addWeighted(y, a, up, 1.0 / s, d + 128.0 * (b + c) - 128.0 / s, dst=oy)
        elif prepared is not None:
            cv2.addWeighted(y, a, prepared.y_full, k, d - 128.0 * k, dst=oy)
        elif abs(a - 1.0) < _EPS and abs(d) < 1e-3:
            np.copyto(oy, y)
        else:
            cv2.transform(y, np.array([[a, d]], np.float32), dst=oy)
        return out

    __call__ = apply
