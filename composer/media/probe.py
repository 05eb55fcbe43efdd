"""Stream facts about a media file, without ffprobe.

imageio-ffmpeg ships no ffprobe, so ``probe`` reads ffmpeg's own ``-i`` report
and counts packets in one stream-copy pass (exact frame count, exact rate).
"""
from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import MediaError
from ._proc import ffmpeg_cmd, file_arg, last_line

# Common NTSC-style rates that ffmpeg prints rounded (23.98 → 24000/1001).
_NTSC = {round(n * 1000 / 1001, 2): Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120)}

_MATRICES = ("bt709", "bt470bg", "smpte170m", "bt2020nc", "bt2020c", "smpte240m", "fcc", "gbr", "ycgco", "bt601")


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learnt about a file's first video stream (and whether it has audio)."""

    path: Path
    width: int
    height: int
    fps: Fraction
    num_frames: int
    duration: float  # seconds of video (frames × frame duration)
    has_audio: bool
    codec: str
    pix_fmt: str = ""
    color_matrix: str | None = None  # "bt709", "smpte170m", … or None when untagged
    color_range: str | None = None  # "tv" (limited), "pc" (full) or None when untagged
    container_duration: float | None = None
    audio_codec: str | None = None
    sample_rate: int | None = None
    rotation: int = 0
    cfr: bool = True  # every frame lasts the same time (frame n starts at n / fps)

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def frame_rate(self) -> float:
        return float(self.fps)


def file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a media file, or None for a non-empty regular file.

    Only ``stat`` is used, so a FIFO is never opened (which would block) and a
    path too long for the filesystem is an answer, not an OSError.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "not found"
    except NotADirectoryError:
        return "not found (a part of the path is a file, not a folder)"
    except PermissionError:
        return "permission denied"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return f"path too long for the filesystem ({len(str(path))} characters)"
        return f"cannot be read ({exc.strerror or exc})"
    except ValueError as exc:  # an embedded NUL byte
        return f"not a usable path ({exc})"
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if stat.S_ISFIFO(mode):
        return "is a named pipe (FIFO), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if st.st_size == 0:
        return "is empty (0 bytes)"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def parse_rate(text: str) -> Fraction:
    """``"24"``, ``"23.98"``, ``"30000/1001"``, ``"12.5k"`` → an exact Fraction."""
    text = text.strip()
    if "/" in text:
        num, den = text.split("/", 1)
        return Fraction(int(num), int(den))
    mult = 1000 if text.endswith("k") else 1
    value = float(text.rstrip("k")) * mult
    if round(value, 2) in _NTSC:
        return _NTSC[round(value, 2)]
    return Fraction(value).limit_denominator(1001)


def _parse_header(stderr: str) -> dict:
    """Facts from the ``Input #0`` block of ffmpeg's report."""
    facts: dict = {"has_audio": False, "video": None}
    in_input = False
    for line in stderr.splitlines():
        stripped = line.strip()
        if stripped.startswith("Input #0"):
            in_input = True
            continue
        if stripped.startswith(("Output #", "Stream mapping:")):
            break
        if not in_input:
            continue
        m = re.match(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", stripped)
        if m:
            h, mi, s = m.groups()
            facts["container_duration"] = int(h) * 3600 + int(mi) * 60 + float(s)
        m = re.search(r"rotation of (-?\d+(?:\.\d+)?) degrees", stripped)
        if m and facts["video"] is not None and "rotation" not in facts:
            facts["rotation"] = int(round(float(m.group(1)))) % 360
        m = re.match(r"Stream #0:\d+\S*: (Video|Audio): (.*)$", stripped)
        if not m:
            continue
        kind, rest = m.groups()
        if kind == "Audio":
            if not facts["has_audio"]:
                facts["has_audio"] = True
                facts["audio_codec"] = rest.split()[0].rstrip(",")
                hz = re.search(r"(\d+) Hz", rest)
                facts["sample_rate"] = int(hz.group(1)) if hz else None
            continue
        if facts["video"] is not None:
            continue
        video: dict = {"codec": rest.split()[0].rstrip(",")}
        size = re.search(r"(?:^|,\s)(\d{1,5})x(\d{1,5})(?=[\s,\[]|$)", rest)
        if size:
            video["width"], video["height"] = int(size.group(1)), int(size.group(2))
        pix = re.search(r",\s([a-z0-9_]+)(?:\(([^)]*)\))?,\s", rest)
        if pix:
            video["pix_fmt"] = pix.group(1)
            tokens = [t.strip() for t in (pix.group(2) or "").replace("/", ",").split(",")]
            video["color_matrix"] = next((t for t in tokens if t in _MATRICES), None)
            video["color_range"] = next((t for t in tokens if t in ("tv", "pc")), None)
            if video["color_range"] is None and pix.group(1).startswith("yuvj"):
                video["color_range"] = "pc"
        rate = re.search(r"([\d.]+k?) fps", rest) or re.search(r"([\d.]+k?) tbr", rest)
        if rate:
            video["fps"] = parse_rate(rate.group(1))
        facts["video"] = video
    return facts


def _parse_packets(stdout: str) -> tuple[int, Fraction | None, Fraction | None, bool]:
    """(packet count, frame duration, total duration, constant rate) from ``-f framecrc`` output."""
    tb = None
    count = 0
    durations: Counter[int] = Counter()
    pts_min = pts_end = None
    for line in stdout.splitlines():
        if line.startswith("#tb 0:"):
            num, den = line.split(":", 1)[1].strip().split("/")
            tb = Fraction(int(num), int(den))
            continue
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 5 or parts[0] != "0":
            continue
        count += 1
        try:
            pts, dur = int(parts[2]), int(parts[3])
        except ValueError:
            continue
        if dur > 0:
            durations[dur] += 1
        pts_min = pts if pts_min is None else min(pts_min, pts)
        pts_end = pts + dur if pts_end is None else max(pts_end, pts + dur)
    if tb is None or not durations:
        return count, None, None, False
    mode, mode_count = durations.most_common(1)[0]
    frame_dur = tb * mode
    total = tb * (pts_end - pts_min) if pts_end is not None and pts_min is not None else None
    cfr = mode_count >= count - 1 and total is not None and abs(total - frame_dur * count) <= frame_dur
    return count, frame_dur, total, cfr


def probe(path: str | Path) -> VideoInfo:
    """Size, exact rate, exact frame count, duration, audio and codec of ``path``'s first video stream.

    Raises MediaError naming the file for a missing, unreadable, truncated or
    video-less file.
    """
    path = Path(path)
    problem = file_problem(path)
    if problem == "not found":
        raise MediaError(f"{path}: no such file")
    if problem:
        raise MediaError(f"{path}: {problem}")
    cmd = ffmpeg_cmd("-xerror", "-i", file_arg(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-")
    try:
        proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise MediaError(f"{path}: cannot run ffmpeg ({exc})") from exc
    stderr = proc.stderr.decode("utf-8", "replace")
    facts = _parse_header(stderr)
    if proc.returncode != 0:
        if "Input #0" in stderr and facts["video"] is None:
            raise MediaError(f"{path}: no video stream")
        raise MediaError(f"{path}: unreadable or corrupt media ({last_line(stderr)})")
    video = facts["video"]
    if video is None or "width" not in video:
        raise MediaError(f"{path}: no video stream")
    count, frame_dur, total, cfr = _parse_packets(proc.stdout.decode("ascii", "replace"))
    if count == 0:
        raise MediaError(f"{path}: video stream holds no frames")
    fps = video.get("fps")
    if frame_dur:
        measured = Fraction(1) / frame_dur
        # Trust the packet timing unless the header agrees on a "nicer" fraction.
        fps = fps if fps is not None and abs(float(fps - measured)) < 1e-3 else measured
    if fps is None or fps <= 0:
        raise MediaError(f"{path}: cannot tell the frame rate")
    duration = float(total) if total else count / float(fps)
    width, height = video["width"], video["height"]
    rotation = facts.get("rotation", 0)
    if rotation in (90, 270):  # ffmpeg autorotates when decoding
        width, height = height, width
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        num_frames=count,
        duration=duration,
        has_audio=facts["has_audio"],
        codec=video["codec"],
        pix_fmt=video.get("pix_fmt", ""),
        color_matrix=video.get("color_matrix"),
        color_range=video.get("color_range"),
        container_duration=facts.get("container_duration"),
        audio_codec=facts.get("audio_codec"),
        sample_rate=facts.get("sample_rate"),
        rotation=rotation,
        cfr=cfr,
    )
