"""Storage endpoints of the fal emulator: CDN token, uploads (v3 and initiate+PUT), downloads,
and resolving media URLs (data: URIs, its own CDN) for submitted requests.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import mimetypes
import os
import re
import secrets
import uuid
from datetime import datetime, timedelta, UTC
from typing import Any
from urllib.parse import unquote


from ...atomic import atomic_write_bytes
from .state import ERRORS_URL, _Dropped, MediaRef, Upload, _short
from .host import EmulatorHost

class CdnMixin(EmulatorHost):
    """Upload / download handlers; mixed into ``FalEmulator``."""

    def _cdn_token(self, h, parts, query, raw, record, fault) -> None:
        if fault is not None:
            self._apply_fault(h, fault, record)
            return
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._cdn_tokens.add(token)
        expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        self._reply(h, 200, {"token": token, "token_type": "Bearer", "base_url": self.cdn_url, "expires_at": expires},
                    record=record)

    def _store_upload(self, data: bytes, file_name: str, content_type: str, via: str, stored: str | None = None) -> Upload:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(file_name) or "upload.bin")[:80]
        stored = stored or f"{uuid.uuid4().hex[:12]}-{safe}"
        path = self._started_root / "files" / stored
        atomic_write_bytes(path, data, fsync=False)
        upload = Upload(name=stored, file_name=file_name, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
                        content_type=content_type, via=via, url=f"{self.cdn_url}/files/{stored}")
        with self._lock:
            self.uploads.append(upload)
            self.counts["upload_ok"] += 1
        return upload

    def _cdn_upload(self, h, parts, query, raw, record, fault) -> None:
        auth = h.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        with self._lock:
            ok = scheme.lower() == "bearer" and token in self._cdn_tokens
        if not ok:
            record.authorized = False
            self._reply(h, 401, {"detail": "Invalid CDN token"}, record=record)
            return
        if fault is not None:
            self._apply_fault(h, fault, record)
            return
        content_type = h.headers.get("Content-Type", "application/octet-stream")
        upload = self._store_upload(raw, h.headers.get("X-Fal-File-Name", "upload.bin"), content_type, "v3")
        self._reply(h, 200, {"access_url": upload.url, "content_type": content_type}, record=record)

    def _multipart_unsupported(self, h, parts, query, raw, record, fault) -> None:
        self._reply(h, 501, {"detail": "multipart uploads (over 100 MB) are not emulated"}, record=record)

    def _storage_initiate(self, h, parts, query, raw, record, fault) -> None:
        if fault is not None:
            self._apply_fault(h, fault, record)
            return
        body = record.json if isinstance(record.json, dict) else {}
        file_name = str(body.get("file_name") or "upload.bin")
        content_type = str(body.get("content_type") or "application/octet-stream")
        token = secrets.token_urlsafe(18)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(file_name))[:80]
        stored = f"{uuid.uuid4().hex[:12]}-{safe}"
        with self._lock:
            self._pending_puts[token] = (stored, file_name, content_type)
        self._reply(h, 200, {"upload_url": f"{self.cdn_url}/put/{token}", "file_url": f"{self.cdn_url}/files/{stored}"},
                    record=record)

    def _signed_put(self, h, parts, query, raw, record, fault) -> None:
        with self._lock:
            pending = self._pending_puts.pop(parts[2], None)
        if pending is None:
            self._reply(h, 403, {"detail": "Invalid or used upload URL"}, record=record)
            return
        if fault is not None:
            with self._lock:
                self._pending_puts[parts[2]] = pending
            self._apply_fault(h, fault, record)
            return
        stored, file_name, content_type = pending
        self._store_upload(raw, file_name, h.headers.get("Content-Type", content_type), "storage", stored=stored)
        self._reply(h, 200, {}, record=record)

    def _download(self, h, parts, query, raw, record, fault) -> None:
        name = parts[2]
        path = self._started_root / "files" / name
        if "/" in name or name.startswith(".") or not path.is_file():
            self._reply(h, 404, {"detail": "File not found"}, record=record)
            return
        data = path.read_bytes()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if fault is not None and fault.action == "truncate":
            self._count("download", "fault_truncate")
            keep = max(0, min(len(data) - 1, int(len(data) * fault.fraction)))
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(keep if fault.cut else len(data)))
            h.end_headers()
            h.wfile.write(data[:keep])
            record.status = 200
            if not fault.cut:
                raise _Dropped()
            return
        if fault is not None:
            self._apply_fault(h, fault, record)
            return
        self._count("download", "ok")
        self._reply(h, 200, raw=data, content_type=content_type, record=record)

    # ------------------------------------------------------------------ control endpoints


    # ------------------------------------------------------------------ media

    def _resolve_media(self, body: dict[str, Any]) -> tuple[list[MediaRef], list[dict[str, Any]]]:
        refs: list[MediaRef] = []
        errors: list[dict[str, Any]] = []
        for group, key in (("images", "image_url"), ("videos", "video_url")):
            for i, item in enumerate(body.get(group) or []):
                url = item.get(key, "") if isinstance(item, dict) else ""
                loc = ["body", group, i, key]
                try:
                    refs.append(self._resolve_url(url, f"{group}[{i}].{key}"))
                except ValueError as exc:
                    errors.append({"loc": loc, "msg": str(exc), "type": "file_download_error",
                                   "url": f"{ERRORS_URL}#file_download_error", "input": _short(url)})
        return refs, errors

    def _resolve_url(self, url: str, field_name: str) -> MediaRef:
        if url.startswith("data:"):
            header, sep, payload = url[5:].partition(",")
            if not sep:
                raise ValueError("Malformed data URI")
            content_type = header.split(";")[0] or "application/octet-stream"
            try:
                data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote(payload).encode()
            except (binascii.Error, ValueError):
                raise ValueError("Malformed base64 in data URI") from None
            digest = hashlib.sha256(data).hexdigest()
            ext = mimetypes.guess_extension(content_type) or ".bin"
            path = self._started_root / "media" / f"{digest[:24]}{ext}"
            if not path.exists():
                atomic_write_bytes(path, data, fsync=False)
            return MediaRef(field_name, "data", str(path), len(data), digest, content_type)
        prefix = f"{self.cdn_url}/files/"
        if url.startswith(prefix):
            name = unquote(url[len(prefix):])
            path = self._started_root / "files" / name
            if "/" in name or not path.is_file():
                raise ValueError(f"Could not download file from URL: {url}")
            data = path.read_bytes()
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return MediaRef(field_name, "cdn", str(path), len(data), hashlib.sha256(data).hexdigest(), content_type)
        raise ValueError(f"Could not download file from URL: {_short(url, 80)}")

    # ------------------------------------------------------------------ jobs

