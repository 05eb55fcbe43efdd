"""Scheduling: does a render wait only for the model, and ask it only for what changed?

``composer.render(..., backend='fal')`` runs in this process against the fal
emulator (``composer.testing.FalEmulator``) in canned mode: every request takes a
fixed ``latency`` and costs this machine no video work (a pre-rendered test
pattern is copied). Films have 1, 3 and 8 independent chains (cuts), each chain
``--segments`` segments long, rendered with ``jobs`` = number of chains and an
emulator with as many workers, so the ideal render time is critical path ×
latency. Reported: the time until the last segment is in (the scheduling part),
its overhead over that ideal, the assembly after it; requests made by an
unchanged re-render (target 0) and after editing one scene's prompt (target:
exactly the segments whose request changed and the segments conditioned on them).

    python benchmarks/schedule.py [--quick] [--out PATH] [--latency 5]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

TARGET_OVERHEAD = 0.05
PROMPTS = ["A quiet harbour at dawn", "A forest path in autumn", "A neon city street at night",
           "Waves breaking on a beach", "A desert road under a huge sky", "Snow on a mountain village",
           "A lava flow glowing at night", "A meadow of wild flowers", "A lighthouse in a storm"]


def chains_board(n_chains: int, segments: int, quick: bool, *, edit: str | None = None) -> str:
    """``n_chains`` independent chains (cuts) of ``segments`` segments each."""
    frames, overlap = (17, 9) if quick else (121, 17)
    per = frames + (segments - 1) * (frames - overlap) - 4
    scenes = [{"id": f"c{i}", "duration": f"{per}f", "prompt": PROMPTS[i % len(PROMPTS)]} for i in range(n_chains)]
    for i, s in enumerate(scenes):
        if i:
            s["transition"] = "cut"
    return common.board_yaml(scenes, resolution="480p", frames=frames, overlap=overlap, title=f"{n_chains} chains")


def edit_board(segments: int, quick: bool, edited: bool) -> str:
    """Three chains (two in quick mode); the first holds three scenes joined by ``continue``; ``edited``
    changes the middle one's prompt."""
    frames, overlap = (17, 9) if quick else (121, 17)
    per = frames + (segments - 1) * (frames - overlap) - 4
    scenes = [
        {"id": "a", "duration": f"{per}f", "prompt": "A quiet harbour at dawn"},
        {"id": "b", "duration": f"{per}f", "prompt": "A red boat leaves the harbour" if edited
         else "A fishing boat leaves the harbour", "transition": "continue"},
        {"id": "c", "duration": f"{per}f", "prompt": "The boat reaches the open sea", "transition": "continue"},
        {"id": "d", "duration": f"{per}f", "prompt": "A forest path in autumn", "transition": "cut"},
        {"id": "e", "duration": f"{per}f", "prompt": "A neon city street at night",
         "transition": {"crossfade": "0.25s" if quick else "1s"}},
    ]
    if quick:
        scenes = scenes[:4]
    return common.board_yaml(scenes, resolution="480p", frames=frames, overlap=overlap, title="edit")


def affected(old_plan, new_plan) -> set[int]:
    """Segments whose request changed, plus every segment conditioned on one of them (from first principles)."""
    changed = {n.index for o, n in zip(old_plan.segments, new_plan.segments) if o.request != n.request}
    changed |= {s.index for s in new_plan.segments[len(old_plan.segments):]}
    grew = True
    while grew:
        grew = False
        for s in new_plan.segments:
            if any(p in changed for p in s.parents) and s.index not in changed:
                changed.add(s.index)
                grew = True
    return changed


class ThreadEmulator:
    """The emulator in this process (as the test fixtures run it): its HTTP, TLS and JSON work
    share this process's GIL and cores with composer's."""

    def __init__(self, latency: float, workers: int):
        from composer.testing import FalEmulator

        self.emu = FalEmulator(canned=True, latency=latency, workers=workers, log_interval=0.25)
        self._patch = None

    def __enter__(self):
        self.emu.start()
        self._patch = self.emu.patched_fal_client()
        self._patch.__enter__()
        return self

    def __exit__(self, *exc):
        self._patch.__exit__(*exc)
        self.emu.stop()

    def submits(self) -> int:
        return sum(self.emu.submits.values())


class ProcessEmulator(common.ServerProcess):
    """The emulator in its own process (``python -m composer.testing.fal_emulator``), pointed at
    through its ``export`` lines: like fal, its work is not this process's."""

    def __init__(self, latency: float, workers: int):
        self.args = [sys.executable, "-m", "composer.testing.fal_emulator", "--canned", "--latency", str(latency),
                     "--workers", str(workers)]

    def __enter__(self):
        import subprocess

        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        env: dict[str, str] = {}
        for line in self.proc.stdout:
            if line.startswith("export "):
                k, v = line[len("export "):].strip().split("=", 1)
                env[k] = v
            if line.startswith("#"):
                break
        self.point_at(env)
        return self

    def submits(self) -> int:
        import httpx

        url = f"https://{self.env['FAL_QUEUE_RUN_HOST']}/_emulator/stats"
        r = httpx.get(url, headers={"Authorization": f"Key {self.env['FAL_KEY']}"}, verify=self.env["SSL_CERT_FILE"])
        r.raise_for_status()
        return sum(r.json()["submits"].values())


class Timeline:
    """Timestamps of render events (monotonic, relative to ``t0``)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.lock = threading.Lock()
        self.events: list[tuple[float, Any]] = []

    def __call__(self, event: Any) -> None:
        with self.lock:
            self.events.append((time.perf_counter() - self.t0, event))

    def first(self, cls) -> float | None:
        return next((t for t, e in self.events if isinstance(e, cls)), None)

    def last(self, cls) -> float | None:
        return next((t for t, e in reversed(self.events) if isinstance(e, cls)), None)


def render_once(board_text: str, cache: Path, out: Path, jobs: int, options: dict[str, Any], emu) -> dict[str, Any]:
    import composer
    from composer.events import AssemblyProgress, SegmentDone, SegmentStarted

    board = common.load_board(board_text)
    before = emu.submits()
    tl = Timeline()
    result = composer.render(board, out, backend="fal", backend_options=options, cache=cache, jobs=jobs,
                             on_event=tl, otio=False)
    wall = time.perf_counter() - tl.t0
    last_done = tl.last(SegmentDone) or 0.0
    generated = sorted(i for i, o in result.outcomes.items() if o.status == "generated")
    starts = {e.index: t for t, e in tl.events if isinstance(e, SegmentStarted)}
    dones = {e.index: t for t, e in tl.events if isinstance(e, SegmentDone) and not e.cached}
    return {
        "wall": wall, "segments_done_at": last_done,
        "first_segment_started_at": min(starts.values()) if starts else None,
        "assembly_seconds": result.assembly.get("seconds"),
        "assembly_started_at": tl.first(AssemblyProgress),
        "requests": emu.submits() - before, "generated": generated,
        "segment_seconds": {i: round(dones[i] - starts[i], 3) for i in dones if i in starts},
        "plan": result.plan,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    log = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=sys.stderr, flush=True))
    from composer.testing.fixtures import FAST_BACKEND_OPTIONS

    options = {**FAST_BACKEND_OPTIONS, "poll_interval": args.poll, "timeout": 120.0}
    chain_counts = [int(x) for x in args.chains.split(",")]
    workers = max(chain_counts + [3])
    info = common.machine_info()
    t_start = time.perf_counter()
    films: list[dict[str, Any]] = []
    edit: dict[str, Any] = {}
    modes = args.emulator.split(",")
    for mode in modes:
        emulator = (ProcessEmulator if mode == "process" else ThreadEmulator)(args.latency, workers)
        with tempfile.TemporaryDirectory(prefix="bench-schedule-") as tmp, emulator as emu:
            tmp = Path(tmp)
            if not args.quick:  # warm-up: the emulator renders its canned clip once per size; TLS, imports
                render_once(chains_board(1, 1, args.quick), tmp / "warm", tmp / "warm.mp4", 1, options, emu)
            for n in chain_counts:
                text = chains_board(n, args.segments, args.quick)
                cache = tmp / f"cache-{n}"
                first = render_once(text, cache, tmp / f"film{n}.mp4", n, options, emu)
                again = render_once(text, cache, tmp / f"film{n}b.mp4", n, options, emu)
                plan = first.pop("plan")
                again.pop("plan")
                ideal = plan.critical_path * args.latency
                sched = first["segments_done_at"]
                row = {
                    "emulator": mode, "chains": n, "segments": len(plan.segments), "critical_path": plan.critical_path,
                    "ideal_seconds": round(ideal, 3), "scheduling_seconds": round(sched, 3),
                    "overhead": round(sched / ideal - 1.0, 4),
                    "overhead_per_step_s": round((sched - ideal) / plan.critical_path, 3),
                    "first_request_after_s": round(first["first_segment_started_at"] or 0.0, 3),
                    "assembly_seconds": first["assembly_seconds"], "wall_seconds": round(first["wall"], 3),
                    "requests": first["requests"], "rerender_requests": again["requests"],
                    "rerender_wall_seconds": round(again["wall"], 3),
                    "segment_seconds": first["segment_seconds"],
                }
                films.append(row)
                log(f"  [{mode}] {n} chain(s): {row['segments']} segments, critical path {plan.critical_path}: segments "
                    f"in after {sched:.2f} s vs ideal {ideal:.2f} s ({row['overhead']:+.1%}), first request after "
                    f"{row['first_request_after_s']:.2f} s, assembly {row['assembly_seconds']} s, {row['requests']} "
                    f"requests; re-render {row['rerender_requests']} requests")
            if edit:
                continue
            # editing one scene's prompt (once)
            cache = tmp / "cache-edit"
            old_text = edit_board(args.segments, args.quick, False)
            new_text = edit_board(args.segments, args.quick, True)
            first = render_once(old_text, cache, tmp / "edit0.mp4", 3, options, emu)
            edited = render_once(new_text, cache, tmp / "edit1.mp4", 3, options, emu)
            import composer

            expected = sorted(affected(composer.plan(common.load_board(old_text)),
                                       composer.plan(common.load_board(new_text))))
            edit = {"segments": len(edited["plan"].segments), "chains": len(edited["plan"].chains),
                    "first_requests": first["requests"], "edit_requests": edited["requests"],
                    "generated": edited["generated"], "expected": expected,
                    "exact": edited["generated"] == expected and edited["requests"] == len(expected),
                    "scene_segments": {s.id: [g.index for g in edited["plan"].segments if g.scene == s.id]
                                       for s in edited["plan"].scenes}}
            log(f"  edit scene 'b': {edit['edit_requests']} requests, generated {edit['generated']}, "
                f"expected {expected}")
    info["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"machine": info, "command": common.command_line(), "quick": args.quick, "latency": args.latency,
            "poll_interval": args.poll, "films": films, "edit": edit,
            "seconds": round(time.perf_counter() - t_start, 1)}


def report(data: dict[str, Any]) -> str:
    rows = []
    for f in data["films"]:
        ok = f["overhead"] <= TARGET_OVERHEAD
        rows.append([f.get("emulator", "thread"), f["chains"], f["segments"], f["critical_path"], f"{f['ideal_seconds']:.2f}",
                     f"{f['scheduling_seconds']:.2f}", f"{f['overhead']:+.1%}", f"{f['overhead_per_step_s']:+.2f}",
                     f"{f.get('first_request_after_s', 0.0):.2f}",
                     f"{f['assembly_seconds']:.2f}", f["requests"], f["rerender_requests"],
                     common.verdict(ok and f["rerender_requests"] == 0)])
    e = data["edit"]
    scenes = "; ".join(f"{k}: {v}" for k, v in e["scene_segments"].items())
    return "\n".join([
        "## Scheduling (`benchmarks/schedule.py`)",
        "",
        f"Command: `{data['command']}` ({data['seconds']:.0f} s)  ",
        f"Machine: {common.machine_line(data['machine'])}",
        "",
        f"fal backend in this process against the emulator in canned mode: {data['latency']:g} s per request, no "
        f"video work; poll interval {data['poll_interval']:g} s; jobs = chains; emulator workers ≥ chains. The "
        "emulator runs as a thread of this process (as the test fixtures run it: its TLS, HTTP and JSON work "
        "share composer's GIL and cores) and/or as its own process (like fal, its work is not composer's). "
        "*Segments in* = from the `render()` call to the last segment done (plan, cache keys, tail clips, "
        "uploads, downloads, checks, cache writes); *ideal* = critical path × latency. Target: overhead ≤ "
        f"{TARGET_OVERHEAD:.0%} (assembly comes on top), 0 requests on an unchanged re-render.",
        "",
        common.md_table(["emulator", "chains", "segments", "critical path", "ideal s", "segments in s", "overhead",
                         "overhead per step s", "first request after s", "assembly s", "requests", "re-render requests",
                         "target"], rows),
        "",
        f"Edit: {e['segments']} segments in {e['chains']} chains (segments per scene: {scenes}); changing scene `b`'s prompt "
        f"made {e['edit_requests']} requests for segments {e['generated']}; expected exactly {e['expected']} "
        "(requests that changed, and everything conditioned on them): "
        f"{common.verdict(e['exact'])}.",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (for tests)")
    p.add_argument("--out", default=None, help="results file to write this section into (default benchmarks/RESULTS.md)")
    p.add_argument("--latency", type=float, default=None, help="seconds per request (default 5; quick 0.3)")
    p.add_argument("--poll", type=float, default=0.05, help="fal backend status poll interval, seconds")
    p.add_argument("--emulator", default=None, help="thread, process or both (default process,thread; quick thread)")
    p.add_argument("--chains", default=None, help="chain counts to measure (default 1,3,8; quick 1,3)")
    p.add_argument("--segments", type=int, default=None, help="segments per chain (default 3; quick 2)")
    p.add_argument("--wait-load", type=float, default=None, help="wait for the 1-min load average to drop below this")
    p.add_argument("--wait-max", type=float, default=1200)
    p.add_argument("--silent", action="store_true")
    args = p.parse_args(argv)
    if args.latency is None:
        args.latency = 0.3 if args.quick else 5.0
    if args.emulator is None:
        args.emulator = "thread" if args.quick else "process,thread"
    if args.chains is None:
        args.chains = "1,3" if args.quick else "1,3,8"
    if args.segments is None:
        args.segments = 2 if args.quick else 3
    common.wait_for_quiet(args.wait_load, args.wait_max)
    data = run(args)
    path = common.write_section("schedule", report(data), data, args.out)
    print(report(data))
    print(f"\nwrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
