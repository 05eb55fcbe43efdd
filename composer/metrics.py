"""Colour-difference measurements for seams: CIEDE2000, frame ΔE, seam jump ratio.

Pure numpy/OpenCV on HxWx3 uint8 RGB frames; nothing here reads or writes files.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import itertools

Frame = np.ndarray  # HxWx3 uint8, RGB

#: Width frames are shrunk to before a frame ΔE is taken (speed; ΔE is a mean anyway).
DEFAULT_DOWNSAMPLE_WIDTH = 160

_POW25_7 = 25.0**7


def ciede2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of two Lab arrays, elementwise.

    ``lab1`` and ``lab2`` are float arrays of shape ``(..., 3)`` that broadcast
    against each other. Follows Sharma, Wu and Dalal (2005) exactly, including the
    hue-angle branch rules, so it reproduces their published test data.
    """
    lab1 = np.asarray(lab1, dtype=np.float64)
    lab2 = np.asarray(lab2, dtype=np.float64)
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]

    c_bar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2.0
    c_bar7 = c_bar**7
    g = 0.5 * (1.0 - np.sqrt(c_bar7 / (c_bar7 + _POW25_7)))
    a1p = (1.0 + g) * a1
    a2p = (1.0 + g) * a2
    c1p = np.hypot(a1p, b1)
    c2p = np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360.0
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360.0
    chroma_zero = (c1p * c2p) == 0.0

    d_lp = L2 - L1
    d_cp = c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180.0, dh - 360.0, np.where(dh < -180.0, dh + 360.0, dh))
    dh = np.where(chroma_zero, 0.0, dh)
    d_hp = 2.0 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh) / 2.0)

    l_bar = (L1 + L2) / 2.0
    cp_bar = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = np.where(
        np.abs(h1p - h2p) <= 180.0,
        h_sum / 2.0,
        np.where(h_sum < 360.0, (h_sum + 360.0) / 2.0, (h_sum - 360.0) / 2.0),
    )
    h_bar = np.where(chroma_zero, h_sum, h_bar)

    t = (
        1.0
        - 0.17 * np.cos(np.radians(h_bar - 30.0))
        + 0.24 * np.cos(np.radians(2.0 * h_bar))
        + 0.32 * np.cos(np.radians(3.0 * h_bar + 6.0))
        - 0.20 * np.cos(np.radians(4.0 * h_bar - 63.0))
    )
    d_theta = 30.0 * np.exp(-(((h_bar - 275.0) / 25.0) ** 2))
    cp_bar7 = cp_bar**7
    r_c = 2.0 * np.sqrt(cp_bar7 / (cp_bar7 + _POW25_7))
    l50 = (l_bar - 50.0) ** 2
    s_l = 1.0 + 0.015 * l50 / np.sqrt(20.0 + l50)
    s_c = 1.0 + 0.045 * cp_bar
    s_h = 1.0 + 0.015 * cp_bar * t
    r_t = -np.sin(np.radians(2.0 * d_theta)) * r_c

    tl = d_lp / s_l
    tc = d_cp / s_c
    th = d_hp / s_h
    return np.sqrt(np.maximum(tl * tl + tc * tc + th * th + r_t * tc * th, 0.0))


def rgb_to_lab(frame: np.ndarray) -> np.ndarray:
    """sRGB uint8 (…x3, RGB order) → CIE Lab float32 (D65; L in 0..100).

    Accepts any shape ending in 3 (a frame, a stack of frames, or a pixel list).
    """
    arr = np.asarray(frame)
    shape = arr.shape
    if shape[-1] != 3:
        raise ValueError(f"expected a last axis of 3 (RGB), got shape {shape}")
    flat = arr.reshape(-1, 1, 3)
    if flat.dtype == np.uint8:
        f32 = flat.astype(np.float32) * np.float32(1.0 / 255.0)
    else:
        f32 = np.clip(flat.astype(np.float32), 0.0, 1.0)
    return cv2.cvtColor(f32, cv2.COLOR_RGB2Lab).reshape(shape)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE Lab float (…x3) → sRGB float32 in 0..1 (clipped), RGB order."""
    arr = np.asarray(lab, dtype=np.float32)
    shape = arr.shape
    rgb = cv2.cvtColor(arr.reshape(-1, 1, 3), cv2.COLOR_Lab2RGB)
    return np.clip(rgb, 0.0, 1.0).reshape(shape)


def downsample(frame: np.ndarray, width: int | None = DEFAULT_DOWNSAMPLE_WIDTH) -> np.ndarray:
    """Shrink a frame to ``width`` pixels wide (area filter); no-op when already narrower."""
    if width is None or frame.shape[1] <= width:
        return frame
    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def frame_delta_e(
    a: np.ndarray, b: np.ndarray, downsample_width: int | None = DEFAULT_DOWNSAMPLE_WIDTH
) -> float:
    """Mean per-pixel CIEDE2000 between two same-sized RGB uint8 frames.

    Both frames are shrunk to ``downsample_width`` first (None keeps full size).
    """
    if a.shape != b.shape:
        raise ValueError(f"frame shapes differ: {a.shape} vs {b.shape}")
    la = rgb_to_lab(downsample(a, downsample_width))
    lb = rgb_to_lab(downsample(b, downsample_width))
    return float(np.mean(ciede2000(la, lb)))


def mean_lab(frame: np.ndarray, downsample_width: int | None = DEFAULT_DOWNSAMPLE_WIDTH) -> np.ndarray:
    """Mean Lab colour (float64, shape (3,)) of a frame or a stack of frames."""
    arr = np.asarray(frame)
    if arr.ndim == 4:
        return np.mean([mean_lab(f, downsample_width) for f in arr], axis=0)
    return rgb_to_lab(downsample(arr, downsample_width)).reshape(-1, 3).mean(axis=0, dtype=np.float64)


def mean_lab_delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """CIEDE2000 between two mean-Lab colours (e.g. ``mean_lab`` of two frames)."""
    return float(ciede2000(np.asarray(a, np.float64), np.asarray(b, np.float64)))


def consecutive_delta_e(
    frames: Sequence[np.ndarray], downsample_width: int | None = DEFAULT_DOWNSAMPLE_WIDTH
) -> np.ndarray:
    """``frame_delta_e`` between each pair of consecutive frames (length ``len(frames)-1``).

    Each frame is converted to Lab once.
    """
    labs = [rgb_to_lab(downsample(f, downsample_width)) for f in frames]
    return np.array([float(np.mean(ciede2000(x, y))) for x, y in itertools.pairwise(labs)])


@dataclass(frozen=True)
class SeamJump:
    """Colour jump at one seam of an assembled sequence.

    ``jump`` is the mean ΔE between the last frame shown from segment N and the
    first shown from N+1; ``peak`` the largest consecutive ΔE in the window around
    the seam; ``interior`` the median consecutive ΔE inside segments; ``ratio`` is
    ``peak / interior`` (the benchmark figure: ≤ 1 means the seam is no larger than
    an ordinary frame-to-frame change).
    """

    jump: float
    peak: float
    interior: float
    ratio: float

    def to_dict(self) -> dict[str, float]:
        return {"jump": self.jump, "peak": self.peak, "interior": self.interior, "ratio": self.ratio}


def seam_jump(
    frames: Sequence[np.ndarray],
    seam_index: int,
    interior_delta_e: float | Sequence[float] | np.ndarray,
    before: int = 2,
    after: int = 3,
    downsample_width: int | None = DEFAULT_DOWNSAMPLE_WIDTH,
) -> SeamJump:
    """Measure the colour jump at a seam of an output frame sequence.

    ``frames`` is a window of output frames, ``seam_index`` the index (in it) of the
    first frame shown from segment N+1, so ``frames[seam_index-1]`` is the last one
    shown from N. The peak is taken over consecutive pairs from ``before`` frames
    before the seam to ``after`` frames past it. ``interior_delta_e`` is either the
    median interior frame-to-frame ΔE or the list of interior values (its median is
    taken); compute it with ``consecutive_delta_e`` over frames inside segments.
    """
    if not 1 <= seam_index < len(frames):
        raise ValueError(f"seam_index {seam_index} must be in 1..{len(frames) - 1}")
    lo = max(0, seam_index - 1 - before)
    hi = min(len(frames), seam_index + after + 1)
    steps = consecutive_delta_e(frames[lo:hi], downsample_width)
    jump = float(steps[seam_index - 1 - lo])
    peak = float(steps.max())
    interior = (
        float(np.asarray(interior_delta_e, dtype=np.float64))
        if np.ndim(interior_delta_e) == 0
        else float(np.median(np.asarray(interior_delta_e, dtype=np.float64)))
    )
    ratio = peak / interior if interior > 0 else float("inf") if peak > 0 else 0.0
    return SeamJump(jump=jump, peak=peak, interior=interior, ratio=ratio)

