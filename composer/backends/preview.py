"""The preview backend: an offline, deterministic animatic instead of a model.

It honours a request the way the real endpoint does (frame count, rate, size,
conditioning images at their frames, conditioning video frames at their
positions, motion continuing after them) and can add a deterministic colour
drift of the kinds a real model shows, so colour matching has real work.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Protocol

import cv2
import numpy as np

from ..atomic import atomic_write_bytes
from ..drift import LEGACY, DriftSpec, make_drift, parse_spec
from ..errors import BackendError, Cancelled, MediaError
from ..media import (
    VideoReader,
    VideoWriter,
    atomic_output,
    decode_data_uri,
    fit_image,
    load_image,
    probe,
)
from ..request import ENDPOINT_ID, GenerationRequest, canonical_json
from .base import Backend, GenerateContext, GenerationResult, local_path
from .fal_catalog import output_size  # the preview mimics the endpoint's geometry

DRIFT_ENV = "COMPOSER_PREVIEW_DRIFT"
DELAY_ENV = "COMPOSER_PREVIEW_DELAY"
# x264 output depends on its thread count; pinning it keeps preview bytes equal across machines.
ENCODER_THREADS = 4
DISSOLVE_SECONDS = 1.0
KEN_BURNS_ZOOM_PER_SECOND = 0.03


# --------------------------------------------------------------------------- helpers


def _digest(*parts: object) -> bytes:
    return hashlib.sha256(canonical_json([str(p) if isinstance(p, bytes) else p for p in parts]).encode()).digest()


def _rng(digest: bytes, label: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(digest + label.encode()).digest()[:8], "big"))


def _smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)


def _lerp(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """(1-w)·a + w·b in uint8 (returns one of the inputs when w is 0 or 1)."""
    if w <= 0.0:
        return a
    if w >= 1.0:
        return b
    return cv2.addWeighted(a, 1.0 - w, b, w, 0.0)


def _rgba(img: np.ndarray) -> np.ndarray:
    """RGB → RGBA: OpenCV warps 4-channel images about twice as fast as 3-channel ones."""
    return cv2.cvtColor(img, cv2.COLOR_RGB2RGBA)


def _hsv_colour(h: float, s: float, v: float) -> tuple[int, int, int]:
    px = np.array([[[round(h % 360 / 2), round(s * 255), round(v * 255)]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(px, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


# Prompt words that steer the procedural palette (base hue in degrees, saturation, value).
_PALETTE_WORDS: list[tuple[tuple[str, ...], tuple[float, float, float]]] = [
    (("sunset", "dusk", "sunrise", "dawn", "evening", "autumn"), (25, 0.75, 0.9)),
    (("night", "moon", "space", "star", "dark", "midnight"), (230, 0.6, 0.35)),
    (("ocean", "sea", "water", "river", "rain", "lake", "underwater", "wave"), (200, 0.65, 0.75)),
    (("forest", "jungle", "grass", "tree", "meadow", "garden", "field"), (110, 0.6, 0.6)),
    (("desert", "sand", "dune", "beach"), (38, 0.45, 0.85)),
    (("snow", "ice", "winter", "frost", "cloud", "fog"), (205, 0.15, 0.92)),
    (("fire", "lava", "flame", "volcano", "explosion"), (10, 0.85, 0.85)),
    (("city", "neon", "street", "cyberpunk", "club"), (300, 0.7, 0.7)),
]


def _palette(prompt: str, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    base = None
    for keys, hsv in _PALETTE_WORDS:
        if words.intersection(keys) or any(w.rstrip("s") in keys for w in words):
            base = hsv
            break
    if base is None:
        hue = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:2], "big") % 360
        base = (hue, 0.55, 0.7)
    h0, s0, v0 = base
    colours = []
    for i in range(5):
        h = h0 + rng.uniform(-35, 35) + (150 if i == 4 else 0)
        s = float(np.clip(s0 + rng.uniform(-0.25, 0.2), 0.05, 1.0))
        v = float(np.clip(v0 + rng.uniform(-0.35, 0.25), 0.08, 1.0))
        colours.append(_hsv_colour(h, s, v))
    return colours


# --------------------------------------------------------------------------- motion


class _Motion(Protocol):
    def matrix(self, dt: int) -> np.ndarray: ...


@dataclass(frozen=True)
class _KenBurns:
    """A slow push-in and pan about the frame centre, linear in time (identity at dt=0).

    The scale grows with |dt| faster than the pan moves, so the picture always
    covers the frame (no borders), before and after its anchor frame.
    """

    zoom: float  # scale gained per frame
    vx: float  # pixels per frame
    vy: float
    cx: float
    cy: float

    def matrix(self, dt: int) -> np.ndarray:
        s = 1.0 + self.zoom * abs(dt)
        return np.array([[s, 0, (1 - s) * self.cx + self.vx * dt], [0, s, (1 - s) * self.cy + self.vy * dt]], dtype=np.float32)


@dataclass(frozen=True)
class _Continue:
    """Keep going the way the conditioning video was moving: a per-frame similarity, compounded."""

    step: np.ndarray  # 3x3

    def matrix(self, dt: int) -> np.ndarray:
        return np.linalg.matrix_power(self.step, max(0, dt))[:2].astype(np.float32)


def _ken_burns(rng: np.random.Generator, width: int, height: int, fps: float) -> _KenBurns:
    zoom = KEN_BURNS_ZOOM_PER_SECOND * rng.uniform(0.6, 1.3) / fps
    angle = rng.uniform(0, 2 * math.pi)
    speed = zoom * min(width, height) * 0.45 * rng.uniform(0.3, 1.0)
    return _KenBurns(zoom, speed * math.cos(angle), speed * math.sin(angle), width / 2, height / 2)


def _estimate_motion(before: np.ndarray, after: np.ndarray, band_h: int) -> np.ndarray | None:
    """The similarity transform taking ``before`` to ``after`` (3x3), or None if unsure."""
    g0 = cv2.cvtColor(before, cv2.COLOR_RGB2GRAY)
    g1 = cv2.cvtColor(after, cv2.COLOR_RGB2GRAY)
    mask = np.full(g0.shape, 255, np.uint8)
    mask[-2 * band_h :] = 0  # ignore the caption band
    pts = cv2.goodFeaturesToTrack(g0, maxCorners=150, qualityLevel=0.01, minDistance=8, mask=mask)
    if pts is None or len(pts) < 8:
        return None
    nxt, status, _ = cv2.calcOpticalFlowPyrLK(g0, g1, pts, None, winSize=(21, 21), maxLevel=3)
    ok = status.ravel() == 1
    if ok.sum() < 8:
        return None
    m, inliers = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=1.5)
    if m is None or inliers is None or inliers.sum() < 6:
        return None
    scale = math.hypot(m[0, 0], m[1, 0])
    h, w = g0.shape
    if not (0.97 < scale < 1.03) or abs(m[0, 2]) > 0.05 * w * 2 or abs(m[1, 2]) > 0.05 * h * 2:
        return None
    step = np.eye(3)
    step[:2] = m
    return step


# --------------------------------------------------------------------------- the procedural scene


class _Scene:
    """A moving procedural picture (gradient, soft blobs, shapes, texture, sprites) from prompt + seed."""

    def __init__(self, width: int, height: int, fps: float, prompt: str, digest: bytes):
        self.w, self.h, self.fps = width, height, fps
        rng = _rng(digest, "scene")
        colours = _palette(prompt, rng)
        cw, ch = int(width * 1.6), int(height * 1.6)
        # the soft layers are made at quarter size and scaled up (they hold no detail)
        sw, sh = cw // 4, ch // 4
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        ramp = (xx - sw / 2) * math.cos(angle) / sw + (yy - sh / 2) * math.sin(angle) / sh
        ramp = np.clip(ramp * 1.4 + 0.5, 0, 1)[..., None]
        c0, c1, c2 = (np.array(c, dtype=np.float32) for c in colours[:3])
        small = np.where(ramp < 0.5, c0 + (c1 - c0) * (ramp * 2), c1 + (c2 - c1) * (ramp * 2 - 1))
        small = small.astype(np.uint8)
        for _ in range(9):  # soft blobs
            centre = (int(rng.uniform(0, sw)), int(rng.uniform(0, sh)))
            radius = max(1, int(rng.uniform(0.06, 0.2) * sh))
            cv2.circle(small, centre, radius, colours[int(rng.integers(0, 5))], -1, cv2.LINE_AA)
        small = cv2.GaussianBlur(small, (0, 0), sigmaX=max(1.0, sh * 0.02))
        noise = rng.normal(0, 3, (sh, sw, 1)).astype(np.float32)  # mid-frequency texture
        small = np.clip(small.astype(np.float32) + noise, 0, 255).astype(np.uint8)
        canvas = cv2.resize(small, (cw, ch), interpolation=cv2.INTER_CUBIC)
        # hard shapes and lines: edges to track and to see motion by
        for _ in range(10):
            colour = colours[int(rng.integers(0, 5))]
            x0, y0 = int(rng.uniform(0, cw)), int(rng.uniform(0, ch))
            kind = int(rng.integers(0, 3))
            if kind == 0:
                size = (int(rng.uniform(0.03, 0.12) * cw), int(rng.uniform(0.03, 0.12) * ch))
                cv2.rectangle(canvas, (x0, y0), (x0 + size[0], y0 + size[1]), colour, -1, cv2.LINE_AA)
            elif kind == 1:
                pts = (np.array([x0, y0], dtype=np.float32) + rng.uniform(-0.08, 0.08, (3, 2)) * [cw, ch]).astype(np.int32)
                cv2.fillPoly(canvas, [pts], colour, cv2.LINE_AA)
            else:
                x1, y1 = int(rng.uniform(0, cw)), int(rng.uniform(0, ch))
                cv2.line(canvas, (x0, y0), (x1, y1), colour, max(1, ch // 200), cv2.LINE_AA)
        self.canvas = _rgba(canvas)
        self.cw, self.ch = cw, ch
        # camera path: bounded Lissajous drift, gentle zoom and roll
        self.ax, self.ay = 0.16 * width, 0.13 * height
        self.periods = rng.uniform(12, 24, 4)
        self.phases = rng.uniform(0, 2 * math.pi, 4)
        # sprites moving on their own paths (parallax)
        self.sprites = []
        for i in range(3):
            colour = colours[(i + 3) % 5]
            self.sprites.append(
                (
                    (*colour, 255),
                    max(3, int(rng.uniform(0.04, 0.09) * height)),
                    rng.uniform(0.15, 0.4, 2) * [width, height],
                    rng.uniform(6, 14, 2),
                    rng.uniform(0, 2 * math.pi, 2),
                )
            )

    def render(self, t: int) -> np.ndarray:
        """The scene at frame ``t`` (RGBA)."""
        ts = t / self.fps
        wave = [math.sin(2 * math.pi * ts / p + ph) for p, ph in zip(self.periods, self.phases)]
        cx = self.cw / 2 + self.ax * wave[0]
        cy = self.ch / 2 + self.ay * wave[1]
        zoom = 1.0 + 0.04 * (1 + wave[2])
        roll = 1.2 * wave[3]
        m = cv2.getRotationMatrix2D((cx, cy), roll, zoom)
        m[0, 2] += self.w / 2 - cx
        m[1, 2] += self.h / 2 - cy
        out = cv2.warpAffine(self.canvas, m, (self.w, self.h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        for colour, radius, amp, period, phase in self.sprites:
            x = self.w / 2 + amp[0] * math.sin(2 * math.pi * ts / period[0] + phase[0])
            y = self.h / 2 + amp[1] * math.sin(2 * math.pi * ts / period[1] + phase[1])
            cv2.circle(out, (int(x * 16), int(y * 16)), radius * 16, colour, -1, cv2.LINE_AA, shift=4)
        return out


# --------------------------------------------------------------------------- the animatic


@dataclass
class _Anchor:
    frame: int
    picture: np.ndarray  # RGBA, frame size
    motion: _Motion
    strength: float
    kind: str  # "image" | "entry" | "exit"


@dataclass
class _VideoSpan:
    start: int
    frames: list[np.ndarray]  # RGB, frame size
    strength: float

    def get(self, t: int) -> np.ndarray | None:
        i = t - self.start
        return self.frames[i] if 0 <= i < len(self.frames) else None


class _Animatic:
    """Renders frame ``t`` of one request as a pure function of ``t``."""

    def __init__(self, request: GenerationRequest, workdir: Path, drift: DriftSpec | None, text: bool):
        self.w, self.h = output_size(request.resolution, request.aspect_ratio)
        self.n = request.num_frames
        self.fps = float(request.frame_rate)
        self.prompt = request.prompt
        self.seed = request.seed if request.seed is not None else self.derived_seed(request)
        self.digest = _digest(request.without_urls(), self.seed)
        self.band_h = max(14, round(self.h * 0.034))
        self.scene = _Scene(self.w, self.h, self.fps, request.prompt, _digest(request.prompt, self.seed))
        self.dissolve = max(1, round(DISSOLVE_SECONDS * self.fps))
        self.spans: list[_VideoSpan] = []
        self.anchors: list[_Anchor] = []
        self._load_videos(request, workdir)
        self._load_images(request, workdir)
        self.anchors.sort(key=lambda a: (a.frame, a.kind == "exit"))
        # creep counts generated frames: those after the conditioning that opens the clip
        self.first_generated = max((s.start + len(s.frames) for s in self.spans if s.start == 0), default=0)
        self.drift = make_drift(drift, self.digest, self.w, self.h) if drift is not None else None
        self.band = self._make_band() if text else None

    @staticmethod
    def derived_seed(request: GenerationRequest) -> int:
        return int.from_bytes(_digest(request.without_urls())[:4], "big")

    # -- inputs ---------------------------------------------------------------
    def _media_path(self, url: str, workdir: Path, what: str) -> Path:
        path = local_path(url)
        if path is not None:
            return path
        if url.startswith("data:"):
            mime, data = decode_data_uri(url)
            ext = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm"}.get(mime, ".bin")
            out = workdir / f".preview-input-{hashlib.sha256(data).hexdigest()[:16]}{ext}"
            if not out.exists():
                atomic_write_bytes(out, data)
            return out
        raise MediaError(f"{what}: the preview backend is offline; it reads file:// and data: URLs, not {url[:60]}")

    def _load_images(self, request: GenerationRequest, workdir: Path) -> None:
        for i, item in enumerate(request.images):
            if item.start_frame_num >= self.n:
                continue
            url = item.image_url
            source = url if url.startswith("data:") else self._media_path(url, workdir, f"images[{i}]")
            img = load_image(source)
            picture = _rgba(fit_image(img, self.w, self.h, "cover"))
            motion = _ken_burns(_rng(self.digest, f"image{i}"), self.w, self.h, self.fps)
            self.anchors.append(_Anchor(item.start_frame_num, picture, motion, item.strength, "image"))

    def _load_videos(self, request: GenerationRequest, workdir: Path) -> None:
        for i, item in enumerate(request.videos):
            start = item.start_frame_num
            if start >= self.n or item.strength <= 0 or item.conditioning_type != "rgb":
                continue  # depth/pose/canny guide structure; the preview does not reproduce them
            path = self._media_path(item.video_url, workdir, f"videos[{i}]")
            info = probe(path)
            indices = list(range(info.num_frames))
            if item.resample_fps and info.fps != item.target_fps:
                step = float(info.fps) / item.target_fps
                indices = [int(round(k * step)) for k in range(int(info.num_frames / step))]
                indices = [k for k in indices if k < info.num_frames]
            if item.limit_num_frames:
                indices = indices[: item.max_num_frames]
            if item.reverse_video:
                indices = indices[::-1]
            # LTX: a conditioning video is 8k+1 frames and must fit inside the clip
            count = min(len(indices), self.n - start)
            count = (count - 1) // 8 * 8 + 1 if count >= 1 else 0
            indices = indices[:count]
            if not indices:
                continue
            wanted = set(indices)
            decoded: dict[int, np.ndarray] = {}
            with VideoReader(path, info=info, count=max(indices) + 1) as reader:
                for k, frame in enumerate(reader):
                    if k in wanted:
                        decoded[k] = fit_image(frame, self.w, self.h, "cover")
            frames = [decoded[k] for k in indices]
            self.spans.append(_VideoSpan(start, frames, item.strength))
            entry_motion = _ken_burns(_rng(self.digest, f"video{i}"), self.w, self.h, self.fps)
            self.anchors.append(_Anchor(start, _rgba(frames[0]), entry_motion, item.strength, "entry"))
            last = self._without_band(frames[-1])
            tail_step = _estimate_motion(frames[-2], frames[-1], self.band_h) if len(frames) >= 2 else None
            exit_motion: _Motion = _Continue(tail_step) if tail_step is not None else entry_motion
            self.anchors.append(_Anchor(start + len(frames) - 1, _rgba(last), exit_motion, item.strength, "exit"))

    def _without_band(self, frame: np.ndarray) -> np.ndarray:
        """The frame with its bottom caption band replaced by a mirror of the rows above."""
        out = frame.copy()
        b = self.band_h
        out[-b:] = out[-2 * b : -b][::-1]
        return out

    def _make_band(self) -> np.ndarray:
        band = np.full((self.band_h, self.w, 3), 18, np.uint8)
        text = self.prompt.encode("ascii", "replace").decode("ascii")
        self._font_scale = self.band_h / 40.0
        limit = self.w - self._text_width(f"{self.n}/{self.n}") - 3 * self.band_h
        if self._text_width(text) > limit:
            while text and self._text_width(text + "...") > limit:
                text = text[:-1]
            text = text.rstrip() + "..."
        cv2.putText(band, text, (self.band_h // 2, self.band_h - self.band_h // 3), cv2.FONT_HERSHEY_SIMPLEX,
                    self._font_scale, (220, 220, 220), 1, cv2.LINE_AA)  # fmt: skip
        return band

    def _text_width(self, text: str) -> int:
        return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, self._font_scale, 1)[0][0]

    # -- rendering ------------------------------------------------------------
    def _warp(self, anchor: _Anchor, t: int) -> np.ndarray:
        dt = t - anchor.frame
        if dt == 0:
            return anchor.picture
        m = anchor.motion.matrix(dt)
        return cv2.warpAffine(
            anchor.picture, m, (self.w, self.h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
        )

    def _content(self, t: int) -> np.ndarray:
        """The picture at ``t`` from anchors and the scene (RGBA), before captions and drift."""
        prev = nxt = None
        for a in self.anchors:
            if a.frame <= t:
                prev = a
            elif nxt is None:
                nxt = a
        # weight of the next anchor: a dissolve over the last second before it
        w_next = 0.0
        if nxt is not None:
            window = min(self.dissolve, nxt.frame - (prev.frame if prev is not None else -1))
            remaining = nxt.frame - t
            if remaining < window:
                w_next = nxt.strength * _smoothstep(1.0 - remaining / window)
        if w_next >= 1.0:
            return self._warp(nxt, t)  # type: ignore[arg-type]
        if prev is None:
            base = self.scene.render(t)
        elif prev.kind == "exit" and nxt is None:
            # after the conditioning: continue its motion, slowly dissolving into this clip's own scene
            base = self._warp(prev, t)
            span = max(1, self.n - 1 - prev.frame)
            base = _lerp(base, self.scene.render(t), _smoothstep((t - prev.frame) / span))
        else:
            base = self._warp(prev, t)
            if prev.strength < 1.0:
                base = _lerp(self.scene.render(t), base, prev.strength)
        if w_next > 0.0:
            base = _lerp(base, self._warp(nxt, t), w_next)  # type: ignore[arg-type]
        return base

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as RGB uint8, deterministic."""
        exact = None
        strength = 0.0
        for span in self.spans:
            got = span.get(t)
            if got is not None:
                exact, strength = got, span.strength
        if exact is not None and strength >= 0.999:
            out = exact.copy()
        else:
            out = cv2.cvtColor(self._content(t), cv2.COLOR_RGBA2RGB)
            if exact is not None:
                out = _lerp(out, exact, strength)
            if self.band is not None:
                self._draw_band(out, t)
        if self.drift is not None:
            out = self.drift.apply(out, t, self.first_generated)
        return out

    def _draw_band(self, out: np.ndarray, t: int) -> None:
        assert self.band is not None
        out[-self.band_h :] = self.band
        label = f"{t + 1}/{self.n}"
        x = self.w - self._text_width(label) - self.band_h // 2
        cv2.putText(out, label, (x, self.h - self.band_h // 3), cv2.FONT_HERSHEY_SIMPLEX, self._font_scale,
                    (255, 235, 120), 1, cv2.LINE_AA)  # fmt: skip


# --------------------------------------------------------------------------- the backend


class PreviewBackend(Backend):
    """Offline animatic backend: deterministic, free, fast; honours the request's conditioning.

    ``drift`` (0 = off, 1 = clearly visible; default from ``$COMPOSER_PREVIEW_DRIFT``)
    adds a deterministic colour drift per clip (the shift, creep and tint kinds); a mapping
    ``{"kinds": [...], "amount": x}`` picks kinds from ``composer.drift.KINDS``.
    ``text`` draws the prompt and a frame counter in a thin band at the bottom.
    """

    verifies_clips = True  # it wrote (preview) or decoded (fal) the clip it returns

    name = "preview"
    version = "1"
    endpoint_id = ENDPOINT_ID
    paid = False

    def __init__(self, drift: float | Mapping[str, Any] | DriftSpec | None = None, *, text: bool = True,
                 crf: int = 16, preset: str = "ultrafast",
                 delay: float | None = None):
        if drift is None:
            raw = os.environ.get(DRIFT_ENV, "").strip()
            try:
                drift = float(raw) if raw else 0.0
            except ValueError:
                raise BackendError(f"{DRIFT_ENV}={raw!r} is not a number") from None
        try:
            spec = parse_spec(drift, LEGACY)
        except (TypeError, ValueError) as exc:
            raise BackendError(f"preview drift {drift!r} is not a number or {{kinds, amount, chance}} ({exc})") from None
        amount = spec.amount if spec is not None else 0.0
        if (isinstance(drift, (int, float)) and not (0.0 <= drift <= 10.0)) or not (0.0 <= amount <= 10.0):
            raise BackendError(f"preview drift must be between 0 and 10, not {drift}")
        if spec is not None:
            try:
                make_drift(spec, b"", 8, 8)  # unknown kinds fail here, not mid-render
            except ValueError as exc:
                raise BackendError(str(exc)) from None
        self.drift_spec = spec
        self.drift = amount
        if delay is None:  # simulated model latency, for demos and for tests that kill a render mid-way
            raw = os.environ.get(DELAY_ENV, "").strip()
            try:
                delay = float(raw) if raw else 0.0
            except ValueError:
                raise BackendError(f"{DELAY_ENV}={raw!r} is not a number") from None
        self.delay = max(0.0, float(delay))
        self.text = text
        self.crf = crf
        self.preset = preset

    def identity(self) -> str:
        """Settings that change the pixels (drift, captions, encoder) are part of the cache identity."""
        spec = self.drift_spec
        if spec is None:
            extra = ""
        elif spec.kinds == LEGACY:
            extra = f"/drift={spec.amount:g}"
        else:
            extra = f"/drift={spec.label()}"
        extra += "" if self.text else "/notext"
        extra += "" if (self.crf, self.preset) == (16, "ultrafast") else f"/crf={self.crf},{self.preset}"
        return f"{self.name}/{self.version}/{self.endpoint_id}{extra}"

    def generate(
        self, request: GenerationRequest, workdir: Path, ctx: GenerateContext | None = None
    ) -> GenerationResult:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        label = ctx.label if ctx is not None and ctx.label else None
        if self.delay:
            time.sleep(self.delay)
        try:
            animatic = _Animatic(request, workdir, self.drift_spec, self.text)
        except MediaError as exc:
            raise BackendError(str(exc), segment=label, retryable=False) from exc
        # the file name follows the whole request (URLs included); the pixels follow only its content
        key = _digest(request.to_endpoint_json(), animatic.seed, self.identity()).hex()[:16]
        out = workdir / f"preview-{key}.mp4"
        n = animatic.n
        order = range(n - 1, -1, -1) if request.reverse_video else range(n)
        every = max(1, n // 10)
        if ctx is not None:
            ctx.emit("progress", f"rendering {n} frames", done=0, total=n)
        try:
            with atomic_output(out) as tmp:
                crf = min(self.crf, request.constant_rate_factor)
                with VideoWriter(tmp, animatic.w, animatic.h, Fraction(request.frame_rate), crf=crf,
                                 preset=self.preset, threads=ENCODER_THREADS) as writer:  # fmt: skip
                    for i, t in enumerate(order):
                        if ctx is not None and ctx.cancelled is not None and i % 8 == 0 and ctx.cancelled():
                            raise Cancelled(f"{label or 'preview'}: cancelled")
                        writer.write(animatic.frame(t))
                        if ctx is not None and (i + 1) % every == 0:
                            ctx.emit("progress", f"{i + 1}/{n} frames", done=i + 1, total=n)
        except MediaError as exc:
            raise BackendError(str(exc), segment=label, retryable=False) from exc
        # ffmpeg finished cleanly with the same input and output rate: the file holds the frames written
        return GenerationResult(path=out, request_id=None, cost_usd=0.0, seed=animatic.seed,
                                num_frames=writer.frames_written)
