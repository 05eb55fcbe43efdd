"""The seam gate's judgement: thresholds on a seam's colour, motion and sharpness steps, and a
film's seams measured and ranked worst first (``composer seams``). The re-roll loop that uses it
between segments is ``rendering.heal``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..seams import COLOUR_AFTER, COLOUR_BEFORE, SeamMeasures, measure_seam
from ..seams.metrics import MOTION_AROUND


@dataclass(frozen=True)
class Thresholds:
    """What a seam may show. Defaults sit above what undrifted preview renders show
    (colour step ≤ 1.3 ΔE, flow jump ≤ 0.2 px, sharpness ratio ≥ 0.59; benchmarks/seams_drift.py)."""

    colour: float = 2.0  # CIEDE2000 of mean Lab across the seam
    motion_jump: float = 0.8  # pixels of flow off the motion around the seam
    sharpness_low: float = 0.45  # after / before
    sharpness_high: float = 1.8

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def failures(m: SeamMeasures, t: Thresholds = Thresholds()) -> list[str]:
    """Why this seam fails, one short reason per measure over its threshold (empty: it passes)."""
    out = []
    if m.colour > t.colour:
        out.append(f"colour step {m.colour:.2f} ΔE > {t.colour:g}")
    if m.motion.jump > t.motion_jump:
        out.append(f"motion jump {m.motion.jump:.2f} px > {t.motion_jump:g}")
    if not t.sharpness_low <= m.sharpness <= t.sharpness_high:
        out.append(f"sharpness ratio {m.sharpness:.2f} outside {t.sharpness_low:g}–{t.sharpness_high:g}")
    return out


def severity(m: SeamMeasures, t: Thresholds = Thresholds()) -> float:
    """How far past its thresholds a seam is (1.0 = at the worst threshold), for ranking takes and seams."""
    sharp = max(t.sharpness_low / max(m.sharpness, 1e-6), m.sharpness / t.sharpness_high)
    return float(max(m.colour / t.colour, m.motion.jump / t.motion_jump, sharp))


def seam_window(g: int) -> tuple[int, int]:
    """The film frames [lo, hi) that measuring the seam at film frame ``g`` reads."""
    return g + min(COLOUR_BEFORE[0], -MOTION_AROUND - 1), g + max(COLOUR_AFTER[1], MOTION_AROUND + 1)


class Sparse:
    """Some frames of a film, indexable by film frame as ``measure_seam`` reads them."""

    def __init__(self, frames: dict[int, np.ndarray], n: int):
        self.frames, self.n = frames, n

    def __getitem__(self, i: int) -> np.ndarray:
        return self.frames[i]

    def __len__(self) -> int:
        return self.n


def measure_film(path: Path, seams: Sequence[int]) -> dict[int, SeamMeasures]:
    """Every seam (film frame of its first generated frame) of the film at ``path``, measured;
    decodes the film once, keeping only the frames around the seams."""
    from ..media import VideoReader

    lo, hi = seam_window(0)
    wanted = {i for g in seams for i in range(g + lo, g + hi)}
    frames: dict[int, np.ndarray] = {}
    n = 0
    with VideoReader(path) as reader:
        for i, frame in enumerate(reader):
            n = i + 1
            if i in wanted:
                frames[i] = frame
    film: Any = Sparse(frames, n)  # indexable by film frame, as measure_seam reads it
    return {g: measure_seam(film, g) for g in seams if g + lo >= 0 and g + hi <= n}


def rank_manifest(manifest: Mapping[str, Any], t: Thresholds = Thresholds()) -> list[dict[str, Any]]:
    """The seams of a rendered film, worst first: segment, film frame, measures, failures, and the
    seam gate's decision at render time (``gate``, None when it did not judge that seam)."""
    out = manifest["output"]
    segs = manifest["plan"]["segments"]
    seams: dict[int, tuple[int, int]] = {}  # frame in the file → (segment, film frame)
    at = 0  # a part holds its film ranges one after another: a seam is measured inside its own range only
    lo, hi = min(COLOUR_BEFORE[0], -MOTION_AROUND - 1), max(COLOUR_AFTER[1], MOTION_AROUND + 1)
    for a, b in out.get("ranges") or [out.get("range") or [0, out["frames"]]]:
        for s in segs:
            g = s["seam_frame"]
            if s.get("depends_on") is not None and a <= g + lo and g + hi <= b:
                seams[at + g - a] = (s["index"], g)
        at += b - a
    measured = measure_film(Path(out["path"]), sorted(seams))
    gates = {s.get("index"): s.get("gate") for s in manifest.get("segments", [])}
    rows = [{"segment": seams[g][0], "film_frame": seams[g][1], "measures": m.to_dict(), "severity": severity(m, t),
             "failures": failures(m, t), "gate": gates.get(seams[g][0])} for g, m in measured.items()]
    return sorted(rows, key=lambda r: -r["severity"])
