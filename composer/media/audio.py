"""Soundtracks: checking an audio file, and putting it under a finished video.

``check_audio`` reads a file's header and decodes its first second (cheap, for
``validate``); ``mux_audio`` copies the video stream untouched and encodes the
audio as AAC, cut or padded with silence to exactly the video's length.
"""
from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import MediaError
from ._proc import ffmpeg_cmd, file_arg, last_line, run_ffmpeg
from .probe import _parse_header, file_problem, probe


@dataclass(frozen=True)
class AudioInfo:
    """What ``check_audio`` learnt: codec, rate, and the container's duration when it states one."""

    codec: str
    sample_rate: int | None
    duration: float | None


RATE = 48000  # the soundtrack's sample rate in every film we write

_IMAGE_CODECS = {"png", "mjpeg", "bmp", "webp", "gif", "tiff", "jpeg2000"}


def audio_problem(stderr: str, returncode: int) -> str | None:
    """Why an ffmpeg ``-i FILE -map 0:a:0`` run says the file is no usable soundtrack (None when it is)."""
    facts = _parse_header(stderr)
    if "Input #0" not in stderr:
        detail = last_line(stderr)
        return f"not a readable audio file ({detail})" if detail else "not a readable audio file"
    moving = [line for line in stderr.splitlines()
              if re.match(r"\s*Stream #0:\d+\S*: Video:", line) and "attached pic" not in line]
    if not facts["has_audio"]:
        video = facts["video"] or {}
        if video.get("codec") in _IMAGE_CODECS:
            return "is an image, not audio"
        if moving:
            return "is a video file with no audio stream"
        return "holds no audio stream"
    if returncode != 0:
        return f"audio does not decode ({last_line(stderr)})"
    return None


def _is_text(head: bytes) -> bool:
    """True for bytes that read as text (ffmpeg would guess a demuxer from the name and say something odd)."""
    if b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def check_audio(path: str | Path) -> AudioInfo:
    """Check that ``path`` is a soundtrack ffmpeg can decode: header plus its first second.

    Raises MediaError naming the file (missing, a directory or device, empty,
    corrupt, or a file with no audio stream). A video file with sound is fine:
    its audio is what ``mux_audio`` uses.
    """
    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise MediaError(f"{path}: {problem}")
    try:
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if _is_text(head):
        raise MediaError(f"{path}: not audio (a text file)")
    cmd = ffmpeg_cmd("-xerror", "-i", file_arg(path), "-map", "0:a:0", "-t", "1", "-f", "null", "-")
    try:
        proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
                              start_new_session=True)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MediaError(f"{path}: cannot check with ffmpeg ({exc})") from exc
    stderr = proc.stderr.decode("utf-8", "replace")
    problem = audio_problem(stderr, proc.returncode)
    if problem:
        raise MediaError(f"{path}: {problem}")
    facts = _parse_header(stderr)
    return AudioInfo(codec=facts.get("audio_codec") or "", sample_rate=facts.get("sample_rate"),
                     duration=facts.get("container_duration"))


def _has_audio_stream(path: Path) -> bool:
    """Whether ``path`` holds an audio stream (files without video are fine here)."""
    proc = subprocess.run(ffmpeg_cmd("-i", file_arg(path)), capture_output=True, stdin=subprocess.DEVNULL,
                          start_new_session=True)
    text = proc.stderr.decode("utf-8", "replace")
    if "Input #0" not in text:
        return False
    return any("Audio:" in line and "Stream #0:" in line for line in text.splitlines())


def audio_filter(
    *, offset_s: float = 0.0, start_s: float = 0.0, volume: float = 1.0,
    fade_in_s: float = 0.0, fade_out_s: float = 0.0, duration_s: float,
    spans_s: Sequence[tuple[float, float]] | None = None,
) -> str:  # fmt: skip
    """The ``-filter_complex`` chain ``mux_audio`` applies to input 1's audio.

    Fades sit at the ends of the ``duration_s`` timeline; ``spans_s`` then cuts
    pieces of it out, joined by hard cuts (a part of a film keeps the film's audio as is).
    """
    steps = [f"atrim=start={offset_s:.6f}", "asetpts=PTS-STARTPTS", f"aresample={RATE}"]
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
    graph = "[1:a:0]" + ",".join(steps)
    if not spans_s:
        return graph + "[aout]"
    # cut on samples, not timestamps: the pieces then add up to exactly the video's length
    cuts = [f"atrim=start_sample={round(a * RATE)}:end_sample={round(b * RATE)},asetpts=PTS-STARTPTS"
            for a, b in spans_s]
    if len(cuts) == 1:
        return f"{graph},{cuts[0]}[aout]"
    n = len(cuts)
    split = f"{graph},asplit={n}" + "".join(f"[s{i}]" for i in range(n))
    pieces = [f"[s{i}]{cut}[p{i}]" for i, cut in enumerate(cuts)]
    joined = "".join(f"[p{i}]" for i in range(n)) + f"concat=n={n}:v=0:a=1[aout]"
    return ";".join([split, *pieces, joined])


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
    spans_s: Sequence[tuple[float, float]] | None = None,
    bitrate: str = "192k",
) -> Path:
    """Write ``out_path``: ``video_path``'s video (copied) with ``audio_path`` as its soundtrack.

    ``offset_s`` skips that much of the audio file (its in-point); ``start_s``
    delays the audio on the video's timeline; ``volume`` is a linear gain; fades
    are in seconds. The audio is cut, or padded with silence, to ``duration_s``
    (default: the video's duration), and so is the output. ``spans_s``: the output
    carries only these ``(start, end)`` pieces of that timeline (seconds, fades
    included where they fall), one after another with hard cuts; the output's
    length is then their sum.
    """
    video_path, audio_path, out_path = Path(video_path), Path(audio_path), Path(out_path)
    if offset_s < 0 or start_s < 0 or fade_in_s < 0 or fade_out_s < 0 or volume < 0:
        raise ValueError("offset_s, start_s, volume and fades must be >= 0")
    if out_path.resolve() in (video_path.resolve(), audio_path.resolve()):
        raise MediaError(f"{out_path}: output must differ from the inputs")
    problem = file_problem(audio_path)
    if problem:
        raise MediaError(f"{audio_path}: {'no such audio file' if problem == 'not found' else problem}")
    if not _has_audio_stream(audio_path):
        raise MediaError(f"{audio_path}: no audio stream")
    if duration_s is None:
        duration_s = probe(video_path).duration
    if duration_s <= 0:
        raise ValueError("duration_s must be > 0")
    if spans_s is not None and any(not 0 <= a < b <= duration_s + 1e-9 for a, b in spans_s):
        raise ValueError("spans_s must be (start, end) pieces of 0..duration_s, start < end")
    length = sum(b - a for a, b in spans_s) if spans_s else duration_s
    graph = audio_filter(
        offset_s=offset_s, start_s=start_s, volume=volume,
        fade_in_s=fade_in_s, fade_out_s=fade_out_s, duration_s=duration_s, spans_s=spans_s,
    )  # fmt: skip
    args = [
        "-v", "error", "-y",
        "-i", file_arg(video_path), "-i", file_arg(audio_path),
        "-filter_complex", graph,
        "-map", "0:v:0", "-map", "[aout]",
        "-c:v", "copy", "-c:a", "aac", "-b:a", bitrate,
        "-t", f"{length:.6f}",
        "-movflags", "+faststart",
        file_arg(out_path),
    ]  # fmt: skip
    run_ffmpeg(args, what="mux audio", path=out_path)
    return out_path
