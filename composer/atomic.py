"""Atomic file writes: every output appears whole under its final name or not at all.

One place for the whole package (manifests, cache entries, journals, films, OTIO,
edited storyboards) to decide fsync and clean-up on failure; ``atomic_dir``
publishes a whole directory (a cache entry) the same way.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def temp_path_for(path: Path) -> Path:
    """A hidden temporary name beside ``path`` that keeps its extension (muxers read it)."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")


def _fsync_dir(directory: Path) -> None:
    # The rename itself is only durable once the directory entry is on disk.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and Windows) refuse fsync on a directory; the rename still happened
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, fsync: bool = True, make_parents: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place when the block succeeds.

    On any exception (Ctrl-C included) the temporary file is removed and an existing
    ``path`` is left untouched. A block that wrote nothing raises ``FileNotFoundError``.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        if fsync and tmp.is_file():
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def _fsync_tree(directory: Path) -> None:
    for item in directory.rglob("*"):
        if item.is_file():
            with open(item, "rb+") as f:
                os.fsync(f.fileno())
    _fsync_dir(directory)


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, staging: str | Path | None = None, prefix: str | None = None,
               fsync: bool = True) -> Iterator[Path]:
    """Yield a fresh empty directory; when the block succeeds it becomes ``path`` in one rename.

    The directory is made in ``staging`` (default: beside ``path``), which must be on
    the same filesystem. An existing ``path`` is moved aside into ``staging`` and
    deleted just before the rename, because a directory cannot be renamed onto a
    non-empty one. On any exception the staged directory is removed and an
    existing ``path`` is left untouched.
    """
    path = Path(path)
    where = Path(staging) if staging is not None else path.parent
    where.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix or f".{path.name}.partial-", dir=where))
    try:
        yield tmp
        if fsync:
            _fsync_tree(tmp)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            remove_dir(path, staging=where)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if fsync:
        _fsync_dir(path.parent)


def remove_dir(path: str | Path, *, staging: str | Path | None = None) -> None:
    """Delete the directory ``path`` so that it vanishes at once: rename it into
    ``staging`` (default: beside it) first, so no reader ever sees it half deleted."""
    path = Path(path)
    trash = Path(tempfile.mkdtemp(prefix="trash-", dir=staging if staging is not None else path.parent))
    with contextlib.suppress(OSError):
        os.replace(path, trash / "x")
    shutil.rmtree(trash, ignore_errors=True)
