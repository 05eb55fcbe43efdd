"""Media I/O through ffmpeg processes: probe, decode, encode, images, audio.

Everything runs the ffmpeg binary from ``ffmpeg_exe()`` in a subprocess (never a
shell); failures raise ``composer.errors.MediaError`` naming the file.
"""
from __future__ import annotations

from ._proc import ffmpeg_cmd, ffmpeg_exe, file_arg, run_ffmpeg
from .audio import mux_audio
from .image import decode_data_uri, fit_image, image_from_bytes, load_image, save_image
from .probe import VideoInfo, parse_rate, probe
from .reader import VideoReader, read_frames, verify
from .writer import VideoWriter, atomic_output, fps_arg, write_clip

__all__ = [
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "atomic_output",
    "decode_data_uri",
    "ffmpeg_cmd",
    "ffmpeg_exe",
    "file_arg",
    "fit_image",
    "fps_arg",
    "image_from_bytes",
    "load_image",
    "mux_audio",
    "parse_rate",
    "probe",
    "read_frames",
    "run_ffmpeg",
    "save_image",
    "verify",
    "write_clip",
]
