"""The content-addressed segment cache, its request journal and its cost ledger.

A segment's key is a hash chain (request without URLs, user media hashes, the key
of the segment that conditions it), so an unchanged segment is never paid twice.
Entries are written atomically and verified by hash before use.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Iterator

from platformdirs import user_cache_dir

from ..atomic import atomic_dir, atomic_write_text, remove_dir
from ..errors import CacheError
from ..request import canonical_json

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get("COMPOSER_CACHE_DIR")
    return Path(env).expanduser() if env else Path(user_cache_dir("composer"))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def segment_key(*, backend: str, request_without_urls: dict[str, Any], media_hashes: list[str],
                parent_key: str | None, overlap: dict[str, Any]) -> str:
    """The cache key of one segment: a hash over everything its pixels depend on.

    Never the bytes of a re-encoded tail: those change with ffmpeg versions and
    thread counts; the parent's key stands for them.
    """
    material = {
        "v": CACHE_VERSION,
        "backend": backend,
        "request": request_without_urls,
        "media": media_hashes,
        "parent": parent_key,
        "overlap": overlap,
    }
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    key: str
    video: Path
    meta: dict[str, Any]


class SegmentCache:
    """Segments on disk under ``root``: ``segments/ab/<key>/{video.mp4,meta.json}``."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self._lock = threading.Lock()
        try:
            for sub in ("segments", "journal", "tmp", "media"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create cache at {self.root}: {exc}") from None

    # -- segments -------------------------------------------------------
    def _dir(self, key: str) -> Path:
        return self.root / "segments" / key[:2] / key

    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` if present and intact; a damaged entry is removed."""
        d = self._dir(key)
        meta_path, video = d / "meta.json", d / "video.mp4"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            intact = video.is_file() and video.stat().st_size == meta["size"] and file_sha256(video) == meta["sha256"]
        except (OSError, ValueError, KeyError):
            intact = False
        if not intact:
            self.discard(key)
            return None
        return CacheEntry(key, video, meta)

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def put(self, key: str, video: Path, meta: dict[str, Any]) -> CacheEntry:
        """Store ``video`` under ``key`` atomically (a directory rename)."""
        final = self._dir(key)
        try:
            with atomic_dir(final, staging=self.root / "tmp", prefix=f"{key[:12]}-") as tmp:
                shutil.copyfile(video, tmp / "video.mp4")
                meta = {**meta, "key": key, "size": (tmp / "video.mp4").stat().st_size,
                        "sha256": file_sha256(tmp / "video.mp4"), "stored_at": time.time()}
                (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        except OSError as exc:
            raise CacheError(f"cannot write cache entry {key[:12]}: {exc}") from None
        return CacheEntry(key, final / "video.mp4", meta)

    def discard(self, key: str) -> None:
        d = self._dir(key)
        if d.exists():
            remove_dir(d, staging=self.root / "tmp")

    def entries(self) -> Iterator[CacheEntry]:
        for meta_path in sorted((self.root / "segments").glob("*/*/meta.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            yield CacheEntry(meta_path.parent.name, meta_path.parent / "video.mp4", meta)

    # -- media prepared for requests (fitted images) ----------------------
    def media_path(self, name: str) -> Path:
        return self.root / "media" / name

    # -- journal of submitted paid requests --------------------------------
    def journal_get(self, key: str) -> dict[str, Any] | None:
        path = self.root / "journal" / f"{key}.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def journal_put(self, key: str, record: dict[str, Any]) -> None:
        atomic_write_text(self.root / "journal" / f"{key}.json", json.dumps(record, sort_keys=True))

    def journal_clear(self, key: str) -> None:
        (self.root / "journal" / f"{key}.json").unlink(missing_ok=True)

    def journal(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted((self.root / "journal").glob("*.json")):
            if p.name.startswith("."):
                continue  # another writer's temporary file (it keeps the .json suffix)
            try:
                out.append({"key": p.stem, **json.loads(p.read_text())})
            except (OSError, ValueError):
                continue
        return out

    # -- cost ledger ------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.jsonl"

    def ledger_append(self, record: dict[str, Any]) -> None:
        line = json.dumps({"time": time.time(), **record}, sort_keys=True) + "\n"
        with self._lock, open(self.ledger_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def ledger(self) -> list[dict[str, Any]]:
        if not self.ledger_path.exists():
            return []
        rows = []
        for line in self.ledger_path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash mid-write
        return rows

    # -- housekeeping -----------------------------------------------------
    def info(self) -> dict[str, Any]:
        entries = list(self.entries())
        ledger = self.ledger()
        return {
            "root": str(self.root),
            "segments": len(entries),
            "bytes": sum(e.meta.get("size", 0) for e in entries),
            "in_flight_requests": len(self.journal()),
            "paid_requests": len(ledger),
            "paid_usd": round(sum(r.get("cost_usd", 0.0) for r in ledger), 6),
        }

    def prune(self, *, older_than_s: float | None = None, max_bytes: int | None = None,
              keep: set[str] | frozenset[str] = frozenset()) -> int:
        """Remove entries (oldest first) not in ``keep``; returns how many."""
        entries = sorted(self.entries(), key=lambda e: e.meta.get("stored_at", 0))
        now = time.time()
        removed = 0
        total = sum(e.meta.get("size", 0) for e in entries)
        for e in entries:
            if e.key in keep:
                continue
            old = older_than_s is not None and now - e.meta.get("stored_at", 0) > older_than_s
            big = max_bytes is not None and total > max_bytes
            if old or big or (older_than_s is None and max_bytes is None):
                self.discard(e.key)
                total -= e.meta.get("size", 0)
                removed += 1
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        return removed
