"""Reliability: hostile input, injected fal faults, full disks and SIGKILL at random points.

1. Inputs: hostile storyboards and broken media given to ``composer validate`` (a render for
   the unusual-but-valid images), and fuzz mutations (``composer.testing.fuzz``): per class,
   tried / refused with one clear line (``file:line:col``, exit 2, no traceback) / converted.
2. Faults: ``composer render --backend fal`` in a subprocess against the fal emulator
   (``composer.testing.fal``, in this process so its faults can be armed and its paid
   submits counted): 429, 5xx, dropped connections, slow queue, result error, safety
   rejection, truncated downloads; paid requests against the plan.
3. Full disks: the film, the cache, and a fal download on a small tmpfs (skipped, with the
   reason, where none can be mounted).
4. SIGKILL of the render's process group at seeded random times across a clean render's
   duration and at moments chosen by watching the emulator and the cache's journal, each
   followed by a resume (``--yes`` only after the resume asked): film complete, paid vs plan.

    python benchmarks/reliability.py [--quick] [--kills 50] [--seed 0] [--out PATH]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

ROOT = common.ROOT
KEY = "bench-reliability-dummy-key"
# What a user runs (composer.cli.main), with the fal backend's poll interval and backoff and
# fal_client's own retry backoff shortened; the number of attempts stays fal_client's.
BOOT = (
    "import sys; import fal_client.client as fc; fc.BASE_DELAY = 0.005; fc.MAX_DELAY = 0.05; "
    "from composer.backends.fal import FalBackend; "
    "FalBackend.__init__.__kwdefaults__.update(poll_interval=0.03, base_delay=0.02, max_delay=0.2); "
    "from composer.cli import main; main(prog_name='composer')"
)
LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): ")
HEAD = "version: 1\noutput: {resolution: 480p, aspect_ratio: 16:9, fps: 12}\n"
SCENE = "scenes:\n  - id: a\n    duration: 2s\n    prompt: x\n"
PROMPTS = ["a harbour at dawn", "a city at night", "a forest path in autumn"]


def fal_board(chains: int, per_chain: int) -> str:
    """``chains`` hard-cut chains of ``per_chain`` 17-frame requests each (8 new frames per continuation)."""
    length = 17 + (per_chain - 1) * 8
    scenes = [{"id": f"c{i}", "duration": f"{length}f", "prompt": PROMPTS[i % len(PROMPTS)]} for i in range(chains)]
    return common.board_yaml(scenes, resolution="480p", fps=12, frames=17, overlap=9, seed=3, title="reliability")


# --------------------------------------------------------------------------- processes


def cli(args: list[Any], env: dict[str, str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``composer ARGS`` in a subprocess, stdin not a terminal (as in a script)."""
    return subprocess.run([sys.executable, "-c", BOOT, *map(str, args)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip()]


def says_may_pay(stderr: str) -> bool:
    """The render stopped saying that going on may pay twice for a segment."""
    return "may pay twice" in stderr or "may have been queued" in stderr


def frames_of(path: Path) -> int:
    from composer.media import probe

    try:
        return probe(path).num_frames if path.exists() else 0
    except Exception:  # noqa: BLE001 — a broken film counts as no film here
        return -1


class Emulator:
    """A fal emulator in this process (canned clips) for one scenario or trial, so they can run side
    by side, each counting its own paid submits; ``env`` points a subprocess at it."""

    def __init__(self, latency: float):
        from composer.testing.fal import FalEmulator

        self.emu = FalEmulator(canned=True, key=KEY, latency=latency, workers=4).start()
        self.env = {**os.environ, **self.emu.env(), "PYTHONPATH": str(ROOT)}

    def paid(self) -> int:
        """What fal would bill: accepted submits less those that failed on fal's side (5xx, never billed)."""
        return self.emu.billed_count()

    def submits(self) -> int:
        return self.emu.submit_count()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.emu.stop()


def side_by_side(fn: Callable[[Any], dict[str, Any]], items: list[Any], jobs: int) -> list[dict[str, Any]]:
    """``fn`` over ``items``, ``jobs`` at a time (each in its own emulator and folders), in order."""
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(fn, items))


# --------------------------------------------------------------------------- 1. inputs


def png_bytes(width: int, height: int) -> bytes:
    """A PNG header claiming any size, without the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def make_media(d: Path) -> None:
    import cv2
    import numpy as np

    from composer.media import ffmpeg_exe

    (d / "folder.png").mkdir()
    os.mkfifo(d / "pipe.png")
    os.mkfifo(d / "pipe.wav")
    (d / "empty.png").write_bytes(b"")
    (d / "empty.wav").write_bytes(b"")
    (d / "text.png").write_text("hello, I am a text file\n")
    _, buf = cv2.imencode(".png", np.full((40, 60, 3), 90, np.uint8))
    (d / "cut.png").write_bytes(buf.tobytes()[: len(buf) // 2])
    _, buf = cv2.imencode(".jpg", np.full((40, 60, 3), 90, np.uint8))
    (d / "cut.jpg").write_bytes(buf.tobytes()[: len(buf) * 2 // 3])
    (d / "huge.png").write_bytes(png_bytes(20000, 20000))
    cv2.imwrite(str(d / "strip.png"), np.zeros((2, 20000, 3), np.uint8))
    (d / "noise.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk" + bytes(range(256)) * 8)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=s=64x48:d=1", "-pix_fmt",
                    "yuv420p", str(d / "video.mp4")], check=True)
    y, x = np.mgrid[0:240, 0:424]
    ref = np.dstack([x * 255 // 423, y * 255 // 239, 255 - x * 255 // 423]).astype(np.uint8)
    bgr = ref[..., ::-1]
    cv2.imwrite(str(d / "deep.png"), bgr.astype(np.uint16) * 257)
    cv2.imwrite(str(d / "gray.png"), cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY))
    cv2.imwrite(str(d / "alpha.png"), np.dstack([bgr, np.full(ref.shape[:2], 200, np.uint8)]))
    with contextlib.suppress(ImportError):
        from PIL import Image

        Image.fromarray(ref).convert("CMYK").save(d / "cmyk.jpg", quality=95)


def fuzz_worker(n: int, seed: int, keep: int) -> None:
    """Run ``n`` fuzz mutations through the loader and planner; print one JSON line: the outcome
    counts and the first ``keep`` refused inputs (hex bytes)."""
    from composer.testing.fuzz import random_input, run_one

    kinds: dict[str, int] = {}
    refused: list[str] = []
    rng = random.Random(seed)
    for _ in range(n):
        mutant = random_input(rng)
        outcome = run_one(mutant.data, touched_line=mutant.line)
        kinds[outcome.kind] = kinds.get(outcome.kind, 0) + 1
        if outcome.kind in ("located", "at_1_1") and len(refused) < keep:
            data = mutant.data
            # a lone surrogate in generated text reaches the file as the bytes a broken editor would write
            refused.append((data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")).hex())
    print(json.dumps({"kinds": kinds, "refused_hex": refused}))


def keyframe_board(image: str) -> str:
    return HEAD + SCENE + f"    keyframes:\n      - {{at: 0s, image: {image}}}\n"


def audio_board(file: str) -> str:
    return "version: 1\naudio: " + file + "\n" + "output: {resolution: 480p, fps: 12}\n" + SCENE


def alias_bomb(levels: int = 10) -> str:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n" + SCENE


def input_cases(d: Path) -> list[tuple[str, str, str]]:
    """(class, name, board text): each one must be refused with one located line."""
    return [
        ("storyboard", "alias bomb (10 levels)", alias_bomb()),
        ("storyboard", "deep nesting", HEAD + "title: " + "[" * 40 + "]" * 40 + "\n" + SCENE),
        ("storyboard", "duration 100h", HEAD + "scenes:\n  - {id: a, duration: 100h, prompt: x}\n"),
        ("storyboard", "duration 1000000000s", HEAD + "scenes:\n  - {id: a, duration: 1000000000s, prompt: x}\n"),
        ("storyboard", "duration 9999999999f", HEAD + "scenes:\n  - {id: a, duration: 9999999999f, prompt: x}\n"),
        ("storyboard", "merge key beside a board", HEAD + SCENE + "<<: {a: 1}\n"),
        ("storyboard", "merge key alone", "<<: {a: 1}\n"),
        ("storyboard", "null key", HEAD + SCENE + "null: 7\n"),
        ("storyboard", "control character", HEAD + "title: ok\x07\n" + SCENE),
        ("storyboard", "null param", HEAD + "defaults: {params: {temporal_adain_factor: null}}\n" + SCENE),
        ("path", "audio path of 3000 characters", audio_board("z" * 3000 + ".wav")),
        ("path", "image path of 3000 characters", keyframe_board("x" * 3000 + ".png")),
        ("special file", "image is a directory", keyframe_board("folder.png")),
        ("special file", "image is a FIFO", keyframe_board("pipe.png")),
        ("special file", "image is /dev/zero", keyframe_board("/dev/zero")),
        ("special file", "audio is a directory", audio_board("folder.png")),
        ("special file", "audio is a FIFO", audio_board("pipe.wav")),
        ("special file", "audio is /dev/zero", audio_board("/dev/zero")),
        ("image", "empty (0 bytes)", keyframe_board("empty.png")),
        ("image", "truncated PNG", keyframe_board("cut.png")),
        ("image", "truncated JPEG", keyframe_board("cut.jpg")),
        ("image", "text named .png", keyframe_board("text.png")),
        ("image", "20000×20000 header", keyframe_board("huge.png")),
        ("image", "20000×2 PNG", keyframe_board("strip.png")),
        ("image", "missing", keyframe_board("missing.png")),
        ("audio", "empty (0 bytes)", audio_board("empty.wav")),
        ("audio", "corrupt WAV", audio_board("noise.wav")),
        ("audio", "video file without audio", audio_board("video.mp4")),
        ("audio", "text file", audio_board("text.png")),
    ]


CONVERTED = ("deep.png", "gray.png", "alpha.png", "cmyk.jpg")


def judge_refusal(proc: subprocess.CompletedProcess[str], path: Path, *, single: bool = True) -> tuple[bool, str]:
    """Exit 2, no traceback, and one line per problem starting with the board's file:line:col
    (``single``: exactly one line, for inputs with one problem)."""
    lines = error_lines(proc.stderr)
    if "Traceback" in proc.stderr:
        return False, "traceback"
    if proc.returncode != 2:
        return False, f"exit {proc.returncode}"
    if not lines or (single and len(lines) != 1):
        return False, f"{len(lines)} lines"
    for line in lines:
        m = LOCATED.match(line)
        if not m or m["file"] != str(path):
            return False, f"no location: {line[:120]}"
    return True, lines[0][len(str(path)) + 1:][:140] + (f" (+{len(lines) - 1} more problems)" if len(lines) > 1 else "")


def run_inputs(tmp: Path, quick: bool, fuzz_n: int, fuzz_cli: int, seed: int, log: Callable[..., None]) -> dict[str, Any]:
    d = tmp / "inputs"
    d.mkdir()
    make_media(d)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cases = input_cases(d)
    if quick:
        cases = [c for c in cases if c[1] in ("alias bomb (10 levels)", "image is a FIFO", "20000×20000 header")]

    def refuse(i: int, case: tuple[str, str, str]) -> dict[str, Any]:
        cls, name, text = case
        path = d / f"case{i}.yaml"
        path.write_text(text, encoding="utf-8")
        t0 = time.perf_counter()
        proc = cli(["validate", path], env, timeout=120)
        ok, why = judge_refusal(proc, path)
        return {"class": cls, "name": name, "clear_error": ok, "detail": why,
                "seconds": round(time.perf_counter() - t0, 2)}

    with ThreadPoolExecutor(max_workers=2) as pool:
        rows = list(pool.map(lambda ic: refuse(*ic), enumerate(cases)))
    log(f"  {sum(r['clear_error'] for r in rows)}/{len(rows)} hostile inputs refused clearly")

    # unusual but valid images: converted, and the film rendered (preview backend)
    present = [n for n in CONVERTED if (d / n).exists()]
    scenes = "".join(f"  - id: s{i}\n    duration: 1s\n    prompt: p{i}\n    keyframes: [{{at: 0s, image: {n}}}]\n"
                     for i, n in enumerate(present))
    board = d / "converted.yaml"
    board.write_text(HEAD + "defaults: {segment: {frames: 17, overlap: 9}}\nscenes:\n" + scenes)
    checked = cli(["validate", board], env, timeout=120)
    film = d / "converted.mp4"
    rendered = None
    if not quick:
        r = cli(["render", board, "-o", film, "--cache-dir", tmp / "inputs-cache", "--quiet", "--no-review"], env, timeout=600)
        rendered = {"exit": r.returncode, "frames": frames_of(film), "stderr": r.stderr[-300:]}
    for n in present:
        ok = checked.returncode == 0 and (rendered is None or (rendered["exit"] == 0 and rendered["frames"] == 12 * len(present)))
        rows.append({"class": "image (valid, unusual)", "name": n, "converted": ok,
                     "detail": "validated" + (" and rendered" if rendered else "") if ok else checked.stderr[-200:]})

    # fuzz mutations: the loader and planner in a worker process (the emulators here keep the GIL), a sample
    # of the refused ones through the CLI
    worker = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--fuzz-worker", str(fuzz_n), str(seed),
                             str(fuzz_cli)], env=env, capture_output=True, text=True, timeout=3600)
    if worker.returncode != 0:
        raise RuntimeError(f"the fuzz worker failed: {worker.stderr[-2000:]}")
    found = json.loads(worker.stdout.strip().splitlines()[-1])
    kinds: dict[str, int] = found["kinds"]
    refused_texts: list[Any] = [bytes.fromhex(h) for h in found["refused_hex"]]
    fuzz_rows = []
    for i, data in enumerate(refused_texts):
        path = d / f"fuzz{i}.yaml"
        path.write_bytes(data)
        proc = cli(["validate", path], env, timeout=120)
        ok, why = judge_refusal(proc, path, single=False)  # a mutant may hold several problems: one line each
        fuzz_rows.append({"clear_error": ok, "detail": why})
    log(f"  fuzz: {kinds}; CLI sample {sum(r['clear_error'] for r in fuzz_rows)}/{len(fuzz_rows)} clear")
    return {"cases": rows, "converted_render": rendered, "fuzz": {"examples": fuzz_n, "kinds": kinds,
                                                                   "cli_sample": fuzz_rows}}


# --------------------------------------------------------------------------- 2. faults


def fault_scenarios(quick: bool) -> list[tuple[str, Callable[[Any], None], str]]:
    """(name, arm(emulator), what is expected: 'complete' or 'stops')."""
    scenarios: list[tuple[str, Callable[[Any], None], str]] = [
        ("HTTP 429 ×4 at submit (within fal_client's retries)", lambda e: e.fail("submit", 429, times=4), "complete"),
        ("HTTP 429 ×12 at submit (past fal_client's retries)", lambda e: e.fail("submit", 429, times=12), "complete"),
        ("HTTP 500 ×3 at submit", lambda e: e.fail("submit", 500, times=3), "complete"),
        ("HTTP 500 ×4 at status", lambda e: e.fail("status", 500, times=4), "complete"),
        ("HTTP 502 ingress ×5 at status", lambda e: e.fail("status", 502, times=5, ingress=True), "complete"),
        ("HTTP 503 ×2 at result", lambda e: e.fail("result", 503, times=2), "complete"),
        ("dropped connection ×3 at status", lambda e: e.drop("status", times=3), "complete"),
        ("dropped connection ×2 at result", lambda e: e.drop("result", times=2), "complete"),
        ("dropped connection at submit, before fal queued it", lambda e: e.drop("submit"), "stops"),
        ("dropped connection at submit, after fal queued it", lambda e: e.drop("submit", after_accept=True), "stops"),
        # fal's answer names the queued request (x-fal-request-id): followed, not bought again
        ("HTTP 500 at submit, after fal queued it (its id in the answer)",
         lambda e: e.fail("submit", 500, after_accept=True), "complete"),
        ("slow queue (+2 s) ×2", lambda e: e.slow_queue(2.0, times=2), "complete"),
        ("result error (runner 500) ×1", lambda e: e.fail_generation(times=1), "complete"),
        ("safety rejection ×1", lambda e: e.reject_safety(times=1), "stops"),
        ("truncated download (short body) ×2", lambda e: e.truncate_downloads(times=2), "complete"),
        ("truncated download (headers agree) ×2", lambda e: e.truncate_downloads(times=2, cut=True), "complete"),
        ("slow download (+1 s) ×2", lambda e: e.delay("download", 1.0, times=2), "complete"),
    ]
    if quick:
        keep = ("HTTP 500 ×4 at status",)
        scenarios = [s for s in scenarios if s[0] in keep]
    return scenarios


def fault_row(i: int, name: str, arm: Callable[[Any], None], expect: str, tmp: Path, board: Path, plan: Any,
              latency: float) -> dict[str, Any]:
    cache, out = tmp / f"fault{i}" / "cache", tmp / f"fault{i}" / "film.mp4"
    args = ["render", board, "-o", out, "--backend", "fal", "--cache-dir", cache, "--quiet", "--no-review"]
    with Emulator(latency) as emu:
        arm(emu.emu)
        first = cli(args, emu.env)
        emu.emu.clear_faults()
        lines = error_lines(first.stderr)
        row: dict[str, Any] = {
            "fault": name, "expect": expect, "first_exit": first.returncode, "traceback": "Traceback" in first.stderr,
            "first_error": lines[-1][:240] if first.returncode else "", "paid_first": emu.paid(),
            "one_line": first.returncode == 0 or len([ln for ln in lines if ln.startswith("error")]) == 1,
        }
        asked = first.returncode != 0 and says_may_pay(first.stderr)
        if first.returncode != 0 and expect == "stops" and "safety" not in name:
            # as a person would: run it again; where that asks before paying twice, say yes
            again = cli(args, emu.env)
            exits = [again.returncode]
            if again.returncode != 0 and says_may_pay(again.stderr):
                asked = True
                exits.append(cli([*args, "--yes"], emu.env).returncode)
            row["resume_exits"] = exits
        row["asked"] = asked
        row["paid"] = emu.paid()
        row["submits"] = emu.submits()
    row["plan"] = plan.requests
    row["frames"] = frames_of(out)
    row["complete"] = row["frames"] == plan.total_frames
    if expect == "complete":
        row["survived"] = first.returncode == 0 and row["complete"] and row["paid"] == plan.requests
    elif "safety" in name:
        row["survived"] = (first.returncode != 0 and row["one_line"] and not row["traceback"]
                           and row["paid"] <= plan.requests and not out.exists())
    else:  # the outcome of a submit is unknown: stop and say so, and a resume with --yes completes
        row["survived"] = (first.returncode != 0 and asked and not row["traceback"] and row["complete"]
                           and row["paid"] <= plan.requests + 1)
    return row


def run_faults(tmp: Path, board: Path, plan: Any, quick: bool, latency: float, jobs: int,
               log: Callable[..., None]) -> list[dict[str, Any]]:
    def one(item: tuple[int, tuple[str, Callable[[Any], None], str]]) -> dict[str, Any]:
        i, (name, arm, expect) = item
        row = fault_row(i, name, arm, expect, tmp, board, plan, latency)
        log(f"  {name}: exit {row['first_exit']}, paid {row['paid']}/{plan.requests}, "
            f"frames {row['frames']}/{plan.total_frames}{' (asked)' if row['asked'] else ''}")
        return row

    return side_by_side(one, list(enumerate(fault_scenarios(quick))), jobs)


# --------------------------------------------------------------------------- 3. full disks


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path | None]:
    path.mkdir(parents=True, exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    try:
        yield path if ok else None
    finally:
        if ok:
            subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def corrupt_entries(cache: Path) -> int:
    """Published cache entries whose video does not match its recorded size and sha256."""
    from composer.store.base import file_sha256

    bad = 0
    for meta_path in cache.glob("segments/*/*/meta.json"):
        try:
            meta = json.loads(meta_path.read_text())
            video = meta_path.parent / "video.mp4"
            if video.stat().st_size != meta["size"] or file_sha256(video) != meta["sha256"]:
                bad += 1
        except (OSError, ValueError, KeyError):
            bad += 1
    return bad


def run_enospc(tmp: Path, board: Path, plan: Any, quick: bool, latency: float,
               log: Callable[..., None]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cases = ["film", "cache (preview)", "fal download into the cache"]
    if quick:
        cases = cases[:1]
    for i, case in enumerate(cases):
        with tmpfs(tmp / f"disk{i}", "192k") as mnt, Emulator(latency) as emu:
            if mnt is None:
                rows.append({"case": case, "skipped": "cannot mount a small tmpfs (needs root)"})
                continue
            if case == "film":
                film = mnt / "film.mp4"
                film.write_bytes(b"the previous film")
                proc = cli(["render", board, "-o", film, "--cache-dir", tmp / f"disk{i}-cache", "--quiet", "--no-review"],
                            env)
                cache = tmp / f"disk{i}-cache"
            elif case == "cache (preview)":
                film, cache = tmp / f"disk{i}-film.mp4", mnt / "cache"
                proc = cli(["render", board, "-o", film, "--cache-dir", cache, "--quiet", "--no-review"], env)
            else:
                film, cache = tmp / f"disk{i}-fal.mp4", mnt / "cache"
                proc = cli(render_args(board, film, cache), emu.env)
            lines = error_lines(proc.stderr)
            row: dict[str, Any] = {
                "case": case, "exit": proc.returncode, "traceback": "Traceback" in proc.stderr,
                "lines": len(lines), "error": lines[-1][:240] if lines else "",
                "names_users_path": bool(lines) and (str(film) in lines[-1] or str(cache) in lines[-1]),
                "no_space_said": bool(lines) and "no space left" in lines[-1].lower(),
                "corrupt_cache_entries": corrupt_entries(cache),
                "old_film_intact": film.read_bytes() == b"the previous film" if case == "film" else None,
            }
            if case == "fal download into the cache":
                subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], capture_output=True, timeout=30)
                again = cli(render_args(board, film, cache), emu.env)
                row["resume_exit"] = again.returncode
                row["paid"], row["plan"] = emu.paid(), plan.requests
                row["frames"] = frames_of(film)
            row["survived"] = (proc.returncode != 0 and not row["traceback"] and row["lines"] == 1
                               and row["no_space_said"] and row["names_users_path"]
                               and row["corrupt_cache_entries"] == 0 and row["old_film_intact"] is not False
                               and row.get("paid", 0) <= plan.requests)
            rows.append(row)
            log(f"  ENOSPC {case}: exit {proc.returncode}: {row['error'][:120]}")
    return rows


# --------------------------------------------------------------------------- 4. SIGKILL


def journal_state(cache: Path) -> tuple[int, int]:
    """(journal records without a request id, with one)."""
    intents = ids = 0
    for p in (cache / "journal").glob("*.json"):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if rec.get("request_id"):
            ids += 1
        else:
            intents += 1
    return intents, ids


def trigger(kind: str, cache: Path, out: Path, emu: Emulator, plan: Any) -> Callable[[], bool]:
    """A predicate that is true at the chosen moment of the render."""
    if kind == "intent journalled":
        return lambda: journal_state(cache)[0] > 0
    if kind == "submit accepted, id not journalled":
        return lambda: emu.paid() > 0 and journal_state(cache)[0] > 0
    if kind == "id journalled":  # and no other segment inside its submit's window, so no resume need ask
        return lambda: (lambda intents, ids: ids > 0 and intents == 0)(*journal_state(cache))
    if kind == "first segment published":
        return lambda: any(cache.glob("segments/*/*/meta.json"))
    if kind == "half the segments published":
        return lambda: len(list(cache.glob("segments/*/*/meta.json"))) * 2 >= plan.requests
    if kind == "film being written":
        return lambda: any(p.name.startswith(f".{out.name}.partial") for p in out.parent.iterdir())
    raise ValueError(kind)


CHOSEN = ["intent journalled", "submit accepted, id not journalled", "id journalled", "first segment published",
          "half the segments published", "film being written"]


def render_args(board: Path, out: Path, cache: Path) -> list[Any]:
    return ["render", board, "-o", out, "--backend", "fal", "--cache-dir", cache, "--quiet", "--no-review"]


def kill_trial(i: int, point: dict[str, Any], tmp: Path, board: Path, plan: Any, latency: float,
               attempt: int = 0) -> dict[str, Any]:
    d = tmp / f"kill{i}" / f"try{attempt}"
    cache, out = d / "cache", d / "out" / "film.mp4"
    out.parent.mkdir(parents=True)
    args = render_args(board, out, cache)
    with Emulator(latency) as emu:
        env = dict(emu.env)
        if point["kind"] == "submit accepted, id not journalled":
            env["COMPOSER_TEST_PAUSE_AFTER_SUBMIT"] = "1.0"  # widen the window between fal's answer and the journal
        proc = subprocess.Popen([sys.executable, "-c", BOOT, *map(str, args)], env=env, cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        t0 = time.perf_counter()
        if point["kind"] == "random time":
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(point["at_s"])
        else:
            fire = trigger(point["kind"], cache, out, emu, plan)
            while proc.poll() is None and time.perf_counter() - t0 < 300 and not fire():
                time.sleep(0.005)
        killed_at = time.perf_counter() - t0
        reached = proc.poll() is None
        if reached:
            os.killpg(proc.pid, signal.SIGKILL)  # the render and its ffmpeg children, as a crash would
        proc.wait()
        paid_at_kill = emu.paid()
        intents, ids = journal_state(cache)
        resume = cli(args, emu.env)
        asked = resume.returncode != 0 and says_may_pay(resume.stderr)
        exits = [resume.returncode]
        if asked:
            exits.append(cli([*args, "--yes"], emu.env).returncode)
        paid = emu.paid()
    frames = frames_of(out)
    return {"trial": i, "kind": point["kind"], "planned_at_s": point.get("at_s"), "killed_at_s": round(killed_at, 2),
            "killed": reached, "paid_at_kill": paid_at_kill, "journal_intents": intents, "journal_ids": ids,
            "asked": asked, "resume_exits": exits, "traceback": "Traceback" in resume.stderr,
            "ask_line": next((ln for ln in error_lines(resume.stderr) if "may pay twice" in ln), "")[:240],
            "paid": paid, "plan": plan.requests, "frames": frames, "film_frames": plan.total_frames,
            "complete": frames == plan.total_frames,
            "paid_twice_silently": paid > plan.requests and not asked}


def clean_render(i: int, tmp: Path, board: Path, plan: Any, latency: float) -> dict[str, Any]:
    d = tmp / f"clean{i}"
    with Emulator(latency) as emu:
        t0 = time.perf_counter()
        proc = cli(render_args(board, d / "film.mp4", d / "cache"), emu.env)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"a clean render failed: {proc.stderr[-2000:]}")
        return {"seconds": round(seconds, 2), "paid": emu.paid(), "frames": frames_of(d / "film.mp4")}


def run_kills(tmp: Path, board: Path, plan: Any, n_random: int, chosen: list[str], seed: int, latency: float,
              jobs: int, log: Callable[..., None], done: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    # the render's duration measured as the trials run: ``jobs`` at once
    cleans = side_by_side(lambda i: clean_render(i, tmp, board, plan, latency), list(range(max(1, jobs))), jobs)
    duration = common.median([c["seconds"] for c in cleans])
    baseline = {"seconds": round(duration, 2), "paid": max(c["paid"] for c in cleans),
                "frames": min(c["frames"] for c in cleans), "runs": cleans}
    log(f"  clean render: {duration:.1f} s ({jobs} at once), paid {baseline['paid']}/{plan.requests}")
    rng = random.Random(seed)
    points = [{"kind": "random time", "at_s": round(rng.uniform(0.0, duration), 3)} for _ in range(n_random)]
    points += [{"kind": k} for k in chosen]

    def one(item: tuple[int, dict[str, Any]]) -> dict[str, Any]:
        i, point = item
        t = kill_trial(i, point, tmp, board, plan, latency)
        drawn = [point.get("at_s")]
        # The clean render's duration is a guess at this trial's (the load varies): a render that ended
        # before its kill time was not a kill, so draw again inside the time that render actually took.
        trial_rng = random.Random(f"{seed}-{i}")
        while point["kind"] == "random time" and not t["killed"] and len(drawn) < 4:
            point = {"kind": "random time", "at_s": round(trial_rng.uniform(0.0, t["killed_at_s"]), 3)}
            drawn.append(point["at_s"])
            t = kill_trial(i, point, tmp, board, plan, latency, attempt=len(drawn) - 1)
        t["drawn_s"] = drawn
        at = f" {t['planned_at_s']} s" if t["planned_at_s"] is not None else ""
        log(f"  kill {i + 1}/{len(points)} ({t['kind']}{at}, killed at {t['killed_at_s']} s): paid "
            f"{t['paid']}/{t['plan']}, frames {t['frames']}/{t['film_frames']}{', asked' if t['asked'] else ''}")
        if done is not None:
            done.append(t)  # for a checkpoint of a run stopped before its end
        return t

    return {"clean": baseline, "jobs": jobs, "trials": side_by_side(one, list(enumerate(points)), jobs)}


# --------------------------------------------------------------------------- report


def run(args: argparse.Namespace) -> dict[str, Any]:
    import composer

    log = (lambda *a: None) if args.silent else (lambda *a: print(*a, file=sys.stderr, flush=True))
    info = common.machine_info()
    t0 = time.perf_counter()
    chains, per_chain = (1, 2) if args.quick else (2, 2)
    text = fal_board(chains, per_chain)
    plan = composer.plan(composer.loads(text, name="reliability.yaml"))
    with tempfile.TemporaryDirectory(prefix="bench-rel-") as tmp_s:
        tmp = Path(tmp_s)
        board = tmp / "reliability.yaml"
        board.write_text(text)
        parts = set(args.parts.split(","))
        inputs: dict[str, Any] = {"cases": [], "converted_render": None,
                                  "fuzz": {"examples": 0, "kinds": {}, "cli_sample": []}}
        faults: list[dict[str, Any]] = []
        enospc: list[dict[str, Any]] = []
        kills: dict[str, Any] = {"clean": {"seconds": 0.0, "paid": 0, "frames": 0}, "trials": []}
        # the four parts side by side (each waits mostly on its subprocesses); kills time themselves
        # against clean renders made under the same load
        chosen = ["submit accepted, id not journalled"] if args.quick else CHOSEN
        jobs: dict[str, Callable[[], Any]] = {
            "inputs": lambda: run_inputs(tmp, args.quick, args.fuzz, 1 if args.quick else 20, args.seed, log),
            "faults": lambda: run_faults(tmp, board, plan, args.quick, args.latency, args.jobs, log),
            "disks": lambda: run_enospc(tmp, board, plan, args.quick, args.latency, log),
            "kills": lambda: run_kills(tmp, board, plan, args.kills, chosen, args.seed, args.latency, args.jobs, log),
        }
        try:
            with ThreadPoolExecutor(max_workers=4) as pool:
                futures = {name: pool.submit(fn) for name, fn in jobs.items() if name in parts}
                got = {name: f.result() for name, f in futures.items()}
            inputs = got.get("inputs", inputs)
            faults = got.get("faults", faults)
            enospc = got.get("disks", enospc)
            kills = got.get("kills", kills)
        finally:
            # a tmpfs left mounted (a crash above) must not keep the temporary folder alive
            for m in tmp.glob("disk*"):
                subprocess.run(["umount", "-l", str(m)], capture_output=True, timeout=30)
    info["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return {"machine": info, "command": common.command_line(), "quick": args.quick, "seed": args.seed,
            "latency": args.latency, "jobs": args.jobs, "board": {"requests": plan.requests, "chains": len(plan.chains),
                                               "frames": plan.total_frames},
            "inputs": inputs, "faults": faults, "enospc": enospc, "kills": kills,
            "summary": summarise(inputs, faults, enospc, kills),
            "seconds": round(time.perf_counter() - t0, 1)}


def summarise(inputs: dict[str, Any], faults: list[dict[str, Any]], enospc: list[dict[str, Any]],
              kills: dict[str, Any]) -> dict[str, Any]:
    cases = inputs["cases"]
    refusals = [c for c in cases if "clear_error" in c]
    conversions = [c for c in cases if "converted" in c]
    trials = kills["trials"]
    disks = [r for r in enospc if "skipped" not in r]
    return {
        "inputs_tried": len(cases), "inputs_refused_clearly": sum(c["clear_error"] for c in refusals),
        "inputs_to_refuse": len(refusals), "inputs_converted": sum(c["converted"] for c in conversions),
        "inputs_to_convert": len(conversions),
        "fuzz_uncaught": inputs["fuzz"]["kinds"].get("uncaught", 0),
        "faults_tried": len(faults), "faults_survived": sum(f["survived"] for f in faults),
        "enospc_tried": len(disks), "enospc_survived": sum(r["survived"] for r in disks),
        "enospc_skipped": len(enospc) - len(disks),
        "kills": len(trials), "kills_random": sum(t["kind"] == "random time" for t in trials),
        "kills_complete": sum(t["complete"] for t in trials),
        "kills_paid_as_planned": sum(t["paid"] == t["plan"] for t in trials),
        "kills_paid_more": sum(t["paid"] > t["plan"] for t in trials),
        "kills_asked": sum(t["asked"] for t in trials),
        "kills_paid_twice_silently": sum(t["paid_twice_silently"] for t in trials),
        "kills_traceback": sum(t["traceback"] for t in trials),
    }


def report(data: dict[str, Any]) -> str:
    s, b = data["summary"], data["board"]
    inputs = data["inputs"]
    by_class: dict[str, list[int]] = {}
    for c in inputs["cases"]:
        row = by_class.setdefault(c["class"], [0, 0, 0])
        row[0] += 1
        row[1] += bool(c.get("clear_error"))
        row[2] += bool(c.get("converted"))
    fz = inputs["fuzz"]
    cli_ok = sum(r["clear_error"] for r in fz["cli_sample"])
    input_rows = [[k, v[0], v[1], v[2], common.verdict(v[1] + v[2] == v[0])] for k, v in by_class.items()]
    input_rows.append(["fuzz mutations (loader + planner in-process)", fz["examples"],
                       fz["kinds"].get("located", 0) + fz["kinds"].get("at_1_1", 0),
                       f"{fz['kinds'].get('accepted', 0)} accepted", common.verdict(fz["kinds"].get("uncaught", 0) == 0)])
    input_rows.append(["fuzz refusals through `composer validate` (one located line per problem)",
                       len(fz["cli_sample"]), cli_ok, "",
                       common.verdict(cli_ok == len(fz["cli_sample"]))])
    missed = [f"{c['class']} / {c['name']}: {c['detail']}" for c in inputs["cases"]
              if not (c.get("clear_error") or c.get("converted"))]
    fault_rows = [[f["fault"], f["first_exit"], "yes" if f["asked"] else "", f["paid"], f.get("submits", ""), f["plan"],
                   f"{f['frames']}/{b['frames']}" if f["frames"] > 0 else "none", common.verdict(f["survived"])]
                  for f in data["faults"]]
    disk_rows = [[r["case"], "skipped: " + r["skipped"], "", "", ""] if "skipped" in r else
                 [r["case"], r["error"][:110], r["corrupt_cache_entries"],
                  {True: "yes", False: "**no**", None: "n/a"}[r["old_film_intact"]], common.verdict(r["survived"])]
                 for r in data["enospc"]]
    trials = data["kills"]["trials"]
    kinds: dict[str, list[dict[str, Any]]] = {}
    for t in trials:
        kinds.setdefault(t["kind"], []).append(t)
    kill_rows = [[k, len(v), sum(t["killed"] for t in v), sum(t["complete"] for t in v),
                  sum(t["paid"] == t["plan"] for t in v), sum(t["paid"] > t["plan"] for t in v),
                  sum(t["asked"] for t in v), sum(t["paid_twice_silently"] for t in v)] for k, v in kinds.items()]
    clean = data["kills"]["clean"]
    ask = next((t["ask_line"] for t in trials if t["ask_line"]), "")
    return "\n".join([
        "## Reliability (`benchmarks/reliability.py`)",
        "",
        f"Command: `{data['command']}` ({data['seconds']:.0f} s)  ",
        f"Machine: {common.machine_line(data['machine'])}",
        "",
        "**Inputs.** Each hostile board goes to `composer validate` in a subprocess; *refused clearly* = exit 2, "
        "one line starting with the board's `file:line:col`, no traceback. Unusual but valid images (16-bit, "
        "grayscale, alpha, CMYK JPEG) must validate" + ("" if data["quick"] else " and render") + " (*converted*).",
        "",
        common.md_table(["class", "tried", "refused clearly", "converted", "all survived"], input_rows),
        "",
        ("Missed: " + "; ".join(missed)) if missed else "Every input survived.",
        "",
        f"**Faults** against the fal emulator (canned clips, {data['latency']:g} s per request): "
        f"`composer render --backend fal` of a {b['requests']}-request board ({b['chains']} chains, {b['frames']} "
        f"frames) in a subprocess, a fresh cache and emulator each, {data['jobs']} scenarios at once. "
        "*Asked* = the render stopped with one line saying it may "
        "pay twice and how to go on; it was then run again, and with `--yes` where that asked. *Paid* is what fal "
        "bills: the submits it accepted, less those that failed on fal's side (a 5xx result, "
        "which fal's docs say is never billed); "
        "*submits* counts them all.",
        "",
        common.md_table(["fault", "exit", "asked", "paid", "submits", "plan", "film", "survived"], fault_rows),
        "",
        "**Full disks** (a 192 KiB tmpfs): the film, the cache (preview backend), a fal download into the cache "
        "(then the tmpfs grown and the render resumed). *Survived* = one line saying no space and naming the "
        "user's path, no traceback, no corrupt cache entry, the old film intact.",
        "",
        common.md_table(["on the full disk", "error", "corrupt entries", "old film intact", "survived"], disk_rows),
        "",
        f"**SIGKILL** of the render's process group (the CLI and its ffmpeg children) at {s['kills_random']} seeded "
        f"random times across a clean render's {clean['seconds']:.1f} s (median of {len(clean.get('runs', []))} run "
        f"{data['jobs']} at once, as the trials run; paid {clean['paid']}/{b['requests']}); a trial whose render ended "
        f"before its time was drawn again inside the time that render took "
        f"({sum(len(t.get('drawn_s', [0])) - 1 for t in trials)} redraws), and at moments chosen by "
        "watching the emulator and the cache's journal, each trial with its own emulator; each followed by a resume "
        "(`composer render` again, stdin not a terminal; with `--yes` only if it asked).",
        "",
        common.md_table(["kill point", "trials", "killed before the end", "film complete", "paid = plan",
                         "paid > plan", "resume asked", "paid twice silently"], kill_rows),
        "",
        f"Totals: {s['kills']} kills, {s['kills_complete']} complete films, {s['kills_paid_as_planned']} paid exactly "
        f"the plan, {s['kills_paid_more']} paid more — every one after the resume asked "
        f"({s['kills_paid_twice_silently']} silently), {s['kills_traceback']} tracebacks."
        + (f" What the resume says: `{ask}`" if ask else ""),
    ])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a few cases and kill trials (for tests)")
    p.add_argument("--out", default=None, help="results file to write this section into (default benchmarks/RESULTS.md)")
    p.add_argument("--kills", type=int, default=None, help="random-time kills (default 50; quick 1)")
    p.add_argument("--fuzz", type=int, default=None, help="fuzz mutations (default 500; quick 20)")
    p.add_argument("--latency", type=float, default=None, help="seconds per fal request (default 0.3; quick 0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--parts", default="inputs,faults,disks,kills",
                   help="comma-separated parts to run (default all: inputs,faults,disks,kills)")
    p.add_argument("--jobs", type=int, default=None,
                   help="fault scenarios and kill trials run at once, each with its own emulator (default 3; quick 2)")
    p.add_argument("--silent", action="store_true")
    p.add_argument("--fuzz-worker", nargs=3, type=int, metavar=("N", "SEED", "KEEP"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.fuzz_worker:  # the fuzz part's own process (see run_inputs), not a benchmark run
        fuzz_worker(*args.fuzz_worker)
        return 0
    if args.kills is None:
        args.kills = 1 if args.quick else 50
    if args.fuzz is None:
        args.fuzz = 20 if args.quick else 500
    if args.jobs is None:
        args.jobs = 2 if args.quick else 3
    if args.latency is None:
        args.latency = 0.1 if args.quick else 0.3
    data = run(args)
    path = common.write_section("reliability", report(data), data, args.out)
    if not args.silent:
        print(report(data))
    print(f"\nwrote {path} and {common.results_dir(args.out) / 'reliability.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
