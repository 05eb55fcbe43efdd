"""Finding and running the ffmpeg binary.

``ffmpeg_exe()`` picks the binary (``$COMPOSER_FFMPEG``, then a system ffmpeg,
then imageio-ffmpeg's); ``run_ffmpeg`` runs one command and turns failures into
``MediaError``; ``StderrTail`` drains a child's stderr so it can never block.
Every ffmpeg child starts in a session of its own (``start_new_session=True``):
Ctrl-C in the terminal then reaches composer alone, which stops its children
itself, instead of each child dying first and reporting its temporary file.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ..errors import MediaError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

# Arguments every command starts with: no banner, never read the terminal.
BASE_ARGS = ("-hide_banner", "-nostdin")


@functools.cache
def _resolve_exe(override: str | None) -> str:
    if override:
        found = shutil.which(override) or (override if Path(override).is_file() else None)
        if not found:
            raise MediaError(f"COMPOSER_FFMPEG={override}: no such executable")
        return found
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a dependency
        raise MediaError("no ffmpeg found: install imageio-ffmpeg or put ffmpeg on PATH") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - broken wheel
        raise MediaError(f"no ffmpeg found: {exc}") from exc


# A frame is hundreds of KB; through the default 64 KB pipe every frame costs a dozen reads or
# writes, each a context switch between two processes that share two cores.
PIPE_BYTES = 1 << 20


def widen_pipe(pipe: IO[bytes] | None) -> None:
    """Ask the kernel for a 1 MB pipe buffer (Linux; a no-op elsewhere or when refused)."""
    setsz = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if pipe is None or setsz is None:
        return
    with contextlib.suppress(OSError, ValueError):
        fcntl.fcntl(pipe.fileno(), setsz, PIPE_BYTES)


def any_frame(frames: list[int]) -> str:
    """An ffmpeg expression true at exactly these frame numbers: a balanced sum of ``eq(n,k)``.

    ffmpeg's parser gives up on a flat sum of more than about 100 terms (a 10-minute film is
    139 pieces to cut; a piece may have that many frames to pick); nested in halves, the
    depth grows with the log of the count."""
    if len(frames) == 1:
        return f"eq(n,{frames[0]})"
    half = len(frames) // 2
    return f"({any_frame(frames[:half])}+{any_frame(frames[half:])})"


def ffmpeg_exe() -> str:
    """The ffmpeg binary: ``$COMPOSER_FFMPEG``, else ``ffmpeg`` on PATH, else imageio-ffmpeg's."""
    return _resolve_exe(os.environ.get("COMPOSER_FFMPEG") or None)


def file_arg(path: str | Path) -> str:
    """A local path as an ffmpeg argument that cannot be taken for an option or a protocol."""
    return "file:" + str(Path(path).absolute())


def ffmpeg_cmd(*args: str) -> list[str]:
    """A full ffmpeg argument list: the binary, the base flags, then ``args``."""
    return [ffmpeg_exe(), *BASE_ARGS, *args]


class StderrTail:
    """Reads a child's stderr on a thread, keeping only its last lines."""

    def __init__(self, stream: IO[bytes], max_lines: int = 60):
        self.lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._stream = stream
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        try:
            for raw in iter(self._stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    self.lines.append(line)
        except (OSError, ValueError):
            pass

    def join(self, timeout: float = 5.0) -> None:
        self._thread.join(timeout)

    def text(self) -> str:
        return "\n".join(self.lines)

    def last_error(self) -> str:
        """The most telling line, stripped of ffmpeg's ``[x @ 0x..]`` prefixes."""
        return last_line(self.text())


_GENERIC = (
    "Conversion failed", "Error opening input file ", "Error opening output file", "Terminating thread",
    "Task finished", "frame=", "video:", "Exiting normally", "Press [q]",
)
_TELLING = re.compile(r"partial file|moov atom|corrupt|invalid|no such|not found|permission|unknown|"
                      r"error|failed|unable|cannot|does not|unsupported|mismatch|too ", re.I)


def _clean(line: str) -> str:
    line = line.strip()
    while line.startswith("[") and "] " in line:
        line = line.split("] ", 1)[1].strip()
    return line[:300]


def last_line(stderr: str) -> str:
    """The most telling stderr line (the first that names a problem), for a one-line message."""
    # Indented lines are ffmpeg's stream report (Input #0 …), not messages.
    lines = [_clean(x) for x in stderr.splitlines() if x[:1] not in (" ", "\t")]
    lines = [x for x in lines if x and not x.startswith(_GENERIC)]
    for line in lines:
        if _TELLING.search(line):
            return line
    return lines[-1] if lines else "ffmpeg failed"


def run_ffmpeg(args: Sequence[str], *, what: str, path: Path | str | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``ffmpeg <args>`` to completion; a non-zero exit raises MediaError.

    ``what`` names the job in the message (``"mux audio"``), ``path`` the file concerned.
    """
    cmd = ffmpeg_cmd(*args)
    try:
        proc = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        raise MediaError(f"{what}: cannot run ffmpeg ({exc})") from exc
    if proc.returncode != 0:
        where = f"{path}: " if path is not None else ""
        raise MediaError(f"{where}{what} failed: {last_line(proc.stderr.decode('utf-8', 'replace'))}")
    return proc


def stop_process(proc: subprocess.Popen, timeout: float = 3.0) -> None:
    """End a child we started: terminate, wait, then kill if it lingers."""
    if proc.poll() is not None:
        return
    try:
        proc.terminate()
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    except OSError:
        pass
