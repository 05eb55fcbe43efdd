"""Seam quality: how visible are seams, and how far does a long chain's colour drift?

Films are rendered with the preview backend's deterministic colour drift on
(``backend_options={'drift': D}``), then assembled once per colour method: off
(``none``) and each method ``composer.colour`` offers (``affine``, ``mkl``,
``auto``, ``hm-mkl``, ``hm-affine``, ``histogram``), through ``composer.render``
with ``defaults.colour.method`` set per run. A segment is conditioned on its
predecessor's tail as shown (colour-corrected), so each method renders its own
segments (cached under /tmp for the next run).
The preview is rendered without its caption strip (``text=False``): the strip
(frame counter and prompt) is an annotation each segment redraws from scratch
while its conditioned frames carry the predecessor's strip, so it jumps at every
seam by construction (9 ΔE in the strip with drift on, measured), which no model
output has and no colour method should be judged on.
The output film is decoded and measured:

* seam jump ratio: the largest CIEDE2000 between consecutive output frames from
  the overlap to ``AFTER`` frames past a seam (the plan's ``seam_frame``), over the
  median of the same measure between consecutive frames inside segments. A
  *control* applies the same window statistic at seam-free places inside segments,
  which says what a perfect seam would score with this window.
* long-chain drift: a 20-segment single chain; per segment, the CIEDE2000 of its
  average Lab colour to the first segment's, with matching off and on, beside
  the same chain rendered with no drift (content change alone) and, as the
  colour error proper, the distance to that undrifted render segment by segment.

    python benchmarks/seams.py [--quick] [--out PATH] [--drift 1.0]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

AFTER = 3  # consecutive pairs measured past the first generated frame
STORYBOARD_METHODS = ("none", "affine", "mkl", "auto")
TARGET_MEAN, TARGET_WORST, TARGET_DRIFT = 1.2, 1.5, 2.0


def colour_methods() -> list[str]:
    """none, the storyboard's methods, then every other estimator the colour module offers."""
    try:
        from composer.colour import METHODS
    except ImportError:  # pragma: no cover - the colour module is still moving
        METHODS = ()
    extra = [m for m in METHODS if m not in STORYBOARD_METHODS]
    return [*STORYBOARD_METHODS, *extra]


# --------------------------------------------------------------------------- films


def seam_board(quick: bool, method: str) -> str:
    if quick:  # one short chain: two seams
        scenes = [
            {"id": "harbour", "duration": "1.5s", "prompt": "A quiet harbour at dawn, mist on the water"},
            {"id": "boat", "duration": "0.5s", "prompt": "A fishing boat drifts into the harbour", "transition": "continue"},
        ]
        return common.board_yaml(scenes, frames=25, overlap=9, method=method, title="seams quick")
    scenes = [
        {"id": "harbour", "duration": "12s", "prompt": "A quiet harbour at dawn, mist on the water"},
        {"id": "boat", "duration": "8s", "prompt": "A small fishing boat drifts into the harbour",
         "transition": "continue"},
        {"id": "forest", "duration": "12s", "prompt": "A forest path in autumn, light through the trees",
         "transition": {"crossfade": "1s"}},
        {"id": "city", "duration": "10s", "prompt": "A neon city street at night in the rain", "transition": "cut"},
    ]
    return common.board_yaml(scenes, method=method, title="seams")


def chain_board(quick: bool, method: str, segments: int) -> str:
    frames, overlap = (25, 9) if quick else (121, 17)
    total = frames + (segments - 1) * (frames - overlap) - 4  # the fewest segments covering it: exactly `segments`
    scenes = [{"id": "shot", "duration": f"{total}f", "prompt": "A sunlit meadow with wild flowers, slow camera drift"}]
    return common.board_yaml(scenes, frames=frames, overlap=overlap, method=method, title="long chain")


def measure_film(path: Path) -> dict[str, np.ndarray]:
    """Per output frame: ΔE to the previous frame (0 for the first) and the mean Lab colour."""
    from composer.media import VideoReader
    from composer.metrics import ciede2000, downsample, rgb_to_lab

    deltas, means = [], []
    prev = None
    with VideoReader(path) as reader:
        for frame in reader:
            lab = rgb_to_lab(downsample(frame))
            deltas.append(0.0 if prev is None else float(np.mean(ciede2000(prev, lab))))
            means.append(lab.reshape(-1, 3).mean(axis=0, dtype=np.float64))
            prev = lab
    return {"delta": np.array(deltas), "mean_lab": np.array(means)}


def seam_stats(plan, delta: np.ndarray) -> dict[str, Any]:
    """Per-seam window peaks over the median interior step, plus a seam-free control."""
    n = len(delta)
    seams = [s for s in plan.segments if s.depends_on is not None]
    in_window = np.zeros(n, bool)
    windows = []
    for s in seams:
        lo, hi = max(1, s.seam_frame - s.overlap + 1), min(n, s.seam_frame + AFTER + 1)
        in_window[lo:hi] = True
        windows.append((s, lo, hi))
    # interior pairs: both frames shown by one segment, away from every seam window, outside crossfades
    owner = np.full(n, -1)
    for s in plan.segments:
        owner[s.shown_start:s.shown_end] = np.where(owner[s.shown_start:s.shown_end] == -1, s.index, -2)
    interior = np.zeros(n, bool)
    interior[1:] = (owner[1:] == owner[:-1]) & (owner[1:] >= 0) & ~in_window[1:]
    med = float(np.median(delta[interior])) if interior.any() else float("nan")
    per_seam = []
    for s, lo, hi in windows:
        peak = float(delta[lo:hi].max())
        per_seam.append({"segment": s.index, "seam_frame": s.seam_frame, "peak_de": round(peak, 4),
                         "step_de": round(float(delta[s.seam_frame]), 4),
                         "ratio": round(peak / med, 4), "step_ratio": round(float(delta[s.seam_frame]) / med, 4)})
    # control: the same window length, placed inside segments where every pair is interior
    controls = []
    for s in plan.segments:
        width = (seams[0].overlap if seams else 9) + AFTER
        lo = max(1, s.shown_start + 1)
        for start in range(lo, s.shown_end - width, max(width, 8)):
            if interior[start:start + width].all():
                controls.append(float(delta[start:start + width].max()) / med)
    return {"median_interior_de": round(med, 4), "interior_pairs": int(interior.sum()), "seams": per_seam,
            "control_ratios": [round(c, 4) for c in controls]}


def segment_means(plan, mean_lab: np.ndarray) -> list[np.ndarray]:
    return [mean_lab[s.shown_start:s.shown_end].mean(axis=0) for s in plan.segments]


# --------------------------------------------------------------------------- runs


def storyboard_methods() -> tuple[str, ...]:
    """The colour methods a storyboard's ``defaults.colour.method`` accepts."""
    import typing

    from composer.storyboard.models import ColourSpec

    return typing.get_args(ColourSpec.model_fields["method"].annotation) or STORYBOARD_METHODS


def render_film(board_text: str, out: Path, cache: Path, drift: float, method: str) -> tuple[Any, dict, float]:
    """Render ``board_text`` with ``defaults.colour.method`` = ``method`` through composer.render
    (segments rendered or taken from the cache); a method the storyboard does not accept goes through
    composer.assemble with that estimator."""
    import composer
    from composer.assemble import assemble
    from composer.storyboard.models import ColourSpec

    t0 = time.perf_counter()
    if method in storyboard_methods():
        board = common.load_board(board_text.replace("method: auto", f"method: {method}"))
        result = composer.render(board, out, cache=cache, backend_options={"drift": drift, "text": False}, otio=False)
        return result.plan, result.assembly, float(result.assembly.get("seconds", time.perf_counter() - t0))
    board = common.load_board(board_text)
    plan, videos, _, _ = common.render_segments(board, cache, drift=drift, text=False)
    t0 = time.perf_counter()
    spec = ColourSpec.model_construct(method=method, strength=1.0, anchor=board.defaults.colour.anchor)
    report = assemble(plan, videos, out, board=board, colour=spec)
    return plan, report, time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict[str, Any]:
    log = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=sys.stderr, flush=True))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache)
    methods = args.methods.split(",") if args.methods else colour_methods()
    if "none" not in methods:
        methods.insert(0, "none")
    info = common.machine_info()
    t_start = time.perf_counter()

    memo: dict[tuple[str, str, float], tuple[Any, dict[str, np.ndarray], float]] = {}

    def film(text: str, method: str, drift: float) -> tuple[Any, dict[str, np.ndarray], float]:
        """(plan, per-frame measures, assembly seconds) of ``text`` assembled with ``method``."""
        key = (text, method, drift)
        if key not in memo:
            path = work / f"film-{len(memo)}-{method}.mp4"
            plan, _, secs = render_film(text, path, cache, drift, method)
            memo[key] = (plan, measure_film(path), secs)
            path.unlink()
        return memo[key]

    # --- seams ---------------------------------------------------------------
    import composer

    board_text = seam_board(args.quick, "auto")
    plan = composer.plan(common.load_board(board_text))
    log(f"seam film: {plan.total_frames} frames, {len(plan.segments)} segments")
    seam_film = {"frames": plan.total_frames, "segments": len(plan.segments), "chains": len(plan.chains),
                 "resolution": f"{plan.width}x{plan.height}", "fps": plan.fps}
    seam_rows: dict[str, Any] = {}
    runs = [("no drift", "none", 0.0)] + [(m, m, args.drift) for m in methods]
    for label, m, drift in runs:
        plan, measured, secs = film(board_text, m, drift)
        stats = seam_stats(plan, measured["delta"])
        ratios = [s["ratio"] for s in stats["seams"]]
        steps = [s["step_ratio"] for s in stats["seams"]]
        stats.update(method=m, drift=drift, assemble_seconds=round(secs, 2),
                     ratio_mean=round(float(np.mean(ratios)), 4), ratio_worst=round(float(np.max(ratios)), 4),
                     step_ratio_mean=round(float(np.mean(steps)), 4), step_ratio_worst=round(float(np.max(steps)), 4),
                     control_mean=round(float(np.mean(stats["control_ratios"])), 4) if stats["control_ratios"] else None,
                     control_p95=round(float(np.percentile(stats["control_ratios"], 95)), 4) if stats["control_ratios"] else None)
        seam_rows[label] = stats
        log(f"  {label:10s} ratio mean {stats['ratio_mean']:.2f} worst {stats['ratio_worst']:.2f} "
            f"(seam step mean {stats['step_ratio_mean']:.2f} worst {stats['step_ratio_worst']:.2f}) in {secs:.1f} s")

    # --- long chain ------------------------------------------------------------
    chain_methods = args.chain_methods.split(",") if args.chain_methods else ["none", "affine", "mkl", "auto"]
    # quick: the seam film is one chain already; measure it rather than render another
    chain_text = board_text if args.quick else chain_board(args.quick, "auto", args.segments)
    truth_plan, truth_measured, _ = film(chain_text, "none", 0.0)
    truth = segment_means(truth_plan, truth_measured["mean_lab"])
    from composer.metrics import mean_lab_delta_e

    chain: dict[str, Any] = {"segments": len(truth_plan.segments), "frames": truth_plan.total_frames,
                             "no_drift_vs_first": [round(mean_lab_delta_e(truth[0], t), 3) for t in truth]}
    for m in chain_methods:
        plan, measured, secs = film(chain_text, m, args.drift)
        means = segment_means(plan, measured["mean_lab"])
        chain[m] = {
            "vs_first": [round(mean_lab_delta_e(means[0], x), 3) for x in means],
            "vs_undrifted": [round(mean_lab_delta_e(t, x), 3) for t, x in zip(truth, means)],
            # the chain's change of colour since segment 1 beyond the content's own change:
            # segment k's shift from segment 1, laid on the undrifted segment 1, against undrifted segment k
            "drift": [round(mean_lab_delta_e(truth[0] + (x - means[0]), t), 3) for t, x in zip(truth, means)],
            "assemble_seconds": round(secs, 2),
        }
        log(f"  chain {m:8s} last segment: drift {chain[m]['drift'][-1]:.2f} ΔE; {chain[m]['vs_first'][-1]:.2f} ΔE "
            f"to the first, {chain[m]['vs_undrifted'][-1]:.2f} ΔE to the undrifted render")
    info["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    plot_dir = common.results_dir(args.out)
    plot_dir.mkdir(parents=True, exist_ok=True)
    plot = common.line_plot(
        plot_dir / "seams_long_chain.png", {f"{m}": chain[m]["drift"] for m in chain_methods},
        title=f"{chain['segments']}-segment chain, drift {args.drift:g}: colour drift since segment 1, content change removed",
        xlabel="segment", ylabel="CIEDE2000", hline=TARGET_DRIFT)
    plot2 = common.line_plot(
        plot_dir / "seams_long_chain_vs_first.png",
        {"no drift (content)": chain["no_drift_vs_first"], **{f"drift, {m}": chain[m]["vs_first"] for m in chain_methods}},
        title="same chain: segment mean colour vs segment 1 (content change included)", xlabel="segment",
        ylabel="CIEDE2000", hline=TARGET_DRIFT)
    return {"machine": info, "command": common.command_line(), "quick": args.quick, "drift": args.drift,
            "seam_film": seam_film, "seams": seam_rows, "chain": chain,
            "plots": [str(plot), str(plot2)], "seconds": round(time.perf_counter() - t_start, 1)}


def report(data: dict[str, Any]) -> str:
    info, seams, chain = data["machine"], data["seams"], data["chain"]
    rows = []
    for m, s in seams.items():
        ok = s["ratio_mean"] <= TARGET_MEAN and s["ratio_worst"] <= TARGET_WORST
        reference = s.get("drift", data["drift"]) == 0
        name = "no drift, none (reference)" if reference else f"drift {data['drift']:g}, {m}"
        rows.append([name, len(s["seams"]), f"{s['ratio_mean']:.2f}", f"{s['ratio_worst']:.2f}",
                     f"{s['step_ratio_mean']:.2f}", f"{s['step_ratio_worst']:.2f}",
                     f"{s['median_interior_de']:.2f}", "—" if reference else common.verdict(ok)])
    s0 = seams.get("none") or next(iter(seams.values()))
    ctl = "Control: no seam-free window long enough inside the segments."
    if s0.get("control_mean") is not None:
        ctl = (f"Control: the same window statistic at {len(s0['control_ratios'])} seam-free places inside "
               f"segments (`{s0['method']}` film) scores mean {s0['control_mean']:.2f}, 95th percentile "
               f"{s0['control_p95']:.2f}: what an invisible seam would score with this window.")
    methods = [m for m in chain if isinstance(chain[m], dict)]
    n = chain["segments"]
    crow = [["no drift, none (content change alone)", "—", "—", f"{chain['no_drift_vs_first'][-1]:.2f}",
             f"{max(chain['no_drift_vs_first']):.2f}", "—", "—"]]
    for m in methods:
        c = chain[m]
        crow.append([f"drift {data['drift']:g}, {m}", f"**{c['drift'][-1]:.2f}**", f"{max(c['drift']):.2f}",
                     f"{c['vs_first'][-1]:.2f}", f"{max(c['vs_first']):.2f}", f"{c['vs_undrifted'][-1]:.2f}",
                     common.verdict(c["drift"][-1] <= TARGET_DRIFT)])
    plots = ", ".join(f"[results/{Path(p).name}](results/{Path(p).name})" for p in data["plots"])
    return "\n".join([
        "## Seam quality (`benchmarks/seams.py`)",
        "",
        f"Command: `{data['command']}` ({data['seconds']:.0f} s)  ",
        f"Machine: {common.machine_line(info)}",
        "",
        f"Seam film: {data['seam_film']['frames']} frames at {data['seam_film']['resolution']}, "
        f"{data['seam_film']['segments']} segments in {data['seam_film']['chains']} chain(s); "
        f"preview backend, drift {data['drift']:g}. Seam jump ratio = the largest CIEDE2000 between consecutive "
        f"output frames from the overlap to {AFTER} frames past the first generated frame, over the median "
        "consecutive ΔE inside segments; *seam step* = the single step onto the first generated frame, over the "
        f"same median. Targets: ratio ≤ {TARGET_MEAN} mean and ≤ {TARGET_WORST} worst.",
        "",
        common.md_table(["film, colour method", "seams", "ratio mean", "ratio worst", "seam step mean", "seam step worst",
                         "median interior ΔE", "target"], rows),
        "",
        ctl + " The no-drift row is the preview's own seam (motion carried across it, no colour drift): "
        "the best any colour method can reach on this film.",
        "",
        f"Long chain: {n} segments in one chain ({chain['frames']} frames), compounding drift. The preview's "
        "content itself changes colour along a chain (each segment dissolves into its own procedural scene), so "
        "*drift* removes it: segment k's mean-Lab shift from segment 1, laid on the undrifted render's segment 1, "
        "against the undrifted render's segment k (CIEDE2000). Also shown: ΔE of each segment's average colour "
        "to segment 1's as such (content change included) and to the undrifted render's same segment (includes "
        f"segment 1's own drift, which nothing can see). Target ≤ {TARGET_DRIFT} ΔE drift at segment {n}; plots: "
        f"{plots}.",
        "",
        common.md_table(["film", f"drift at {n}", "drift max", f"vs segment 1 at {n}", "vs segment 1 max",
                         f"vs undrifted at {n}", "target"], crow),
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (for tests)")
    p.add_argument("--out", default=None, help="results file to write this section into (default benchmarks/RESULTS.md)")
    p.add_argument("--drift", type=float, default=1.0, help="preview drift strength")
    p.add_argument("--methods", default=None, help="comma-separated colour methods (default: all)")
    p.add_argument("--chain-methods", default=None, help="methods for the long chain (default none,affine,mkl,auto)")
    p.add_argument("--segments", type=int, default=20, help="long-chain length (quick: the seam film's 3)")
    p.add_argument("--cache", default=str(common.DEFAULT_CACHE / "seams"), help="segment cache folder")
    p.add_argument("--work", default=None, help="folder for output films (default: a temp folder)")
    p.add_argument("--wait-load", type=float, default=None, help="wait for the 1-min load average to drop below this")
    p.add_argument("--wait-max", type=float, default=1200, help="give up waiting after this many seconds")
    p.add_argument("--silent", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.methods = args.methods or "none,auto"
        args.chain_methods = args.chain_methods or "none,auto"
        if args.cache == str(common.DEFAULT_CACHE / "seams"):
            args.cache = str(common.DEFAULT_CACHE / "seams-quick")
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-seams-") as tmp:
        args.work = args.work or tmp
        common.wait_for_quiet(args.wait_load, args.wait_max)
        data = run(args)
        path = common.write_section("seams", report(data), data, args.out)
    print(report(data))
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
