"""A store on any fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``memory://…``).

Entries are published by a conditional write of their manifest (S3 ``If-None-Match: *``)
after the video is uploaded under a name no reader looks up until then; readers verify
the manifest's sha256. Leases are small objects with an expiry, renewed by a heartbeat.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import CacheError
from .base import Busy, CacheEntry, Claim, Store, StoreInfo, file_sha256, lease_ttl_s
from .local import prune_entries
from .readthrough import ReadThroughLayer

EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


def is_url(text: str | Path | None) -> bool:
    return isinstance(text, str) and "://" in text and not text.startswith("file://")


def open_filesystem(url: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it); endpoint and credentials from the standard env vars."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with the s3/gcs extras
        raise CacheError(f"a cache at {url} needs fsspec: pip install 'composer-video[s3]'") from None
    protocol = url.split("://", 1)[0]
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        # every call sees the bucket as it is now: leases and manifests change under us
        options = {"skip_instance_cache": True, "use_listings_cache": False}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError:
        extra = EXTRAS.get(protocol, protocol)
        raise CacheError(f"a cache at {url} needs the {extra} extra: pip install 'composer-video[{extra}]'") from None
    except (ValueError, OSError) as exc:
        raise CacheError(f"cannot open the cache at {url}: {exc}") from None
    return fs, path.rstrip("/")


def _etag(answer: Any) -> str | None:
    return answer.get("ETag") if isinstance(answer, dict) else None


class RemoteStore(Store):
    """Segments, journal, leases and ledger as objects under one URL; a local layer for reading."""

    def __init__(self, url: str, local_root: Path | str, *, layer_bytes: int | None = None):
        self.url = url.rstrip("/")
        self.fs, self.base = open_filesystem(self.url)
        # Only S3 (and stores speaking its API) are known to honour If-None-Match / If-Match on PUT.
        self.conditional = self.url.split("://", 1)[0] in ("s3", "s3a")
        self.layer = ReadThroughLayer(local_root, layer_bytes)
        self.root = self.layer.root
        self._held: dict[str, Claim] = {}
        self._held_lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    # -- paths ------------------------------------------------------------
    def _p(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def _entry_dir(self, key: str) -> str:
        return self._p("segments", key[:2], key)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, FileExistsError, CacheError):
            raise
        except Exception as exc:  # noqa: BLE001 - fsspec backends raise their own types (botocore, aiohttp, …)
            raise CacheError(f"cannot {what} at {self.url}: {type(exc).__name__}: {exc}") from None

    def _cat(self, path: str) -> bytes | None:
        with self._errors("read the cache"):
            try:
                return self.fs.cat_file(path)
            except FileNotFoundError:
                return None

    def _json(self, path: str) -> dict[str, Any] | None:
        data = self._cat(path)
        if data is None:
            return None
        try:
            value = json.loads(data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _put(self, path: str, data: bytes, *, create: bool = False, if_match: str | None = None) -> Any:
        """One object write: ``create`` refuses an existing object; ``if_match`` an object changed since."""
        with self._errors("write the cache"):
            if create:
                return self.fs.pipe_file(path, data, mode="create")
            if if_match is not None and self.conditional:
                return self.fs.pipe_file(path, data, IfMatch=if_match)
            return self.fs.pipe_file(path, data)

    def _many_json(self, pattern: str) -> list[tuple[str, dict[str, Any]]]:
        with self._errors("list the cache"):
            paths = sorted(self.fs.glob(pattern))
            blobs = self.fs.cat(paths) if paths else {}
        out = []
        for p in paths:
            try:
                value = json.loads(blobs[p])
            except (KeyError, ValueError, TypeError):
                continue
            if isinstance(value, dict):
                out.append((p, value))
        return out

    def check_writable(self) -> None:
        """Write a probe object; on S3 also learn whether the store honours ``If-None-Match: *``."""
        probe = self._p("tmp", f"probe-{uuid.uuid4().hex}")
        try:
            self.fs.pipe_file(probe, b"", mode="create")
            if self.conditional:
                try:
                    self.fs.pipe_file(probe, b"again", mode="create")
                    self.conditional = False  # it overwrote: leases fall back to read-then-write
                except FileExistsError:
                    pass
            self.fs.rm_file(probe)
        except Exception as exc:  # noqa: BLE001 - see _errors
            raise CacheError(f"cannot write to the cache at {self.url} ({type(exc).__name__}: {exc}); check the "
                             "bucket, AWS_ENDPOINT_URL and credentials; nothing was spent") from None
        self.layer.check_writable()

    # -- have it? -----------------------------------------------------------
    def lookup(self, key: str) -> CacheEntry | None:
        entry = self.layer.lookup(key)
        if entry is not None:
            return entry
        meta = self._json(self._entry_dir(key) + "/meta.json")
        if meta is None:
            return None
        name = meta.get("video")
        if not isinstance(name, str) or "/" in name:
            return None
        tmp = Path(tempfile.mkdtemp(prefix=f"fetch-{key[:12]}-", dir=self.layer.root / "tmp"))
        try:
            local = tmp / "video.mp4"
            with self._errors("download a cache entry"):
                try:
                    self.fs.get_file(self._entry_dir(key) + "/" + name, str(local))
                except FileNotFoundError:
                    local.unlink(missing_ok=True)
            if not local.is_file() or local.stat().st_size != meta.get("size") or file_sha256(local) != meta.get("sha256"):
                # The manifest is written only after its video is complete, so this entry was damaged
                # afterwards: never use it, and unpublish it so the segment can be made (and published) again.
                self.discard(key)
                return None
            return self.layer.admit(key, local, meta)
        finally:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    def exists(self, key: str) -> bool:
        if (self.layer.root / "segments" / key[:2] / key / "meta.json").is_file():
            return True
        return self._cat(self._entry_dir(key) + "/meta.json") is not None

    # -- leases -------------------------------------------------------------
    def _lease_path(self, key: str) -> str:
        return self._p("leases", f"{key}.json")

    def _read_lease(self, path: str) -> tuple[dict[str, Any] | None, str | None]:
        """The lease and the ETag of exactly those bytes (s3fs reads with If-Match on the HEAD's ETag)."""
        for attempt in range(5):
            try:
                with self._errors("read a lease"), self.fs.open(path, "rb") as f:
                    details = getattr(f, "details", {}) or {}
                    data = f.read()
                break
            except FileNotFoundError:
                return None, None
            except CacheError:
                # renewed between the HEAD and the GET (s3fs: FileExpired): read it again
                if attempt == 4:
                    raise
                time.sleep(0.05)
        try:
            lease = json.loads(data)
        except ValueError:
            lease = {"owner": "?", "expires_at": 0}
        etag = details.get("ETag") or ('"' + hashlib.md5(data).hexdigest() + '"')
        return lease, etag

    def claim(self, key: str, owner: str, ttl: float) -> Claim | Busy:
        path = self._lease_path(key)
        for _ in range(3):
            body = json.dumps({"owner": owner, "expires_at": time.time() + ttl}).encode()
            try:
                etag = _etag(self._put(path, body, create=True))
            except FileExistsError:
                lease, seen = self._read_lease(path)
                if lease is None:
                    continue  # released in between: try to create it again
                expires = float(lease.get("expires_at", 0))
                if expires > time.time() and lease.get("owner") != owner:
                    return Busy(key, str(lease.get("owner")), expires)
                # the holder died (or it is ours): take it over, only if nobody else did first
                if self.conditional:
                    try:
                        etag = _etag(self._put(path, body, if_match=seen))
                    except (OSError, CacheError):
                        continue
                else:
                    with self._errors("take over a lease"):
                        self.fs.rm_file(path)
                    continue
            claim = Claim(key, owner, journal=self.journal_get(key), token=etag)
            self._hold(claim, ttl)
            return claim
        lease, _ = self._read_lease(path)
        return Busy(key, str((lease or {}).get("owner", "another render")), float((lease or {}).get("expires_at", 0)))

    def _hold(self, claim: Claim, ttl: float) -> None:
        with self._held_lock:
            self._held[claim.key] = claim
            if self._heartbeat is None:
                self._heartbeat = threading.Thread(target=self._beat, args=(ttl,), name="lease-heartbeat",
                                                   daemon=True)
                self._heartbeat.start()

    def _beat(self, ttl: float) -> None:
        while not self._stop.wait(ttl / 3):
            with self._held_lock:
                held = list(self._held.values())
            for claim in held:
                with contextlib.suppress(CacheError):
                    self.renew(claim, ttl)

    def renew(self, claim: Claim, ttl: float) -> bool:
        if claim.lost:
            return False
        body = json.dumps({"owner": claim.owner, "expires_at": time.time() + ttl}).encode()
        path = self._lease_path(claim.key)
        if self.conditional and claim.token:
            try:
                claim.token = _etag(self._put(path, body, if_match=claim.token)) or claim.token
                return True
            except (OSError, CacheError):
                claim.lost = True
                return False
        lease, _ = self._read_lease(path)
        if lease is not None and lease.get("owner") != claim.owner:
            claim.lost = True
            return False
        self._put(path, body)
        return True

    def release(self, claim: Claim, *, clear_journal: bool = False) -> None:
        if clear_journal:
            self.journal_clear(claim.key)
        with self._held_lock:
            self._held.pop(claim.key, None)
        if claim.lost:
            return
        path = self._lease_path(claim.key)
        lease, _ = self._read_lease(path)
        if lease is not None and lease.get("owner") == claim.owner:
            with self._errors("release a lease"), contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

    def record(self, claim: Claim, record: dict[str, Any]) -> None:
        self.journal_put(claim.key, record)
        claim.journal = record

    # -- publish it ---------------------------------------------------------
    def publish(self, key: str, video: Path, meta: dict[str, Any], claim: Claim | None = None) -> CacheEntry:
        sha, size = file_sha256(video), Path(video).stat().st_size
        name = f"{sha}.mp4"
        meta = {**meta, "key": key, "size": size, "sha256": sha, "video": name, "stored_at": time.time()}
        # The video goes up under its content's name, which no reader asks for until the
        # manifest below names it: the manifest's conditional create is the publishing step.
        with self._errors("upload a cache entry"):
            self.fs.put_file(str(video), self._entry_dir(key) + "/" + name)
        with contextlib.suppress(FileExistsError):  # another machine published first: same key, same inputs
            self._put(self._entry_dir(key) + "/meta.json",
                      json.dumps(meta, indent=2, sort_keys=True).encode(), create=True)
        if claim is not None:
            self.release(claim, clear_journal=True)
        return self.layer.admit(key, video, meta)

    def discard(self, key: str) -> None:
        self.layer.discard(key)
        with self._errors("remove a cache entry"), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._entry_dir(key) + "/meta.json")  # unpublished first: readers stop at once
            self.fs.rm(self._entry_dir(key), recursive=True)

    def entries(self) -> Iterator[CacheEntry]:
        for path, meta in self._many_json(self._p("segments", "*", "*", "meta.json")):
            key = path.rsplit("/", 2)[-2]
            yield CacheEntry(key, Path(str(meta.get("video", ""))), meta)

    # -- journal --------------------------------------------------------------
    def journal_get(self, key: str) -> dict[str, Any] | None:
        return self._json(self._p("journal", f"{key}.json"))

    def journal_put(self, key: str, record: dict[str, Any]) -> None:
        self._put(self._p("journal", f"{key}.json"), json.dumps(record, sort_keys=True).encode())

    def journal_clear(self, key: str) -> None:
        with self._errors("clear a journal record"), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._p("journal", f"{key}.json"))

    def journal(self) -> list[dict[str, Any]]:
        return [{"key": p.rsplit("/", 1)[-1].removesuffix(".json"), **v}
                for p, v in self._many_json(self._p("journal", "*.json"))]

    # -- ledger: one object per paid request, named by its id ------------------
    def ledger_append(self, record: dict[str, Any]) -> bool:
        row = {"time": time.time(), **record}
        name = str(record.get("request_id") or f"unnamed-{uuid.uuid4().hex}")
        try:
            self._put(self._p("ledger", f"{name}.json"), json.dumps(row, sort_keys=True).encode(), create=True)
        except FileExistsError:
            return False
        return True

    def ledger(self) -> list[dict[str, Any]]:
        return sorted((v for _, v in self._many_json(self._p("ledger", "*.json"))), key=lambda r: r.get("time", 0))

    # -- housekeeping ---------------------------------------------------------
    def info(self) -> StoreInfo:
        with contextlib.suppress(CacheError):
            self.check_writable()  # learns whether conditional writes are honoured
        entries = list(self.entries())
        ledger = self.ledger()
        return StoreInfo(self.url, len(entries), sum(e.meta.get("size", 0) for e in entries), len(self.journal()),
                         len(ledger), round(sum(r.get("cost_usd", 0.0) for r in ledger), 6),
                         {"local_layer": str(self.layer.root), "local_bytes": self.layer.size(),
                          "conditional_writes": self.conditional})

    def prune(self, *, older_than_s: float | None = None, max_bytes: int | None = None,
              keep: frozenset[str] | set[str] = frozenset()) -> int:
        return prune_entries(self, list(self.entries()), older_than_s=older_than_s, max_bytes=max_bytes, keep=keep)

    def close(self) -> None:
        self._stop.set()


__all__ = ["RemoteStore", "is_url", "lease_ttl_s", "open_filesystem"]
