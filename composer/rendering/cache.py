"""The segment cache as the render sees it: keys, and ``SegmentCache`` over a store.

A segment's key is a hash chain (request without URLs, user media hashes, the keys
of the segments that condition it), so an unchanged segment is never paid twice.
Where entries live (a folder, or an object store shared by a team) is ``composer.store``.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..request import canonical_json
from ..store import (
    CacheEntry,
    Consent,
    Store,
    default_cache_dir,
    file_sha256,
    is_url,
    open_store,
)
from ..store.base import Busy, Claim

CACHE_VERSION = 1

__all__ = ["CACHE_VERSION", "CacheEntry", "SegmentCache", "default_cache_dir", "file_sha256", "segment_key"]


def segment_key(*, backend: str, request_without_urls: dict[str, Any], media_hashes: list[str],
                parent_key: str | Sequence[str] | None, overlap: dict[str, Any]) -> str:
    """The cache key of one segment: a hash over everything its pixels depend on.

    Never the bytes of a re-encoded tail: those change with ffmpeg versions and
    thread counts; the parents' keys stand for them. ``parent_key`` is one key, or the keys
    of all the segment's parents in plan order (a bridge has two); one parent hashes as its
    bare key, so sequential keys are the ones they always were.
    """
    if parent_key is not None and not isinstance(parent_key, str):
        keys = list(parent_key)
        parent_key = None if not keys else keys[0] if len(keys) == 1 else keys
    material = {
        "v": CACHE_VERSION,
        "backend": backend,
        "request": request_without_urls,
        "media": media_hashes,
        "parent": parent_key,
        "overlap": overlap,
    }
    return hashlib.sha256(canonical_json(material).encode()).hexdigest()


class SegmentCache:
    """The cache a render uses: a folder (``segments/ab/<key>/{video.mp4,meta.json}``) or a URL.

    ``SegmentCache("s3://bucket/prefix")`` keeps entries in the bucket and recently used
    ones in a local layer; ``root`` is always a local folder (scratch, fitted images).
    ``consent`` says which possible double payments a person agreed to (``--yes``).
    ``writable=True`` checks up front that entries can be written (a clear error, before
    any money is spent, for a read-only folder or an unwritable bucket).
    """

    def __init__(self, root: Path | str | None = None, *, local_root: Path | str | None = None,
                 consent: Consent | None = None, writable: bool = False):
        self.store: Store = root if isinstance(root, Store) else open_store(
            root if isinstance(root, str) and is_url(root) else (Path(root) if root else None), local_root=local_root)
        self.consent = consent or Consent()
        if writable:
            self.store.check_writable()

    @property
    def root(self) -> Path:
        return self.store.root

    @property
    def url(self) -> str:
        return self.store.url

    @property
    def remote(self) -> bool:
        return self.store.url != str(self.store.root)

    # -- the coarse steps --------------------------------------------------
    def lookup(self, key: str) -> CacheEntry | None:
        return self.store.lookup(key)

    def claim(self, key: str, owner: str, ttl: float) -> Claim | Busy:
        return self.store.claim(key, owner, ttl)

    def publish(self, key: str, video: Path, meta: dict[str, Any], claim: Claim | None = None) -> CacheEntry:
        return self.store.publish(key, video, meta, claim)

    # -- the fine-grained names kept for library users ------------------------
    def get(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` if present and intact; a damaged entry is removed."""
        return self.store.lookup(key)

    def has(self, key: str) -> bool:
        """Whether ``key`` is published (a remote entry is not fetched to answer)."""
        return self.store.exists(key)

    def put(self, key: str, video: Path, meta: dict[str, Any]) -> CacheEntry:
        return self.store.publish(key, video, meta)

    def discard(self, key: str) -> None:
        self.store.discard(key)

    def entries(self) -> Iterator[CacheEntry]:
        return self.store.entries()

    def media_path(self, name: str) -> Path:
        return self.store.media_path(name)

    def journal_get(self, key: str) -> dict[str, Any] | None:
        return self.store.journal_get(key)

    def journal_put(self, key: str, record: dict[str, Any]) -> None:
        self.store.journal_put(key, record)

    def journal_clear(self, key: str) -> None:
        self.store.journal_clear(key)

    def journal(self) -> list[dict[str, Any]]:
        return self.store.journal()

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.jsonl"

    def ledger_append(self, record: dict[str, Any]) -> bool:
        """Record a paid request; a request id already in the ledger is not written twice."""
        return self.store.ledger_append(record)

    def ledger(self) -> list[dict[str, Any]]:
        return self.store.ledger()

    def info(self) -> dict[str, Any]:
        return self.store.info().as_dict()

    def prune(self, *, older_than_s: float | None = None, max_bytes: int | None = None,
              keep: frozenset[str] | set[str] = frozenset()) -> int:
        """Remove entries (oldest first) not in ``keep``; returns how many."""
        return self.store.prune(older_than_s=older_than_s, max_bytes=max_bytes, keep=keep)

    def close(self) -> None:
        self.store.close()
