"""Team cache: a render served from an S3 bucket, and several machines sharing one board.

1. A cached 1-minute board (preview backend) re-rendered from the bucket with a cold
   local layer, then warm, against the same render from a local cache folder: the time
   until every segment is in (the cache's part) and the whole render, as ratios.
2. Three machines (``composer render --backend fal`` processes) on one 20-segment board
   (4 chains of 5) against one bucket at once, the fal emulator in its own process with a
   fixed latency per request: requests paid against the plan, wall time against one machine.

The S3 API is moto's server in its own process on loopback, reached through
``AWS_ENDPOINT_URL`` as every AWS tool is.

    python benchmarks/team_cache.py [--quick] [--out PATH] [--json PATH] [--latency 2]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

ROOT = common.ROOT
JSON_OUT = common.BENCH_DIR / "results" / "team_cache.json"
BOOT = (
    "import sys; from composer.backends.fal import FalBackend; "
    "FalBackend.__init__.__kwdefaults__.update(poll_interval=0.05, base_delay=0.02, max_delay=0.2); "
    "from composer.cli import main; main(prog_name='composer')"
)
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
PROMPTS = ["A quiet harbour at dawn", "A forest path in autumn", "A neon city street at night",
           "Waves breaking on a beach", "A desert road under a huge sky"]


class MotoProcess(common.ServerProcess):
    """moto's S3 server in its own process (its work is not composer's, as a real store's is not)."""

    def __enter__(self) -> MotoProcess:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.point_at({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}", **CREDENTIALS})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        raise RuntimeError("moto server did not start")

    def bucket(self) -> str:
        import botocore.session

        name = f"bench-{uuid.uuid4().hex[:10]}"
        client = botocore.session.get_session().create_client(
            "s3", endpoint_url=self.env["AWS_ENDPOINT_URL"], region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=name)
        return name


# --------------------------------------------------------------------------- 1. reading from the bucket


def minute_board(quick: bool) -> str:
    seconds = 6 if quick else 60
    scenes = [{"id": f"s{i}", "duration": f"{seconds // 2}s", "prompt": PROMPTS[i],
               "transition": "continue" if i else None} for i in range(2)]
    for s in scenes:
        if s["transition"] is None:
            del s["transition"]
    return common.board_yaml(scenes, resolution="480p", fps=12 if quick else 24, frames=33 if quick else 121,
                             overlap=9 if quick else 17, title="one minute")


def timed_render(board: Any, cache: Any, out: Path, *, cached: bool = True) -> dict[str, float]:
    import composer
    from composer.events import SegmentDone

    t0 = time.perf_counter()
    last = [0.0]

    def on_event(e: Any) -> None:
        if isinstance(e, SegmentDone):
            last[0] = time.perf_counter() - t0

    result = composer.render(board, out, cache=cache, on_event=on_event, otio=False)
    assert result.generated == 0 or not cached, "the board should be fully cached"
    return {"segments_in": last[0], "wall": time.perf_counter() - t0, "segments": len(result.plan.segments),
            "frames": result.plan.total_frames, "fps": result.plan.fps}


def read_from_bucket(moto: MotoProcess, tmp: Path, quick: bool, repeats: int, log: Any) -> dict[str, Any]:
    from composer.rendering import SegmentCache

    board = common.load_board(minute_board(quick))
    local = tmp / "local-cache"
    log("  rendering it once into a local cache folder ...")
    first = timed_render(board, SegmentCache(local), tmp / "first.mp4", cached=False)
    gen_s = first["wall"]
    url = f"s3://{moto.bucket()}/team"
    remote = SegmentCache(url, local_root=tmp / "uploader")
    t0 = time.perf_counter()
    for entry in SegmentCache(local).entries():  # what the first machine's render would have published
        remote.publish(entry.key, entry.video, {k: v for k, v in entry.meta.items()
                                                if k not in ("size", "sha256", "stored_at", "key")})
    upload_s = time.perf_counter() - t0
    size = sum(e.meta.get("size", 0) for e in SegmentCache(local).entries())
    if not quick:  # warm-up: imports, ffmpeg, page cache (a quick run's figures are not findings)
        timed_render(board, SegmentCache(local), tmp / "local.mp4")
    runs: dict[str, list[dict[str, float]]] = {"local": [], "cold": [], "warm": []}
    for r in range(repeats):
        layer = tmp / f"layer-{r}"
        runs["local"].append(timed_render(board, SegmentCache(local), tmp / "local.mp4"))
        runs["cold"].append(timed_render(board, SegmentCache(url, local_root=layer), tmp / "cold.mp4"))
        runs["warm"].append(timed_render(board, SegmentCache(url, local_root=layer), tmp / "warm.mp4"))
        log(f"  run {r + 1}: " + ", ".join(f"{k} {v[-1]['segments_in']:.2f} s in / {v[-1]['wall']:.2f} s wall"
                                          for k, v in runs.items()))
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("segments_in", "wall")} for k, v in runs.items()}
    return {
        "segments": first["segments"], "frames": first["frames"], "fps": first["fps"], "bytes": size,
        "generate_seconds": round(gen_s, 3), "upload_seconds": round(upload_s, 3), "repeats": repeats,
        "median": {k: {m: round(x, 3) for m, x in v.items()} for k, v in med.items()},
        "ratios": {k: {m: round(med[k][m] / med["local"][m], 3) for m in ("segments_in", "wall")}
                   for k in ("cold", "warm")},
        "runs": {k: [{m: round(x[m], 3) for m in ("segments_in", "wall")} for x in v] for k, v in runs.items()},
    }


# --------------------------------------------------------------------------- 2. three machines at once


def twenty_board(quick: bool) -> str:
    chains, per_chain = (2, 3) if quick else (4, 5)
    frames, overlap = 17, 9
    length = frames + (per_chain - 1) * (frames - overlap)
    scenes = [{"id": f"c{i}", "duration": f"{length}f", "prompt": PROMPTS[i % len(PROMPTS)]} for i in range(chains)]
    return common.board_yaml(scenes, resolution="480p", fps=12, frames=frames, overlap=overlap, title="twenty")


def machines_at_once(moto: MotoProcess, emu: Any, tmp: Path, n: int, board_path: Path, log: Any) -> dict[str, Any]:
    url = f"s3://{moto.bucket()}/team"
    before = emu.submits()
    env = {**os.environ, **moto.env, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", BOOT, "render", str(board_path), "-o", str(tmp / f"m{n}-{i}.mp4"),
                               "--backend", "fal", "--cache-dir", url, "--jobs", "2", "--quiet"],
                              env={**env, "COMPOSER_LOCAL_CACHE_DIR": str(tmp / f"layer-m{n}-{i}")},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
             for i in range(n)]
    ends = []
    for p in procs:
        _, err = p.communicate(timeout=1200)
        ends.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise RuntimeError(f"machine failed: {err[-2000:]}")
    return {"machines": n, "wall": round(max(ends), 3), "each": [round(e, 3) for e in ends],
            "requests": emu.submits() - before}


def share_one_board(moto: MotoProcess, tmp: Path, quick: bool, latency: float, log: Any) -> dict[str, Any]:
    import composer
    from schedule import ProcessEmulator

    text = twenty_board(quick)
    board_path = tmp / "twenty.yaml"
    board_path.write_text(text)
    p = composer.plan(common.load_board(text))
    with ProcessEmulator(latency, 16) as emu:
        one = machines_at_once(moto, emu, tmp, 1, board_path, log)
        log(f"  1 machine: {one['wall']:.2f} s, {one['requests']} requests")
        three = machines_at_once(moto, emu, tmp, 3, board_path, log)
        log(f"  3 machines: {three['wall']:.2f} s (each {three['each']}), {three['requests']} requests")
    return {"segments": len(p.segments), "chains": len(p.chains), "plan_requests": p.requests,
            "critical_path": p.critical_path, "latency": latency, "one": one, "three": three,
            "paid_as_planned": one["requests"] == p.requests and three["requests"] == p.requests,
            "wall_ratio": round(three["wall"] / one["wall"], 3)}


# --------------------------------------------------------------------------- report


def run(args: argparse.Namespace) -> dict[str, Any]:
    log = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=sys.stderr, flush=True))
    info = common.machine_info()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp, MotoProcess() as moto:
        tmp_path = Path(tmp)
        log("reading a cached board from the bucket ...")
        read = read_from_bucket(moto, tmp_path, args.quick, args.repeats, log)
        log("three machines on one board ...")
        share = share_one_board(moto, tmp_path, args.quick, args.latency, log)
    info["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"machine": info, "command": common.command_line(), "quick": args.quick, "read": read, "share": share,
            "seconds": round(time.perf_counter() - t0, 1)}


def report(data: dict[str, Any]) -> str:
    r, s = data["read"], data["share"]
    med, ratio = r["median"], r["ratios"]
    rows = [[name, f"{med[k]['segments_in']:.2f}", f"{ratio[k]['segments_in']:.2f}×" if k != "local" else "1.00×",
             f"{med[k]['wall']:.2f}", f"{ratio[k]['wall']:.2f}×" if k != "local" else "1.00×"]
            for name, k in (("local cache folder", "local"), ("bucket, cold local layer", "cold"),
                            ("bucket, warm local layer", "warm"))]
    share_rows = [[f"{x['machines']}", f"{x['wall']:.2f}", x["requests"], s["plan_requests"],
                   common.verdict(x["requests"] == s["plan_requests"])] for x in (s["one"], s["three"])]
    return "\n".join([
        "## Team cache (`benchmarks/team_cache.py`)",
        "",
        f"Command: `{data['command']}` ({data['seconds']:.0f} s)  ",
        f"Machine: {common.machine_line(data['machine'])}",
        "",
        "S3 is moto's server in its own process on loopback (`AWS_ENDPOINT_URL`), so these figures measure "
        "composer's side of the protocol, not a real network: a real bucket adds its round-trip time to every "
        "request of a cold read (about 5 per segment) and of a lease (2–4 per paid segment).",
        "",
        f"**Reading a cached board from the bucket**: {r['segments']} segments, {r['frames']} frames at {r['fps']} fps "
        f"({r['bytes'] / 1e6:.1f} MB of segments), fully cached, re-rendered with the preview backend; median of "
        f"{r['repeats']}. *Segments in* = from the `render()` call to the last segment found (the cache's part: "
        "keys, lookups, downloads, sha256 checks); *render* = the whole render with assembly.",
        "",
        common.md_table(["cache", "segments in s", "vs local", "render s", "vs local"], rows),
        "",
        f"**Three machines on one board**: {s['segments']} segments in {s['chains']} chains (critical path "
        f"{s['critical_path']}), `composer render --backend fal --jobs 2` processes against one bucket, the fal "
        f"emulator in its own process at {s['latency']:g} s per request. A machine that meets a segment another "
        "holds the lease of sets that chain aside and takes another.",
        "",
        common.md_table(["machines", "wall s (all done)", "requests paid", "plan", "paid = plan"], share_rows),
        "",
        f"Three machines take {s['wall_ratio']:.2f}× the wall time of one (each machine still renders and "
        "assembles the whole film; the requests are shared, the assembly is not).",
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (for tests)")
    p.add_argument("--out", default=None, help="results file to write this section into (default benchmarks/RESULTS.md)")
    p.add_argument("--json", default=None, help="figures as JSON (default benchmarks/results/team_cache.json; "
                                                "beside --out when that is given)")
    p.add_argument("--latency", type=float, default=None, help="seconds per fal request (default 2; quick 0.2)")
    p.add_argument("--repeats", type=int, default=None, help="re-renders per cache (default 3; quick 1)")
    p.add_argument("--wait-load", type=float, default=None, help="wait for the 1-min load average to drop below this")
    p.add_argument("--wait-max", type=float, default=1200)
    p.add_argument("--silent", action="store_true")
    args = p.parse_args(argv)
    if args.latency is None:
        args.latency = 0.2 if args.quick else 2.0
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    common.wait_for_quiet(args.wait_load, args.wait_max)
    data = run(args)
    json_path = Path(args.json) if args.json else (Path(args.out).with_suffix(".team_cache.json") if args.out
                                                    else JSON_OUT)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    path = common.write_section("team_cache", report(data), data, args.out)
    print(report(data))
    print(f"\nwrote {path} and {json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
