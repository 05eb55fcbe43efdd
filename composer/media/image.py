"""Still images: check headers, load, fit to a frame size, save.

Images are RGB uint8 numpy arrays. ``image_header`` reads size and kind from the
first bytes alone (so a 20000×20000 file is refused before it costs memory);
``load_image`` reads files, bytes or ``data:`` URIs (OpenCV, then ffmpeg).
"""
from __future__ import annotations

import base64
import binascii
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote_to_bytes

import cv2
import numpy as np

from ..errors import MediaError
from ._proc import ffmpeg_cmd, last_line
from .probe import file_problem

Fit = Literal["cover", "contain", "stretch"]

# Bounds on a keyframe: the largest side any codec here writes, and about 40 MP
# (a 120 MB RGB array), far past the 1280×720 a frame needs.
MAX_IMAGE_SIDE = 16384
MAX_IMAGE_PIXELS = 40_000_000
HEADER_BYTES = 1 << 20  # enough for a JPEG's EXIF and ICC blocks before its SOF


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, before any pixel is decoded."""

    format: str  # "png", "jpeg", "webp", "gif", "bmp", "tiff", "avif"
    width: int
    height: int
    bit_depth: int | None = None
    colour: str = ""  # "gray", "rgb", "rgba", "gray+alpha", "palette", "cmyk", …


_PNG_COLOUR = {0: "gray", 2: "rgb", 3: "palette", 4: "gray+alpha", 6: "rgba"}
_JPEG_COLOUR = {1: "gray", 3: "ycbcr", 4: "cmyk"}
# SOF markers: C0–CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_header(head: bytes, *, size: int | None = None, tail: bytes | None = None) -> ImageHeader:
    """Kind and size of an encoded image from its first bytes; raise MediaError saying what is wrong.

    ``head`` is the start of the file (all of it, or at least ``HEADER_BYTES``);
    ``tail`` (its last bytes) lets a truncated PNG or JPEG be told apart from a whole one.
    Dimensions past ``MAX_IMAGE_SIDE`` / ``MAX_IMAGE_PIXELS`` are refused here.
    """
    size = len(head) if size is None else size
    tail = head[-64:] if tail is None else tail
    if size == 0:
        raise MediaError("empty file (0 bytes)")
    header = _parse_header(head, tail, size)
    w, h = header.width, header.height
    if w <= 0 or h <= 0:
        raise MediaError(f"{header.format.upper()} header gives a size of {w}×{h}")
    if max(w, h) > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
        raise MediaError(f"image is {w}×{h}; keyframes may be up to {MAX_IMAGE_SIDE} pixels a side and "
                         f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels (scale it down first)")
    return header


def _parse_header(head: bytes, tail: bytes, size: int) -> ImageHeader:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) < 33 or head[12:16] != b"IHDR":
            raise MediaError("truncated PNG (no IHDR header)")
        w, h, depth, colour = struct.unpack(">IIBB", head[16:26])
        if b"IEND" not in tail[-64:]:
            raise MediaError("truncated PNG (the file ends before its IEND chunk)")
        return ImageHeader("png", w, h, depth, _PNG_COLOUR.get(colour, f"type {colour}"))
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg_header(head, tail, size)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp_header(head)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        if len(head) < 10:
            raise MediaError("truncated GIF")
        w, h = struct.unpack("<HH", head[6:10])
        return ImageHeader("gif", w, h, 8, "palette")
    if head[:2] == b"BM" and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return ImageHeader("bmp", w, abs(h), None, "rgb")
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_header(head)
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
        at = head.find(b"ispe")
        if at < 0 or len(head) < at + 12:
            raise MediaError("AVIF/HEIF file without an image size (ispe) box in its first MiB")
        w, h = struct.unpack(">II", head[at + 8 : at + 16])
        return ImageHeader("avif", w, h, None, "")
    raise MediaError(f"not an image ({_sniff(head)}); keyframes may be PNG, JPEG, WebP, GIF, BMP, TIFF or AVIF")


def _sniff(head: bytes) -> str:
    """A few words on what the bytes are instead."""
    start = head[:64]
    if start[4:8] == b"ftyp" or start[:4] in (b"\x1aE\xdf\xa3", b"OggS", b"RIFF", b"ID3\xff"[:3]):
        return "it looks like audio or video"
    try:
        text = start.decode("utf-8")
    except UnicodeDecodeError:
        return f"starts with bytes {start[:8].hex(' ')}"
    if text.isprintable() or all(c.isprintable() or c in "\r\n\t" for c in text):
        shown = text.strip().splitlines()[0][:24] if text.strip() else ""
        return f"a text file starting {shown!r}" if shown else "a text file"
    return f"starts with bytes {start[:8].hex(' ')}"


def _jpeg_header(head: bytes, tail: bytes, size: int) -> ImageHeader:
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            raise MediaError(f"corrupt JPEG (no marker at byte {i})")
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):
            raise MediaError("corrupt JPEG (image data before any frame header)")
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if marker in _SOF:
            if i + 10 > len(head):
                break
            depth, h, w, comps = struct.unpack(">BHHB", head[i + 4 : i + 10])
            if b"\xff\xd9" not in tail[-1024:]:
                raise MediaError("truncated JPEG (the file ends before its end-of-image marker)")
            return ImageHeader("jpeg", w, h, depth, _JPEG_COLOUR.get(comps, f"{comps} components"))
        i += 2 + length
    raise MediaError("truncated JPEG (no frame header)" if len(head) >= size else
                     "JPEG frame header not within the first MiB")


def _webp_header(head: bytes) -> ImageHeader:
    kind = head[12:16]
    if kind == b"VP8X" and len(head) >= 30:
        w = 1 + int.from_bytes(head[24:27], "little")
        h = 1 + int.from_bytes(head[27:30], "little")
        return ImageHeader("webp", w, h, 8, "rgba" if head[20] & 0x10 else "rgb")
    if kind == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", head[26:30])
        return ImageHeader("webp", w & 0x3FFF, h & 0x3FFF, 8, "rgb")
    if kind == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return ImageHeader("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, 8, "rgba")
    raise MediaError("truncated or unknown WebP")


def _tiff_header(head: bytes) -> ImageHeader:
    end = "<" if head[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack(end + "I", head[4:8])
        (count,) = struct.unpack(end + "H", head[ifd : ifd + 2])
        tags: dict[int, int] = {}
        for k in range(count):
            at = ifd + 2 + 12 * k
            tag, typ = struct.unpack(end + "HH", head[at : at + 4])
            value = struct.unpack(end + ("H" if typ == 3 else "I"), head[at + 8 : at + (10 if typ == 3 else 12)])[0]
            tags[tag] = value
    except struct.error:
        raise MediaError("truncated TIFF (its first directory is cut off)") from None
    if 256 not in tags or 257 not in tags:
        raise MediaError("TIFF without a width and height")
    colour = {0: "gray", 1: "gray", 2: "rgb", 3: "palette", 5: "cmyk", 6: "ycbcr"}.get(tags.get(262, 2), "")
    return ImageHeader("tiff", tags[256], tags[257], tags.get(258), colour)


def read_image_header(path: str | Path) -> ImageHeader:
    """``image_header`` of a file, reading only its first MiB and last bytes (MediaError naming the file)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(HEADER_BYTES)
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 1024))
            tail = fh.read()
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        return image_header(head, size=size, tail=tail)
    except MediaError as exc:
        raise MediaError(f"{path}: {exc}") from None


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
    """Decode an encoded image (PNG, JPEG, WebP, …) to RGB uint8.

    The header is checked first (``image_header``), so an empty, text, truncated
    or oversized file raises MediaError before anything is decoded. Grayscale,
    16-bit, alpha and CMYK images are converted to 8-bit RGB.
    """
    try:
        image_header(data)
    except MediaError as exc:
        raise MediaError(f"{name}: {exc}") from None
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        arr = None
    if arr is None:
        arr = _decode_with_ffmpeg(data, name)
    else:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(arr)


def _decode_with_ffmpeg(data: bytes, name: str) -> np.ndarray:
    """Formats OpenCV cannot read (AVIF, some TIFFs, …): decode one frame with ffmpeg as PNG."""
    cmd = ffmpeg_cmd("-v", "error", "-i", "pipe:0", "-frames:v", "1", "-f", "image2pipe", "-c:v", "png", "-")
    proc = subprocess.run(cmd, input=data, capture_output=True, start_new_session=True)
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
    problem = file_problem(path)
    if problem:
        raise MediaError(f"{path}: {problem}")
    read_image_header(path)
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
        # Crop the source to the frame's aspect, then resize: a 20000×2 strip
        # never becomes a 4.8-million-pixel-wide intermediate.
        scale = max(width / w, height / h)
        cw, ch = min(w, max(1, round(width / scale))), min(h, max(1, round(height / scale)))
        x0, y0 = (w - cw) // 2, (h - ch) // 2
        return _resize(np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw]), width, height)
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
