"""Joining encoded clips end to end by stream copy (ffmpeg's concat demuxer).

The clips must share codec, size, frame rate and pixel format, each starting on a
keyframe (``VideoWriter(split_at=...)`` writes such clips); nothing is decoded.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import MediaError
from ._proc import file_arg, run_ffmpeg
from .writer import NoSpaceError


def _quoted(path: Path) -> str:
    # the concat list's own quoting: a ' inside a name is written '\''
    return "file '" + str(path.absolute()).replace("'", "'\\''") + "'"


def join_clips(clips: Sequence[Path], output: Path) -> Path:
    """Write ``clips`` one after another into ``output`` (stream copy, faststart for MP4/MOV)."""
    if not clips:
        raise MediaError(f"{output}: nothing to join")
    fd, name = tempfile.mkstemp(prefix=".join-", suffix=".txt", dir=Path(output).parent)
    listing = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write("ffconcat version 1.0\n" + "".join(_quoted(Path(c)) + "\n" for c in clips))
        args = ["-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", file_arg(listing),
                "-map", "0:v:0", "-c", "copy"]
        if output.suffix.lower() in (".mp4", ".mov", ".m4v"):
            args += ["-movflags", "+faststart"]
        try:
            run_ffmpeg([*args, file_arg(output)], what="join the film's pieces", path=output)
        except MediaError as exc:
            if "No space left on device" in str(exc):
                raise NoSpaceError(output, str(exc).rsplit(": ", 1)[-1]) from exc
            raise
    finally:
        listing.unlink(missing_ok=True)
    return output
