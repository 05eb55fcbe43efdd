"""Small JPEG thumbnails of chosen film frames, for the review page.

A render grabs them as the assembler writes those frames (``ThumbGrabber``: no second
decode of the film); any frame missing then is reached by seeking (ffmpeg's ``-ss``
before the input decodes only from the nearest keyframe), a few dozen frames per run.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes, temp_path_for
from ..media._proc import file_arg, run_ffmpeg

WIDTH = 160
BATCH = 24  # inputs per ffmpeg run: each input is its own seek, so memory stays small
GAP = 8  # frames apart that are decoded in one run rather than seeked to twice
QUALITY = 85  # JPEG quality of grabbed thumbnails (about ffmpeg's -q:v 5)


def thumb_name(frame: int) -> str:
    return f"f{frame:07d}.jpg"


def runs(frames: Iterable[int], gap: int = GAP) -> list[list[int]]:
    """Sorted frames grouped so that neighbours (a seam's before and after) share one seek."""
    out: list[list[int]] = []
    for f in sorted(set(frames)):
        if out and f - out[-1][-1] <= gap:
            out[-1].append(f)
        else:
            out.append([f])
    return out


def extract_thumbs(film: Path, frames: Iterable[int], fps: int, folder: Path, *,
                   first_frame: int = 0, end_frame: int | None = None, width: int = WIDTH) -> dict[int, str]:
    """Write one ``width``-wide JPEG per film frame into ``folder``; returns frame → file name.

    The file holds film frames [``first_frame``, ``end_frame``) (a partial render's range);
    frames outside it are left out.
    """
    wanted = [f for f in frames if f >= first_frame and (end_frame is None or f < end_frame)]
    folder.mkdir(parents=True, exist_ok=True)
    names: dict[int, str] = {}
    groups = runs(wanted)
    for i in range(0, len(groups), BATCH):
        batch = groups[i:i + BATCH]
        args: list[str] = []
        for run in batch:
            # a quarter frame early: ffmpeg keeps the first frame at or after the seek time,
            # and a time a rounding error late would skip to the next frame
            args += ["-ss", f"{max(0.0, (run[0] - first_frame - 0.25) / fps):.6f}", "-i", file_arg(film)]
        # ffmpeg writes each run's frames under temporary names, renamed into place once it succeeded
        staging = [temp_path_for(folder / f"run{n:04d}.jpg") for n in range(len(batch))]
        for n, (run, out) in enumerate(zip(batch, staging)):
            pattern = out.with_name(out.stem + "-%03d.jpg")
            args += ["-map", f"{n}:v:0", "-frames:v", str(run[-1] - run[0] + 1), "-vf", f"scale={width}:-2",
                     "-q:v", "5", "-start_number", "0", "-y", file_arg(pattern)]
        made = [out.with_name(f"{out.stem}-{f - run[0]:03d}.jpg") for run, out in zip(batch, staging) for f in run]
        try:
            run_ffmpeg(["-loglevel", "error", *args], what="extract review thumbnails", path=film)
            for f, path in zip((f for run in batch for f in run), made):
                if path.is_file() and path.stat().st_size:
                    os.replace(path, folder / thumb_name(f))
                    names[f] = thumb_name(f)
        finally:
            for out in staging:
                for left in folder.glob(out.stem + "-*.jpg"):
                    left.unlink(missing_ok=True)
    return names


class ThumbGrabber:
    """Writes a thumbnail of each wanted film frame into ``folder`` as the assembler hands
    the frame over (I420, before encoding: the film's pixels less the encoder's rounding).
    Called as ``grabber(film_frame, frame)``; ``folder`` is a staging folder the review
    page takes over (``write_review(..., grabbed=folder)``)."""

    def __init__(self, frames: Iterable[int], folder: Path, width: int = WIDTH):
        self.frames = set(frames)
        self.folder = Path(folder)
        self.width = width
        self.made: dict[int, str] = {}

    def __call__(self, film_frame: int, frame: np.ndarray) -> None:
        if film_frame not in self.frames:
            return
        import cv2

        from ..yuv import i420_small_rgb

        small = i420_small_rgb(frame, self.width)
        h, w = small.shape[:2]
        height = max(2, int(round(self.width * h / w / 2)) * 2)  # as ffmpeg's scale=WIDTH:-2
        if small.shape[:2] != (height, self.width):
            small = cv2.resize(small, (self.width, height), interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(small[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        if not ok:
            return  # the page then seeks to this frame in the film instead
        self.restore(film_frame, data.tobytes())

    # what it made of a frame, kept with the film's encoded piece and handed back when a later
    # render takes that piece as it is (``composer.assemble``: no frame to grab then)
    @property
    def tag(self) -> str:
        return f"thumb-{self.width}-q{QUALITY}"

    def saved(self, film_frame: int) -> bytes | None:
        name = self.made.get(film_frame)
        try:
            return (self.folder / name).read_bytes() if name else None
        except OSError:
            return None

    def restore(self, film_frame: int, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.folder / thumb_name(film_frame), data, fsync=False)
        self.made[film_frame] = thumb_name(film_frame)
