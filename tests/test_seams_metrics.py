"""Seam measures (composer.seams) on synthetic films whose answers are known in closed form."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from composer.seams import colour_step, measure_seam, motion_step, sharpness_step

W, H = 256, 160
G = 20


def grey_l(v: int) -> float:
    """CIE L* of the sRGB grey (v, v, v), straight from the sRGB and CIE definitions."""
    c = v / 255
    y = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    f = y ** (1 / 3) if y > (6 / 29) ** 3 else y / (3 * (6 / 29) ** 2) + 4 / 29
    return 116 * f - 16


def flat(v: int) -> np.ndarray:
    return np.full((H, W, 3), v, np.uint8)


def test_colour_step_of_two_greys_is_ciede2000_lightness_term() -> None:
    film = [flat(100)] * G + [flat(110)] * 20
    film[G - 1] = film[G + 3] = flat(250)  # frames outside both windows do not count
    l1, l2 = grey_l(100), grey_l(110)
    lbar = (l1 + l2) / 2
    sl = 1 + 0.015 * (lbar - 50) ** 2 / math.sqrt(20 + (lbar - 50) ** 2)
    # OpenCV's sRGB→Lab is tabulated: within 1.5 % of the closed form
    assert colour_step(film, G) == pytest.approx(abs(l2 - l1) / sl, rel=0.015)
    assert colour_step([flat(100)] * 40, G) == pytest.approx(0.0, abs=1e-6)


def test_colour_step_refuses_a_seam_too_near_the_end() -> None:
    with pytest.raises(ValueError, match="outside"):
        colour_step([flat(1)] * 30, 20)


def texture(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (H // 4, W // 4, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC), (0, 0), 1.0)


def panned(velocities: list[tuple[int, int]]) -> list[np.ndarray]:
    """A cyclic texture rolled by each frame's (dx, dy) from the previous one."""
    img, x, y, out = texture(), 0, 0, []
    for dx, dy in velocities:
        x, y = x + dx, y + dy
        out.append(np.roll(img, (y, x), axis=(0, 1)))
    return out


def test_motion_steady_pan_has_no_jump() -> None:
    m = motion_step(panned([(3, 0)] * 40), G)
    assert m.around == pytest.approx(3.0, abs=0.3)
    assert m.jump < 0.3
    assert m.turn < 5
    assert m.speed_ratio == pytest.approx(1.0, abs=0.1)


def test_motion_turn_and_jump_at_the_seam() -> None:
    # 3 px/frame right, then at the seam a 6 px jump down and 3 px/frame down
    v = [(3, 0)] * G + [(0, 3)] * 20
    v[G] = (0, 6)
    m = motion_step(panned(v), G)
    assert m.turn == pytest.approx(90, abs=8)
    expected = math.hypot(0 - 1.5, 6 - 1.5)  # seam flow (0, 6) against the mean (1.5, 1.5)
    assert m.jump == pytest.approx(expected, abs=0.6)


def test_sharpness_step_of_a_blurred_successor() -> None:
    sharp = texture(3)
    film = [sharp] * G + [cv2.GaussianBlur(sharp, (0, 0), 1.5)] * 20
    assert sharpness_step(film, G) < 0.6
    assert sharpness_step([sharp] * 40, G) == pytest.approx(1.0)


def test_measure_seam_bundles_the_three() -> None:
    s = measure_seam(panned([(2, 1)] * 40), G)
    d = s.to_dict()
    assert d["frame"] == G and d["colour"] == pytest.approx(0.0, abs=0.05)
    assert d["motion"]["jump"] < 0.3 and d["sharpness"] == pytest.approx(1.0, abs=0.02)
