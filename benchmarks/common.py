"""Shared helpers for the benchmark scripts: machine facts, waiting for a quiet
machine, peak-RSS sampling of a process tree, storyboards, segment rendering,
and writing one section of ``benchmarks/RESULTS.md`` with its figures in
``benchmarks/results/NAME.json``.

Every script writes its section between ``<!-- section:NAME -->`` and
``<!-- /section:NAME -->`` markers, leaving the others (and prose outside
markers) alone; the raw figures go to ``results/NAME.json``, linked from there.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import itertools
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Iterator, Sequence

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
DEFAULT_CACHE = Path(os.environ.get("COMPOSER_BENCH_CACHE", "/tmp/composer-bench-cache"))

HEADER = """# Benchmarks

Measured by the scripts in this folder, each run as `python benchmarks/NAME.py`
(`--quick` for a few-second smoke run at tiny sizes; `--out PATH` writes
elsewhere). Every section says the exact command, the machine, and the load
average when it started: this is a shared 2-core machine, other processes may
have been running, and absolute numbers move with them; ratios measured side by
side in one run move much less.
"""


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ffmpeg_version() -> str:
    from composer.errors import ComposerError
    from composer.media import ffmpeg_exe

    try:
        out = subprocess.run([ffmpeg_exe(), "-version"], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0].replace("ffmpeg version ", "").split(" Copyright")[0]
    except (OSError, subprocess.SubprocessError, IndexError, ComposerError):  # informational only
        return "unknown"


def busy_processes(top: int = 3, interval: float = 0.5) -> list[str]:
    """The processes (not this one or its children) using most CPU right now."""
    try:
        import psutil
    except ImportError:
        return []
    me = os.getpid()
    procs = []
    for p in psutil.process_iter(["pid", "name"]):
        if p.info["pid"] == me:
            continue
        with contextlib.suppress(psutil.Error):  # the process ended or is not ours to read
            p.cpu_percent(None)
            procs.append(p)
    time.sleep(interval)
    usage = []
    for p in procs:
        with contextlib.suppress(psutil.Error):  # the process ended or is not ours to read
            cpu = p.cpu_percent(None)
            if cpu >= 5.0:
                usage.append((cpu, p.info["name"]))
    usage.sort(reverse=True)
    return [f"{name} {cpu:.0f}%" for cpu, name in usage[:top]]


def machine_info() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "load_at_start": [round(x, 2) for x in load],
        "busy_at_start": busy_processes(),
        "python": platform.python_version(),
        "ffmpeg": ffmpeg_version(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(info: dict[str, Any]) -> str:
    la = info["load_at_start"]
    busy = ", ".join(info.get("busy_at_start") or []) or "none above 5%"
    end = info.get("load_at_end")
    end_txt = f"; at end {end[0]:.2f}" if end else ""
    return (f"{info['cores']} cores, {info['cpu']}; load average at start {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} "
            f"(1/5/15 min){end_txt}; other busy processes at start: {busy}; Python {info['python']}, "
            f"ffmpeg {info['ffmpeg']}; {info['date']}")


def wait_for_quiet(max_load: float | None, max_wait_s: float, log=print) -> float:
    """Wait until the 1-minute load average is below ``max_load`` (or give up); return it."""
    load = os.getloadavg()[0]
    if max_load is None:
        return load
    deadline = time.monotonic() + max_wait_s
    while load > max_load and time.monotonic() < deadline:
        log(f"load average {load:.2f} > {max_load}; waiting for a quieter machine...")
        time.sleep(min(20.0, max(1.0, deadline - time.monotonic())))
        load = os.getloadavg()[0]
    if load > max_load:
        log(f"load average still {load:.2f} after {max_wait_s:.0f} s; measuring anyway (noted in the results)")
    return load


def command_line(argv: Sequence[str] | None = None) -> str:
    argv = list(sys.argv if argv is None else argv)
    script = argv[0]
    with contextlib.suppress(ValueError):
        script = os.path.relpath(script, ROOT)
    return "python " + " ".join(shlex.quote(a) for a in [script, *argv[1:]])


# --------------------------------------------------------------------------- RSS sampling


class TreeRSS:
    """Samples the summed RSS (and PSS) of a process and all its descendants every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.05):
        import psutil

        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_pss = 0
        self.peak_procs = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        psutil = self._psutil
        total, pss, n = 0, 0, 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return 0
        for p in procs:
            with contextlib.suppress(psutil.Error, AttributeError):
                mem = p.memory_full_info()  # rss, and pss: shared pages (the ffmpeg binary) split between sharers
                total += mem.rss
                pss += getattr(mem, "pss", mem.rss)
                n += 1
        if total > self.peak:
            self.peak, self.peak_procs = total, n
        self.peak_pss = max(self.peak_pss, pss)
        self.samples += 1
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> TreeRSS:
        self._thread.start()
        return self

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_measured(cmd: Sequence[str], *, env: dict[str, str] | None = None, timeout: float | None = None,
                 cwd: str | Path | None = None) -> dict[str, Any]:
    """Run ``cmd``; return wall seconds, CPU seconds (user + system, the whole process tree),
    the peak RSS of its process tree (MiB) and its output."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd)
    sampler = TreeRSS(proc.pid).start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        sampler.stop()
        raise RuntimeError(f"timed out after {timeout} s: {' '.join(cmd)[:200]}") from None
    wall = time.perf_counter() - t0
    sampler.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the whole tree, once every process in it was reaped
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)[:300]}\n{err.decode(errors='replace')[-2000:]}")
    return {"seconds": wall, "cpu_seconds": cpu, "peak_rss_mib": sampler.peak / 2**20,
            "peak_pss_mib": sampler.peak_pss / 2**20, "peak_procs": sampler.peak_procs,
            "rss_samples": sampler.samples, "stdout": out.decode(errors="replace"),
            "stderr": err.decode(errors="replace")}


# --------------------------------------------------------------------------- storyboards and segments


def board_yaml(scenes: list[dict[str, Any]], *, resolution: str = "480p", fps: int = 24, frames: int = 121,
               overlap: int = 17, method: str = "auto", seed: int = 7, title: str = "benchmark") -> str:
    """Storyboard YAML text: ``scenes`` are dicts with id, duration, prompt and optional transition."""
    lines = [
        "version: 1",
        f"title: {json.dumps(title)}",
        f"output: {{resolution: {resolution}, aspect_ratio: \"16:9\", fps: {fps}}}",
        "defaults:",
        f"  seed: {seed}",
        f"  segment: {{frames: {frames}, overlap: {overlap}}}",
        f"  colour: {{method: {method}}}",
        "scenes:",
    ]
    for s in scenes:
        lines.append(f"  - id: {s['id']}")
        lines.append(f"    duration: {s['duration']}")
        lines.append(f"    prompt: {json.dumps(s['prompt'])}")
        t = s.get("transition")
        if t is not None:
            lines.append(f"    transition: {t if isinstance(t, str) else json.dumps(t)}")
    return "\n".join(lines) + "\n"


def load_board(text: str):
    import composer

    return composer.loads(text, name="benchmark.yaml", base_dir=BENCH_DIR)


def render_segments(board, cache_dir: Path, *, drift: float = 1.0, jobs: int = 2, text: bool = True,
                    log=None) -> tuple[Any, dict[int, Path], float, int]:
    """Render (or find in the cache) every segment of ``board`` with the preview backend
    (``text=False``: without its caption strip).

    Returns (plan, {segment index: video path}, seconds, segments generated now).
    Only the segments: no assembly.
    """
    import tempfile

    import composer
    from composer.backends import get_backend
    from composer.rendering.cache import SegmentCache
    from composer.rendering.scheduler import Scheduler

    plan = composer.plan(board)
    cache = SegmentCache(cache_dir)
    backend = get_backend("preview", drift=drift, text=text)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=cache.root / "tmp") as work:
        sched = Scheduler(plan, board, backend, cache, workdir=Path(work), jobs=jobs)
        todo = sum(1 for hit in sched.cached().values() if not hit)
        if todo and log:
            log(f"rendering {todo} of {len(plan.segments)} segments into {cache_dir} ...")
        outcomes = sched.run()
    backend.close()
    failed = [o for o in outcomes.values() if not o.ok]
    if failed:
        raise RuntimeError(f"segment rendering failed: {failed[0].error}")
    return plan, {i: o.video for i, o in outcomes.items()}, time.perf_counter() - t0, todo


# --------------------------------------------------------------------------- results


def results_dir(out: Path | str | None = None) -> Path:
    """The folder holding the raw JSON and plots next to the results file ``out``."""
    return (Path(out) if out is not None else RESULTS).parent / "results"


def write_section(name: str, body: str, data: Any, out: Path | str | None = None) -> Path:
    """Write ``data`` to ``results/<name>.json`` beside the results file ``out`` (RESULTS.md by default)
    and replace (or add) section ``name`` there: ``body`` (tables rendered from the data) plus the
    command that produced it and a link to the JSON. Text outside the section markers (findings
    written by people) is left alone."""
    from composer.atomic import atomic_write_text

    path = Path(out) if out is not None else RESULTS
    rdir = results_dir(path)
    rdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(rdir / f"{name}.json", json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    command = data.get("command") if isinstance(data, dict) else None
    source = f"Produced by `{command}`; raw data: " if command else "Raw data: "
    block = (f"<!-- section:{name} -->\n{body.rstrip()}\n\n{source}[results/{name}.json](results/{name}.json).\n"
             f"<!-- /section:{name} -->")
    with open(path, "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # scripts run side by side rewrite one file
        f.seek(0)
        text = f.read() or HEADER
        pattern = re.compile(rf"<!-- section:{re.escape(name)} -->.*?<!-- /section:{re.escape(name)} -->", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _m: block, text)
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
        f.seek(0)
        f.truncate()
        f.write(text if text.endswith("\n") else text + "\n")
        fcntl.flock(f, fcntl.LOCK_UN)
    return path


def read_section(name: str, path: Path | str) -> tuple[str, Any]:
    """(markdown body, data) of section ``name`` in a results file, the data read from its
    ``results/<name>.json``; raises if either is absent or malformed."""
    text = Path(path).read_text(encoding="utf-8")
    m = re.search(rf"<!-- section:{re.escape(name)} -->\n(.*?)<!-- /section:{re.escape(name)} -->", text, re.S)
    if not m:
        raise ValueError(f"no section {name!r} in {path}")
    body = m.group(1)
    if f"(results/{name}.json)" not in body:
        raise ValueError(f"section {name!r} does not link results/{name}.json")
    data_path = results_dir(path) / f"{name}.json"
    try:
        return body, json.loads(data_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"section {name!r}: cannot read {data_path}: {exc}") from exc


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


# --------------------------------------------------------------------------- plots


def line_plot(path: Path, series: dict[str, Sequence[float]], *, title: str, xlabel: str, ylabel: str,
              hline: float | None = None, x0: int = 1) -> Path:
    """A line chart PNG: matplotlib when installed, else drawn with OpenCV."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return _cv_line_plot(path, series, title=title, xlabel=xlabel, ylabel=ylabel, hline=hline, x0=x0)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, ys in series.items():
        ax.plot(range(x0, x0 + len(ys)), ys, marker="o", ms=3, label=name)
    if hline is not None:
        ax.axhline(hline, ls="--", color="grey", label=f"target {hline:g}")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127)]


def _cv_line_plot(path: Path, series: dict[str, Sequence[float]], *, title: str, xlabel: str, ylabel: str,
                  hline: float | None, x0: int) -> Path:
    import cv2
    import numpy as np

    w, h = 900, 520
    left, right, top, bottom = 80, 200, 50, 60
    img = np.full((h, w, 3), 255, np.uint8)
    n = max(len(v) for v in series.values())
    ymax = max([max(v) for v in series.values() if len(v)] + [hline or 0.0, 1e-6]) * 1.1
    font = cv2.FONT_HERSHEY_SIMPLEX

    def px(i: float, y: float) -> tuple[int, int]:
        xx = left + (i / max(1, n - 1)) * (w - left - right)
        yy = h - bottom - (y / ymax) * (h - top - bottom)
        return int(round(xx)), int(round(yy))

    # axes, grid and ticks
    step = 10 ** np.floor(np.log10(ymax / 4)) if ymax > 0 else 1
    for mult in (1, 2, 5, 10):
        if ymax / (step * mult) <= 8:
            step *= mult
            break
    y = 0.0
    while y <= ymax:
        a, b = px(0, y), px(n - 1, y)
        cv2.line(img, (left, a[1]), (b[0], b[1]), (230, 230, 230), 1)
        cv2.putText(img, f"{y:g}", (8, a[1] + 4), font, 0.45, (60, 60, 60), 1, cv2.LINE_AA)
        y += step
    for i in range(n):
        if n <= 25 or i % max(1, n // 20) == 0:
            xx, _ = px(i, 0)
            cv2.putText(img, str(x0 + i), (xx - 6, h - bottom + 18), font, 0.4, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.line(img, (left, h - bottom), (w - right, h - bottom), (0, 0, 0), 1)
    cv2.line(img, (left, top), (left, h - bottom), (0, 0, 0), 1)
    if hline is not None:
        a, b = px(0, hline), px(n - 1, hline)
        for xs in range(a[0], b[0], 12):
            cv2.line(img, (xs, a[1]), (min(xs + 6, b[0]), a[1]), (120, 120, 120), 1)
        cv2.putText(img, f"target {hline:g}", (b[0] + 6, a[1] + 4), font, 0.45, (120, 120, 120), 1, cv2.LINE_AA)
    for k, (name, ys) in enumerate(series.items()):
        col = _COLOURS[k % len(_COLOURS)][::-1]  # BGR for imwrite
        pts = [px(i, v) for i, v in enumerate(ys)]
        for p, q in itertools.pairwise(pts):
            cv2.line(img, p, q, col, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, col, -1, cv2.LINE_AA)
        ly = top + 20 + 22 * k
        cv2.line(img, (w - right + 15, ly - 4), (w - right + 40, ly - 4), col, 2, cv2.LINE_AA)
        cv2.putText(img, name[:22], (w - right + 46, ly), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, title, (8, 20), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, xlabel, (left + (w - left - right) // 2 - 40, h - 15), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, ylabel, (8, top - 8), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), img)
    return path


@contextlib.contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - t0


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if not n:
        return float("nan")
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


class ServerProcess:
    """A server in its own process (its work is not composer's), with this process's environment
    pointed at it while the ``with`` block runs; subclasses start ``proc`` and call ``point_at``."""

    proc: subprocess.Popen
    env: dict[str, str]
    saved: dict[str, str | None]

    def point_at(self, env: dict[str, str]) -> None:
        self.env = env
        self.saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)

    def __exit__(self, *exc: Any) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self.proc.terminate()
        self.proc.wait(10)
