"""Decoding video into numpy frames through an ffmpeg pipe.

``VideoReader`` streams one frame at a time (bounded memory) and fails loudly on
truncated or corrupt input; ``read_frames`` decodes a frame-exact range. Frames come
as RGB (or gray) arrays, or as raw I420 planes (``pix_fmt="yuv420p"``, BT.709 limited).
"""
from __future__ import annotations

import contextlib
import io
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import cast

import numpy as np

from ..errors import MediaError
from .tuning import stream_settings
from ._proc import StderrTail, any_frame, ffmpeg_cmd, file_arg, stop_process, widen_pipe
from .probe import VideoInfo, probe

# YUV matrix names: ffmpeg's (as probe reports them) → zimg's.
_ZIMG_MATRIX = {
    "bt709": "709", "smpte170m": "170m", "bt601": "170m", "bt470bg": "470bg", "bt2020nc": "2020_ncl",
    "bt2020c": "2020_cl", "smpte240m": "240m", "fcc": "fcc", "ycgco": "ycgco",
}  # fmt: skip
_YUV_PREFIXES = ("yuv", "nv12", "nv16", "nv21", "p010", "p016", "yuyv", "uyvy")

# Ranges starting this far in seek first (ffmpeg decodes from the keyframe before).
SEEK_AFTER_FRAMES = 48

# Channels per pixel of the raw formats a reader can hand out (yuv420p: 1.5 bytes, planar).
PIX_FMT_CHANNELS = {"rgb24": 3, "bgr24": 3, "rgba": 4, "bgra": 4, "gray": 1, "yuv420p": 1}
_RGB_OUT = ("rgb24", "bgr24", "rgba", "bgra")


class VideoReader:
    """Decode ``path`` into uint8 frames (HxWx3 for rgb24), one at a time.

    ``pix_fmt="yuv420p"`` hands out each frame as one contiguous I420 array of shape
    ``(H*3//2, W)`` (Y, then U, then V: ffmpeg's rawvideo layout; see ``composer.yuv``),
    always BT.709 limited range: a source in another matrix, range, pixel format or size
    is converted with zscale, one already yuv420p BT.709 tv is piped as it is. Even
    width and height only.

    ``size=(w, h)`` scales every frame to exactly that size. ``start``/``count``
    select a frame-exact range (a negative ``start`` counts from the end); ``select``
    (frame numbers counted from ``start``) hands out only those, in order: the others are
    decoded and dropped inside ffmpeg instead of crossing the pipe.
    ``color_matrix`` (``"bt709"``, ``"smpte170m"``, …) overrides the file's YUV
    matrix tag; untagged input is taken as BT.601, as ffmpeg itself does.

    Use as a context manager or iterate directly; leaving early stops ffmpeg.
    Reading fewer frames than the file holds, or an ffmpeg error, raises MediaError.
    """

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int] | None = None,
        pix_fmt: str = "rgb24",
        *,
        start: int | None = None,
        count: int | None = None,
        color_matrix: str | None = None,
        info: VideoInfo | None = None,
        select: Sequence[int] | None = None,
        threads: int | None = None,
    ):
        if pix_fmt not in PIX_FMT_CHANNELS:
            raise ValueError(f"pix_fmt must be one of {', '.join(PIX_FMT_CHANNELS)}")
        self.path = Path(path)
        self.info = info or probe(self.path)
        self.pix_fmt = pix_fmt
        self.width, self.height = size or self.info.size
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"bad frame size {size}")
        if pix_fmt == "yuv420p" and (self.width % 2 or self.height % 2):
            raise ValueError(f"yuv420p frames need an even width and height, not {self.width}x{self.height}")
        total = self.info.num_frames
        first = 0 if start is None else (start + total if start < 0 else start)
        first = max(0, min(first, total))
        last = total if count is None else min(total, first + max(0, count))
        self.start = first
        self.expected = last - first
        # only these frames (counted from ``start``) come out; the rest are decoded and dropped
        self._select = sorted({int(i) for i in select if 0 <= int(i) < self.expected}) if select is not None else None
        if self._select is not None:
            self.expected = len(self._select)
        self.frames_read = 0
        self._channels = PIX_FMT_CHANNELS[pix_fmt]
        if pix_fmt == "yuv420p":
            self._shape: tuple[int, ...] = (self.height * 3 // 2, self.width)
        elif self._channels == 1:
            self._shape = (self.height, self.width)
        else:
            self._shape = (self.height, self.width, self._channels)
        self._frame_bytes = int(np.prod(self._shape))
        self._color_matrix = color_matrix or self.info.color_matrix
        self._color_range = self.info.color_range
        self._proc: subprocess.Popen | None = None
        self._stderr: StderrTail | None = None
        self._closed = False
        # None: ffmpeg's own choice (frame threads on every core), quickest for one clip on its own
        self.threads = threads

    # -- the ffmpeg command -------------------------------------------------
    def _seek_seconds(self) -> float | None:
        """Where to seek before decoding, for a range far into a constant-rate file (else None)."""
        if self.start < SEEK_AFTER_FRAMES or not self.info.cfr:
            return None
        # half a frame early: ffmpeg then drops exactly the frames before ``start``
        return (self.start - 0.5) / float(self.info.fps)

    def _filters(self) -> str:
        chain = []
        first = 0 if self._seek_seconds() is not None else self.start
        span = self.expected if self._select is None else (self._select[-1] + 1 if self._select else 0)
        if first > 0 or span < self.info.num_frames:
            chain.append(f"trim=start_frame={first}:end_frame={first + span}")
            chain.append("setpts=PTS-STARTPTS")
        if self._select is not None:
            chain.append("select=" + any_frame(self._select or [0]).replace(",", "\\,"))
        resize = (self.width, self.height) != self.info.size
        if self.pix_fmt == "yuv420p":
            chain += self._yuv420p_filters(resize)
            return ",".join(chain)
        if self.pix_fmt in _RGB_OUT and self.info.pix_fmt.startswith(_YUV_PREFIXES):
            # zimg converts YUV→RGB without the half-level bias of swscale's fast path
            matrix = _ZIMG_MATRIX.get(self._color_matrix or "", "170m")
            rng = "full" if (self._color_range or "tv") == "pc" else "limited"
            size = f":w={self.width}:h={self.height}:f=bicubic" if resize else ""
            chain.append(f"zscale=min={matrix}:rin={rng}{size}")
            chain.append("format=gbrp")
        else:
            scale = [f"in_color_matrix={self._color_matrix or 'auto'}"]
            if resize:
                scale = [f"w={self.width}", f"h={self.height}", "flags=bicubic", *scale]
            chain.append("scale=" + ":".join(scale))
        chain.append(f"format={self.pix_fmt}")
        return ",".join(chain)

    def _yuv420p_filters(self, resize: bool) -> list[str]:
        """To yuv420p BT.709 limited: nothing when the source already is that (at this size)."""
        matrix = self._color_matrix or "smpte170m"  # untagged is BT.601, as for RGB output
        rng = self._color_range or "tv"
        src = self.info.pix_fmt
        if src == "yuv420p" and matrix == "bt709" and rng == "tv" and not resize:
            return []  # pass-through: the decoder's planes as they are
        size = f":w={self.width}:h={self.height}:f=bicubic" if resize else ""
        if src.startswith(_YUV_PREFIXES):
            zin = _ZIMG_MATRIX.get(matrix, "170m")
            zrange = "full" if rng == "pc" else "limited"
            return [f"zscale=min={zin}:rin={zrange}:m=709:r=limited{size}", "format=yuv420p"]
        # RGB, gray, palette sources: swscale into BT.709 limited
        scale = [f"w={self.width}", f"h={self.height}", "flags=bicubic"] if resize else []
        return ["scale=" + ":".join([*scale, "out_color_matrix=bt709", "out_range=tv"]), "format=yuv420p"]

    def command(self) -> list[str]:
        seek = self._seek_seconds()
        vf = self._filters()
        return ffmpeg_cmd(
            "-v", "error", "-xerror",
            *(("-threads", str(self.threads)) if self.threads else ()),
            *(("-ss", f"{seek:.6f}") if seek is not None else ()),
            "-i", file_arg(self.path),
            "-map", "0:v:0", "-an", "-sn", "-dn",
            *(("-vf", vf) if vf else ()),
            "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", self.pix_fmt, "-",
        )  # fmt: skip

    def _start(self) -> None:
        if self._proc is not None or self._closed:
            return
        stream_settings()
        try:
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            raise MediaError(f"{self.path}: cannot run ffmpeg ({exc})") from exc
        widen_pipe(self._proc.stdout)
        assert self._proc.stderr is not None  # stderr=PIPE
        self._stderr = StderrTail(self._proc.stderr)

    # -- reading ------------------------------------------------------------
    def _read_exact(self, buf: memoryview) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = cast(io.RawIOBase, self._proc.stdout)  # bufsize=0 gives a raw FileIO, which has readinto
        got = 0
        while got < len(buf):
            n = stdout.readinto(buf[got:])
            if not n:
                break
            got += n
        return got

    def read(self) -> np.ndarray | None:
        """The next frame, or None after the last one (then the decode is checked)."""
        if self._closed:
            return None
        self._start()
        if self.frames_read >= self.expected:
            self._finish()
            return None
        frame = np.empty(self._shape, dtype=np.uint8)
        got = self._read_exact(frame.data.cast("B"))
        if got < self._frame_bytes:
            self._finish()  # raises with ffmpeg's reason, or as truncated
            raise MediaError(
                f"{self.path}: truncated: decoded {self.frames_read} of {self.expected} frames"
            )  # pragma: no cover - _finish raises first
        self.frames_read += 1
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        try:
            while True:
                frame = self.read()
                if frame is None:
                    return
                yield frame
        finally:
            if self.frames_read < self.expected:
                self.close()

    def _finish(self) -> None:
        """Reap ffmpeg after the last frame; raise if it failed or fell short."""
        proc, self._proc = self._proc, None
        self._closed = True
        if proc is None:
            return
        assert proc.stdout is not None
        leftover = proc.stdout.read(1)
        proc.stdout.close()
        rc = proc.wait()
        if self._stderr is not None:
            self._stderr.join()
        reason = self._stderr.last_error() if self._stderr is not None else ""
        if rc != 0:
            raise MediaError(f"{self.path}: corrupt or unreadable video after {self.frames_read} frames ({reason})")
        if self.frames_read < self.expected:
            raise MediaError(f"{self.path}: truncated: decoded {self.frames_read} of {self.expected} frames")
        if leftover:
            raise MediaError(f"{self.path}: decoder produced more frames than the {self.expected} counted")

    def close(self) -> None:
        """Stop ffmpeg now (safe to call at any time, and more than once)."""
        proc, self._proc = self._proc, None
        self._closed = True
        if proc is None:
            return
        if proc.stdout is not None:
            proc.stdout.close()
        stop_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> VideoReader:
        self._start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten reader must not leave ffmpeg running
        # __del__ may run on a half-built reader or at interpreter exit, and must never raise.
        with contextlib.suppress(Exception):
            self.close()

    def __len__(self) -> int:
        return self.expected


def read_frames(
    path: str | Path,
    start: int | None = None,
    count: int | None = None,
    *,
    size: tuple[int, int] | None = None,
    pix_fmt: str = "rgb24",
) -> list[np.ndarray]:
    """Decode frames ``start .. start+count-1`` (frame-exact) into a list.

    ``pix_fmt`` as for ``VideoReader`` (``"yuv420p"``: I420 arrays, BT.709 limited).

    ``start`` may be negative to count from the end: ``read_frames(p, -9)`` is
    the last 9 frames. Omit ``count`` to read to the end.
    """
    with VideoReader(path, size=size, pix_fmt=pix_fmt, start=start, count=count) as reader:
        return list(reader)


def verify(path: str | Path) -> VideoInfo:
    """Decode all of ``path`` to nowhere; raise MediaError if any frame is damaged."""
    info = probe(path)
    with VideoReader(path, size=(64, 36), pix_fmt="gray", info=info) as reader:
        for _ in reader:
            pass
    return info
