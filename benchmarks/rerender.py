"""A cached re-render, timed as the whole ``composer render`` command, against a bare
ffmpeg transcode of the same film with the same encoder settings.

Two cases of composer: ``unchanged`` (the board as it was: every encoded piece of the film
is in the cache and taken as it is) and ``encoded`` (the film's pieces removed first, so
every frame is decoded, matched and encoded again: what a change of colour settings or
codec costs).

For each film (44 s and 5 min of 480p, 1 min of 720p) the board is rendered once with
the preview backend (drift on) to fill a cache; then, side by side in one run, the same
``composer render`` command again (a subprocess: start-up, plan, cache verification,
probing, assembly, review page, OTIO, manifest; every segment a cache hit) and
``ffmpeg -i film.mp4 -c:v libx264 -crf 18 -preset veryfast -pix_fmt yuv420p out.mp4``.
The order alternates every repetition; medians. ratio = ffmpeg seconds / composer
seconds (goal ≥ 0.9), by wall time and by CPU time (user + system, the process tree).

    python benchmarks/rerender.py [--quick] [--out PATH] [--reps 3] [--films 44:480p,300:480p,60:720p]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

ENCODER = {"codec": "libx264", "crf": 18, "preset": "veryfast", "pix_fmt": "yuv420p"}  # composer's h264 settings
TARGET_RATIO = 0.9
FILMS = "44:480p,300:480p,60:720p"
PROMPTS = [
    "A quiet harbour at dawn, mist on the water", "A fishing boat leaves the harbour",
    "A forest path in autumn, light through the trees", "A neon city street at night in the rain",
    "Waves breaking on a beach at sunset", "A desert road under a huge sky", "Snow falling on a mountain village",
]


def film_board(seconds: float, resolution: str, quick: bool) -> str:
    """Scenes of 20 s (at most half the film; 1 s in quick mode) joined by crossfade, continue, cut, ..."""
    scene_s = 1.0 if quick else min(20.0, seconds / 2)
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
    title = f"rerender {seconds:g}s {resolution}"
    if quick:
        return common.board_yaml(scenes, resolution=resolution, frames=25, overlap=9, title=title)
    return common.board_yaml(scenes, resolution=resolution, title=title)


def composer_command(board: Path, film: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "composer", "render", str(board), "-o", str(film), "--cache-dir", str(cache),
            "--drift", "1", "--quiet"]


def ffmpeg_command(film: Path, out: Path) -> list[str]:
    from composer.media import ffmpeg_exe

    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-i", str(film), "-map", "0:v:0", "-an",
            "-c:v", ENCODER["codec"], "-crf", str(ENCODER["crf"]), "-preset", ENCODER["preset"],
            "-pix_fmt", ENCODER["pix_fmt"], str(out)]


def _env() -> dict[str, str]:
    """The subprocess runs this checkout's composer (and its own imports), whatever is installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(common.ROOT), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    return env


def prepare(seconds: float, resolution: str, quick: bool, cache: Path, work: Path, log) -> dict[str, Any]:
    name = f"{seconds:g}s-{resolution}"
    board = work / f"board-{name}.yaml"
    board.write_text(film_board(seconds, resolution, quick))
    film = work / f"film-{name}.mp4"
    t0 = time.perf_counter()
    common.run_measured(composer_command(board, film, cache), env=_env())  # fills the cache (or finds it full)
    log(f"  {name}: first render {time.perf_counter() - t0:.0f} s")
    manifest = json.loads(film.with_name(film.stem + ".manifest.json").read_text())
    return {"name": name, "seconds": seconds, "resolution": resolution, "board": str(board), "film": str(film),
            "frames": manifest["output"]["frames"], "size": f"{manifest['output']['width']}x{manifest['output']['height']}",
            "segments": len(manifest["segments"])}


CASES = ("unchanged", "encoded")


def run_composer(job: dict[str, Any], work: Path, cache: Path, case: str = "unchanged") -> dict[str, Any]:
    out = work / f"again-{job['name']}.mp4"
    if case == "encoded":
        shutil.rmtree(cache / "pieces", ignore_errors=True)  # outside the timing: every piece made again
    m = common.run_measured(composer_command(Path(job["board"]), out, cache), env=_env())
    manifest = json.loads(out.with_name(out.stem + ".manifest.json").read_text())
    from composer.media import probe

    m.update(frames_in_file=probe(out).num_frames, cache_hits=manifest["cache_hits"],
             requests_made=manifest["requests_made"], assembly_seconds=manifest["assembly"].get("seconds"),
             review=out.with_name(out.stem + ".review.html").is_file(),
             pieces=manifest["assembly"].get("pieces"))
    return m


def run_ffmpeg(job: dict[str, Any], work: Path) -> dict[str, Any]:
    from composer.media import probe

    out = work / f"ffmpeg-{job['name']}.mp4"
    m = common.run_measured(ffmpeg_command(Path(job["film"]), out))
    m["frames_in_file"] = probe(out).num_frames
    out.unlink(missing_ok=True)
    return m


def run(args: argparse.Namespace) -> dict[str, Any]:
    log = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=sys.stderr, flush=True))
    work, cache = Path(args.work), Path(args.cache)
    films = [(float(s), r) for s, r in (f.split(":") for f in args.films.split(","))]
    log("preparing (first renders fill the cache) ...")
    jobs = [prepare(s, r, args.quick, cache, work, log) for s, r in films]
    common.wait_for_quiet(args.wait_load, args.wait_max, log)
    info = common.machine_info()
    t_start = time.perf_counter()
    rows: dict[str, Any] = {}
    for job in jobs:
        ways = [*CASES, "ffmpeg"]
        runs: dict[str, list[dict[str, Any]]] = {w: [] for w in ways}
        # not measured: the pieces of this film back in the cache (another film's `encoded` runs removed them)
        run_composer(job, work, cache, "unchanged")
        for r in range(args.reps):
            for way in ways[r % len(ways):] + ways[: r % len(ways)]:  # the order turns every repetition
                m = run_ffmpeg(job, work) if way == "ffmpeg" else run_composer(job, work, cache, way)
                for k in ("stdout", "stderr", "rss_samples"):
                    m.pop(k, None)
                runs[way].append(m)
                log(f"  {job['name']} rep {r + 1}/{args.reps} {way:9s}: wall {m['seconds']:.2f} s, "
                    f"CPU {m['cpu_seconds']:.2f} s; load {os.getloadavg()[0]:.2f}")
        f = runs["ffmpeg"]
        fw, fc = common.median([m["seconds"] for m in f]), common.median([m["cpu_seconds"] for m in f])
        for case in CASES:
            c = runs[case]
            cw, cc = common.median([m["seconds"] for m in c]), common.median([m["cpu_seconds"] for m in c])
            rows[f"{job['name']} {case}"] = {
                **{k: job[k] for k in ("seconds", "resolution", "size", "frames", "segments")},
                "film": job["name"], "case": case,
                "composer_seconds": round(cw, 3), "ffmpeg_seconds": round(fw, 3),
                "composer_cpu_seconds": round(cc, 3), "ffmpeg_cpu_seconds": round(fc, 3),
                "ratio": round(fw / cw, 3), "cpu_ratio": round(fc / cc, 3),
                "composer_frames": [m["frames_in_file"] for m in c], "ffmpeg_frames": [m["frames_in_file"] for m in f],
                "cache_hits": [m["cache_hits"] for m in c], "requests_made": [m["requests_made"] for m in c],
                "pieces": [m["pieces"] for m in c],
                "assembly_seconds": common.median([m["assembly_seconds"] for m in c]),
                "review_written": all(m["review"] for m in c),
                "composer_all": [round(m["seconds"], 3) for m in c], "ffmpeg_all": [round(m["seconds"], 3) for m in f],
                "reps": args.reps,
            }
    info["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"machine": info, "command": common.command_line(), "quick": args.quick, "encoder": ENCODER,
            "target_ratio": TARGET_RATIO, "films": rows, "seconds": round(time.perf_counter() - t_start, 1)}


def report(data: dict[str, Any]) -> str:
    rows = []
    for f in data["films"].values():
        p = f["pieces"][0] or {}
        rows.append([f["film"], f["case"], f"{p.get('taken', 0)} / {p.get('made', 0)}", f["size"], f["frames"],
                     f["segments"], f"{f['composer_seconds']:.2f}",
                     f"{f['ffmpeg_seconds']:.2f}", f"{f['ratio']:.2f}×", f"{f['composer_cpu_seconds']:.2f}",
                     f"{f['ffmpeg_cpu_seconds']:.2f}", f"{f['cpu_ratio']:.2f}×", f"{f['assembly_seconds']:.2f}",
                     common.verdict(f["ratio"] >= TARGET_RATIO)])
    return "\n".join([
        "## Cached re-render against a bare ffmpeg transcode (`benchmarks/rerender.py`)",
        "",
        f"Command: `{data['command']}` ({data['seconds']:.0f} s of measuring)  ",
        f"Machine: {common.machine_line(data['machine'])}",
        "",
        "`composer render` of a board whose every segment is in the cache, timed as the whole command (a "
        "subprocess: start-up, plan, cache verification, probing, assembly, review page with its thumbnails, "
        "OTIO, manifest), beside `ffmpeg -i film.mp4` re-encoding the same film with composer's encoder settings "
        "(libx264 crf 18 preset veryfast yuv420p). `unchanged`: the board as it was, the film's encoded pieces "
        "in the cache (taken by stream copy); `encoded`: those pieces removed first, so every frame is decoded, "
        "colour-matched and encoded again (what changing a colour setting or the codec costs). "
        "Runs alternate; medians of "
        f"{next(iter(data['films'].values()))['reps']}. ratio = ffmpeg seconds / composer seconds "
        f"(goal ≥ {TARGET_RATIO}); CPU: user + system seconds of each process tree.",
        "",
        common.md_table(["film", "case", "pieces taken / made", "size", "frames", "segments", "composer s",
                         "ffmpeg s", "ratio (wall)",
                         "composer CPU s", "ffmpeg CPU s", "ratio (CPU)", "assembly s (in composer)",
                         f"≥ {TARGET_RATIO}×"], rows),
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one tiny film, one repetition (for tests)")
    p.add_argument("--out", default=None, help="results file to write this section into (default benchmarks/RESULTS.md)")
    p.add_argument("--films", default=None, help=f"SECONDS:RESOLUTION,... (default {FILMS}; quick 3:480p)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--cache", default=str(common.DEFAULT_CACHE / "rerender"), help="segment cache folder")
    p.add_argument("--work", default=None)
    p.add_argument("--wait-load", type=float, default=None, help="wait for the 1-min load average to drop below this")
    p.add_argument("--wait-max", type=float, default=1200)
    p.add_argument("--silent", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.films = args.films or "3:480p"
        args.reps = 1
        if args.cache == str(common.DEFAULT_CACHE / "rerender"):
            args.cache = str(common.DEFAULT_CACHE / "rerender-quick")
    args.films = args.films or FILMS
    with tempfile.TemporaryDirectory(prefix="bench-rerender-") as tmp:
        args.work = args.work or tmp
        Path(args.work).mkdir(parents=True, exist_ok=True)
        data = run(args)
    path = common.write_section("rerender", report(data), data, args.out)
    print(report(data))
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
