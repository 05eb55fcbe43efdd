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


BOARD = ("version: 1\noutput: {resolution: 480p, fps: 8}\ndefaults: {segment: {frames: 17, overlap: 9}}\n"
         "scenes:\n  - {id: a, duration: 3s, prompt: x}\n  - {id: b, duration: 2s, prompt: y}\n")


@pytest.mark.parametrize("name, codec, words", [
    ("film", "h264", "has no extension"),
    ("x.mp4", "prores", "prores is written as .mov or .mkv"),
    ("x.avi", "h264", "is a .avi file"),
])
def test_output_name_is_checked_before_anything_renders(write_board, tmp_path, name, codec, words):
    board = write_board(BOARD)
    cache = tmp_path / "cache"
    r = run("render", str(board), "-o", str(tmp_path / name), "--codec", codec, "--cache-dir", str(cache), "-q")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and ".partial" not in lines[0]
    assert not list(cache.glob("segments/*/*/meta.json"))  # nothing was generated first


def test_read_only_output_folder_is_one_line_naming_the_users_path(write_board, tmp_path):
    board = write_board(BOARD)
    ro = tmp_path / "ro"
    ro.mkdir()
    mount = subprocess.run(["mount", "--bind", "-o", "ro", str(ro), str(ro)], capture_output=True)
    if mount.returncode != 0:
        ro.chmod(0o555)  # not root / no mount: permissions (root ignores them, so skip then)
        import os
        if os.geteuid() == 0:
            pytest.skip(f"cannot make a read-only folder here: {mount.stderr.decode().strip()}")
    try:
        out = ro / "sub" / "film.mp4"
        r = run("render", str(board), "-o", str(out), "--cache-dir", str(tmp_path / "cache"), "-q")
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and f"cannot write '{out}'" in lines[0] and "Traceback" not in r.stderr
        assert ".partial" not in lines[0]
        assert not list((tmp_path / "cache").glob("segments/*/*/meta.json"))
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_library_accepts_the_cli_range_forms(write_board, tmp_path):
    import composer

    board = write_board(BOARD)
    result = composer.render(board, tmp_path / "part.mp4", cache=tmp_path / "cache", frame_range="1s-3s", review=False)
    assert result.assembly["frames"] == 16
    with pytest.raises(composer.ComposerError):
        composer.render(board, tmp_path / "bad.mp4", cache=tmp_path / "cache", frame_range="00:01-00:03-00:04")


def test_part_summary_describes_what_was_written(write_board, tmp_path):
    board = write_board(BOARD)
    r = run("render", str(board), "-o", str(tmp_path / "p.mp4"), "--scene", "b", "--cache-dir", str(tmp_path / "c"),
            "--no-review")
    assert r.returncode == 0, r.stderr
    assert "(16 frames of the film's 40, 00:00:02.000)" in r.stdout


def test_range_past_the_end_says_so(write_board, tmp_path):
    board = write_board(BOARD)
    r = run("render", str(board), "-o", str(tmp_path / "p.mp4"), "--range", "4s-9s", "--cache-dir", str(tmp_path / "c"),
            "--no-review")
    assert r.returncode == 0, r.stderr
    assert "--range ends after the film (00:00:05.000)" in r.stderr
    assert "(8 frames of the film's 40" in r.stdout


def test_budget_too_small_is_refused_up_front_without_the_emulator_being_asked(write_board, tmp_path):
    from composer.rendering.preflight import check_budget
    from composer.errors import BudgetExceeded

    with pytest.raises(BudgetExceeded, match=r"costs \$0.20 \(5 request\(s\)\), over --max-cost \$0.10"):
        check_budget(0.20, 5, 0.10, allow_partial=False)
    check_budget(0.20, 5, 0.10, allow_partial=True)
    check_budget(0.08, 2, 0.10, allow_partial=False)


def test_plan_shows_what_a_partial_or_draft_render_would_cost(write_board, tmp_path):
    board = write_board("version: 1\noutput: {resolution: 720p, fps: 8}\ndefaults: {segment: {frames: 17, overlap: 9}}\n"
                        "scenes:\n  - {id: a, duration: 4s, prompt: x}\n  - {id: b, duration: 3s, prompt: y}\n")
    import json

    def planned(*extra):
        r = run("plan", str(board), "--json", "--cache-dir", str(tmp_path / "c"), *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    whole, only_b, ranged, draft = planned(), planned("--scene", "b"), planned("--range", "0s-1s"), planned("--draft")
    scenes = lambda p: {s["scene"] for s in p["segments"]}
    assert scenes(whole) == {"a", "b"} and scenes(only_b) == {"b"}
    assert len(only_b["segments"]) < len(whole["segments"]) and scenes(ranged) == {"a"}
    assert {s["request"]["resolution"] for s in draft["segments"]} == {"480p"}
    table = run("plan", str(board), "--scene", "b", "--cache-dir", str(tmp_path / "c"))
    assert table.returncode == 0 and "$" in table.stdout
    bad = run("plan", str(board), "--range", "3s-1s")
    assert bad.returncode == 2 and "end must come after the start" in bad.stderr
