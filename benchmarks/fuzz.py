"""Fuzz the storyboard loader and planner: ≥ 10,000 generated and mutated boards.

Each input (``composer.testing.fuzz.random_input(Random(seed + i))``) goes through
``composer.loads`` (or ``load`` for raw bytes) and ``composer.plan`` in worker
processes that run a batch each (a hang or a crash costs one batch, which is then
re-run one input per process to find the culprit). Per input: how it ended, its
time, and the worker's peak RSS after it. Writes benchmarks/results/fuzz.json and
the ``fuzz`` section of benchmarks/RESULTS.md.

    python benchmarks/fuzz.py [--quick] [--n 10000] [--seed 0] [--jobs 2] [--out RESULTS.md]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

SLOW_S = 5.0
BIG_MB = 500.0


def worker(start: int, count: int, seed: int) -> None:
    """Run inputs start..start+count-1 and print one JSON line each."""
    import random

    from composer.testing.fuzz import random_input, run_one

    # A runaway input must fail here, not take the machine: 2 GB of address space is plenty.
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    for i in range(start, start + count):
        mutant = random_input(random.Random(seed * 1_000_003 + i))
        outcome = run_one(mutant.data, touched_line=mutant.line)
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"i": i, "op": mutant.op, "kind": outcome.kind, "message": outcome.message[:200],
                          "seconds": round(outcome.seconds, 4), "rss_mb": round(rss_mb, 1),
                          "cause_at_1_1": outcome.cause_at_1_1}), flush=True)


def _run_batch(start: int, count: int, seed: int, timeout: float) -> list[dict[str, Any]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(start), str(count), str(seed)]
    env = {**os.environ, "PYTHONPATH": str(BENCH.parent)}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        out, ok = proc.stdout, proc.returncode == 0
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        ok = False
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if ok and len(rows) == count:
        return rows
    done = {r["i"] for r in rows}
    missing = [i for i in range(start, start + count) if i not in done]
    if count == 1:  # this one input hung or killed its process
        return [{"i": start, "op": "?", "kind": "uncaught", "message": "worker died or hung (over "
                 f"{timeout:.0f} s)", "seconds": timeout, "rss_mb": 0.0, "cause_at_1_1": None}]
    for i in missing:
        rows += _run_batch(i, 1, seed, timeout=max(SLOW_S * 4, 20.0))
    return rows


def run(n: int, seed: int, jobs: int, batch: int) -> dict[str, Any]:
    starts = list(range(0, n, batch))
    t0 = time.time()
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(_run_batch, s, min(batch, n - s), seed, batch * SLOW_S + 60) for s in starts]
        for k, fut in enumerate(futures):
            rows += fut.result()
            if (k + 1) % 10 == 0:
                print(f"  {len(rows)}/{n} inputs, {time.time() - t0:.0f} s", flush=True)
    wall = time.time() - t0
    kinds = collections.Counter(r["kind"] for r in rows)
    at_start = [r for r in rows if r["kind"] == "at_1_1"]
    uncaught = collections.Counter(r["message"] for r in rows if r["kind"] == "uncaught")
    seconds = sorted(r["seconds"] for r in rows)
    return {
        "examples": len(rows),
        "accepted": kinds["accepted"],
        "located_errors": kinds["located"],
        "errors_at_1_1": len(at_start),
        "errors_at_1_1_cause_there": sum(1 for r in at_start if r["cause_at_1_1"]),
        "errors_at_1_1_cause_elsewhere": sum(1 for r in at_start if not r["cause_at_1_1"]),
        "at_1_1_messages": collections.Counter(
            ("cause there: " if r["cause_at_1_1"] else "cause elsewhere: ") + r["message"][:90] for r in at_start
        ).most_common(12),
        "uncaught_exceptions": sum(uncaught.values()),
        "uncaught_distinct": uncaught.most_common(20),
        "over_5s": sum(1 for r in rows if r["seconds"] > SLOW_S),
        "over_500mb": sum(1 for r in rows if r["rss_mb"] > BIG_MB),
        "peak_rss_mb": max((r["rss_mb"] for r in rows), default=0.0),
        "median_ms": round(1000 * seconds[len(seconds) // 2], 2) if seconds else 0.0,
        "max_s": round(seconds[-1], 3) if seconds else 0.0,
        "slowest": sorted(({"i": r["i"], "op": r["op"], "s": r["seconds"], "kind": r["kind"]} for r in rows),
                          key=lambda r: -r["s"])[:5],
        "by_source": dict(collections.Counter("generated" if r["op"] == "generated" else "mutated" for r in rows)),
        "wall_s": round(wall, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="300 inputs, for a smoke run")
    ap.add_argument("--n", type=int, default=None, help="inputs to run (default 10,000; 300 with --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--out", default=None, help="results file (default benchmarks/RESULTS.md)")
    ap.add_argument("--json", default=None, help="an extra copy of the figures (they always go to "
                                                 "results/fuzz.json beside the results file)")
    ap.add_argument("--worker", nargs=3, type=int, metavar=("START", "COUNT", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    import common

    n = args.n or (300 if args.quick else 10_000)
    machine = common.machine_info()
    command = common.command_line()
    print(f"fuzzing {n} inputs (seed {args.seed}, {args.jobs} workers)", flush=True)
    figures = run(n, args.seed, args.jobs, args.batch)
    data = {"command": command, "quick": args.quick, "seed": args.seed, "machine": machine, **figures}
    json_path = common.results_dir(args.out) / "fuzz.json"  # written by write_section with the section
    if args.json:  # an extra copy where asked
        from composer.atomic import atomic_write_text

        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(args.json), json.dumps(data, indent=2) + "\n")
    f = figures
    rows = [
        ["inputs", f["examples"], f"{f['by_source'].get('generated', 0)} generated, {f['by_source'].get('mutated', 0)} "
                                  "mutated (examples in storyboards/, and generated boards)"],
        ["accepted (loaded and planned)", f["accepted"], ""],
        ["errors with a place (not 1:1)", f["located_errors"], ""],
        ["errors at 1:1", f["errors_at_1_1"], f"{f['errors_at_1_1_cause_there']} with the cause there (empty or "
                                             f"non-mapping file, first-line mistake); {f['errors_at_1_1_cause_elsewhere']} "
                                             "elsewhere"],
        ["uncaught exceptions", f["uncaught_exceptions"], "goal 0"],
        [f"runs over {SLOW_S:.0f} s", f["over_5s"], f"goal 0; median {f['median_ms']} ms, slowest {f['max_s']} s"],
        [f"runs over {BIG_MB:.0f} MB (worker peak RSS)", f["over_500mb"], f"goal 0; peak {f['peak_rss_mb']:.0f} MB"],
    ]
    body = "\n".join([
        "## Fuzzing the loader and planner (`benchmarks/fuzz.py`)",
        "",
        f"`{command}` — {common.machine_line(machine)}; {f['wall_s']} s wall in {args.jobs} workers.",
        "",
        "Generated boards (mostly well-formed, with hostile values mixed in) and mutated example boards "
        "(lines deleted, duplicated, swapped, re-indented, truncated; values replaced by hostile tokens; control "
        "characters, non-UTF-8 bytes, merge keys, anchors and aliases inserted) through `composer.loads` "
        "(`load` for bytes) and `composer.plan`, in batches of subprocesses.",
        "",
        common.md_table(["outcome", "count", "note"], rows),
        "",
        ("Uncaught: " + "; ".join(f"{m} ×{c}" for m, c in f["uncaught_distinct"])) if f["uncaught_distinct"]
        else "No uncaught exception.",
    ])
    path = common.write_section("fuzz", body, data, args.out)
    print(body)
    print(f"wrote {path} and {json_path}")


if __name__ == "__main__":
    main()
