"""Checks a render makes before its first request, paid or not, so a mistake costs seconds.

Each check raises a ``ComposerError`` with one line naming what the user gave (the
output path, the budget), never a temporary file: the output location and its
extension against the codec, the backend's own readiness, and the budget against the
part of the plan that is not cached yet.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import BudgetExceeded, ComposerError, OutputError

# The containers each codec is written into (ffmpeg picks the muxer from the extension).
CODEC_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "h264": (".mp4", ".mov", ".mkv", ".m4v"),
    "prores": (".mov", ".mkv"),
    "dnxhr": (".mov", ".mkv", ".mxf"),
}


def check_output(output: Path, codec: str) -> None:
    """The output's extension fits the codec and its folder can be written (created if missing)."""
    allowed = CODEC_EXTENSIONS.get(codec)
    if allowed is None:
        raise ComposerError(f"unknown codec {codec!r}: use one of {', '.join(CODEC_EXTENSIONS)}")
    suffix = output.suffix.lower()
    if suffix not in allowed:
        what = f"'{output}' has no extension" if not suffix else f"'{output}' is a {suffix} file"
        raise OutputError(f"{what}, but {codec} is written as {' or '.join(allowed)}: "
                            f"name the output e.g. '{output.with_suffix(allowed[0]).name}'")
    if output.is_dir():
        raise OutputError(f"output '{output}' is a folder: give a file name such as '{output / ('film' + allowed[0])}'")
    folder = output.parent if str(output.parent) else Path(".")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot write '{output}': '{existing}' is not a folder")
    try:
        # the definitive test: write access bits lie for root and on read-only mounts
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".composer-preflight-"):
            pass
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise OutputError(f"cannot write '{output}': {reason.lower()} in '{existing}'; nothing was generated") from None


def check_budget(remaining_usd: float, requests: int, max_cost: float | None, allow_partial: bool) -> None:
    """Refuse a budget that cannot cover what is left to pay for (unless a partial spend is asked for)."""
    if max_cost is None or allow_partial or remaining_usd <= max_cost + 1e-9:
        return
    raise BudgetExceeded(f"the remaining plan costs ${remaining_usd:.2f} ({requests} request(s)), over --max-cost "
                         f"${max_cost:.2f}: raise it, or pass --allow-partial to spend what the budget allows; "
                         "nothing was spent")
