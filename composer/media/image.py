"""Still images: load, fit to a frame size, save.

Images are RGB uint8 numpy arrays. ``load_image`` reads files, bytes or
``data:`` URIs (OpenCV first, ffmpeg for formats OpenCV lacks).
"""
from __future__ import annotations

import base64
import binascii
import subprocess
from pathlib import Path
from typing import Literal
from urllib.parse import unquote_to_bytes

import cv2
import numpy as np

from ..errors import MediaError
from ._proc import ffmpeg_cmd, last_line

Fit = Literal["cover", "contain", "stretch"]


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """``data:<mime>[;base64],<payload>`` → (mime type, bytes)."""
    if not uri.startswith("data:") or "," not in uri:
        raise MediaError(f"not a data URI: {uri[:40]}…")
    header, payload = uri[5:].split(",", 1)
    mime = header.split(";", 1)[0] or "text/plain"
    try:
        data = base64.b64decode(payload, validate=False) if header.endswith(";base64") else unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise MediaError(f"data URI ({mime}): bad payload ({exc})") from exc
    return mime, data


def image_from_bytes(data: bytes, *, name: str = "<bytes>") -> np.ndarray:
    """Decode an encoded image (PNG, JPEG, WebP, …) to RGB uint8."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        arr = _decode_with_ffmpeg(data, name)
    else:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(arr)


def _decode_with_ffmpeg(data: bytes, name: str) -> np.ndarray:
    """Formats OpenCV cannot read (AVIF, some TIFFs, …): decode one frame with ffmpeg as PNG."""
    cmd = ffmpeg_cmd("-v", "error", "-i", "pipe:0", "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-")
    proc = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    arr = cv2.imdecode(np.frombuffer(proc.stdout, np.uint8), cv2.IMREAD_COLOR) if proc.stdout else None
    if proc.returncode != 0 or arr is None:
        raise MediaError(f"{name}: not a readable image ({last_line(proc.stderr.decode('utf-8', 'replace'))})")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def load_image(source: str | Path | bytes) -> np.ndarray:
    """Read an image as RGB uint8 HxWx3 from a path, raw bytes or a ``data:`` URI.

    Alpha is dropped; 16-bit images are scaled to 8 bits. Raises MediaError.
    """
    if isinstance(source, bytes):
        return image_from_bytes(source)
    if isinstance(source, str) and source.startswith("data:"):
        mime, data = decode_data_uri(source)
        return image_from_bytes(data, name=f"data URI ({mime})")
    path = Path(source)
    if not path.is_file():
        raise MediaError(f"{path}: no such image file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror})") from exc
    return image_from_bytes(data, name=str(path))


def fit_image(img: np.ndarray, width: int, height: int, fit: Fit = "cover") -> np.ndarray:
    """Resize ``img`` to exactly ``width``x``height``.

    ``cover`` scales to fill the frame and crops the overflow around the centre;
    ``contain`` scales to fit inside and pads with black; ``stretch`` ignores aspect.
    """
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return np.ascontiguousarray(img)
    if fit == "stretch":
        return _resize(img, width, height)
    if fit == "cover":
        scale = max(width / w, height / h)
        nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
        resized = _resize(img, nw, nh)
        x0, y0 = (nw - width) // 2, (nh - height) // 2
        return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])
    if fit == "contain":
        scale = min(width / w, height / h)
        nw, nh = min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale)))
        resized = _resize(img, nw, nh)
        out = np.zeros((height, width, img.shape[2]), dtype=img.dtype)
        x0, y0 = (width - nw) // 2, (height - nh) // 2
        out[y0 : y0 + nh, x0 : x0 + nw] = resized
        return out
    raise ValueError(f"fit must be 'cover', 'contain' or 'stretch', not {fit!r}")


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width * height < img.shape[0] * img.shape[1]
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def save_image(img: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 image; the format follows the extension (.png, .jpg, .webp)."""
    path = Path(path)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(path.suffix or ".png", bgr)
    if not ok:
        raise MediaError(f"{path}: cannot encode image as {path.suffix or '.png'}")
    try:
        path.write_bytes(buf.tobytes())
    except OSError as exc:
        raise MediaError(f"{path}: cannot write ({exc.strerror})") from exc
    return path
