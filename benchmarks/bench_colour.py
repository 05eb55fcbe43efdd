"""Colour-matching benchmark on synthetic chains (no files, no network).

Textured panning content; each segment's head re-generates the previous tail through
a random nonlinear shift (gamma, gain/offset, HSV saturation, tint gradient, noise)
and saturation/contrast creep grows through every segment, compounding. Writes
results/colour.json and the ``colour`` section of RESULTS.md: per-seam held-out
error by estimator, then 20-segment chains.

    python benchmarks/bench_colour.py [--chains 3] [--segments 20] [--quick] [--out RESULTS.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from composer.colour import ChainColourMatcher, ColourConfig, LookStats, estimate
from composer.metrics import ciede2000, consecutive_delta_e, frame_delta_e, mean_lab

H, W, L, K = 96, 160, 121, 17


def canvas(h: int, w: int, seed: int, sat_ramp: tuple[float, float] | None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):
        for _ in range(4):
            f = 2 * np.pi * (rng.uniform(0.5, 4) * xx / w + rng.uniform(0.5, 4) * yy / h)
            img[..., c] += 0.09 * np.sin(f + rng.uniform(0, 2 * np.pi))
    img += 0.5
    for _ in range(h * w // 2500):
        col = (rng.uniform(0, 1, 3) ** rng.uniform(0.5, 2)).tolist()
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, h / 5)
        if rng.random() < 0.5:
            cv2.circle(img, (int(cx), int(cy)), int(r), col, -1)
        else:
            cv2.rectangle(img, (int(cx), int(cy)), (int(cx + 1.5 * r), int(cy + r)), col, -1)
    tex = cv2.GaussianBlur(rng.normal(0, 1, img.shape).astype(np.float32), (0, 0), 1.5)
    img = cv2.GaussianBlur(img + 0.04 * tex / tex.std(), (0, 0), 0.7)
    if sat_ramp is not None:  # content that really grows more colourful along the pan
        k = np.linspace(*sat_ramp, w, dtype=np.float32)[None, :, None]
        grey = img.mean(axis=2, keepdims=True)
        img = grey + k * (img - grey)
    return np.clip(img, 0, 1)


class Content:
    def __init__(self, frames: int, seed: int, sat_ramp: tuple[float, float] | None = None) -> None:
        self.canvas = canvas(H * 2, W + frames + 8, seed, sat_ramp)
        rng = np.random.default_rng(seed + 1)
        self.sprites = [(rng.uniform(0, 1, 3).tolist(), rng.uniform(0, W), rng.uniform(0, H),
                         rng.uniform(-1.5, 1.5), rng.uniform(-1, 1), rng.uniform(5, H / 6)) for _ in range(4)]

    def frame(self, t: float) -> np.ndarray:
        m = np.float32([[1, 0, -t], [0, 1, -H * 0.25 * (1 + np.sin(t / 150))]])
        f = cv2.warpAffine(self.canvas, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for col, sx, sy, vx, vy, r in self.sprites:
            cv2.circle(f, (int((sx + vx * t) % W), int((sy + vy * t) % H)), int(r), col, -1, cv2.LINE_AA)
        return f


def hsv_sat(img: np.ndarray, s: float) -> np.ndarray:
    hsv = cv2.cvtColor(np.clip(img, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 1] = np.clip(hsv[..., 1] * s, 0, 1)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def creep(img: np.ndarray, a: float) -> np.ndarray:
    return hsv_sat(np.clip(0.5 + (1 + 0.5 * a) * (img - 0.5), 0, 1), 1 + a)


class Shift:
    def __init__(self, rng: np.random.Generator, mag: float = 1.0) -> None:
        self.gamma = np.exp(rng.normal(0, 0.06 * mag, 3))
        self.gain = 1 + rng.normal(0, 0.03 * mag, 3)
        self.off = rng.normal(0, 0.015 * mag, 3)
        self.sat = np.exp(rng.normal(0, 0.05 * mag))
        self.tint = rng.normal(0, 0.01 * mag, 3)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        img = hsv_sat(np.clip(np.clip(img, 0, 1) ** self.gamma * self.gain + self.off, 0, 1), self.sat)
        return np.clip(img + np.linspace(-1, 1, img.shape[1])[None, :, None] * self.tint, 0, 1)


def u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def make_chain(segments: int, seed: int, creep_per_seg: float, sat_ramp=None):
    rng = np.random.default_rng(seed + 100)
    step = L - K
    content = Content(step * (segments - 1) + L, seed, sat_ramp)
    shifts: list[Shift] = []
    raws, cleans = [], []
    for n in range(segments):
        if n:
            shifts.append(Shift(rng))
        raw, clean = [], []
        for i in range(L):
            f = content.frame(n * step + i)
            g = creep(f, creep_per_seg * (n * step + i) / step)
            for s in shifts:
                g = s(g)
            raw.append(u8(g + rng.normal(0, 1.5 / 255, g.shape)))
            clean.append(u8(f))
        raws.append(raw)
        cleans.append(clean)
    return raws, cleans


NEED = sorted(set(range(L - K, L)) | set(range(K, K + 4)) | set(range(K + 40, K + 60)))


def assemble(raws, method: str | None, anchor: float):
    """Frames a streaming assembler would show (only those the metrics need)."""
    if method is None:
        return [{i: r[i] for i in NEED} for r in raws]
    m = ChainColourMatcher(ColourConfig(method=method, anchor=anchor))
    shown = []
    for n, raw in enumerate(raws):
        first = 0 if n == 0 else K
        samples = {first: raw[first], L // 2: raw[L // 2], L - 1: raw[L - 1]}
        if n == 0:
            seg = m.start(samples, L, K)
        else:
            seg = m.follow(raw[:K], [shown[-1][i] for i in range(L - K, L)], samples, L, K)
        shown.append({i: seg.apply(raw[i], i) for i in NEED})
    return shown


def chain_table(name: str, chains, configs) -> dict[str, Any]:
    rows = []
    for method, anchor in configs:
        jumps, ratios, drift, look, ms = [], [], [], [], []
        for raws, cleans in chains:
            t0 = time.perf_counter()
            shown = assemble(raws, method, anchor)
            ms.append((time.perf_counter() - t0) / (len(raws) - 1) * 1000)
            interior = np.median(np.concatenate(
                [consecutive_delta_e([s[i] for i in range(K + 40, K + 60)]) for s in shown]))
            for n in range(1, len(shown)):
                st = consecutive_delta_e([shown[n - 1][i] for i in range(L - 3, L)] + [shown[n][i] for i in range(K, K + 4)])
                jumps.append(st[2])
                ratios.append(st.max() / interior)
            tail = lambda s: [s[i] for i in range(L - 5, L)]
            d = [ciede2000(mean_lab(np.stack(tail(s))), mean_lab(np.stack(c[-5:]))) for s, c in zip(shown, cleans)]
            drift.append(np.sqrt(np.mean(np.square(d))))
            a, b = LookStats.of(tail(shown[-1])), LookStats.of(cleans[-1][-5:])
            look.append([np.log((a.contrast + 2) / (b.contrast + 2)), np.log((a.chroma + 2) / (b.chroma + 2))])
        lc = np.mean(look, axis=0)
        rows.append({"method": method or "unmatched", "anchor": anchor, "seam_de": round(float(np.mean(jumps)), 4),
                     "ratio_median": round(float(np.median(ratios)), 4), "ratio_max": round(float(np.max(ratios)), 4),
                     "drift_rms": round(float(np.mean(drift)), 4), "log_contrast_end": round(float(lc[0]), 4),
                     "log_chroma_end": round(float(lc[1]), 4), "ms_per_seam": round(float(np.mean(ms)), 1)})
        print(rows[-1], flush=True)
    return {"name": name, "chains": len(chains), "segments": len(chains[0][0]), "rows": rows}


def seam_table(seams: int) -> dict[str, Any]:
    """Held-out ΔE of each estimator on one seam, aligned and with the head moved by dt."""
    methods = ["none", "affine", "mkl", "histogram", "hm-mkl", "hm-affine", "auto"]
    rows = []
    for dt in (0.0, 1.0, 3.0):
        errs = {m: [] for m in methods}
        for s in range(seams):
            rng = np.random.default_rng(1000 + s)
            content = Content(2 * L, s)
            base, new = [Shift(rng) for _ in range(int(rng.integers(0, 4)))], Shift(rng)

            def render(t: float, shifts, noise: bool = True, content=content, rng=rng) -> np.ndarray:
                g = creep(content.frame(t), 0.1)
                for sh in shifts:
                    g = sh(g)
                return u8(g + (rng.normal(0, 1.5 / 255, g.shape) if noise else 0))

            tail = [render(L - K + i, base) for i in range(K)]
            head = [render(L - K + i + dt, base + [new]) for i in range(K)]
            later = range(L, L + 100, 12)
            for m in methods:
                t = estimate(head, tail, m)
                errs[m].append(np.mean([frame_delta_e(t.apply(render(j, base + [new])), render(j, base, False)) for j in later]))
        rows.append({"offset_px": dt, **{m: round(float(np.mean(errs[m])), 4) for m in methods}})
        print(rows[-1], flush=True)
    return {"seams": seams, "methods": methods, "rows": rows}


def report(data: dict[str, Any]) -> str:
    import common

    st = data["seam"]
    out = ["## Colour estimators on synthetic chains (`benchmarks/bench_colour.py`)", "",
           f"{common.machine_line(data['machine'])}; {data['seconds']:.0f} s.", "",
           f"### one seam, {st['seams']} random shifts: mean ΔE on later frames vs the true look", "",
           common.md_table(["head offset", *st["methods"]],
                           [[f"{r['offset_px']:.0f} px", *(f"{r[m]:.2f}" for m in st["methods"])] for r in st["rows"]])]
    for t in data["chains"]:
        out += ["", f"### {t['name']}: {t['chains']} chains x {t['segments']} segments ({L} frames, overlap {K})", "",
                common.md_table(["method", "anchor", "seam ΔE", "seam ratio median", "max", "mean-Lab drift RMS",
                                 "log contrast end", "log chroma end", "ms/seam"],
                                [[r["method"], r["anchor"], f"{r['seam_de']:.2f}", f"{r['ratio_median']:.2f}",
                                  f"{r['ratio_max']:.2f}", f"{r['drift_rms']:.2f}", f"{r['log_contrast_end']:+.3f}",
                                  f"{r['log_chroma_end']:+.3f}", f"{r['ms_per_seam']:.0f}"] for r in t["rows"]])]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chains", type=int, default=3)
    ap.add_argument("--segments", type=int, default=20)
    ap.add_argument("--seams", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="1 chain, 8 segments, 3 seams")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/RESULTS.md)")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common

    t_start = time.perf_counter()
    machine = common.machine_info()
    if a.quick:
        a.chains, a.segments, a.seams = 1, 8, 3
    seam = seam_table(a.seams)
    creep_chains = [make_chain(a.segments, s, 0.03) for s in range(a.chains)]
    t1 = chain_table("creep + seam shifts", creep_chains, [
        (None, 0.0), ("affine", 0.0), ("mkl", 0.0), ("hm-mkl", 0.0), ("auto", 0.0),
        ("auto", 0.5), ("auto", 1.0)])
    content_chains = [make_chain(a.segments, s, 0.0, sat_ramp=(0.3, 1.0)) for s in range(a.chains)]
    t2 = chain_table("no creep, content really grows 3x more colourful", content_chains, [
        (None, 0.0), ("auto", 0.0), ("auto", 0.5), ("auto", 1.0)])
    data = {"command": common.command_line(), "quick": a.quick, "machine": machine, "seam": seam, "chains": [t1, t2],
            "seconds": round(time.perf_counter() - t_start, 1)}
    path = common.write_section("colour", report(data), data, a.out)
    print(report(data))
    print(f"\nwrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
