"""Wall time against film length: does a render wait only for the model, and how long after the
last request is the film there?

One continuous chain (30 s, 2 min, 5 min, 10 min at 480p, 121-frame segments with a 17-frame
overlap) rendered by the whole ``composer render --backend fal`` command as a user runs it
(a subprocess, default options but ``-q``), against the fal emulator in its own process in
canned mode: each request takes ``latency`` seconds of real wall time and no video work, and
the emulator runs at most ``concurrency`` requests at once, like a fal account. Each mode the
planner knows (``sequential``; ``bridged`` once it exists) is measured. Reported per film:
wall time, requests, critical path × latency, the estimate of ``composer.rendering.estimate``,
the time from the command's start to the last request done and from there to the finished film.

    python benchmarks/walltime.py [--quick] [--out PATH] [--latency 20,5] [--lengths 30,120,300,600]
"""
from __future__ import annotations

import argparse
import itertools
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SEQUENTIAL_TARGET = 0.05  # sequential: at most 5 % above critical path × latency (at 20 s)
BRIDGED_WAVES = 4  # bridged: at most 4 × latency before assembly
FPS = 24


class Emulator(common.ServerProcess):
    """``python -m composer.testing.fal --canned`` in its own process: like fal, its work is not composer's."""

    def __init__(self, latency: float, concurrency: int):
        self.args = [sys.executable, "-m", "composer.testing.fal", "--canned", "--latency", str(latency),
                     "--concurrency", str(concurrency)]

    def __enter__(self) -> Emulator:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        env: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("export "):
                k, v = line[len("export "):].strip().split("=", 1)
                env[k] = v
            if line.startswith("#"):
                break
        self.point_at(env)
        return self

    def stats(self) -> dict[str, Any]:
        import httpx

        trust = ssl.create_default_context(cafile=self.env["SSL_CERT_FILE"])
        r = httpx.get(f"https://{self.env['FAL_QUEUE_RUN_HOST']}/_emulator/stats",
                      headers={"Authorization": f"Key {self.env['FAL_KEY']}"}, verify=trust, timeout=30)
        r.raise_for_status()
        return r.json()


def modes_available() -> list[str]:
    """``sequential``, plus ``bridged`` when the storyboard accepts ``defaults.render.mode: bridged``."""
    from composer.errors import ComposerError

    try:
        common.load_board(film_board(2.0, "bridged", quick=True))
    except ComposerError:
        return ["sequential"]
    return ["sequential", "bridged"]


def film_board(seconds: float, mode: str, *, quick: bool, cuts: int = 0) -> str:
    """One continuous chain ``seconds`` long (or ``cuts`` + 1 chains splitting it) in ``mode``."""
    frames, overlap = (17, 9) if quick else (121, 17)
    total = round(seconds * FPS)
    parts = cuts + 1
    scenes = [{"id": f"s{i}", "duration": f"{total // parts}f", "prompt": f"A long take along a coast, part {i}"}
              for i in range(parts)]
    for s in scenes[1:]:
        s["transition"] = "cut"
    text = common.board_yaml(scenes, resolution="480p", fps=FPS, frames=frames, overlap=overlap, title=f"{seconds:g} s")
    if mode != "sequential":
        text = text.replace("defaults:\n", f"defaults:\n  render: {{mode: {mode}}}\n", 1)
    return text


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def render_film(emu: Emulator, text: str, tmp: Path, name: str, *, latency: float, concurrency: int,
                jobs: int | None) -> dict[str, Any]:
    import composer
    from composer.media import probe
    from composer.rendering.estimate import estimate

    board = tmp / f"{name}.yaml"
    board.write_text(text)
    out = tmp / f"{name}.mp4"
    plan = composer.plan(composer.load(board))
    env = {**os.environ, **emu.env, "COMPOSER_FAL_CONCURRENCY": str(concurrency)}
    cmd = [sys.executable, "-m", "composer", "render", str(board), "-o", str(out), "--backend", "fal",
           "--cache-dir", str(tmp / f"cache-{name}"), "-q"] + (["--jobs", str(jobs)] if jobs else [])
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    t1 = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    jobs_seen = [j for j in emu.stats()["jobs"].values() if j["created"] >= t0 - 1e-3]
    first_submit = min(j["created"] for j in jobs_seen)
    last_done = max(j["finished"] for j in jobs_seen)
    est = estimate(plan, latency_s=latency, concurrency=min(jobs or concurrency, concurrency))
    film = probe(out)
    # composer's own time between one request's completion and the next submit (download, checks,
    # cache, colour-following the chain, the tail clip, the poll that notices): on the critical path
    ordered = sorted(jobs_seen, key=lambda j: j["created"])
    gaps = sorted(b["created"] - a["finished"] for a, b in itertools.pairwise(ordered) if b["created"] >= a["finished"])
    ideal = plan.critical_path * latency
    return {
        "film_s": round(plan.total_frames / plan.fps, 2), "frames": plan.total_frames,
        "film_frames_written": film.num_frames, "requests": len(jobs_seen), "planned_requests": plan.requests,
        "critical_path": plan.critical_path, "critical_path_x_latency_s": round(ideal, 3),
        "estimate_waves": est.waves, "estimate_s": round(est.wall_s, 3),
        "wall_s": round(t1 - t0, 3), "first_request_after_s": round(first_submit - t0, 3),
        "requests_span_s": round(last_done - first_submit, 3), "segments_in_s": round(last_done - t0, 3),
        "overhead_over_critical_path": round((last_done - t0) / ideal - 1.0, 4) if ideal else None,
        "last_request_to_film_s": round(t1 - last_done, 3),
        "gap_between_requests_median_s": round(gaps[len(gaps) // 2], 3) if gaps else None,
        "peak_running": max_overlap([(j["started"], j["finished"]) for j in jobs_seen if j["started"]]),
    }


def run(args: argparse.Namespace, on_row=None) -> dict[str, Any]:
    log = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=sys.stderr, flush=True))
    info = common.machine_info()
    t_start = time.perf_counter()
    available = modes_available()
    modes = [m for m in args.modes.split(",") if m in available]
    skipped = [m for m in args.modes.split(",") if m not in available]
    rows: list[dict[str, Any]] = []

    def data(done: bool) -> dict[str, Any]:
        return {"machine": info, "command": common.command_line(), "quick": args.quick, "modes": modes,
                "modes_not_available": skipped, "rows": rows, "complete": done,
                "seconds": round(time.perf_counter() - t_start, 1)}
    for latency in [float(x) for x in args.latency.split(",")]:
        default_lengths = args.lengths_at.get(latency) or args.lengths
        with tempfile.TemporaryDirectory(prefix="bench-walltime-") as tmp, \
                Emulator(latency, args.concurrency) as emu:
            tmp_path = Path(tmp)
            if not args.quick:  # the emulator makes its canned clip once per size on the first request
                render_film(emu, film_board(121 / FPS, "sequential", quick=False), tmp_path, "warm", latency=latency,
                            concurrency=args.concurrency, jobs=None)
            for mode in modes:
                for seconds in [float(x) for x in (args.lengths_for.get(mode) or default_lengths).split(",")]:
                    name = f"{mode}-{seconds:g}s"
                    row = {"mode": mode, "latency_s": latency, "concurrency": args.concurrency, "jobs": args.jobs,
                           "cuts": args.cuts,
                           **render_film(emu, film_board(seconds, mode, quick=args.quick, cuts=args.cuts), tmp_path,
                                         name, latency=latency, concurrency=args.concurrency, jobs=args.jobs)}
                    rows.append(row)
                    if on_row is not None:  # a long run keeps what it measured if it is stopped
                        on_row(data(False))
                    log(f"  {mode} {seconds:g} s at {latency:g} s: {row['requests']} requests, wall {row['wall_s']:.1f} s, "
                        f"segments in {row['segments_in_s']:.1f} s vs critical path × latency "
                        f"{row['critical_path_x_latency_s']:.1f} s ({row['overhead_over_critical_path']:+.1%}), "
                        f"estimate {row['estimate_s']:.1f} s, last request → film {row['last_request_to_film_s']:.1f} s, "
                        f"peak {row['peak_running']} at once")
    info["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return data(True)


def goal(row: dict[str, Any]) -> tuple[str, bool | None]:
    if row["mode"] == "bridged":
        return f"≤ {BRIDGED_WAVES} × latency", row["segments_in_s"] <= BRIDGED_WAVES * row["latency_s"]
    ok = row["overhead_over_critical_path"] is not None and row["overhead_over_critical_path"] <= SEQUENTIAL_TARGET
    return f"≤ +{SEQUENTIAL_TARGET:.0%}" + ("" if row["latency_s"] >= 20 else " (stress)"), ok


def report(data: dict[str, Any]) -> str:
    rows = []
    for r in data["rows"]:
        target, ok = goal(r)
        rows.append([r["mode"], f"{r['latency_s']:g}", common_length(r["film_s"]), r["requests"], r["critical_path"],
                     f"{r['critical_path_x_latency_s']:.1f}", f"{r['estimate_s']:.1f} ({r['estimate_waves']} waves)",
                     f"{r['segments_in_s']:.1f}", f"{r['overhead_over_critical_path']:+.1%}",
                     f"{r['first_request_after_s']:.2f}", gap(r), f"{r['last_request_to_film_s']:.1f}",
                     f"{r['wall_s']:.1f}",
                     f"{r['peak_running']}/{r['concurrency']}", f"{target}: {common.verdict(bool(ok))}"])
    missing = (f" Not measured: {', '.join(data['modes_not_available'])} (not in this planner yet)."
               if data["modes_not_available"] else "")
    return "\n".join([
        "## Wall time against film length (`benchmarks/walltime.py`)",
        "",
        f"Command: `{data['command']}` ({data['seconds']:.0f} s)  ",
        f"Machine: {common.machine_line(data['machine'])}",
        "" if data.get("complete", True) else "\n**Stopped before the end: the rows measured so far.**\n",
        "The whole `composer render --backend fal -q` command (a subprocess, as a user runs it) against the fal "
        "emulator in its own process in canned mode: every request takes the stated latency of real wall time "
        "and no video work; the emulator runs at most *concurrency* requests at once and queues the rest. One "
        "continuous chain at 480p, 121-frame segments, 17-frame overlap, 24 fps. *Segments in* = from the "
        "command's start to the last request done (start-up, plan, tails, uploads, polls, downloads, checks); "
        "*between requests* = from one request's completion to the next one's submit, composer's own work on "
        "the critical path; "
        "*over* = its excess over critical path × latency; *estimate* = `composer plan`'s list schedule; "
        "*last request → film* = assembly, manifest, review page and exit after the last request. Goals: "
        f"sequential ≤ {SEQUENTIAL_TARGET:.0%} over critical path × latency at a 20 s latency (lower latencies "
        f"are stress figures: composer's own per-request work weighs more); bridged ≤ {BRIDGED_WAVES} × latency "
        f"before assembly.{missing}",
        "",
        common.md_table(["mode", "latency s", "film", "requests", "critical path", "critical path × latency s",
                         "estimate s", "segments in s", "over", "first request after s",
                         "between requests s (median)", "last request → film s",
                         "wall s", "peak at once", "goal"], rows),
    ])


def gap(row: dict[str, Any]) -> str:
    g = row.get("gap_between_requests_median_s")
    return "–" if g is None else f"{g:.2f}"


def common_length(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny films, sub-second latency (for tests)")
    p.add_argument("--out", default=None, help="results file to write this section into (default benchmarks/RESULTS.md)")
    p.add_argument("--latency", default=None, help="seconds per request, comma-separated (default 20,2; quick 0.4)")
    p.add_argument("--lengths", default=None, help="film lengths in seconds (default 30,120,300,600; quick 1.5)")
    p.add_argument("--lengths-at", action="append", default=[], metavar="LATENCY=LENGTHS",
                   help="other lengths at one latency, e.g. 20=30,120 (repeatable)")
    p.add_argument("--modes", default="sequential,bridged", help="modes to measure (those the planner knows)")
    p.add_argument("--lengths-for", action="append", default=[], metavar="MODE=LENGTHS",
                   help="other lengths for one mode, e.g. bridged=30,120,300,600 (repeatable)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="the emulator's (the account's) requests at once, also fal.concurrency (default 40; quick 2)")
    p.add_argument("--jobs", type=int, default=None, help="composer render --jobs (default: fal.concurrency)")
    p.add_argument("--cuts", type=int, default=0, help="split the film into this many more chains by cuts")
    p.add_argument("--wait-load", type=float, default=None, help="wait for the 1-min load average to drop below this")
    p.add_argument("--wait-max", type=float, default=1200)
    p.add_argument("--silent", action="store_true")
    args = p.parse_args(argv)
    args.latency = args.latency or ("0.4" if args.quick else "20,2")
    args.lengths = args.lengths or ("1.5" if args.quick else "30,120,300,600")
    args.concurrency = args.concurrency or (2 if args.quick else 40)
    at: dict[float, str] = {}
    for item in args.lengths_at:
        k, v = item.split("=", 1)
        at[float(k)] = v
    args.lengths_at = at
    args.lengths_for = dict(item.split("=", 1) for item in args.lengths_for)
    common.wait_for_quiet(args.wait_load, args.wait_max)
    data = run(args, on_row=lambda d: common.write_section("walltime", report(d), d, args.out))
    path = common.write_section("walltime", report(data), data, args.out)
    print(report(data))
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
