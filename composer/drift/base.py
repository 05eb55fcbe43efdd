"""The drift pipeline: stages each kind contributes to, composed in a fixed order per frame.

Colour kinds add to one 3x4 matrix, one per-channel curve and one additive field (so the
historical ``drift: float`` composite stays pixel-identical); picture kinds (motion, blur,
flash) run after them.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

# A stage gets (t, first_generated) and returns its parameters for that frame.
MatrixFn = Callable[[int, int], np.ndarray]  # 3x3, multiplied on the left of what came before
CurveFn = Callable[[np.ndarray, int, int], np.ndarray]  # float [0,1] per channel (256x3) -> same
FrameFn = Callable[[np.ndarray, int, int], np.ndarray]  # uint8 RGB -> uint8 RGB


@dataclass(frozen=True)
class DriftSpec:
    """Which drift kinds, at what amount (0 = off, 1 = clearly visible), striking what share of takes.

    ``chance`` below 1 makes each kind a fault that strikes some takes and not others (drawn per kind
    from the request, its seed included), as a real model's bad takes do: a re-roll may draw a clean one.
    """

    kinds: tuple[str, ...]
    amount: float
    chance: float = 1.0

    def label(self) -> str:
        base = f"{'+'.join(self.kinds)}@{self.amount:g}"
        return base if self.chance >= 1.0 else f"{base}~{self.chance:g}"


def parse_spec(value: float | Mapping[str, object] | DriftSpec | None, legacy: tuple[str, ...]) -> DriftSpec | None:
    """``0.5`` (the legacy composite) or ``{"kinds": [...], "amount": 0.5}`` → a spec (None = off)."""
    if value is None:
        return None
    if isinstance(value, DriftSpec):
        spec = value
    elif isinstance(value, Mapping):
        raw: Any = value.get("kinds", legacy)
        if isinstance(raw, str):
            raw = [k for k in raw.replace(",", "+").split("+") if k]
        spec = DriftSpec(tuple(str(k) for k in raw), float(value.get("amount", 1.0)),  # type: ignore[arg-type]
                         float(value.get("chance", 1.0)))  # type: ignore[arg-type]
        if not 0.0 <= spec.chance <= 1.0:
            raise ValueError(f"drift chance must be between 0 and 1, not {spec.chance:g}")
    else:
        spec = DriftSpec(legacy, float(value))
    if spec.amount <= 0 or not spec.kinds:
        return None
    return spec


def strikes(spec: DriftSpec, kind: str, digest: bytes) -> bool:
    """Whether ``kind`` strikes the take whose request hashes to ``digest``."""
    return spec.chance >= 1.0 or float(rng_for(digest, f"drift-strike-{kind}").random()) < spec.chance


def rng_for(digest: bytes, label: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(digest + label.encode()).digest()[:8], "big"))


@dataclass
class Drift:
    """The composed stages of one clip's drift."""

    matrix: list[MatrixFn] = field(default_factory=list)
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    curves: list[CurveFn] = field(default_factory=list)
    field_: np.ndarray | None = None  # additive, float32 HxWx3
    frame_fns: list[FrameFn] = field(default_factory=list)

    def apply(self, frame: np.ndarray, t: int, first_generated: int) -> np.ndarray:
        """Frame ``t`` of the clip (uint8 RGB) with the drift; ``first_generated``: the first frame after
        the conditioning that opens the clip."""
        out = frame
        if self.matrix or np.any(self.offset):
            m3 = np.eye(3)
            for mfn in self.matrix:
                m3 = mfn(t, first_generated) @ m3
            m = np.zeros((3, 4), np.float32)
            m[:, :3] = m3
            m[:, 3] = self.offset
            out = cv2.transform(out, m)
        if self.curves:
            x = np.repeat((np.arange(256, dtype=np.float64) / 255.0)[:, None], 3, axis=1)
            for cfn in self.curves:
                x = cfn(x, t, first_generated)
            lut = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8).reshape(1, 256, 3)
            out = cv2.LUT(out, lut)
        if self.field_ is not None:
            out = cv2.addWeighted(out, 1.0, self.field_, 1.0, -128.0)
        for fn in self.frame_fns:
            out = fn(out, t, first_generated)
        return out


def smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3.0 - 2.0 * x)
