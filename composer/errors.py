"""One exception hierarchy for composer.

Every error a user can cause carries enough context (file:line:col, segment,
scene) to be printed as one line; the CLI maps them to exit codes.
"""
from __future__ import annotations

from dataclasses import dataclass


class ComposerError(Exception):
    """Base of every error composer raises on purpose."""

    exit_code = 1


@dataclass(frozen=True)
class Location:
    """A place in a storyboard file (1-based line and column)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Problem:
    """One mistake in a storyboard, with where it is."""

    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class StoryboardError(ComposerError):
    """A storyboard that cannot be read or is invalid; holds every problem found."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class TimecodeError(ComposerError, ValueError):
    """A timecode string that does not parse."""

    exit_code = 2


class SettingError(ComposerError):
    """An environment variable or option of composer's own that does not parse."""

    exit_code = 2


class PlanError(ComposerError):
    """A storyboard that is valid on its own but cannot be planned."""

    exit_code = 2


class OtioError(ComposerError):
    """A timeline that cannot be written, read or turned into a storyboard."""

    exit_code = 2


class ManifestError(ComposerError):
    """A path given as a render manifest that is missing or is not one (a user's mistake)."""

    exit_code = 2


class MediaError(ComposerError):
    """ffmpeg failed, or a media file is missing, unreadable or corrupt."""


class CacheError(ComposerError):
    """The segment cache cannot be read or written."""


class BackendError(ComposerError):
    """A backend failed to produce a segment.

    ``retryable`` tells the scheduler whether trying again may help.
    """

    def __init__(self, message: str, *, segment: str | None = None, retryable: bool = False):
        self.segment = segment
        self.retryable = retryable
        super().__init__(f"{segment}: {message}" if segment else message)


class RequestRejected(BackendError):
    """The endpoint refused the request as invalid (HTTP 422); never retried."""


class SafetyRejected(BackendError):
    """The endpoint's safety checker rejected the request or its output."""


class OutputError(ComposerError):
    """An output path that cannot be written as asked (its folder, its extension): a user's mistake."""

    exit_code = 2


class BudgetExceeded(ComposerError):
    """Starting another paid request would cross ``--max-cost``."""


class RenderFailed(ComposerError):
    """Some segments failed; finished ones are kept in the cache."""

    def __init__(self, message: str, failures: list[str] | None = None):
        self.failures = list(failures or [])
        super().__init__(message)


class Cancelled(ComposerError):
    """The render was cancelled; finished segments are kept in the cache."""

    exit_code = 130
