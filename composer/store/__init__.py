"""Storage for segments, the request journal, per-segment leases and the cost ledger.

``open_store(where)`` gives a local folder store or, for an fsspec URL
(``s3://bucket/prefix``, ``gs://…``, ``memory://…``), a remote store with a local layer.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from platformdirs import user_cache_dir

from .base import RESULT_TTL_S, Busy, CacheEntry, Claim, Store, StoreInfo, file_sha256
from .local import LocalStore
from .paid import Consent, ConsentNeeded, PaidRequest, doubts
from .remote import is_url


def default_cache_dir() -> Path:
    env = os.environ.get("COMPOSER_CACHE_DIR")
    return Path(env).expanduser() if env else Path(user_cache_dir("composer"))


def default_location() -> str | Path:
    """``$COMPOSER_CACHE_DIR`` (a folder or a URL), else the user cache folder."""
    env = os.environ.get("COMPOSER_CACHE_DIR")
    if env and is_url(env):
        return env
    return default_cache_dir()


def open_store(where: str | Path | None = None, *, local_root: str | Path | None = None) -> Store:
    """The store at ``where``: a folder path, or an fsspec URL (its local layer under ``local_root``,
    else ``$COMPOSER_LOCAL_CACHE_DIR``, else the user cache folder)."""
    if where is None or where == "":
        where = default_location()
    if is_url(str(where)) and isinstance(where, str):
        from .remote import RemoteStore

        url = where.rstrip("/")
        if local_root is None and os.environ.get("COMPOSER_LOCAL_CACHE_DIR"):
            local_root = Path(os.environ["COMPOSER_LOCAL_CACHE_DIR"]).expanduser()
        if local_root is None:
            local_root = Path(user_cache_dir("composer")) / "remote" / hashlib.sha256(url.encode()).hexdigest()[:16]
        return RemoteStore(url, local_root)
    text = str(where)
    if text.startswith("file://"):
        text = text[len("file://"):]
    return LocalStore(text)


__all__ = ["RESULT_TTL_S", "Busy", "CacheEntry", "Claim", "Consent", "ConsentNeeded", "LocalStore", "PaidRequest",
           "Store", "StoreInfo", "default_cache_dir", "doubts", "file_sha256", "is_url", "open_store"]
