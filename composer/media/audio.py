"""Putting a soundtrack under a finished video.

``mux_audio`` copies the video stream untouched and encodes the audio as AAC,
cut or padded with silence to exactly the video's length.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import MediaError
from ._proc import ffmpeg_cmd, file_arg, run_ffmpeg
from .probe import probe


def _has_audio_stream(path: Path) -> bool:
    """Whether ``path`` holds an audio stream (files without video are fine here)."""
    proc = subprocess.run(ffmpeg_cmd("-i", file_arg(path)), capture_output=True, stdin=subprocess.DEVNULL)
    text = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        return False
    return any("Audio:" in line and "Stream #0:" in line for line in text.splitlines())


def audio_filter(
    *, offset_s: float = 0.0, start_s: float = 0.0, volume: float = 1.0,
    fade_in_s: float = 0.0, fade_out_s: float = 0.0, duration_s: float,
) -> str:  # fmt: skip
    """The ``-filter_complex`` chain ``mux_audio`` applies to input 1's audio."""
    steps = [f"atrim=start={offset_s:.6f}", "asetpts=PTS-STARTPTS", "aresample=48000"]
    if volume != 1.0:
        steps.append(f"volume={volume:.6f}")
    if fade_in_s > 0:
        steps.append(f"afade=t=in:st=0:d={fade_in_s:.6f}")
    if start_s > 0:
        steps.append(f"adelay=delays={round(start_s * 1000)}:all=1")
    steps += ["apad", f"atrim=end={duration_s:.6f}"]
    if fade_out_s > 0:
        fade = min(fade_out_s, duration_s)
        steps.append(f"afade=t=out:st={duration_s - fade:.6f}:d={fade:.6f}")
    return "[1:a:0]" + ",".join(steps) + "[aout]"


def mux_audio(
    video_path: str | Path,
    audio_path: str | Path,
    out_path: str | Path,
    *,
    offset_s: float = 0.0,
    start_s: float = 0.0,
    volume: float = 1.0,
    fade_in_s: float = 0.0,
    fade_out_s: float = 0.0,
    duration_s: float | None = None,
    bitrate: str = "192k",
) -> Path:
    """Write ``out_path``: ``video_path``'s video (copied) with ``audio_path`` as its soundtrack.

    ``offset_s`` skips that much of the audio file (its in-point); ``start_s``
    delays the audio on the video's timeline; ``volume`` is a linear gain; fades
    are in seconds. The audio is cut, or padded with silence, to ``duration_s``
    (default: the video's duration), and so is the output.
    """
    video_path, audio_path, out_path = Path(video_path), Path(audio_path), Path(out_path)
    if offset_s < 0 or start_s < 0 or fade_in_s < 0 or fade_out_s < 0 or volume < 0:
        raise ValueError("offset_s, start_s, volume and fades must be >= 0")
    if out_path.resolve() in (video_path.resolve(), audio_path.resolve()):
        raise MediaError(f"{out_path}: output must differ from the inputs")
    if not audio_path.is_file():
        raise MediaError(f"{audio_path}: no such audio file")
    if not _has_audio_stream(audio_path):
        raise MediaError(f"{audio_path}: no audio stream")
    if duration_s is None:
        duration_s = probe(video_path).duration
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    graph = audio_filter(
        offset_s=offset_s, start_s=start_s, volume=volume,
        fade_in_s=fade_in_s, fade_out_s=fade_out_s, duration_s=duration_s,
    )  # fmt: skip
    args = [
        "-v", "error", "-y",
        "-i", file_arg(video_path), "-i", file_arg(audio_path),
        "-filter_complex", graph,
        "-map", "0:v:0", "-map", "[aout]",
        "-c:v", "copy", "-c:a", "aac", "-b:a", bitrate,
        "-t", f"{duration_s:.6f}",
        "-movflags", "+faststart",
        file_arg(out_path),
    ]  # fmt: skip
    run_ffmpeg(args, what="mux audio", path=out_path)
    return out_path
