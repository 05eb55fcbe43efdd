"""Process-wide settings for streaming frames through numpy and OpenCV, set once on first use.

- The allocator: a frame is hundreds of KB, above glibc's mmap threshold, so without this every
  frame array is a fresh mapping, zero-filled page by page and unmapped again.
- OpenCV's own thread pool: on a plane of a frame its fork/join costs more than it saves (measured
  on 480p I420 frames: 1.05 ms of CPU a frame with the pool, 0.56 ms without), and the decoders and
  the encoder already keep every core busy. Work that wants parallel OpenCV runs its own threads.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling on 64-bit: a 4K I420 frame (12 MB) still comes from the heap
TRIM_THRESHOLD = 128 << 20  # how much freed heap is kept for the next frames before it goes back
CV_THREADS_ENV = "OPENCV_FOR_THREADS_NUM"  # OpenCV's own setting: when a user has set it, it stands


@functools.cache
def stream_settings() -> dict[str, bool]:
    """Apply both settings (once); which of them took effect."""
    return {"allocator": _keep_frame_memory(), "opencv_threads": _serial_opencv()}


def _keep_frame_memory() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: nothing to tune
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok


def _serial_opencv() -> bool:
    if os.environ.get(CV_THREADS_ENV):
        return False
    import cv2

    cv2.setNumThreads(1)
    return cv2.getNumThreads() == 1
