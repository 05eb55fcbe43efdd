"""The local folder store: ``segments/ab/<key>/{video.mp4,meta.json}``, ``journal/``, ``ledger.jsonl``.

The layout is the one composer always used, so existing caches stay valid. Leases are
``fcntl`` locks on ``leases/<key>.lock``: the kernel drops them when their process dies.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..errors import CacheError
from .base import Busy, CacheEntry, Claim, Store, StoreInfo, file_sha256

SUBDIRS = ("segments", "journal", "tmp", "media", "leases")


def _readonly_message(root: Path, exc: OSError) -> str:
    readonly = exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
    why = "is read-only" if readonly else f"cannot be written ({exc.strerror or exc})"
    return (f"the cache folder {root} {why}: give a writable one with --cache-dir "
            f"(or $COMPOSER_CACHE_DIR); nothing was spent")


class LocalStore(Store):
    """Segments in a folder; leases by ``fcntl`` locks, the journal as one JSON file per key."""

    def __init__(self, root: Path | str):
        self.root = Path(root).expanduser()
        self.url = str(self.root)
        self._lock = threading.Lock()
        try:
            for sub in SUBDIRS:
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if (self.root / "segments").is_dir():
                return  # a read-only cache can still be read; writing says so (check_writable)
            raise CacheError(f"cannot create cache at {self.root}: {exc.strerror or exc}") from None

    def check_writable(self) -> None:
        try:
            fd, name = tempfile.mkstemp(prefix=".probe-", dir=self.root / "tmp")
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise CacheError(_readonly_message(self.root, exc)) from None

    # -- entries ----------------------------------------------------------
    def _dir(self, key: str) -> Path:
        return self.root / "segments" / key[:2] / key

    def lookup(self, key: str) -> CacheEntry | None:
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

    def exists(self, key: str) -> bool:
        return self.lookup(key) is not None

    def touch(self, key: str) -> None:
        """Mark an entry as recently used (the read-through layer evicts the least recent)."""
        with contextlib.suppress(OSError):
            os.utime(self._dir(key) / "meta.json")

    def publish(self, key: str, video: Path, meta: dict[str, Any], claim: Claim | None = None) -> CacheEntry:
        """A directory rename: the entry appears whole or not at all."""
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f"{key[:12]}-", dir=self.root / "tmp"))
        except OSError as exc:
            raise CacheError(_readonly_message(self.root, exc)) from None
        try:
            shutil.copyfile(video, tmp / "video.mp4")
            meta = {**meta, "key": key, "size": (tmp / "video.mp4").stat().st_size,
                    "sha256": meta.get("sha256") or file_sha256(tmp / "video.mp4"),
                    "stored_at": meta.get("stored_at", time.time())}
            atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=2, sort_keys=True))
            final = self._dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                self.discard(key)
            os.replace(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise CacheError(f"cannot write cache entry {key[:12]} in {self.root}: {exc.strerror or exc}") from None
        if claim is not None:
            self.release(claim, clear_journal=True)
        return CacheEntry(key, final / "video.mp4", meta)

    def discard(self, key: str) -> None:
        d = self._dir(key)
        if d.exists():
            try:
                trash = Path(tempfile.mkdtemp(prefix="trash-", dir=self.root / "tmp"))
                os.replace(d, trash / "x")
            except OSError:
                return
            shutil.rmtree(trash, ignore_errors=True)

    def entries(self) -> Iterator[CacheEntry]:
        for meta_path in sorted((self.root / "segments").glob("*/*/meta.json")):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            yield CacheEntry(meta_path.parent.name, meta_path.parent / "video.mp4", meta)

    # -- leases -----------------------------------------------------------
    def claim(self, key: str, owner: str, ttl: float) -> Claim | Busy:
        path = self.root / "leases" / f"{key}.lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CacheError(_readonly_message(self.root, exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another render"
            finally:
                os.close(fd)
            return Busy(key, holder, time.time() + ttl)
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode(), 0)
        return Claim(key, owner, journal=self.journal_get(key), token=fd)

    def renew(self, claim: Claim, ttl: float) -> bool:
        return claim.token is not None  # a kernel lock needs no heartbeat

    def release(self, claim: Claim, *, clear_journal: bool = False) -> None:
        if clear_journal:
            self.journal_clear(claim.key)
        fd, claim.token = claim.token, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # closing drops the flock; the lock file stays (unlinking it would race)

    def record(self, claim: Claim, record: dict[str, Any]) -> None:
        self.journal_put(claim.key, record)
        claim.journal = record

    # -- journal ----------------------------------------------------------
    def journal_get(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / "journal" / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def journal_put(self, key: str, record: dict[str, Any]) -> None:
        try:
            atomic_write_text(self.root / "journal" / f"{key}.json", json.dumps(record, sort_keys=True))
        except OSError as exc:
            raise CacheError(_readonly_message(self.root, exc)) from None

    def journal_clear(self, key: str) -> None:
        with contextlib.suppress(OSError):
            (self.root / "journal" / f"{key}.json").unlink(missing_ok=True)

    def journal(self) -> list[dict[str, Any]]:
        out = []
        for p in sorted((self.root / "journal").glob("*.json")):
            try:
                out.append({"key": p.stem, **json.loads(p.read_text())})
            except (OSError, ValueError):
                continue
        return out

    # -- ledger -----------------------------------------------------------
    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.jsonl"

    def ledger_append(self, record: dict[str, Any]) -> bool:
        line = json.dumps({"time": time.time(), **record}, sort_keys=True) + "\n"
        rid = record.get("request_id")
        try:
            with self._lock, open(self.ledger_path, "a+", encoding="utf-8") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # check-then-append, across processes too
                if rid is not None:
                    f.seek(0)
                    if any(r.get("request_id") == rid for r in _rows(f.read())):
                        return False
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            raise CacheError(f"cannot write the cost ledger {self.ledger_path}: {exc.strerror or exc}") from None
        return True

    def ledger(self) -> list[dict[str, Any]]:
        try:
            return _rows(self.ledger_path.read_text())
        except OSError:
            return []

    # -- housekeeping -----------------------------------------------------
    def info(self) -> StoreInfo:
        entries = list(self.entries())
        ledger = self.ledger()
        return StoreInfo(str(self.root), len(entries), sum(e.meta.get("size", 0) for e in entries),
                         len(self.journal()), len(ledger), round(sum(r.get("cost_usd", 0.0) for r in ledger), 6))

    def prune(self, *, older_than_s: float | None = None, max_bytes: int | None = None,
              keep: frozenset[str] | set[str] = frozenset()) -> int:
        """Remove entries (oldest first) not in ``keep``; returns how many."""
        removed = prune_entries(self, list(self.entries()), older_than_s=older_than_s, max_bytes=max_bytes, keep=keep)
        shutil.rmtree(self.root / "tmp", ignore_errors=True)
        (self.root / "tmp").mkdir(exist_ok=True)
        return removed


def _rows(text: str) -> list[dict[str, Any]]:
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash mid-write
    return rows


def prune_entries(store: Store, entries: list[CacheEntry], *, older_than_s: float | None, max_bytes: int | None,
                  keep: frozenset[str] | set[str], age_of: Any = None) -> int:
    """Discard entries oldest first (by ``age_of(entry)``, default ``stored_at``) under the limits."""
    age_of = age_of or (lambda e: e.meta.get("stored_at", 0))
    entries = sorted(entries, key=age_of)
    now = time.time()
    total = sum(e.meta.get("size", 0) for e in entries)
    removed = 0
    for e in entries:
        if e.key in keep:
            continue
        old = older_than_s is not None and now - age_of(e) > older_than_s
        big = max_bytes is not None and total > max_bytes
        if old or big or (older_than_s is None and max_bytes is None):
            store.discard(e.key)
            total -= e.meta.get("size", 0)
            removed += 1
    return removed
