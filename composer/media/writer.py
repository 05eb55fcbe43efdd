"""Encoding numpy frames into a video file through an ffmpeg pipe.

``VideoWriter`` takes RGB uint8 frames (or I420 yuv420p frames, BT.709 limited) and
writes H.264 yuv420p with BT.709 tags (or ProRes / DNxHR); ``atomic_output`` and
``write_clip`` are helpers.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import numpy as np

from ..atomic import atomic_path
from ..errors import MediaError
from .tuning import stream_settings
from ._proc import StderrTail, any_frame, ffmpeg_cmd, file_arg, stop_process, widen_pipe
from .audio import mux_audio

# Output settings per codec name: encoder arguments and the default pixel format.
CODECS: dict[str, tuple[list[str], str]] = {
    "libx264": (["-c:v", "libx264"], "yuv420p"),
    "h264": (["-c:v", "libx264"], "yuv420p"),
    "libx265": (["-c:v", "libx265", "-tag:v", "hvc1"], "yuv420p"),
    "prores": (["-c:v", "prores_ks", "-profile:v", "3", "-vendor", "apl0"], "yuv422p10le"),
    "dnxhr": (["-c:v", "dnxhd", "-profile:v", "dnxhr_hq"], "yuv422p"),
}
_CRF_CODECS = ("libx264", "h264", "libx265")
_INPUT_CHANNELS = {"rgb24": 3, "bgr24": 3, "rgba": 4, "gray": 1, "yuv420p": 1}
# How I420 input is tagged, so ffmpeg neither guesses BT.601 nor converts it.
_BT709_TV = (
    "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
)  # fmt: skip


def fps_arg(fps: float | int | Fraction | str) -> str:
    """A frame rate as ffmpeg wants it: ``24``, ``30000/1001``."""
    if isinstance(fps, str):
        return fps
    frac = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
    if frac <= 0:
        raise ValueError(f"frame rate must be > 0, not {fps}")
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


class VideoWriter:
    """Encode RGB uint8 frames (HxWx3) into ``path``.

    H.264 output is yuv420p, BT.709 matrix with BT.709 primaries/transfer tags,
    limited range, ``+faststart``. ``codec`` may also be ``prores`` (prores_ks
    profile 3, yuv422p10le) or ``dnxhr`` (dnxhr_hq, yuv422p) for editors.
    ``audio`` is an optional audio file muxed in (AAC) on close, padded or cut
    to exactly the video's length (a stream-copy second pass).
    ``threads`` pins the encoder's thread count (fix it when output bytes must be
    identical across machines). ``gop`` sets the keyframe interval. ``split_at`` (frame
    numbers) writes one file per stretch instead, ``path`` being a ``%04d`` pattern: each
    file starts on an IDR frame, decodes alone and joins the others by stream copy.

    ``input_pix_fmt="yuv420p"`` takes I420 frames as ``composer.media.VideoReader``
    hands them out: one uint8 array of shape ``(H*3//2, W)``, BT.709 limited range (even
    sizes only). They are encoded as they are when the output is yuv420p (no filter);
    ProRes / DNxHR output resamples the chroma with zscale (same matrix, same range).

    Use as a context manager: a clean exit finishes the file, an exception kills
    ffmpeg and deletes the incomplete output.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float | int | Fraction | str,
        *,
        codec: str = "libx264",
        crf: int | None = 18,
        preset: str = "veryfast",
        pix_fmt: str | None = None,
        audio: str | Path | None = None,
        input_pix_fmt: str = "rgb24",
        threads: int | None = None,
        gop: int | None = None,
        extra_args: Sequence[str] = (),
        split_at: Sequence[int] = (),
    ):
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}")
        if input_pix_fmt not in _INPUT_CHANNELS:
            raise ValueError(f"input_pix_fmt must be one of {', '.join(_INPUT_CHANNELS)}")
        if width <= 0 or height <= 0:
            raise ValueError(f"bad frame size {width}x{height}")
        if codec in _CRF_CODECS and (width % 2 or height % 2) and (pix_fmt or "yuv420p") == "yuv420p":
            raise ValueError(f"{codec} yuv420p needs even width and height, not {width}x{height}")
        if input_pix_fmt == "yuv420p" and (width % 2 or height % 2):
            raise ValueError(f"yuv420p input needs even width and height, not {width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.fps = fps_arg(fps)
        self.codec = codec
        self.crf = crf
        self.preset = preset
        self.pix_fmt = pix_fmt or CODECS[codec][1]
        self.audio = Path(audio) if audio is not None else None
        # with audio, video is encoded beside the output first, then muxed to the exact length
        self._encode_path = (
            self.path.with_name(f".{self.path.name}.video-{os.getpid()}-{secrets.token_hex(3)}{self.path.suffix}")
            if self.audio is not None
            else self.path
        )
        self.input_pix_fmt = input_pix_fmt
        self.threads = threads
        self.gop = gop
        self.extra_args = list(extra_args)
        self.split_at = sorted({int(n) for n in split_at})
        if self.split_at and (self.audio is not None or "%04d" not in self.path.name or self.split_at[0] <= 0):
            raise ValueError("split_at needs a path with %04d, frame numbers > 0 and no audio")
        self.frames_written = 0
        if input_pix_fmt == "yuv420p":
            self._shape: tuple[int, ...] = (self.height * 3 // 2, self.width)
        elif input_pix_fmt == "gray":
            self._shape = (self.height, self.width)
        else:
            self._shape = (self.height, self.width, _INPUT_CHANNELS[input_pix_fmt])
        self._proc: subprocess.Popen | None = None
        self._stderr: StderrTail | None = None
        self._done = False

    def command(self) -> list[str]:
        yuv_in = self.input_pix_fmt == "yuv420p"
        args = [
            "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", self.input_pix_fmt,
            "-s", f"{self.width}x{self.height}", "-r", self.fps,
            # I420 input is BT.709 limited: say so, or ffmpeg takes it for BT.601 and converts
            *(_BT709_TV if yuv_in else ()),
            "-i", "-",
        ]  # fmt: skip
        tags = "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv"
        if yuv_in and self.pix_fmt == "yuv420p":
            vf = None  # the planes go to the encoder untouched
        elif yuv_in:
            # chroma resampling / bit depth only: same matrix and range in and out
            vf = f"zscale=min=709:rin=limited:m=709:r=limited,format={self.pix_fmt},{tags}"
        else:
            # zimg (zscale) for RGB→YUV: accurate rounding; then tag the frames BT.709, limited range
            vf = f"zscale=m=709:r=limited,format={self.pix_fmt},{tags}"
        args += ["-map", "0:v:0", *(("-vf", vf) if vf else ())]
        args += CODECS[self.codec][0]
        if self.codec in _CRF_CODECS:
            if self.crf is not None:
                args += ["-crf", str(self.crf)]
            args += ["-preset", self.preset]
        if self.threads is not None:
            args += ["-threads", str(self.threads)]
        if self.gop is not None:
            args += ["-g", str(self.gop)]
        args += [
            "-pix_fmt", self.pix_fmt,
            "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
            "-r", self.fps,
        ]  # fmt: skip
        faststart = self.path.suffix.lower() in (".mp4", ".mov", ".m4v")
        if self.split_at:
            # one file per stretch: each starts on a forced IDR frame (a closed GOP), so the files
            # decode alone and join by stream copy; the segment muxer cuts at exactly those frames
            numbers = ",".join(str(n) for n in self.split_at)
            args += ["-force_key_frames", "expr:" + any_frame(list(self.split_at))]
            if self.codec in _CRF_CODECS:
                args += ["-forced-idr", "1"]
            args += ["-f", "segment", "-segment_frames", numbers, "-reset_timestamps", "1",
                     "-segment_format", "mov" if self.path.suffix.lower() == ".mov" else "mp4"]
            if faststart:
                args += ["-segment_format_options", "movflags=+faststart"]
        elif faststart:
            args += ["-movflags", "+faststart"]
        args += self.extra_args
        args.append(file_arg(self._encode_path))
        return ffmpeg_cmd(*args)

    def open(self) -> VideoWriter:
        if self._proc is not None:
            return self
        if self._done:
            raise MediaError(f"{self.path}: writer already closed")
        if self.audio is not None and not self.audio.is_file():
            raise MediaError(f"{self.audio}: no such file")
        stream_settings()
        try:
            self._proc = subprocess.Popen(
                self.command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0,
                start_new_session=True,
            )
        except OSError as exc:
            raise MediaError(f"{self.path}: cannot run ffmpeg ({exc})") from exc
        widen_pipe(self._proc.stdin)
        assert self._proc.stderr is not None  # stderr=PIPE
        self._stderr = StderrTail(self._proc.stderr)
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one frame (uint8, HxWx3 for rgb24 input, (H*3//2)xW for yuv420p)."""
        if frame.dtype != np.uint8 or frame.shape != self._shape:
            raise ValueError(f"frame must be uint8 {self._shape}, got {frame.dtype} {frame.shape}")
        self.open()
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).data.cast("B"))
        except (BrokenPipeError, ValueError, OSError) as exc:
            reason = self._reap_after_failure()
            if _no_space(reason, exc):
                self._remove_outputs()
                raise NoSpaceError(self.path, reason) from exc
            raise MediaError(f"{self.path}: encoder stopped after {self.frames_written} frames ({reason})") from exc
        self.frames_written += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> int:
        for frame in frames:
            self.write(frame)
        return self.frames_written

    def _reap_after_failure(self) -> str:
        proc, self._proc = self._proc, None
        self._done = True
        if proc is not None:
            with contextlib.suppress(OSError, ValueError):
                proc.stdin.close()  # type: ignore[union-attr]
            stop_process(proc)
        if self._stderr is not None:
            self._stderr.join()
            return self._stderr.last_error()
        return "ffmpeg exited"

    def close(self) -> Path:
        """Finish the file; raise MediaError if ffmpeg failed or no frame was written."""
        if self._done:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise MediaError(f"{self.path}: no frames written")
        proc, self._proc = self._proc, None
        self._done = True
        assert proc is not None and proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, OSError):
            proc.stdin.close()
        rc = proc.wait()
        if self._stderr is not None:
            self._stderr.join()
        if rc != 0:
            reason = self._stderr.last_error() if self._stderr is not None else "ffmpeg failed"
            self._remove_outputs()
            if _no_space(reason):
                raise NoSpaceError(self.path, reason)
            raise MediaError(f"{self.path}: encoding failed ({reason})")
        if self.audio is not None:
            try:
                duration = float(self.frames_written / Fraction(self.fps))
                mux_audio(self._encode_path, self.audio, self.path, duration_s=duration)
            except BaseException:
                self._remove_outputs()
                raise
            finally:
                with contextlib.suppress(OSError):
                    self._encode_path.unlink()
        return self.path

    def _remove_outputs(self) -> None:
        for path in {self.path, self._encode_path}:
            with contextlib.suppress(OSError):
                path.unlink()

    def abort(self) -> None:
        """Stop ffmpeg and delete the incomplete output."""
        self._reap_after_failure()
        self._remove_outputs()

    def __enter__(self) -> VideoWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        if getattr(self, "_proc", None) is not None:  # None too when __init__ refused its arguments
            with contextlib.suppress(Exception):  # __del__ may run at interpreter exit and must never raise
                self.abort()


class NoSpaceError(MediaError):
    """The disk filled up while writing ``path``: one line naming it and ffmpeg's words."""

    def __init__(self, path: str | Path, detail: str) -> None:
        self.path, self.detail = Path(path), detail
        super().__init__(f"no space left on device writing {self.path} ({detail})")


def _no_space(reason: str, exc: BaseException | None = None) -> bool:
    return "No space left on device" in reason or getattr(exc, "errno", None) == errno.ENOSPC


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it into place on success.

    The temporary name keeps the extension (``.film.mp4.partial-<pid>-<rand>.mp4``) so
    ffmpeg picks the right muxer. On an exception it is deleted and ``path`` is
    left untouched.
    """
    try:
        with atomic_path(path) as tmp:
            yield tmp
            if not tmp.is_file():
                raise MediaError(f"{Path(path)}: nothing was written")
    except NoSpaceError as exc:
        # name the user's file, not the temporary beside it (which atomic_path removed)
        raise NoSpaceError(path, f"{exc.detail}; {Path(path).parent} is full, the existing file is untouched") from exc
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        raise NoSpaceError(path, f"{Path(path).parent} is full, the existing file is untouched") from exc
    except MediaError as exc:
        # ffmpeg's failures name the file it was given: the temporary (and the files made beside
        # it). The user gave ``path``: name that, whatever the message.
        exc.args = (user_named(str(exc), path), *exc.args[1:])
        raise


def user_named(message: str, path: str | Path) -> str:
    """``message`` with every temporary name ``atomic_output`` makes for ``path`` (and the
    files derived from it) replaced by ``path`` itself."""
    path = Path(path)
    temporary = re.compile(r"(?:file:)?[^\s'\"()\[\]]*?\." + re.escape(path.name) + r"\.partial-[\w.-]*")
    return temporary.sub(lambda _: str(path), message)


def write_clip(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: float | int | Fraction | str,
    *,
    crf: int = 12,
    preset: str = "veryfast",
    threads: int | None = None,
    pix_fmt: str = "rgb24",
) -> int:
    """Encode ``frames`` (uint8, all one size: RGB, or I420 with ``pix_fmt="yuv420p"``) to
    ``path`` at high quality; return the count.

    Made for conditioning clips (a segment's last frames): crf 12 H.264 yuv420p,
    so the frames survive the round trip within a level or two.
    """
    iterator = iter(frames)
    try:
        first = next(iterator)
    except StopIteration:
        raise MediaError(f"{path}: no frames to write") from None
    height, width = first.shape[:2]
    if pix_fmt == "yuv420p":
        height = height * 2 // 3  # an I420 frame stacks its chroma planes under the luma
    with VideoWriter(path, width, height, fps, crf=crf, preset=preset, threads=threads,
                     input_pix_fmt=pix_fmt) as writer:
        writer.write(first)
        writer.write_all(iterator)
    return writer.frames_written
