"""Full disks: an encode or a final render that runs out of space fails with one line naming
the user's file, leaves an existing file intact and nothing half-written under its name.
Real ENOSPC from a small tmpfs (root only; skipped with the reason otherwise) and /dev/full."""
from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from composer.errors import MediaError
from composer.media import VideoWriter, atomic_output, probe
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


# --------------------------------------------------------------------------- filling up mid-render


@pytest.fixture
def roomy_fs(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs that a test fills up at the moment it chooses (``fill``)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def fill(mnt: Path) -> Path:
    """Write zeros until the filesystem answers ENOSPC; the filler stays (remove it to free the space)."""
    filler = mnt / "filler"
    with open(filler, "ab", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def corrupt_entries(cache: Path) -> list[str]:
    """Published entries whose video is not the one its meta.json recorded (size and sha256)."""
    from composer.store.base import file_sha256

    bad = []
    for meta_path in cache.glob("segments/*/*/meta.json"):
        meta = json.loads(meta_path.read_text())
        video = meta_path.parent / "video.mp4"
        if not video.is_file() or video.stat().st_size != meta["size"] or file_sha256(video) != meta["sha256"]:
            bad.append(meta_path.parent.name)
    return bad


def test_a_fal_download_into_a_full_cache_names_the_cache_and_the_resume_pays_nothing_more(
        roomy_fs: Path, tmp_path: Path, fal_env, write_board) -> None:
    from composer import render
    from composer.errors import RenderFailed
    from composer.events import SegmentLog
    from composer.testing.fixtures import FAST_BACKEND_OPTIONS

    board = write_board(BOARD.replace("duration: 6s", "duration: 3s"))  # one chain of two requests
    cache, film = roomy_fs / "cache", tmp_path / "film.mp4"
    film.write_bytes(b"the previous film")
    filled: list[Path] = []

    def on_event(event: object) -> None:
        # the id is journalled: fal has made the video, and our disk fills before it comes down
        if isinstance(event, SegmentLog) and event.kind == "submitted" and not filled:
            filled.append(fill(roomy_fs))

    with pytest.raises(RenderFailed) as info:
        render(board, film, backend="fal", backend_options=FAST_BACKEND_OPTIONS, cache=cache, jobs=1,
               on_event=on_event, otio=False, review=False)
    message = str(info.value)
    assert "\n" not in message and "no space left on device" in message, message
    assert f"writing {cache} (" in message and ".partial" not in message and f"{cache}/tmp" not in message, message
    assert "is journalled" in message
    assert fal_env.submit_count() == 1
    assert corrupt_entries(cache) == [] and not list(cache.glob("segments/*/*/meta.json"))
    assert film.read_bytes() == b"the previous film"
    (journal,) = (cache / "journal").glob("*.json")
    assert json.loads(journal.read_text())["request_id"]  # kept: the resume fetches it, never buys it again

    filled[0].unlink()
    result = render(board, film, backend="fal", backend_options=FAST_BACKEND_OPTIONS, cache=cache, jobs=1,
                    otio=False, review=False)
    assert fal_env.submit_count() == result.plan.requests == 2
    assert corrupt_entries(cache) == [] and probe(film).num_frames == result.plan.total_frames


def test_a_tail_clip_on_a_full_cache_names_the_cache_and_keeps_what_was_made(
        roomy_fs: Path, tmp_path: Path, write_board) -> None:
    from composer import render
    from composer.errors import RenderFailed
    from composer.events import SegmentDone

    board = write_board(BOARD.replace("duration: 6s", "duration: 3s"))  # segment 1 continues from segment 0's tail
    cache, film = roomy_fs / "cache", tmp_path / "film.mp4"
    film.write_bytes(b"the previous film")
    filled: list[Path] = []

    def on_event(event: object) -> None:
        if isinstance(event, SegmentDone) and event.index == 0 and not filled:
            filled.append(fill(roomy_fs))  # segment 0 is in the cache; its tail is cut next

    with pytest.raises(RenderFailed) as info:
        render(board, film, cache=cache, jobs=1, on_event=on_event, otio=False, review=False)
    message = str(info.value)
    assert "\n" not in message and f"no space left on device writing {cache} (the last 9 frames of segment 0" in message
    assert ".partial" not in message and f"{cache}/tmp" not in message, message
    assert film.read_bytes() == b"the previous film"
    assert corrupt_entries(cache) == [] and len(list(cache.glob("segments/*/*/meta.json"))) == 1
    assert list((cache / "tmp").iterdir()) == []  # the run's scratch folder went with the run

    filled[0].unlink()
    result = render(board, film, cache=cache, jobs=1, otio=False, review=False)
    assert (result.cached, result.generated) == (1, 1)
    assert corrupt_entries(cache) == [] and probe(film).num_frames == result.plan.total_frames


def test_the_final_encode_on_a_full_disk_keeps_the_old_film_and_every_segment(
        roomy_fs: Path, write_board) -> None:
    from composer import load, plan, render
    from composer.events import SegmentDone

    board = write_board(BOARD)
    cache, film = roomy_fs / "cache", roomy_fs / "film.mp4"
    film.write_bytes(b"the previous film")
    filled: list[Path] = []
    planned = len(plan(load(board)).segments)

    def on_event(event: object) -> None:
        if isinstance(event, SegmentDone) and event.index == planned - 1 and not filled:
            filled.append(fill(roomy_fs))  # every segment is in the cache; the film is encoded next

    with pytest.raises(NoSpaceError) as info:
        render(board, film, cache=cache, jobs=1, on_event=on_event, otio=False, review=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"no space left on device writing {film} ("), message
    assert film.read_bytes() == b"the previous film"
    assert sorted(p.name for p in roomy_fs.iterdir()) == ["cache", "filler", "film.mp4"]  # no partial film
    assert corrupt_entries(cache) == [] and len(list(cache.glob("segments/*/*/meta.json"))) == planned

    filled[0].unlink()
    result = render(board, film, cache=cache, jobs=1, otio=False, review=False)
    assert (result.cached, result.generated) == (planned, 0)
    assert probe(film).num_frames == result.plan.total_frames


def test_a_full_cache_disk_while_the_films_pieces_are_encoded_names_the_cache_and_keeps_the_film(
        roomy_fs: Path, tmp_path: Path, write_board) -> None:
    from composer import load, plan, render
    from composer.events import SegmentDone

    board = write_board(BOARD)
    cache, film = roomy_fs / "cache", tmp_path / "film.mp4"  # the film's own disk has room
    film.write_bytes(b"the previous film")
    filled: list[Path] = []
    planned = len(plan(load(board)).segments)

    def on_event(event: object) -> None:
        if isinstance(event, SegmentDone) and event.index == planned - 1 and not filled:
            filled.append(fill(roomy_fs))

    with pytest.raises(MediaError) as info:
        render(board, film, cache=cache, jobs=1, on_event=on_event, otio=False, review=False)
    message = str(info.value)
    assert "\n" not in message and f"no space left on device in the cache folder {cache / 'pieces'}" in message
    assert message.startswith(f"{film}: not written: ") and "--cache-dir" in message
    assert film.read_bytes() == b"the previous film"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".film")) == []  # no partial film
    assert corrupt_entries(cache) == [] and len(list(cache.glob("segments/*/*/meta.json"))) == planned

    filled[0].unlink()
    result = render(board, film, cache=cache, jobs=1, otio=False, review=False)
    assert (result.cached, result.generated) == (planned, 0)
    assert probe(film).num_frames == result.plan.total_frames


# --------------------------------------------------------------------------- the cache on another filesystem


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than ``tmp_path``: a tmpfs mounted for the test, else /dev/shm."""
    mnt = tmp_path / "elsewhere"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode == 0:
        try:
            yield mnt
        finally:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)
        return
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev != tmp_path.stat().st_dev):
        pytest.skip(f"no second filesystem here (mount: {proc.stderr.strip()}; /dev/shm unusable)")
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="composer-test-", dir=shm))
    try:
        yield d
    finally:
        import shutil

        shutil.rmtree(d, ignore_errors=True)


def test_a_cache_on_another_filesystem_renders_and_the_film_is_renamed_within_its_own_folder(
        other_fs: Path, tmp_path: Path, write_board) -> None:
    from composer import render
    from composer.events import AssemblyProgress

    board = write_board(BOARD.replace("duration: 6s", "duration: 3s"))
    cache, film = other_fs / "cache", tmp_path / "out" / "film.mp4"
    film.parent.mkdir()
    film.write_bytes(b"the previous film")
    assert other_fs.stat().st_dev != film.parent.stat().st_dev
    beside: set[str] = set()

    def on_event(event: object) -> None:
        if isinstance(event, AssemblyProgress) and film.read_bytes() == b"the previous film":
            # while the film is encoded: its temporary is beside it (one rename, never across filesystems)
            beside.update(p.name for p in film.parent.iterdir() if p.name.startswith(".film.mp4.partial-"))

    result = render(board, film, cache=cache, jobs=1, on_event=on_event, otio=False, review=False)
    assert result.generated == len(result.plan.segments) == 2
    assert beside, "no temporary film was seen beside the film while it was encoded"
    assert probe(film).num_frames == result.plan.total_frames
    assert sorted(p.name for p in film.parent.iterdir()) == ["film.manifest.json", "film.mp4"]
    assert corrupt_entries(cache) == [] and len(list(cache.glob("segments/*/*/meta.json"))) == 2
    assert list((cache / "tmp").iterdir()) == []
