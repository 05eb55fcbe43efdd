"""The film's encoded pieces, kept beside the segment cache so a re-render encodes only what changed.

A film is cut where each segment's frames begin. A piece's key names everything its frames
depend on (each covering chain's clips up to it, the colour settings, the encoder, this code),
so an unchanged piece is joined to the others by stream copy instead of made and encoded again.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text
from .planner import RenderPlan
from .store.base import file_sha256

PIECE_VERSION = "2"  # how a piece is cut and keyed; another way must not reuse a key
# the code that decides a piece's pixels: any change to it makes every key new
_SHAPING = ("assemble.py", "yuv.py", "metrics.py", "pieces.py", "colour", "media")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A digest of the source that turns clips into film frames and frames into a file."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _SHAPING:
        path = root / name
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:24]


def piece_bounds(plan: RenderPlan) -> list[tuple[int, int]]:
    """The film's pieces as ``(start, end)`` film frames, in order: cut at each shown segment's
    frame 0 (the start of its overlap, so no frame before the cut depends on it: a piece can be
    made as soon as the segments before it have landed) and where a chain starts or ends."""
    cuts = {0, plan.total_frames}
    for seg in plan.segments:
        if seg.shown:
            cuts.add(seg.output_start_frame)
    for chain in plan.chains:
        cuts.update((chain.start_frame, chain.end_frame))
    points = sorted(c for c in cuts if 0 <= c <= plan.total_frames)
    return [(a, b) for a, b in itertools.pairwise(points) if b > a]


def piece_contributors(plan: RenderPlan, start: int, end: int) -> list[int]:
    """The segments whose clips decide film frames ``start..end-1``: for each chain showing
    one of them, every shown segment of it that starts before ``end`` (a chain's colour
    follows it from its first segment)."""
    out: list[int] = []
    for chain in plan.chains:
        if chain.start_frame < end and chain.end_frame > start:
            out += [i for i in chain.segments
                    if plan.segments[i].shown and plan.segments[i].output_start_frame < end]
    return out


_GEOMETRY = ("index", "chain", "scene", "role", "output_start_frame", "num_frames", "overlap", "seam_frame",
             "shown_start", "shown_end")


def piece_key(plan: RenderPlan, start: int, end: int, digests: Mapping[int, str], settings: Mapping[str, Any]) -> str:
    """The key of film frames ``start..end-1``: their place, the geometry and clip digest of
    every contributing segment, the covering chains and ``settings`` (encoder, colour, code)."""
    contributors = set(piece_contributors(plan, start, end))
    chains = []
    for chain in plan.chains:
        if chain.start_frame < end and chain.end_frame > start:
            segs = [plan.segments[i] for i in chain.segments if i in contributors]
            chains.append({"chain": [chain.index, chain.start_frame, chain.end_frame, chain.fade_in, chain.fade_out],
                           "segments": [{**{k: getattr(s, k) for k in _GEOMETRY}, "clip": digests[s.index]}
                                        for s in segs]})
    material = {"version": PIECE_VERSION, "frames": [start, end], "size": [plan.width, plan.height],
                "fps": plan.fps, "chains": chains, "settings": dict(settings)}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(Path(path))


def clip_digest(video: Path) -> str:
    """A clip's content digest: the one its cache entry recorded (checked when it was looked
    up) when the size agrees, else the file hashed."""
    st = video.stat()
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        meta = json.loads((video.parent / "meta.json").read_text())
        if int(meta["size"]) == st.st_size and isinstance(meta["sha256"], str):
            return meta["sha256"]
    return _digest(str(video), st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Piece:
    key: str
    video: Path
    meta: dict[str, Any]


class PieceStore:
    """Pieces in a folder (``ab/<key>.mp4`` + ``ab/<key>.json``). A piece whose file does not
    match the size and digest its JSON recorded is removed, never joined."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def _paths(self, key: str, suffix: str) -> tuple[Path, Path]:
        folder = self.root / key[:2]
        return folder / f"{key}{suffix}", folder / f"{key}.json"

    def lookup(self, key: str, suffix: str = ".mp4") -> Piece | None:
        video, meta_path = self._paths(key, suffix)
        try:
            meta = json.loads(meta_path.read_text())
            intact = video.stat().st_size == meta["size"] and file_sha256(video) == meta["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            intact = False
        if not intact:
            if meta_path.exists() or video.exists():
                self.discard(key, suffix)
            return None
        with contextlib.suppress(OSError):
            os.utime(meta_path)  # recently used: pruning by age keeps it
        return Piece(key, video, meta)

    def put(self, key: str, clip: Path, meta: dict[str, Any]) -> Path:
        """Move ``clip`` into the store under ``key``; where it now is. The JSON is written
        last, so a piece is whole or absent. A store that cannot be written keeps nothing
        (the clip stays where it was, and is returned)."""
        video, meta_path = self._paths(key, clip.suffix)
        try:
            record = {**meta, "size": clip.stat().st_size, "sha256": file_sha256(clip), "stored_at": time.time()}
            video.parent.mkdir(parents=True, exist_ok=True)
            os.replace(clip, video)
        except OSError:
            return clip
        try:
            atomic_write_text(meta_path, json.dumps(record), fsync=False)
        except OSError:
            with contextlib.suppress(OSError):
                os.replace(video, clip)
            return clip
        return video

    def discard(self, key: str, suffix: str = ".mp4") -> None:
        for path in self._paths(key, suffix):
            with contextlib.suppress(OSError):
                path.unlink()

    @contextlib.contextmanager
    def staging(self, fallback: Path) -> Iterator[Path]:
        """A scratch folder for pieces being encoded (in the store, or in ``fallback`` when the
        store cannot be written); removed afterwards with whatever was not put."""
        try:
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix="stage-", dir=self.root / "tmp"))
        except OSError:
            folder = Path(tempfile.mkdtemp(prefix=".pieces-", dir=fallback))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _items(self) -> list[tuple[Path, Path]]:
        items = []
        if self.root.is_dir():
            for meta_path in self.root.glob("??/*.json"):
                items += [(meta_path, v) for v in meta_path.parent.glob(meta_path.stem + ".*") if v != meta_path]
        return items

    def info(self) -> tuple[int, int]:
        """How many pieces, and their bytes."""
        items = self._items()
        total = 0
        for _, video in items:
            with contextlib.suppress(OSError):
                total += video.stat().st_size
        return len(items), total

    def prune(self, *, older_than_s: float | None = None) -> int:
        """Remove pieces unused for ``older_than_s`` (all of them when None); how many."""
        removed = 0
        now = time.time()
        for meta_path, video in self._items():
            try:
                old = older_than_s is None or now - meta_path.stat().st_mtime > older_than_s
            except OSError:
                continue
            if old:
                for path in (meta_path, video):
                    with contextlib.suppress(OSError):
                        path.unlink()
                removed += 1
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        return removed
