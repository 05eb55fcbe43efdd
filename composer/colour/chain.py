"""The chain matcher: per-seam transforms chained along a chain of segments, held to
the first segment's look (LookStats, the anchor) against slow contrast/chroma creep.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..metrics import lab_to_rgb, rgb_to_lab
from .config import ColourConfig
from .continuity import SeamFix
from .curves import _fit_affine
from .estimators import AUTO_MIN_CORRESPONDENCE, SeamFit, _shrink, fit_seam
from .spatial import ResidualField, fit_residual_field
from .transform import ColourTransform, Frame, lerp

# -------------------------------------------------------------------- look stats


@dataclass(frozen=True)
class LookStats:
    """Global look of a few frames in CIE Lab: mean lightness, lightness spread
    (contrast) and RMS chroma (saturation)."""

    lightness: float
    contrast: float
    chroma: float

    @classmethod
    def of(cls, frames: Sequence[Frame] | Frame) -> LookStats:
        lab = _lab_pixels(frames)
        return cls(
            lightness=float(lab[:, 0].mean()),
            contrast=float(lab[:, 0].std()),
            chroma=float(np.sqrt(np.mean(lab[:, 1] ** 2 + lab[:, 2] ** 2))),
        )

    def log_ratio(self, ref: LookStats) -> np.ndarray:
        """log(self/ref) of (contrast, chroma), softened near grey/flat frames."""
        return np.array(
            [
                math.log((self.contrast + 2.0) / (ref.contrast + 2.0)),
                math.log((self.chroma + 2.0) / (ref.chroma + 2.0)),
            ]
        )

    def to_dict(self) -> dict[str, float]:
        return {k: round(getattr(self, k), 3) for k in ("lightness", "contrast", "chroma")}

    def can_anchor(self) -> bool:
        """Whether a frame with this look may set a chain's look: not black, not flat (a fade, a title card)."""
        return self.lightness >= ANCHOR_MIN_LIGHTNESS and self.contrast >= ANCHOR_MIN_CONTRAST


ANCHOR_MIN_LIGHTNESS = 12.0  # Lab L*: darker frames (black, the start of a fade) never set the look
ANCHOR_MIN_CONTRAST = 4.0  # Lab L* spread: flatter frames neither


def anchor_look(frames: Sequence[Frame]) -> LookStats | None:
    """The look a chain is held to, from several of its frames: per component the largest of the frames
    that can anchor (None when none can). The hold only takes away, so an anchor set high costs only hold
    strength, while one set low (a fade from black, a dark opening) would bend the whole chain down."""
    looks = [s for s in (LookStats.of(f) for f in frames) if s.can_anchor()]
    if not looks:
        return None
    return LookStats(lightness=float(np.median([s.lightness for s in looks])),
                     contrast=max(s.contrast for s in looks), chroma=max(s.chroma for s in looks))


def _as_list(frames: Sequence[Frame] | Frame) -> list[Frame]:
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        return [frames]
    return list(frames)


def _lab_pixels(frames: Sequence[Frame] | Frame, width: int = 96) -> np.ndarray:
    small = [_shrink(f, width) for f in _as_list(frames)]
    return rgb_to_lab(np.concatenate([s.reshape(-1, 3) for s in small])).astype(np.float64)


def look_correction(frames: Sequence[Frame] | Frame, d_contrast: float, d_chroma: float) -> ColourTransform:
    """An RGB affine that scales Lab lightness spread by exp(d_contrast) about its mean
    and chroma by exp(d_chroma), fitted on the colours of ``frames``."""
    if abs(d_contrast) < 1e-6 and abs(d_chroma) < 1e-6:
        return ColourTransform()
    small = [_shrink(f, 128) for f in _as_list(frames)]
    rgb = np.concatenate([s.reshape(-1, 3) for s in small])
    if rgb.shape[0] > 8000:
        rgb = rgb[np.random.default_rng(0).choice(rgb.shape[0], 8000, replace=False)]
    lab = rgb_to_lab(rgb).astype(np.float64)
    m_l = lab[:, 0].mean()
    target = lab.copy()
    target[:, 0] = m_l + math.exp(d_contrast) * (lab[:, 0] - m_l)
    target[:, 1:] *= math.exp(d_chroma)
    y = lab_to_rgb(target).astype(np.float64) * 255.0
    return ColourTransform(matrix=_fit_affine(rgb.astype(np.float64), y, ridge=1e-6, robust=False))


# ---------------------------------------------------------------- residual field


# ----------------------------------------------------------------- chain matcher


@dataclass(frozen=True)
class SegmentColour:
    """The colour transform of every frame of one segment: ``start`` up to frame
    ``ramp_start``, ``end`` from frame ``ramp_end`` on, and ``lerp(start, end, t)``
    linearly in between (a slow ramp nobody sees frame to frame)."""

    start: ColourTransform
    end: ColourTransform
    length: int
    ramp_start: int
    ramp_end: int
    info: Mapping[str, Any] = field(default_factory=dict, compare=False)
    residual: ResidualField | None = None
    seam_fix: SeamFix | None = None  # continuity across the seam, on top (composer.colour.continuity)

    def t(self, index: int) -> float:
        if self.ramp_end <= self.ramp_start:
            return 1.0 if index >= self.ramp_end else 0.0
        return min(1.0, max(0.0, (index - self.ramp_start) / (self.ramp_end - self.ramp_start)))

    def at(self, index: int) -> ColourTransform:
        """The transform of frame ``index`` (0-based within the segment)."""
        base = lerp(self.start, self.end, self.t(index))
        return base if self.seam_fix is None else self.seam_fix.on(base, index)

    def residual_weight(self, index: int) -> float:
        """How much of the seam's residual field frame ``index`` gets: all of it
        through the overlap, fading out over the same ramp as the hold."""
        return 0.0 if self.residual is None else 1.0 - self.t(index)

    def apply(self, frame: Frame, index: int) -> Frame:
        out = self.at(index).apply(frame)
        weight = self.residual_weight(index)
        if self.residual is not None and weight > 0.0:
            out = self.residual.add_to(out, weight)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.to_dict(),
            "end": self.end.to_dict(),
            "length": self.length,
            "ramp_start": self.ramp_start,
            "ramp_end": self.ramp_end,
            **({"residual": self.residual.to_dict()} if self.residual is not None else {}),
            **({"info": dict(self.info)} if self.info else {}),
            **({"seam_fix": self.seam_fix.to_dict()} if self.seam_fix is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentColour:
        return cls(
            start=ColourTransform.from_dict(data["start"]),
            end=ColourTransform.from_dict(data["end"]),
            length=int(data["length"]),
            ramp_start=int(data["ramp_start"]),
            ramp_end=int(data["ramp_end"]),
            info=dict(data.get("info", {})),
            residual=ResidualField.from_dict(data["residual"]) if "residual" in data else None,
            seam_fix=SeamFix.from_dict(data["seam_fix"]) if "seam_fix" in data else None,
        )


class ChainColourMatcher:
    """Walks one chain of segments (one continuous shot) and returns each segment's
    ``SegmentColour``: the seam transform fitted on the overlap as its start, and an
    end transform that also holds the chain to its first segment's look.

    The hold is a slow, limited correction of global contrast and saturation (Lab
    lightness spread and RMS chroma), ramped in over each segment's frames: every
    segment pulls back a fraction ``config.anchor`` of the excess over the anchor (the
    look of the chain's first segment that shows a picture: ``anchor_look``, never a
    black or flat frame) still showing, smoothed over segments. It only ever takes
    away (creep grows; a duller scene is left alone and earlier corrections are given
    back), by at most ``max_step`` (log units, ``colour.hold_step``) per segment and
    ``max_total`` (``colour.hold_total``) in all,
    so a real change of content is bent a little at most. Hue, white balance and mean
    lightness are left to the seam transforms.

    Call ``start`` at every chain start (scene start or hard cut), then ``follow``
    for each next segment, in order. Frame ``i`` of a segment is shown as
    ``segment_colour.apply(raw_frame, i)``.
    """

    def __init__(
        self,
        config: ColourConfig | None = None,
        *,
        max_step: float | None = None,
        max_total: float | None = None,
        smoothing: float = 0.5,
    ) -> None:
        self.config = config or ColourConfig()
        self.max_step = self.config.hold_step if max_step is None else max_step
        self.max_total = self.config.hold_total if max_total is None else max_total
        self.smoothing = smoothing
        self.anchor_stats: LookStats | None = None
        self._started = False
        self._applied = np.zeros(2)  # cumulative correction (log contrast, log chroma)
        self._excess: np.ndarray | None = None  # smoothed excess of the raw chain

    def start(self, samples: Mapping[int, Frame], length: int, overlap: int) -> SegmentColour:
        """First segment of a chain: sets the anchor look from its early ``samples``.

        ``samples`` maps frame indices (0-based in the segment) to raw frames; give
        at least frame 0 and the last frame (``length - 1``), ideally the middle too.
        ``overlap`` is the number of frames the next segment will re-generate.
        """
        _check_samples(samples, length)
        self._applied = np.zeros(2)
        self._excess = None
        self._started = True
        # all of the segment's frames that can, not frame 0 alone; none (it opens on black): the first
        # later segment that shows a picture sets it, and nothing is held until then
        self.anchor_stats = anchor_look(list(samples.values()))
        return self._finish(ColourTransform(), None, samples, length, ramp_start=0, overlap=overlap)

    def follow(
        self,
        head: Sequence[Frame],
        prev_tail: Sequence[Frame],
        samples: Mapping[int, Frame],
        length: int,
        overlap: int,
        new_anchor: bool = False,
    ) -> SegmentColour:
        """The next segment of the chain (``new_anchor``: it starts a scene whose look
        becomes the anchor from here on, seams still matched).

        ``head``: this segment's first K raw frames (the re-generated overlap);
        ``prev_tail``: the previous segment's last K frames as shown, i.e. after its
        ``SegmentColour`` was applied and before any crossfade, pixel-aligned with
        ``head``; ``samples``: raw frames of this segment by index, at least the
        first one shown (index K) and the last (``length - 1``), ideally the middle.
        """
        if not self._started:
            raise RuntimeError("ChainColourMatcher.follow called before start()")
        if len(head) != len(prev_tail) or not head:
            raise ValueError("head and prev_tail must be the same, non-zero number of frames")
        _check_samples(samples, length)
        seam = fit_seam(head, prev_tail, self.config.method)
        start = seam.transform.scaled(self.config.strength)
        if new_anchor:
            self.rebase({i: start.apply(f) for i, f in samples.items()})
        colour = self._finish(start, seam, samples, length, ramp_start=len(head), overlap=overlap)
        residual = None
        # a field is only trusted where the overlap pairs up pixel for pixel
        if self.config.spatial and not seam.correspondence < AUTO_MIN_CORRESPONDENCE:
            residual = fit_residual_field(head, prev_tail, start)
        if residual is not None and self.config.strength < 1.0:
            residual = ResidualField(residual.grid * self.config.strength)
        if residual is None:
            return colour
        return replace(colour, residual=residual, info={**colour.info, "residual_peak": round(residual.peak, 2)})

    def state(self) -> dict[str, Any]:
        """What the next ``follow`` depends on, as exact JSON-able values (``restore`` takes it back)."""
        a = self.anchor_stats
        return {"started": self._started, "anchor": None if a is None else [a.lightness, a.contrast, a.chroma],
                "applied": [float(x) for x in self._applied],
                "excess": None if self._excess is None else [float(x) for x in self._excess]}

    def restore(self, state: Mapping[str, Any]) -> None:
        anchor = state["anchor"]
        self.anchor_stats = None if anchor is None else LookStats(*(float(x) for x in anchor))
        self._started = bool(state["started"])
        self._applied = np.array(state["applied"], dtype=np.float64)
        self._excess = None if state["excess"] is None else np.array(state["excess"], dtype=np.float64)

    def rebase(self, samples: Mapping[int, Frame]) -> None:
        """Take the look shown in ``samples`` (frames as shown, after the seam
        transform) as the chain's new anchor: a ``continue`` scene may change its
        look on purpose, so the hold restarts from it while seams stay matched."""
        if not samples:
            return
        self.anchor_stats = anchor_look(list(samples.values()))
        self._applied = np.zeros(2)
        self._excess = None

    def _finish(
        self,
        start: ColourTransform,
        seam: SeamFit | None,
        samples: Mapping[int, Frame],
        length: int,
        ramp_start: int,
        overlap: int,
    ) -> SegmentColour:
        ramp_end = max(ramp_start, length - overlap)
        shown = {i: start.apply(f) for i, f in sorted(samples.items()) if i >= ramp_start}
        if not shown:
            shown = {max(samples): start.apply(samples[max(samples)])}
        if self.anchor_stats is None:  # the chain has shown no picture yet: this segment's sets the look
            self.anchor_stats = anchor_look(list(shown.values()))
        if self.anchor_stats is None:
            return SegmentColour(start=start, end=start, length=length, ramp_start=ramp_start, ramp_end=ramp_end,
                                 info={"hold": "no anchor yet (dark or flat frames)", **self._seam_info(seam)})
        # per frame, as the anchor is: frames pooled would count a fade's dark-to-light spread as contrast
        ratios = [s.log_ratio(self.anchor_stats) for s in (LookStats.of(f) for f in shown.values()) if s.can_anchor()]
        if not ratios:  # nothing but dark or flat frames: nothing to hold this time
            return SegmentColour(start=start, end=start, length=length, ramp_start=ramp_start, ramp_end=ramp_end,
                                 info={"hold": "dark or flat frames", **self._seam_info(seam)})
        drift = np.mean(ratios, axis=0)
        raw_drift = drift - self._applied  # what the chain would show with no hold so far
        if self._excess is None:
            self._excess = raw_drift
        else:
            self._excess = self._excess + self.smoothing * (raw_drift - self._excess)
        # pull a fraction of the (smoothed) excess still showing back towards the anchor;
        # the total stays within [-max_total, 0]: never boost past the raw look
        showing = self._excess + self._applied
        target = np.clip(self._applied - self.config.anchor * showing, -self.max_total, 0.0)
        step = np.clip(target - self._applied, -self.max_step, self.max_step)
        last = shown[max(shown)]
        end = start.then(look_correction(last, float(step[0]), float(step[1])))
        self._applied = self._applied + step
        info: dict[str, Any] = {
            "drift": _rounded(drift),
            "hold_step": _rounded(step),
            "hold_total": _rounded(self._applied),
        }
        info.update(self._seam_info(seam))
        return SegmentColour(
            start=start, end=end, length=length, ramp_start=ramp_start, ramp_end=ramp_end, info=info
        )


    @staticmethod
    def _seam_info(seam: SeamFit | None) -> dict[str, Any]:
        return {} if seam is None else {"seam": {k: v for k, v in seam.to_dict().items() if k != "transform"}}


def _rounded(v: np.ndarray) -> list[float]:
    return [round(float(x), 4) for x in v]


def _check_samples(samples: Mapping[int, Frame], length: int) -> None:
    if not samples:
        raise ValueError("need at least one sample frame (the segment's last frame)")
    bad = [i for i in samples if not 0 <= i < length]
    if bad:
        raise ValueError(f"sample indices {bad} outside the segment (0..{length - 1})")
