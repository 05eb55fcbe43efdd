"""Continuity across the seam (composer.colour.continuity): a fast step after the overlap is
corrected, an intended steady change (light turning copper over two seconds) is kept."""
from __future__ import annotations

import cv2
import numpy as np

from composer.colour.continuity import FAST, LOOK, estimate_seam_fix
from composer.metrics import mean_lab, mean_lab_delta_e

W, H = 256, 144


def scene(k: int) -> np.ndarray:
    """A textured picture panning 1 px per frame (cyclic), so pixels must be paired under motion."""
    rng = np.random.default_rng(5)
    small = rng.integers(40, 215, (H // 8, W // 8, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC), (0, 0), 2.0)
    return np.roll(img, k, axis=1)


def graded(frame: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> np.ndarray:
    return np.clip(frame.astype(np.float64) * gain + offset, 0, 255).astype(np.uint8)


def test_a_fast_step_after_the_overlap_is_corrected() -> None:
    gain, offset = np.array([1.08, 0.95, 0.92]), np.array([6.0, -3.0, -5.0])
    before = scene(0)
    after = []
    for k in range(LOOK):
        w = min(1.0, (k + 1) / FAST)  # ramps in over the first 8 generated frames, then stays
        after.append(graded(scene(k + 1), 1 + w * (gain - 1), w * offset))
    fix = estimate_seam_fix(before, after, start=17)
    assert fix is not None
    step = mean_lab_delta_e(mean_lab(scene(12)), mean_lab(after[11]))
    fixed = fix.on(fix.transform.identity(), 17 + 11).apply(after[11])
    assert step > 3.0
    assert mean_lab_delta_e(mean_lab(scene(12)), mean_lab(fixed)) < 0.5
    assert fix.weight(16) == 0.0 and fix.weight(17) < fix.weight(17 + FAST)  # it follows the ramp-in


def test_light_turning_copper_over_two_seconds_is_kept() -> None:
    copper_gain, copper_offset = np.array([1.18, 1.0, 0.80]), np.array([8.0, 0.0, -6.0])
    seconds = 48  # frames at 24 fps: the change goes on well past the seam
    before = scene(0)
    after = []
    for k in range(LOOK):
        w = (k + 1) / seconds
        after.append(graded(scene(k + 1), 1 + w * (copper_gain - 1), w * copper_offset))
    fix = estimate_seam_fix(before, after, start=17)
    if fix is not None:  # whatever it corrects must be a small part of the change already made
        fixed = fix.on(fix.transform.identity(), 17 + 11).apply(after[11])
        kept = mean_lab_delta_e(mean_lab(after[11]), mean_lab(fixed))
        assert kept < 0.25 * mean_lab_delta_e(mean_lab(scene(12)), mean_lab(after[11]))


def test_no_drift_no_fix() -> None:
    assert estimate_seam_fix(scene(0), [scene(k + 1) for k in range(LOOK)], start=17) is None


def test_a_fast_step_is_told_apart_from_the_contents_own_light_starting_at_the_seam() -> None:
    """The new take's light starts to change at the seam, from rest and quickening (as a new take's
    content does), while a drift ramps in over eight frames: the drift is corrected, the light kept."""
    gain, offset = np.array([1.08, 0.95, 0.92]), np.array([6.0, -3.0, -5.0])
    before = scene(0)

    def light(k: int) -> np.ndarray:  # the content's own: brighter, from nothing, faster and faster
        return graded(scene(k + 1), np.full(3, 1.0 + 0.0004 * (k + 1) ** 2), np.zeros(3))

    after = []
    for k in range(LOOK):
        w = min(1.0, (k + 1) / FAST)
        after.append(graded(light(k), 1 + w * (gain - 1), w * offset))
    fix = estimate_seam_fix(before, after, start=17)
    assert fix is not None
    for k in (11, 15):
        fixed = fix.on(fix.transform.identity(), 17 + k).apply(after[k])
        assert mean_lab_delta_e(mean_lab(light(k)), mean_lab(after[k])) > 3.0
        assert mean_lab_delta_e(mean_lab(light(k)), mean_lab(fixed)) < 0.6
