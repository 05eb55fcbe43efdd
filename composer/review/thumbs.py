"""Small JPEG thumbnails of chosen film frames, for the review page.

Each frame is reached by seeking (ffmpeg's ``-ss`` before the input decodes only
from the nearest keyframe), a few dozen frames per ffmpeg run, never the whole film.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..atomic import temp_path_for
from ..media._proc import file_arg, run_ffmpeg

WIDTH = 160
BATCH = 24  # inputs per ffmpeg run: each input is its own seek, so memory stays small


def thumb_name(frame: int) -> str:
    return f"f{frame:07d}.jpg"


def extract_thumbs(film: Path, frames: Iterable[int], fps: int, folder: Path, *,
                   first_frame: int = 0, end_frame: int | None = None, width: int = WIDTH) -> dict[int, str]:
    """Write one ``width``-wide JPEG per film frame into ``folder``; returns frame → file name.

    The file holds film frames [``first_frame``, ``end_frame``) (a partial render's range);
    frames outside it are left out.
    """
    wanted = sorted({f for f in frames if f >= first_frame and (end_frame is None or f < end_frame)})
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[int, str] = {}
    for i in range(0, len(wanted), BATCH):
        batch = wanted[i:i + BATCH]
        args: list[str] = []
        for f in batch:
            # a quarter frame early: ffmpeg keeps the first frame at or after the seek time,
            # and a time a rounding error late would skip to the next frame
            args += ["-ss", f"{max(0.0, (f - first_frame - 0.25) / fps):.6f}", "-i", file_arg(film)]
        # ffmpeg writes each under a temporary name, renamed into place once the run succeeded
        staging = [temp_path_for(folder / thumb_name(f)) for f in batch]
        for n, out in enumerate(staging):
            args += ["-map", f"{n}:v:0", "-frames:v", "1", "-vf", f"scale={width}:-2", "-q:v", "5",
                     "-update", "1", "-y", file_arg(out)]
        try:
            run_ffmpeg(["-loglevel", "error", *args], what="extract review thumbnails", path=film)
            for f, out in zip(batch, staging):
                if out.is_file() and out.stat().st_size:
                    os.replace(out, folder / thumb_name(f))
                    names[f] = thumb_name(f)
        finally:
            for out in staging:
                out.unlink(missing_ok=True)
    return names
