"""Full disks: an encode or a final render that runs out of space fails with one line naming
the user's file, leaves an existing file intact and nothing half-written under its name.
Real ENOSPC from a small tmpfs (root only; skipped with the reason otherwise) and /dev/full."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from composer.errors import MediaError
from composer.media import VideoWriter, atomic_output
from composer.media.writer import NoSpaceError

BOARD = """\
version: 1
output: {resolution: 480p, aspect_ratio: 16:9, fps: 12}
defaults:
  seed: 11
  segment: {frames: 25, overlap: 9}
scenes:
  - {id: a, duration: 6s, prompt: "first"}
"""


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 192 KiB tmpfs: ffmpeg really gets ENOSPC there."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small tmpfs: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def noise(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8)  # incompressible


def test_encode_onto_a_full_filesystem_names_the_file_and_keeps_the_old_one(small_fs: Path) -> None:
    film = small_fs / "film.mp4"
    film.write_bytes(b"the previous film")
    with (pytest.raises(NoSpaceError) as info, atomic_output(film) as tmp,
          VideoWriter(tmp, 320, 240, 12, crf=0, preset="ultrafast") as writer):
        for i in range(60):
            writer.write(noise(i))
    message = str(info.value)
    assert message.startswith(f"no space left on device writing {film} (")
    assert "\n" not in message and "No space left on device" in message
    assert film.read_bytes() == b"the previous film"
    assert sorted(p.name for p in small_fs.iterdir()) == ["film.mp4"]  # no partial or temporary left


def test_a_write_error_of_enospc_inside_atomic_output_names_the_users_file(tmp_path: Path) -> None:
    if not (os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)):
        pytest.skip("no /dev/full character device here")
    film = tmp_path / "film.mp4"
    film.write_bytes(b"old")
    with pytest.raises(NoSpaceError) as info, atomic_output(film), open("/dev/full", "wb") as full:
        full.write(b"x" * 65536)  # /dev/full answers every write with ENOSPC
        full.flush()
    assert str(info.value).startswith(f"no space left on device writing {film} (")
    assert isinstance(info.value, MediaError)
    assert film.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


def test_cli_render_onto_a_full_filesystem_is_one_line_not_a_traceback(small_fs: Path, tmp_path: Path) -> None:
    board = tmp_path / "board.yaml"
    board.write_text(BOARD)
    film = small_fs / "film.mp4"
    film.write_bytes(b"the previous film")
    proc = subprocess.run([sys.executable, "-m", "composer", "render", str(board), "-o", str(film),
                           "--cache-dir", str(tmp_path / "cache"), "--quiet"],
                          capture_output=True, text=True, timeout=300, env={**os.environ})
    assert proc.returncode == MediaError.exit_code == 1, proc.stderr  # the machine, not the storyboard
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"no space left on device writing {film}" in lines[0]
    assert film.read_bytes() == b"the previous film"
    assert [p.name for p in small_fs.iterdir() if p.name != "film.mp4"] == []


def read_only(path: Path) -> None:
    """Make ``path`` read-only even for root (a read-only bind mount); skip where that is refused."""
    for cmd in (["mount", "--bind", str(path), str(path)], ["mount", "-o", "remount,bind,ro", str(path)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            subprocess.run(["umount", str(path)], capture_output=True, timeout=30)
            pytest.skip(f"cannot make a read-only bind mount (needs root): {proc.stderr.strip()}")


def render_cli(board: Path, film: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "composer", "render", str(board), "-o", str(film),
                           "--cache-dir", str(cache), "--quiet"], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("filled", [False, True])
def test_cli_with_a_read_only_cache_is_one_line(tmp_path: Path, filled: bool) -> None:
    board = tmp_path / "board.yaml"
    board.write_text(BOARD.replace("duration: 6s", "duration: 2s"))
    cache = tmp_path / "cache"
    cache.mkdir()
    if filled:
        assert render_cli(board, tmp_path / "first.mp4", cache).returncode == 0
    read_only(cache)
    try:
        proc = render_cli(board, tmp_path / "film.mp4", cache)
    finally:
        subprocess.run(["umount", str(cache)], capture_output=True, timeout=30)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and str(cache) in lines[0] and "read-only" in lines[0].lower(), proc.stderr
    assert not (tmp_path / "film.mp4").exists()
