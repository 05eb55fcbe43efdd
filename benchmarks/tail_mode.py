"""Raw or colour-corrected tails as conditioning: which keeps a long chain's colour?

Renders one 20-segment chain with the preview backend's model-like drift twice,
conditioning each segment on its predecessor's tail as generated (``raw``) or as
shown after colour matching (``corrected``), and measures how far each segment's
mean colour (CIE Lab) is from the same segment rendered without drift (the true
look: the content moves, so comparing with the first segment would measure the
content), in the assembled film; colour matching off is the baseline. Writes its section of benchmarks/RESULTS.md.

    python benchmarks/tail_mode.py [--quick] [--out RESULTS.md]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import composer
from composer.media import read_frames
from composer.metrics import ciede2000, mean_lab

BOARD = """\
version: 1
title: tail mode
output: {{resolution: 480p, aspect_ratio: "16:9", fps: 12}}
defaults:
  seed: 7
  segment: {{frames: {frames}, overlap: 9}}
  colour: {{method: auto, tail: {tail}}}
scenes:
  - id: shot
    duration: {frames_total}f
    prompt: "a slow pan across a harbour at dawn, boats and a pier"
"""


def segment_means(frames: list[np.ndarray], plan) -> list[np.ndarray]:
    """Mean Lab of each segment's shown frames."""
    means = []
    for seg in plan.segments:
        shown = frames[seg.shown_start:seg.shown_end]
        means.append(mean_lab(np.stack(shown[:: max(1, len(shown) // 6)])))
    return means


def errors(means: list[np.ndarray], truth: list[np.ndarray]) -> list[float]:
    return [float(ciede2000(m[None, :], t[None, :])[0]) for m, t in zip(means, truth)]


def run(quick: bool, drift: float) -> dict[str, list[float]]:
    segments = 4 if quick else 20
    frames = 17 if quick else 33
    total = frames + (segments - 1) * (frames - 9)
    out: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def film(name: str, method: str, tail: str, d: float) -> list[np.ndarray]:
            text = BOARD.format(frames=frames, frames_total=total, tail=tail).replace("method: auto", f"method: {method}")
            board = composer.loads(text, name=str(tmp / f"{name}.yaml"), base_dir=tmp)
            result = composer.render(board, tmp / f"{name}.mp4", cache=tmp / "cache", backend_options={"drift": d})
            return segment_means(read_frames(tmp / f"{name}.mp4"), result.plan)

        truth = film("truth", "none", "raw", 0.0)
        out["matching off"] = errors(film("off", "none", "raw", drift), truth)
        out["raw tail"] = errors(film("raw", "auto", "raw", drift), truth)
        out["corrected tail"] = errors(film("corrected", "auto", "corrected", drift), truth)
        assert all(len(v) == segments for v in out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 short segments (for the test suite)")
    ap.add_argument("--drift", type=float, default=1.0)
    ap.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/RESULTS.md)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common

    started = time.time()
    machine = common.machine_info()
    res = run(args.quick, args.drift)
    data = {"command": common.command_line(), "quick": args.quick, "drift": args.drift, "machine": machine,
            "segments": len(res["raw tail"]), "delta_e": {k: [round(float(x), 4) for x in v] for k, v in res.items()},
            "seconds": round(time.time() - started, 1)}
    path = common.write_section("tail_mode", report(data), data, args.out)
    print(report(data))
    print(f"\nwrote {path}", file=sys.stderr)


def report(data: dict) -> str:
    rows = [[name, f"{f[-1]:.2f}", f"{max(f):.2f}", f"{np.mean(f):.2f}", f"{sum(x > 2.0 for x in f)} of {len(f)}"]
            for name, f in data["delta_e"].items()]
    import common

    return "\n".join([
        "## Conditioning tail: raw or corrected",
        "",
        f"One chain of {data['segments']} segments, preview drift {data['drift']}, colour method auto; "
        f"{common.machine_line(data['machine'])}; {data['seconds']:.0f} s.",
        "ΔE (CIEDE2000) between each segment's mean colour in the film and in the same chain rendered without drift.",
        "",
        common.md_table(["conditioning", "last segment", "worst segment", "mean", "segments above 2 ΔE"], rows),
        "",
        "Per segment: " + "; ".join(f"{name}: " + " ".join(f"{x:.1f}" for x in f) for name, f in data["delta_e"].items()),
    ])


if __name__ == "__main__":
    sys.exit(main())
