"""Progress display (TTY and log modes) and the cache commands."""
from __future__ import annotations

import io
import subprocess
import sys

from composer.events import AssemblyProgress, RenderStarted, SegmentDone, SegmentFailed, SegmentStarted
from composer.rendering.progress import Progress

EVENTS = [
    RenderStarted(segments=3, cached=1, to_generate=2, estimated_cost_usd=0.08),
    SegmentDone(0, "segment 0 (scene 'a')", cached=True, seconds=0.0),
    SegmentStarted(1, "segment 1 (scene 'a')"),
    SegmentDone(1, "segment 1 (scene 'a')", cached=False, seconds=2.0),
    SegmentFailed(2, "segment 2 (scene 'b')", "segment 2 (scene 'b'): boom\ntraceback line"),
    *[AssemblyProgress(n, 100) for n in range(10, 101, 10)],
]


def feed(tty: bool, quiet: bool = False) -> str:
    out = io.StringIO()
    p = Progress(out, tty=tty, quiet=quiet)
    for e in EVENTS:
        p(e)
    p.close()
    return out.getvalue()


def test_log_mode_prints_one_line_per_event():
    text = feed(tty=False)
    lines = text.splitlines()
    assert lines[0] == "3 segments: 1 cached, 2 to generate (estimated $0.08)"
    assert "segment 0 (scene 'a'): cached" in lines
    assert "segment 1 (scene 'a'): done in 2.0s" in lines
    assert "segment 2 (scene 'b'): FAILED: boom" in lines
    assert "traceback line" not in text
    assert "assembling: 100/100 frames" in lines
    assert "\r" not in text


def screen_after(text: str, columns: int, rows: int = 24) -> list[str]:
    """What a terminal of that size shows after ``text`` (a real VT100 emulator, pyte)."""
    import pyte

    screen = pyte.Screen(columns, rows)
    stream = pyte.Stream(screen)
    stream.feed(text.replace("\n", "\r\n"))
    return [line.rstrip() for line in screen.display]


def test_tty_mode_redraws_bars_in_place_with_counts():
    out = io.StringIO()
    p = Progress(out, tty=True, width=80)
    for e in EVENTS:
        p(e)
    p.close()
    shown = [line for line in screen_after(out.getvalue(), 80) if line]
    assert shown[0] == "3 segments: 1 cached, 2 to generate (estimated $0.08)"
    assert any(line.startswith("segment 2 (scene 'b'): FAILED: boom") for line in shown)
    seg = [line for line in shown if line.startswith("segments")]
    asm = [line for line in shown if line.startswith("assembling")]
    # one bar each, redrawn in place: not a line per update
    assert len(seg) == 1 and len(asm) == 1, shown
    assert "3/3" in seg[0] and "cached 1, failed 1" in seg[0]
    assert "100/100" in asm[0]
    assert "traceback line" not in out.getvalue()


def test_tty_mode_fits_a_narrow_terminal():
    """In a 50-column terminal the display must not wrap into repeated lines."""
    out = io.StringIO()
    p = Progress(out, tty=True, width=50)
    for e in EVENTS * 3:
        p(e)
    p.close()
    shown = [line for line in screen_after(out.getvalue(), 50) if line]
    assert all(len(line) <= 50 for line in shown)
    # three start lines + three failures printed once each, plus at most two bar lines per bar
    assert len(shown) <= 6 + 4, shown
    assert sum(line.startswith("segments") for line in shown) <= 2


def test_quiet_prints_nothing():
    assert feed(tty=False, quiet=True) == ""


def test_cache_info_and_prune(write_board, tmp_path):
    board = write_board("version: 1\noutput: {resolution: 480p, fps: 8}\ndefaults: {segment: {frames: 17, overlap: 9}}\n"
                        "scenes:\n  - {id: a, duration: 3s, prompt: x}\n")
    cache = tmp_path / "cache"
    run = lambda *a: subprocess.run([sys.executable, "-m", "composer", *a], capture_output=True, text=True)
    r = run("render", str(board), "-o", str(tmp_path / "f.mp4"), "--cache-dir", str(cache), "-q")
    assert r.returncode == 0, r.stderr
    import composer

    n = composer.plan(composer.load(board)).requests
    info = run("cache", "info", "--cache-dir", str(cache))
    assert info.returncode == 0
    assert f"segments: {n} (" in info.stdout and str(cache) in info.stdout
    pieces = len(list((cache / "pieces").glob("??/*.json")))  # the film, kept in encoded pieces
    assert pieces >= 1 and f"film pieces (encoded, re-used by the next render): {pieces} (" in info.stdout
    plan = run("plan", str(board), "--cache-dir", str(cache))
    assert f"cached: {n}/{n}; a render would still make 0 requests" in plan.stdout
    refused = run("cache", "prune", "--cache-dir", str(cache))
    assert refused.returncode == 2 and "say what to prune" in refused.stderr
    pruned = run("cache", "prune", "--all", "--cache-dir", str(cache))
    assert pruned.stdout.strip() == f"removed {n} segment(s) and {pieces} film piece(s)"
    after = run("cache", "info", "--cache-dir", str(cache)).stdout
    assert "segments: 0 (" in after and "render): 0 (" in after and not list((cache / "pieces").glob("??/*"))
