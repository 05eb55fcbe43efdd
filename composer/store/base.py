"""The storage interface behind the segment cache: entries, request journal, leases, ledger.

A render asks it three coarse questions per paid segment (have it? claim it, publish
it) so the lease, the journal and atomic publishing live in one place, whatever the store.
"""
from __future__ import annotations

import hashlib
import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# fal keeps a finished request's result for a limited time (about an hour by its docs).
RESULT_TTL_S = 3600.0


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_owner() -> str:
    """Who holds a lease: host, process and a random part (two runs on one host differ)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_ttl_s() -> float:
    """How long a lease lives without a heartbeat (``COMPOSER_LEASE_TTL``, default 60 s)."""
    try:
        return max(0.5, float(os.environ.get("COMPOSER_LEASE_TTL", "60")))
    except ValueError:
        return 60.0


@dataclass(frozen=True)
class CacheEntry:
    """A published segment: a local, verified video file and its manifest."""

    key: str
    video: Path
    meta: dict[str, Any]


@dataclass
class Claim:
    """The right to make one segment: a held lease plus what the journal knows about it.

    ``journal`` is the record an earlier (interrupted) run left: with a ``request_id``,
    fetch that request instead of paying again; without one (an intent), a submit may
    have been accepted with its id lost.
    """

    key: str
    owner: str
    journal: dict[str, Any] | None = None
    token: Any = None  # the store's handle on the lease
    lost: bool = False  # the lease expired and someone else took it over

    @property
    def request_id(self) -> str | None:
        return (self.journal or {}).get("request_id")

    @property
    def unresolved_intent(self) -> bool:
        """A submit was about to be made and its outcome is not known."""
        return self.journal is not None and not self.journal.get("request_id")


@dataclass(frozen=True)
class Busy:
    """Another run holds the segment's lease."""

    key: str
    owner: str
    expires_at: float


@dataclass
class StoreInfo:
    where: str
    segments: int
    bytes: int
    in_flight_requests: int
    paid_requests: int
    paid_usd: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"root": self.where, "segments": self.segments, "bytes": self.bytes,
                "in_flight_requests": self.in_flight_requests, "paid_requests": self.paid_requests,
                "paid_usd": self.paid_usd, **self.extra}


class Store(ABC):
    """Where segments, the journal, leases and the ledger live.

    ``root`` is always a local folder (scratch space, fitted images, and the local copy
    of entries of a remote store); ``url`` names the store itself.
    """

    root: Path
    url: str

    # -- have it? --------------------------------------------------------
    @abstractmethod
    def lookup(self, key: str) -> CacheEntry | None:
        """The intact entry for ``key`` as a local file, or None (a damaged entry is removed)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` is published, without fetching it."""

    # -- claim it --------------------------------------------------------
    @abstractmethod
    def claim(self, key: str, owner: str, ttl: float) -> Claim | Busy:
        """Take the lease on ``key`` (a dead holder's expired lease is taken over)."""

    @abstractmethod
    def renew(self, claim: Claim, ttl: float) -> bool:
        """Extend a held lease; False when it was lost."""

    @abstractmethod
    def record(self, claim: Claim, record: dict[str, Any]) -> None:
        """Journal what is known about the claimed segment's paid request (intent or id)."""

    @abstractmethod
    def release(self, claim: Claim, *, clear_journal: bool = False) -> None:
        """Give the lease back; the journal stays unless ``clear_journal``."""

    # -- publish it ------------------------------------------------------
    @abstractmethod
    def publish(self, key: str, video: Path, meta: dict[str, Any], claim: Claim | None = None) -> CacheEntry:
        """Store ``video`` under ``key`` atomically, clear its journal, release ``claim``."""

    @abstractmethod
    def discard(self, key: str) -> None: ...

    # -- journal, ledger, housekeeping ------------------------------------
    @abstractmethod
    def journal_get(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def journal_put(self, key: str, record: dict[str, Any]) -> None: ...

    @abstractmethod
    def journal_clear(self, key: str) -> None: ...

    @abstractmethod
    def journal(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def ledger_append(self, record: dict[str, Any]) -> bool:
        """Record a paid request; False (and nothing written) when its request id is already there."""

    @abstractmethod
    def ledger(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def entries(self) -> Iterator[CacheEntry]:
        """Every published entry's manifest (``video`` may be a remote name)."""

    @abstractmethod
    def info(self) -> StoreInfo: ...

    @abstractmethod
    def prune(self, *, older_than_s: float | None = None, max_bytes: int | None = None,
              keep: frozenset[str] | set[str] = frozenset()) -> int: ...

    def check_writable(self) -> None:  # noqa: B027 - a store that cannot fail to write need not override it
        """Raise ``CacheError`` when the store cannot be written (before any money is spent)."""

    def media_path(self, name: str) -> Path:
        return self.root / "media" / name

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections and stop heartbeats."""
