"""The local read-through layer of a remote store: recently used entries on local disk.

Assembly decodes local files at local speed; the layer is bounded in bytes and evicts
the least recently used entries, never one this process has handed out.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from .base import CacheEntry, Claim
from .local import LocalStore

DEFAULT_MAX_BYTES = 4 << 30


def layer_max_bytes() -> int:
    """``COMPOSER_LOCAL_CACHE_MB`` (default 4096 MB)."""
    try:
        return int(float(os.environ["COMPOSER_LOCAL_CACHE_MB"]) * 1e6)
    except (KeyError, ValueError):
        return DEFAULT_MAX_BYTES


class ReadThroughLayer(LocalStore):
    """A ``LocalStore`` with a byte bound; ``admit`` adds an entry fetched from the remote."""

    def __init__(self, root: Path | str, max_bytes: int | None = None):
        super().__init__(root)
        self.max_bytes = layer_max_bytes() if max_bytes is None else max_bytes
        self.pinned: set[str] = set()  # entries handed out in this process: assembly will read them
        self._pin_lock = threading.Lock()

    def lookup(self, key: str) -> CacheEntry | None:
        entry = super().lookup(key)
        if entry is not None:
            self.touch(key)
            with self._pin_lock:
                self.pinned.add(key)
        return entry

    def admit(self, key: str, video: Path, meta: dict[str, Any]) -> CacheEntry:
        entry = super().publish(key, video, meta, None)
        with self._pin_lock:
            self.pinned.add(key)
        self.evict()
        return entry

    def publish(self, key: str, video: Path, meta: dict[str, Any], claim: Claim | None = None) -> CacheEntry:
        return self.admit(key, video, meta)

    def evict(self) -> int:
        """Drop least recently used entries until the layer fits ``max_bytes``."""
        def used(e: CacheEntry) -> float:
            try:
                return (e.video.parent / "meta.json").stat().st_mtime
            except OSError:
                return 0.0

        entries = sorted(self.entries(), key=used)
        total = sum(e.meta.get("size", 0) for e in entries)
        removed = 0
        for e in entries:
            if total <= self.max_bytes:
                break
            with self._pin_lock:
                if e.key in self.pinned:
                    continue
            self.discard(e.key)
            total -= e.meta.get("size", 0)
            removed += 1
        return removed

    def size(self) -> int:
        return sum(e.meta.get("size", 0) for e in self.entries())
