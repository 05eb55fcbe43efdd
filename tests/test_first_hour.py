"""Issue 13, "a user's first hour": each item reproduced, then shown fixed."""
from __future__ import annotations

import subprocess
import sys

import pytest

from composer.errors import TimecodeError
from composer.timecode import parse_frame_range


def run(*args: str, **kw):
    return subprocess.run([sys.executable, "-m", "composer", *args], capture_output=True, text=True, **kw)


@pytest.mark.parametrize("text, fps, frames", [
    ("00:10-00:25", 24, (240, 600)),
    ("240f-600f", 24, (240, 600)),
    ("1s-2.5s", 10, (10, 25)),
    ("00:00:01.000-00:00:03", 24, (24, 72)),
    (("1s", "3s"), 24, (24, 72)),
    ((240, 600), 24, (240, 600)),
])
def test_range_forms(text, fps, frames):
    assert parse_frame_range(text, fps) == frames


@pytest.mark.parametrize("bad", ["00:01", "3s-1s", "1s-1s", "a-b", "1s-2s-3s", (1,), None])
def test_bad_ranges_are_timecode_errors(bad):
    with pytest.raises(TimecodeError):
        parse_frame_range(bad, 24)


def test_prune_rejects_negative_ages(tmp_path):
    cache = tmp_path / "cache"
    r = run("cache", "prune", "--older-than", "-1", "--cache-dir", str(cache))
    assert r.returncode == 2 and "-1" in r.stderr and "Traceback" not in r.stderr
    r = run("cache", "prune", "--max-size", "-5", "--cache-dir", str(cache))
    assert r.returncode == 2


def test_reroll_question_defaults_to_no(write_board, tmp_path):
    board = write_board("version: 1\noutput: {resolution: 480p, fps: 8}\ndefaults: {segment: {frames: 17, overlap: 9}}\n"
                        "scenes:\n  - {id: a, duration: 3s, prompt: x}\n")
    before = board.read_text()
    r = run("reroll", str(board), "0", input="\n")
    assert "[y/N]" in r.stdout
    assert r.returncode != 0 and board.read_text() == before
