"""Drift kinds (composer.drift): each does what its module says, on synthetic frames."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from composer.backends.preview import PreviewBackend
from composer.drift import ALL_KINDS, HELD_OUT, LEGACY, TUNING, DriftSpec, make_drift, parse_spec
from composer.errors import BackendError

W, H = 320, 192
G = 17  # first generated frame


def picture(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 110, np.uint8)
    for _ in range(30):
        colour = tuple(int(c) for c in rng.integers(40, 200, 3))
        cv2.circle(img, (int(rng.integers(0, W)), int(rng.integers(0, H))), int(rng.integers(5, 40)), colour, -1)
    return img


def drifted(kind: str, t: int, amount: float = 1.0, img: np.ndarray | None = None) -> np.ndarray:
    d = make_drift(DriftSpec((kind,), amount), b"digest", W, H)
    return d.apply(picture() if img is None else img, t, G)


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_registry_splits_every_kind_once() -> None:
    assert set(TUNING) | set(HELD_OUT) == set(ALL_KINDS)
    assert not set(TUNING) & set(HELD_OUT)
    assert {"ramp", "flash", "motion", "blur"} <= set(ALL_KINDS)


def test_ramp_leaves_overlap_untouched_and_ramps_over_eight_frames() -> None:
    img = picture()
    for t in range(G):
        assert np.array_equal(drifted("ramp", t), img)
    steps = [mean_diff(drifted("ramp", G + k), img) for k in range(10)]
    assert steps[0] < steps[1] < steps[3] < steps[7]
    assert steps[7] == pytest.approx(steps[9], abs=0.01)  # fully in after 8 frames
    assert steps[9] > 2.0


def test_flash_only_at_the_first_generated_frames() -> None:
    img = picture()
    assert np.array_equal(drifted("flash", G - 1), img)
    assert mean_diff(drifted("flash", G), img) > 8.0
    assert mean_diff(drifted("flash", G), img) > mean_diff(drifted("flash", G + 2), img)
    assert np.array_equal(drifted("flash", G + 3), img)


def test_motion_pans_from_the_seam_on() -> None:
    img = picture()
    assert np.array_equal(drifted("motion", G - 1), img)
    g0, g1 = (cv2.cvtColor(drifted("motion", G + k), cv2.COLOR_RGB2GRAY).astype(np.float32) for k in (0, 10))
    (dx, dy), _ = cv2.phaseCorrelate(g0, g1)
    speed = float(np.hypot(dx, dy)) / 10
    assert 0.004 * H * 0.9 < speed < 0.008 * H * 1.1  # the module's speed range, pixels per frame


def test_blur_softens_every_returned_frame() -> None:
    img = picture()
    sharp = cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    for t in (0, G + 5):
        soft = cv2.Laplacian(cv2.cvtColor(drifted("blur", t), cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
        assert soft < 0.6 * sharp


def test_spec_forms() -> None:
    assert parse_spec(0.5, LEGACY) == DriftSpec(LEGACY, 0.5)
    assert parse_spec(0.0, LEGACY) is None
    assert parse_spec({"kinds": "ramp+flash", "amount": 2}, LEGACY) == DriftSpec(("ramp", "flash"), 2.0)
    with pytest.raises(ValueError, match="unknown drift kind"):
        make_drift(DriftSpec(("wobble",), 1.0), b"", W, H)


def test_preview_backend_takes_kinds_and_keeps_the_float_identity() -> None:
    assert PreviewBackend(drift=1.0).identity().endswith("/drift=1")
    b = PreviewBackend(drift={"kinds": ["ramp"], "amount": 1.0})
    assert b.identity().endswith("/drift=ramp@1")
    assert b.drift == 1.0
    with pytest.raises(BackendError, match="unknown drift kind"):
        PreviewBackend(drift={"kinds": ["wobble"], "amount": 1.0})


def test_a_chance_strikes_some_takes_and_the_same_take_always_alike() -> None:
    spec = parse_spec({"kinds": ["flash"], "amount": 1.0, "chance": 0.5}, LEGACY)
    assert spec == DriftSpec(("flash",), 1.0, 0.5) and spec.label() == "flash@1~0.5"
    frame = picture()
    struck = []
    for take in range(200):
        digest = f"take {take}".encode()
        once = make_drift(spec, digest, W, H).apply(frame, G, G)
        again = make_drift(spec, digest, W, H).apply(frame, G, G)
        assert np.array_equal(once, again)  # a resume asks for the same take and must get the same pixels
        struck.append(mean_diff(once, frame) > 5.0)
    assert 0.38 < np.mean(struck) < 0.62
    never = DriftSpec(("flash",), 1.0, 0.0)
    assert all(np.array_equal(make_drift(never, f"t{i}".encode(), W, H).apply(frame, G, G), frame) for i in range(20))


def test_a_chance_outside_zero_to_one_is_refused_by_name() -> None:
    with pytest.raises(BackendError, match="chance must be between 0 and 1, not 1.5"):
        PreviewBackend(drift={"kinds": ["ramp"], "amount": 1.0, "chance": 1.5})
    assert PreviewBackend(drift={"kinds": ["ramp"], "amount": 1.0, "chance": 0.25}).identity().endswith("~0.25")
