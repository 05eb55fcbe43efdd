"""The preview backend: an offline animatic that honours the request, decoded and measured."""
from __future__ import annotations

import base64
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from composer.backends import get_backend
from composer.backends.base import BackendEvent, GenerateContext, file_url
from composer.backends.fal_catalog import output_size
from composer.backends.preview import DRIFT_ENV, PreviewBackend
from composer.errors import BackendError, Cancelled
from composer.media import fit_image, probe, read_frames, save_image, write_clip
from composer.request import (
    ENDPOINT_ID,
    GenerationRequest,
    ImageConditioningInput,
    VideoConditioningInput,
)

W, H = 848, 480
BAND = slice(0, H - 40)  # rows above the caption band


def req(prompt: str = "a lighthouse on a cliff at sunset", **kw) -> GenerationRequest:
    kw.setdefault("resolution", "480p")
    kw.setdefault("num_frames", 25)
    kw.setdefault("seed", 3)
    return GenerationRequest(prompt=prompt, **kw)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def de_pixels(a: np.ndarray, b: np.ndarray) -> float:
    """Mean CIE76 colour difference of two equal-shaped RGB uint8 arrays (..., 3)."""
    la = cv2.cvtColor(a.reshape(-1, 1, 3).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    lb = cv2.cvtColor(b.reshape(-1, 1, 3).astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    return float(np.linalg.norm(la - lb, axis=-1).mean())


def delta_e(a: np.ndarray, b: np.ndarray) -> float:
    """Mean ΔE of two frames, on every other pixel (plenty for a mean)."""
    return de_pixels(a[::2, ::2], b[::2, ::2])


def photo(seed: int, w: int = 1000, h: int = 700) -> np.ndarray:
    """A synthetic 'photo' with big distinct shapes."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 255, 3)
    for _ in range(25):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(20, 160)), colour, -1)
    return img


@pytest.fixture(scope="module")
def backend() -> PreviewBackend:
    return PreviewBackend(drift=0.0, preset="ultrafast")  # the default preset; veryfast is covered below


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Keyframe images and a 17-frame conditioning clip (the 'tail' of a previous segment)."""
    d = tmp_path_factory.mktemp("cond")
    a = save_image(photo(1), d / "a.png")
    b = save_image(photo(2, 600, 900), d / "b.jpg")
    tail_frames = []
    base = fit_image(photo(5), W, H)
    for i in range(17):  # a pan across a photo: real motion for the preview to continue
        m = np.float32([[1.1, 0, -40 + 2.0 * i], [0, 1.1, -24]])
        tail_frames.append(cv2.warpAffine(base, m, (W, H), borderMode=cv2.BORDER_REFLECT101))
    tail = d / "tail.mp4"
    write_clip(tail_frames, tail, 24)
    return {"a": a, "b": b, "tail": tail}


@pytest.fixture(scope="module")
def chained(backend, media, tmp_path_factory) -> dict[str, list[np.ndarray]]:
    """One 41-frame clip conditioned on the tail clip, with drift 0 and drift 1."""
    r = req("the fox jumps over a frozen river at dusk", num_frames=41, seed=11,
            videos=[VideoConditioningInput(video_url=file_url(media["tail"]))])  # fmt: skip
    out0 = backend.generate(r, tmp_path_factory.mktemp("d0")).path
    out1 = PreviewBackend(drift=1.0, preset="ultrafast").generate(r, tmp_path_factory.mktemp("d1")).path
    return {"tail": read_frames(media["tail"]), "d0": read_frames(out0), "d1": read_frames(out1)}


# --------------------------------------------------------------------------- shape of the output


def test_identity_and_registry():
    b = get_backend("preview")
    assert isinstance(b, PreviewBackend)
    assert (b.name, b.endpoint_id, b.paid) == ("preview", ENDPOINT_ID, False)
    assert PreviewBackend(drift=1.0).identity() != PreviewBackend(drift=0.0).identity()


def test_exact_frames_size_and_rate(tmp_path):
    r = req(num_frames=33, frame_rate=30, aspect_ratio="9:16")
    result = PreviewBackend().generate(r, tmp_path)
    assert result.path.parent == tmp_path and result.path.suffix == ".mp4"
    assert result.cost_usd == 0.0 and result.request_id is None and result.seed == 3
    info = probe(result.path)
    assert (info.width, info.height) == (480, 848) == output_size(r.resolution, r.aspect_ratio)
    assert info.fps == Fraction(30)
    assert info.num_frames == 33 == result.num_frames  # the frame count it reports is the file's
    frames = read_frames(result.path)
    assert len(frames) == 33 and frames[0].shape == (848, 480, 3)


def test_deterministic_and_seed_dependent(backend, tmp_path):
    r = req(num_frames=17)
    a = read_frames(backend.generate(r, tmp_path / "a").path)
    b = read_frames(backend.generate(r, tmp_path / "b").path)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = read_frames(backend.generate(req(num_frames=17, seed=4), tmp_path / "c").path)
    assert mean_abs(a[8][BAND], c[8][BAND]) > 10


def test_procedural_scene_moves(backend, tmp_path):
    frames = read_frames(backend.generate(req(num_frames=41), tmp_path).path)
    steps = [mean_abs(frames[i][BAND], frames[i + 1][BAND]) for i in range(40)]
    assert min(steps) > 0.05  # every frame differs from the one before
    assert mean_abs(frames[0][BAND], frames[40][BAND]) > 4 * np.median(steps)  # motion accumulates
    assert frames[0][BAND].std() > 15  # a picture, not a flat colour


# --------------------------------------------------------------------------- conditioning images


def test_image_appears_at_its_frame(backend, media, tmp_path):
    r = req(num_frames=41, images=[ImageConditioningInput(image_url=file_url(media["a"]), start_frame_num=32)])
    frames = read_frames(backend.generate(r, tmp_path).path)
    want = fit_image(photo(1), W, H, "cover")
    at = mean_abs(frames[32][BAND], want[BAND])
    far = mean_abs(frames[0][BAND], want[BAND])
    assert at < 3.0
    assert far > 20.0
    # it dissolves in: frames just before the anchor already resemble it more than the start does
    assert mean_abs(frames[28][BAND], want[BAND]) < far


def test_two_anchor_images_with_motion_between(backend, media, tmp_path):
    uri = "data:image/jpeg;base64," + base64.b64encode(media["b"].read_bytes()).decode()
    r = req(num_frames=41, images=[
        ImageConditioningInput(image_url=file_url(media["a"]), start_frame_num=0),
        ImageConditioningInput(image_url=uri, start_frame_num=40),
    ])  # fmt: skip
    frames = read_frames(backend.generate(r, tmp_path).path)
    a, b = fit_image(photo(1), W, H), fit_image(photo(2, 600, 900), W, H)
    assert mean_abs(frames[0][BAND], a[BAND]) < 3.0
    assert mean_abs(frames[40][BAND], b[BAND]) < 4.0
    assert mean_abs(frames[12][BAND], a[BAND]) > 1.0  # a slow push/pan, not a still
    assert mean_abs(frames[12][BAND], a[BAND]) < mean_abs(frames[12][BAND], b[BAND])


def test_image_strength_blends(backend, media, tmp_path):
    def render(strength: float, where: Path) -> list[np.ndarray]:
        image = ImageConditioningInput(image_url=file_url(media["a"]), start_frame_num=8, strength=strength)
        return read_frames(backend.generate(req(num_frames=17, images=[image]), where).path)

    frames, full = render(0.5, tmp_path / "half"), render(1.0, tmp_path / "full")
    want = fit_image(photo(1), W, H)
    assert mean_abs(full[8][BAND], want[BAND]) < 3.0 < mean_abs(frames[8][BAND], want[BAND])


# --------------------------------------------------------------------------- conditioning videos


def test_video_frames_reproduced_and_motion_continues(chained):
    tail, out = chained["tail"], chained["d0"]
    assert len(out) == 41
    for i in range(17):
        assert mean_abs(out[i], tail[i]) < 2.5, i
    # the first generated frame continues from the last conditioned one: a step like the clip's own
    clip_step = np.mean([mean_abs(tail[i][BAND], tail[i + 1][BAND]) for i in range(16)])
    seam_step = mean_abs(out[16][BAND], out[17][BAND])
    assert seam_step < 2.5 * clip_step + 1.0
    # and then the clip moves on
    assert mean_abs(out[40][BAND], tail[16][BAND]) > seam_step


def test_video_longer_than_clip_is_trimmed(backend, media, tmp_path):
    r = req(num_frames=9, videos=[VideoConditioningInput(video_url=file_url(media["tail"]))])
    out = read_frames(backend.generate(r, tmp_path).path)
    tail = read_frames(media["tail"], 0, 9)
    assert len(out) == 9
    assert max(mean_abs(a, b) for a, b in zip(out, tail)) < 2.5


def test_reverse_video_reverses_the_output(backend, tmp_path):
    fwd = read_frames(backend.generate(req(num_frames=17), tmp_path / "f").path)
    rev = read_frames(backend.generate(req(num_frames=17, reverse_video=True), tmp_path / "r").path)
    assert mean_abs(rev[0][BAND], fwd[16][BAND]) < 2.0
    assert mean_abs(rev[16][BAND], fwd[0][BAND]) < 2.0


# --------------------------------------------------------------------------- drift


def test_drift_zero_keeps_overlap_colours(chained):
    tail, out = chained["tail"], chained["d0"]
    assert np.mean([delta_e(out[i], tail[i]) for i in range(17)]) < 1.5


def test_drift_shifts_overlap_visibly_and_not_affinely(chained):
    tail, d0, d1 = chained["tail"], chained["d0"], chained["d1"]
    overlap = np.mean([delta_e(d1[i], tail[i]) for i in range(17)])
    assert overlap > 3.0
    # a per-channel affine fit on the overlap cannot undo it exactly
    x = np.concatenate([d1[i][::2, ::2].reshape(-1, 3) for i in (0, 8, 16)]).astype(np.float64)
    y = np.concatenate([tail[i][::2, ::2].reshape(-1, 3) for i in (0, 8, 16)]).astype(np.float64)
    a = np.c_[x, np.ones(len(x))]
    fit = np.clip(a @ np.linalg.lstsq(a, y, rcond=None)[0], 0, 255).round().astype(np.uint8)
    x0 = np.concatenate([d0[i][::2, ::2].reshape(-1, 3) for i in (0, 8, 16)])
    residual = de_pixels(fit, y.astype(np.uint8))
    floor = de_pixels(x0, y.astype(np.uint8))  # codec noise alone, without drift
    assert residual > floor + 0.4
    assert residual < overlap  # but it is a colour shift a matcher can mostly fix


def test_drift_creeps_over_generated_frames():
    """Saturation and contrast grow with the number of generated frames (same picture, same clip)."""
    from composer.drift import LEGACY, DriftSpec, make_drift

    grey = np.full((H, W, 3), 128, np.uint8)
    picture = cv2.addWeighted(fit_image(photo(7), W, H), 0.5, grey, 0.5, 0)  # mid saturation: no clipping
    drift = make_drift(DriftSpec(LEGACY, 1.0), b"request-digest", W, H)
    lab = lambda f: cv2.cvtColor(f.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    chroma = lambda f: float(np.hypot(lab(f)[..., 1], lab(f)[..., 2]).mean())
    contrast = lambda f: float(lab(f)[..., 0].std())
    start, later = drift.apply(picture, 0, 0), drift.apply(picture, 96, 0)
    assert chroma(later) > chroma(start) * 1.05
    assert contrast(later) > contrast(start) * 1.03
    assert np.array_equal(drift.apply(picture, 0, 0), start)  # a pure function of the frame index


def test_drift_differs_per_request(media, tmp_path):
    b = PreviewBackend(drift=1.0, preset="ultrafast")
    frames = {}
    for seed in (1, 2):
        r = req(num_frames=9, seed=seed, videos=[VideoConditioningInput(video_url=file_url(media["tail"]))])
        frames[seed] = read_frames(b.generate(r, tmp_path / str(seed)).path)
    assert delta_e(frames[1][0], frames[2][0]) > 1.0  # same conditioned frame, different drift


def test_drift_from_environment(monkeypatch):
    monkeypatch.setenv(DRIFT_ENV, "0.7")
    assert PreviewBackend().drift == 0.7
    assert PreviewBackend(drift=0.0).drift == 0.0
    monkeypatch.setenv(DRIFT_ENV, "lots")
    with pytest.raises(BackendError, match=DRIFT_ENV):
        PreviewBackend()


# --------------------------------------------------------------------------- context and errors


def test_progress_events_and_cancel(backend, tmp_path):
    events: list[BackendEvent] = []
    backend.generate(req(num_frames=17), tmp_path / "p", GenerateContext(label="s1", on_event=events.append))
    progress = [e for e in events if e.kind == "progress"]
    assert progress and progress[-1].data["done"] == 17 == progress[-1].data["total"]
    with pytest.raises(Cancelled):
        backend.generate(req(num_frames=17), tmp_path / "c", GenerateContext(label="s2", cancelled=lambda: True))
    assert not list((tmp_path / "c").glob("*.mp4"))


def test_remote_or_missing_media_is_a_clear_error(backend, tmp_path):
    remote = req(images=[ImageConditioningInput(image_url="https://example.com/a.png")])
    with pytest.raises(BackendError, match="offline"):
        backend.generate(remote, tmp_path, GenerateContext(label="seg-3"))
    missing = req(videos=[VideoConditioningInput(video_url=file_url(tmp_path / "gone.mp4"))])
    with pytest.raises(BackendError, match="gone.mp4") as info:
        backend.generate(missing, tmp_path, GenerateContext(label="seg-4"))
    assert info.value.segment == "seg-4" and not info.value.retryable
