"""Stitching speed and memory: composer's assembly against bare ffmpeg and moviepy.

The same set of segment files (rendered once with the preview backend, drift on,
into a cache under /tmp) is assembled three ways with the same encoder settings
(libx264, crf 18, preset veryfast, yuv420p):

* ``composer``: ``composer.assemble.assemble(plan, videos, out, board=...)`` —
  decode every segment, fit and apply its colour transform, blend crossfades,
  encode once;
* ``ffmpeg``: bare ffmpeg transcoding the concatenated segments (``-f concat``
  then encode): the floor, no colour work, no trimming;
* ``moviepy``: ``concatenate_videoclips`` + ``write_videofile`` (dev extra).

Each run is its own process; its whole process tree (ffmpeg children included)
is sampled with psutil every 50 ms for peak RSS. Runs are interleaved (the order
rotates every repetition) and medians reported. ``fps`` is frames encoded per
second of the pipeline (Python start-up and imports excluded for the two Python
ways; the process wall time is reported beside it).

    python benchmarks/assemble.py [--quick] [--out PATH] [--reps 3] [--long-reps 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

ENCODER = {"codec": "libx264", "crf": 18, "preset": "veryfast", "pix_fmt": "yuv420p"}
WAYS = ("ffmpeg", "composer", "moviepy")
TARGET_RATIO, TARGET_RSS_MB, TARGET_RSS_GROWTH = 0.9, 400.0, 0.10
TARGET_RSS_MIB = TARGET_RSS_MB * 1e6 / 2**20  # the target is 400 MB; the tables are in MiB (381.5)
PROMPTS = [
    "A quiet harbour at dawn, mist on the water", "A fishing boat leaves the harbour",
    "A forest path in autumn, light through the trees", "A neon city street at night in the rain",
    "Waves breaking on a beach at sunset", "A desert road under a huge sky", "Snow falling on a mountain village",
    "A lava flow glowing at night", "A meadow of wild flowers in the wind",
]


def film_board(seconds: float, quick: bool) -> str:
    """A film of ``seconds``: scenes of 20 s (at most half the film; 0.75 s in quick mode) joined by a
    crossfade, then continue, cut, crossfade...: every film has a crossfade, so films differ in length only."""
    scene_s = 0.75 if quick else min(20.0, seconds / 2)
    transitions = [{"crossfade": "0.25s" if quick else "1s"}, "continue", "cut"]
    scenes, left, i = [], seconds, 0
    while left > 1e-6:
        d = min(scene_s, left)
        scene: dict[str, Any] = {"id": f"s{i:02d}", "duration": f"{d:g}s", "prompt": PROMPTS[i % len(PROMPTS)]}
        if i:
            scene["transition"] = transitions[(i - 1) % 3]
        scenes.append(scene)
        left -= d
        i += 1
    if quick:
        return common.board_yaml(scenes, resolution="480p", frames=25, overlap=9, title=f"assemble {seconds:g}s")
    return common.board_yaml(scenes, resolution="720p", title=f"assemble {seconds:g}s")


# --------------------------------------------------------------------------- workers (run in their own process)


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (the ffmpeg processes it ran)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def worker_composer(job: dict[str, Any]) -> dict[str, Any]:
    t_import = time.perf_counter()
    import composer
    from composer.assemble import assemble

    board = composer.loads(job["board"], name="benchmark.yaml", base_dir=common.BENCH_DIR)
    plan = composer.plan(board)
    videos = {int(k): Path(v) for k, v in job["videos"].items()}
    t0, c0 = time.perf_counter(), _cpu()
    # as `composer render` assembles cached segments (their last-frame samples kept beside them)
    report = assemble(plan, videos, Path(job["out"]), board=board, crf=ENCODER["crf"], preset=ENCODER["preset"],
                      keep_samples=True)
    return {"frames": report["frames"], "pipeline_seconds": time.perf_counter() - t0,
            "pipeline_cpu_seconds": _cpu() - c0, "import_seconds": t0 - t_import}


def worker_moviepy(job: dict[str, Any]) -> dict[str, Any]:
    t_import = time.perf_counter()
    from composer.media import ffmpeg_exe

    os.environ.setdefault("FFMPEG_BINARY", ffmpeg_exe())  # the same binary as the other two ways
    from moviepy import VideoFileClip, concatenate_videoclips

    t0, c0 = time.perf_counter(), _cpu()
    clips = [VideoFileClip(p, audio=False) for p in job["files"]]
    film = concatenate_videoclips(clips, method="chain")
    film.write_videofile(job["out"], fps=job["fps"], codec=ENCODER["codec"], preset=ENCODER["preset"],
                         ffmpeg_params=["-crf", str(ENCODER["crf"]), "-pix_fmt", ENCODER["pix_fmt"]],
                         audio=False, logger=None)
    frames = int(round(film.duration * job["fps"]))
    for c in clips:
        c.close()
    return {"frames": frames, "pipeline_seconds": time.perf_counter() - t0, "pipeline_cpu_seconds": _cpu() - c0,
            "import_seconds": t0 - t_import}


def ffmpeg_command(job: dict[str, Any]) -> list[str]:
    from composer.media import ffmpeg_exe

    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y",
            "-f", "concat", "-safe", "0", "-i", job["concat"], "-map", "0:v:0", "-an",
            "-c:v", ENCODER["codec"], "-crf", str(ENCODER["crf"]), "-preset", ENCODER["preset"],
            "-pix_fmt", ENCODER["pix_fmt"], job["out"]]


# --------------------------------------------------------------------------- driver


def prepare(seconds: float, quick: bool, cache: Path, work: Path, log) -> dict[str, Any]:
    board_text = film_board(seconds, quick)
    board = common.load_board(board_text)
    plan, videos, secs, made = common.render_segments(board, cache, drift=1.0, log=log)
    if made:
        log(f"  rendered {made} segments for {seconds:g} s in {secs:.0f} s")
    from composer.assemble import keep_last_sample

    for seg in plan.segments:  # what rendering keeps beside every segment (older caches lack it)
        keep_last_sample(plan, seg, videos[seg.index])
    files = [str(videos[s.index]) for s in plan.segments]
    concat = work / f"concat-{seconds:g}.txt"
    concat.write_text("".join(f"file '{f}'\n" for f in files))
    return {
        "seconds": seconds, "board": board_text, "videos": {str(k): str(v) for k, v in videos.items()},
        "files": files, "concat": str(concat), "fps": plan.fps, "size": f"{plan.width}x{plan.height}",
        "segments": len(plan.segments), "film_frames": plan.total_frames,
        "segment_frames": sum(s.num_frames for s in plan.segments), "chains": len(plan.chains),
    }


def count_frames(path: Path) -> int:
    from composer.media import probe

    return probe(path).num_frames


def run_way(way: str, job: dict[str, Any], work: Path) -> dict[str, Any]:
    out = work / f"out-{way}-{job['seconds']:g}.mp4"
    job = {**job, "out": str(out)}
    if way == "ffmpeg":
        m = common.run_measured(ffmpeg_command(job))
        m.update(frames=count_frames(out), pipeline_seconds=m["seconds"], pipeline_cpu_seconds=m["cpu_seconds"])
    else:
        spec = work / f"job-{way}.json"
        spec.write_text(json.dumps(job))
        m = common.run_measured([sys.executable, str(Path(__file__).resolve()), "--worker", way, "--job", str(spec)])
        m.update(json.loads(m["stdout"].strip().splitlines()[-1]))
        m["frames_in_file"] = count_frames(out)
    m["fps"] = m["frames"] / m["pipeline_seconds"]
    m["cpu_ms_per_frame"] = 1000.0 * m.get("pipeline_cpu_seconds", m["cpu_seconds"]) / m["frames"]
    m.pop("stdout", None)
    m.pop("stderr", None)
    out.unlink(missing_ok=True)
    return m


def run(args: argparse.Namespace) -> dict[str, Any]:
    log = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=sys.stderr, flush=True))
    lengths = [float(x) for x in args.lengths.split(",")]
    ways = args.ways.split(",")
    work = Path(args.work)
    cache = Path(args.cache)
    log("preparing segments ...")
    jobs = [prepare(s, args.quick, cache, work, log) for s in lengths]
    if args.prepare_only:
        return {}
    common.wait_for_quiet(args.wait_load, args.wait_max, log)
    info = common.machine_info()
    t_start = time.perf_counter()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {f"{j['seconds']:g}": {w: [] for w in ways} for j in jobs}
    for job in jobs:
        reps = args.long_reps if job["seconds"] >= 120 else args.reps
        for r in range(reps):
            order = ways[r % len(ways):] + ways[:r % len(ways)]
            for way in order:
                m = run_way(way, job, work)
                runs[f"{job['seconds']:g}"][way].append(m)
                log(f"  {job['seconds']:g} s rep {r + 1}/{reps} {way:8s}: {m['frames']} frames, "
                    f"{m['fps']:.1f} fps, pipeline {m['pipeline_seconds']:.1f} s, wall {m['seconds']:.1f} s, "
                    f"CPU {m['cpu_ms_per_frame']:.1f} ms/frame, peak RSS {m['peak_rss_mib']:.0f} MiB "
                    f"(PSS {m['peak_pss_mib']:.0f}) "
                    f"({m['peak_procs']} processes); load {os.getloadavg()[0]:.2f}")
    info["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    summary: dict[str, Any] = {}
    for job in jobs:
        key = f"{job['seconds']:g}"
        row: dict[str, Any] = {k: job[k] for k in ("size", "segments", "chains", "film_frames", "segment_frames")}
        for way in ways:
            ms = runs[key][way]
            row[way] = {
                "fps": round(common.median([m["fps"] for m in ms]), 2),
                "pipeline_seconds": round(common.median([m["pipeline_seconds"] for m in ms]), 2),
                "wall_seconds": round(common.median([m["seconds"] for m in ms]), 2),
                "peak_rss_mib": round(max(m["peak_rss_mib"] for m in ms), 1),
                "peak_pss_mib": round(max(m["peak_pss_mib"] for m in ms), 1),
                "cpu_ms_per_frame": round(common.median([m["cpu_ms_per_frame"] for m in ms]), 2),
                "peak_procs": max(m["peak_procs"] for m in ms),
                "frames": ms[0]["frames"], "reps": len(ms),
                "fps_all": [round(m["fps"], 2) for m in ms],
            }
        if "ffmpeg" in ways:
            for way in ways:
                row[way]["ratio_to_ffmpeg"] = round(row[way]["fps"] / row["ffmpeg"]["fps"], 3)
        summary[key] = row
    return {"machine": info, "command": common.command_line(), "quick": args.quick, "encoder": ENCODER,
            "cpu_includes_startup": False, "films": summary, "seconds": round(time.perf_counter() - t_start, 1)}


def _label(seconds: str) -> str:
    s = float(seconds)
    return f"{s / 60:g} min" if s >= 60 else f"{s:g} s"


def report(data: dict[str, Any]) -> str:
    films = {k: data["films"][k] for k in sorted(data["films"], key=float)}  # JSON keys come back sorted as text
    ways = [w for w in WAYS if w in next(iter(films.values()))]
    rows = []
    for key, f in films.items():
        for way in ways:
            w = f[way]
            ratio = w.get("ratio_to_ffmpeg")
            cpu_ratio = f["ffmpeg"]["cpu_ms_per_frame"] / w["cpu_ms_per_frame"] if "ffmpeg" in f else None
            job_ratio = (f["ffmpeg"]["cpu_ms_per_frame"] * f["ffmpeg"]["frames"]
                         / (w["cpu_ms_per_frame"] * w["frames"])) if "ffmpeg" in f else None
            rows.append([_label(key), f"{f['size']}", way, w["frames"], f"{w['fps']:.1f}",
                         f"{ratio:.2f}×" if ratio is not None else "—", f"{w['cpu_ms_per_frame']:.1f}",
                         f"{cpu_ratio:.2f}×" if cpu_ratio is not None else "—",
                         f"{job_ratio:.2f}×" if job_ratio is not None else "—",
                         f"{w['wall_seconds']:.1f}", f"{w['peak_rss_mib']:.0f}", f"{w['peak_pss_mib']:.0f}",
                         w["peak_procs"]])
    startup = ("start-up and imports included" if data.get("cpu_includes_startup", True)
               else "start-up and imports excluded")
    lines = [
        "## Stitching speed and memory (`benchmarks/assemble.py`)",
        "",
        f"Command: `{data['command']}` ({data['seconds']:.0f} s of measuring)  ",
        f"Machine: {common.machine_line(data['machine'])}",
        "",
        "Same segment files (preview backend, drift 1.0, cached), same encoder settings (libx264 crf 18 preset "
        "veryfast yuv420p), each way in its own process, runs interleaved, medians. fps = frames encoded / "
        "pipeline seconds (composer encodes the film's frames: overlaps trimmed; ffmpeg and moviepy encode every "
        "segment frame, overlaps included). CPU ms/frame: user + system time of the pipeline (Python and its ffmpeg "
        f"children, {startup}) per frame encoded; it moves much less with other load than wall time "
        "does, and *× ffmpeg by CPU* (ffmpeg's CPU per frame over this way's) is what the fps ratio would be on an "
        "otherwise idle, CPU-bound machine. *Same job*: ffmpeg's CPU seconds over this way's for the whole "
        "set of segments (each reads the same frames; ffmpeg writes the overlaps twice, composer once). "
        "The targets are judged per frame. Peak RSS: the whole "
        "process tree (Python and every ffmpeg child), sampled every 50 ms; PSS splits shared pages (each ffmpeg "
        "process maps the same static binary) between the processes sharing them, so it does not count them twice.",
        "",
        common.md_table(["film", "size", "way", "frames", "fps", "× ffmpeg", "CPU ms/frame", "× ffmpeg by CPU",
                         "same job × ffmpeg by CPU", "process wall s",
                         "peak RSS MiB", "peak PSS MiB", "processes at peak"], rows),
        "",
    ]
    if "composer" in ways:
        keys = list(films)
        c = [films[k]["composer"] for k in keys]
        ratios = [x.get("ratio_to_ffmpeg") for x in c]
        rss = [x["peak_rss_mib"] for x in c]
        growth = (max(rss) - min(rss)) / min(rss) if rss else 0.0
        ok_speed = all(r is not None and r >= TARGET_RATIO for r in ratios)
        ok_rss = max(rss) <= TARGET_RSS_MIB
        ok_growth = growth <= TARGET_RSS_GROWTH
        seg = ", ".join(f"{_label(k)}: {films[k]['segments']} segments in {films[k]['chains']} chains" for k in keys)
        lines += [
            f"Films: {seg}.",
            "",
            common.md_table(["target", "composer", "verdict"], [
                [f"≥ {TARGET_RATIO}× bare ffmpeg", ", ".join(f"{r:.2f}×" for r in ratios if r is not None),
                 common.verdict(ok_speed)],
                [f"peak RSS ≤ {TARGET_RSS_MB:.0f} MB ({TARGET_RSS_MIB:.0f} MiB)", f"max {max(rss):.0f} MiB",
                 common.verdict(ok_rss)],
                [f"peak RSS within {TARGET_RSS_GROWTH:.0%} from {_label(keys[0])} to {_label(keys[-1])}",
                 f"{min(rss):.0f}–{max(rss):.0f} MiB ({growth:+.0%})", common.verdict(ok_growth)],
            ]),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (for tests)")
    p.add_argument("--out", default=None, help="results file to write this section into (default benchmarks/RESULTS.md)")
    p.add_argument("--lengths", default=None, help="film lengths in seconds (default 10,60,300; quick 1.5)")
    p.add_argument("--ways", default=",".join(WAYS))
    p.add_argument("--reps", type=int, default=3, help="repetitions for films under 2 minutes")
    p.add_argument("--long-reps", type=int, default=2, help="repetitions for longer films")
    p.add_argument("--cache", default=str(common.DEFAULT_CACHE / "assemble"), help="segment cache folder")
    p.add_argument("--work", default=None)
    p.add_argument("--wait-load", type=float, default=None, help="wait for the 1-min load average to drop below this")
    p.add_argument("--wait-max", type=float, default=1200)
    p.add_argument("--silent", action="store_true")
    p.add_argument("--prepare-only", action="store_true", help="render the segments into the cache and stop")
    p.add_argument("--worker", choices=("composer", "moviepy"), help=argparse.SUPPRESS)
    p.add_argument("--job", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        job = json.loads(Path(args.job).read_text())
        result = worker_composer(job) if args.worker == "composer" else worker_moviepy(job)
        print(json.dumps(result))
        return 0
    if args.quick:
        args.lengths = args.lengths or "1.5"
        args.reps = args.long_reps = 1
        if args.cache == str(common.DEFAULT_CACHE / "assemble"):
            args.cache = str(common.DEFAULT_CACHE / "assemble-quick")
    args.lengths = args.lengths or "10,60,300"
    with tempfile.TemporaryDirectory(prefix="bench-assemble-") as tmp:
        args.work = args.work or tmp
        Path(args.work).mkdir(parents=True, exist_ok=True)
        data = run(args)
    if args.prepare_only:
        return 0
    path = common.write_section("assemble", report(data), data, args.out)
    print(report(data))
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
