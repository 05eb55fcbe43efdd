"""Timecode: a point or span of film time, as users write it.

Accepts ``10s``, ``1.5s``, ``250ms``, ``2m``, ``00:01:02.500``, ``01:02``, ``240f``
and bare numbers (seconds). Frame-based values need the film's fps to resolve,
so a Timecode is kept exact (a Fraction of seconds, or whole frames) until
``to_frames(fps)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from .errors import TimecodeError

_UNIT = re.compile(r"^\s*(?P<num>[+-]?\d+(?:\.\d+)?)\s*(?P<unit>ms|s|m|h|f)?\s*$")
_CLOCK = re.compile(r"^\s*(?:(?P<h>\d+):)?(?P<m>\d{1,2}):(?P<s>\d{1,2}(?:\.\d+)?)\s*$")
# What the two forms above accept, as one JSON Schema pattern (a little looser: it is for editors).
JSON_PATTERN = (r"^\s*([+-]?\d+(\.\d+)?\s*(ms|s|m|h|f)?|(\d+:)?\d{1,2}:\d{1,2}(\.\d+)?)\s*$")
_SCALE = {"ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60), "h": Fraction(3600)}


def _clock_digits_ok(m: re.Match[str]) -> bool:
    whole_seconds = m["s"].split(".", 1)[0]
    return len(whole_seconds) == 2 and (m["h"] is None or len(m["m"]) == 2)


def _clock_hint(m: re.Match[str]) -> str:
    """What a clock time with short fields probably meant."""
    whole, _, frac = m["s"].partition(".")
    if len(whole) != 2:
        padded = f"{m['h']}:" if m["h"] is not None else ""
        padded += f"{m['m'] if m['h'] is None else m['m'].zfill(2)}:{whole.zfill(2)}{'.' + frac if frac else ''}"
        guess = f" or '{m['m']}.{whole}s'" if m["h"] is None and not frac else ""
        return f"clock times take two-digit seconds: did you mean '{padded}'{guess}?"
    return f"hh:mm:ss takes two-digit minutes: did you mean '{m['h']}:{m['m'].zfill(2)}:{m['s']}'?"


@dataclass(frozen=True, order=False)
class Timecode:
    """An exact time: either ``seconds`` (a Fraction) or a whole number of ``frames``."""

    seconds: Fraction | None = None
    frames: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.frames is None):
            raise TimecodeError("a Timecode holds either seconds or frames")

    @classmethod
    def parse(cls, value: Any) -> Timecode:
        """Parse a user-written timecode; raise TimecodeError saying what is accepted."""
        if isinstance(value, Timecode):
            return value
        if isinstance(value, bool):
            raise TimecodeError(f"expected a timecode, got {value!r}")
        if isinstance(value, int):
            return cls(seconds=Fraction(value))
        if isinstance(value, float):
            return cls(seconds=Fraction(str(value)))
        if not isinstance(value, str):
            raise TimecodeError(f"expected a timecode such as '10s', got {value!r}")
        m = _UNIT.match(value)
        if m:
            unit = m["unit"] or "s"
            if unit == "f":
                if "." in m["num"]:
                    raise TimecodeError(f"frame count must be whole: {value!r}")
                return cls(frames=int(m["num"]))
            return cls(seconds=Fraction(m["num"]) * _SCALE[unit])
        m = _CLOCK.match(value)
        if m and not _clock_digits_ok(m):
            raise TimecodeError(f"bad timecode {value!r}: {_clock_hint(m)}")
        if m:
            secs = Fraction(m["s"])
            if secs >= 60:
                raise TimecodeError(f"seconds must be below 60 in {value!r}")
            if m["h"] is not None and int(m["m"]) >= 60:
                raise TimecodeError(f"minutes must be below 60 in {value!r}")
            total = int(m["h"] or 0) * 3600 + int(m["m"]) * 60 + secs
            return cls(seconds=total)
        raise TimecodeError(
            f"bad timecode {value!r}: use e.g. '10s', '1.5s', '250ms', '00:01:02.500' or '240f'"
        )

    @classmethod
    def from_frames(cls, frames: int) -> Timecode:
        return cls(frames=int(frames))

    def _amount(self) -> Fraction | int:
        """Whichever of ``seconds`` / ``frames`` is set (``__post_init__`` guarantees exactly one)."""
        if self.seconds is not None:
            return self.seconds
        assert self.frames is not None
        return self.frames

    def to_frames(self, fps: int) -> int:
        """Nearest whole frame at ``fps`` (halves round up, so 0.5 frame is never lost)."""
        if self.frames is not None:
            return self.frames
        exact = self._amount() * fps
        return int(exact + Fraction(1, 2)) if exact >= 0 else -int(-exact + Fraction(1, 2))

    def to_seconds(self, fps: int | None = None) -> float:
        if self.seconds is not None:
            return float(self.seconds)
        if fps is None:
            raise TimecodeError("a frame timecode needs the fps to become seconds")
        return float(self._amount() / fps)

    def is_negative(self) -> bool:
        return self._amount() < 0

    def is_zero(self) -> bool:
        return self._amount() == 0

    def __str__(self) -> str:
        if self.frames is not None:
            return f"{self.frames}f"
        s = self._amount()
        if s.denominator == 1:
            return f"{s.numerator}s"
        text = f"{float(s):.6f}".rstrip("0").rstrip(".")
        return f"{text}s"

    def __repr__(self) -> str:
        return f"Timecode({str(self)!r})"


def format_frames(frames: int, fps: int) -> str:
    """``HH:MM:SS.mmm`` for a frame number at ``fps`` (milliseconds rounded)."""
    sign = "-" if frames < 0 else ""
    ms = (abs(frames) * 1000 * 2 + fps) // (2 * fps)
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{sign}{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def parse_frame_range(value: str | tuple[object, object], fps: int) -> tuple[int, int]:
    """``'00:10-00:25'``, ``'240f-600f'`` or a ``(start, end)`` pair → film frames, end exclusive.

    The library and ``--range`` accept the same forms; anything else is a ``TimecodeError``.
    """
    if isinstance(value, str):
        # mm:ss and hh:mm:ss never contain '-', so the first '-' not at the start splits the pair
        text = value.strip()
        cut = text.find("-", 1)
        if cut < 0 or text.count("-") != 1:
            raise TimecodeError(f"range {value!r}: write START-END, e.g. 00:10-00:25 or 240f-600f")
        parts: tuple[object, object] = (text[:cut].strip(), text[cut + 1:].strip())
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        parts = (value[0], value[1])
    else:
        raise TimecodeError(f"range {value!r}: give 'START-END' or a (start, end) pair")
    frames = []
    for p in parts:
        if isinstance(p, bool):
            raise TimecodeError(f"range {value!r}: {p!r} is not a time")
        if isinstance(p, int):
            frames.append(p)  # a pair of ints is film frames, as render(frame_range=(240, 600)) always took
            continue
        frames.append(Timecode.parse(p).to_frames(fps))
    start, end = frames
    if start < 0:
        raise TimecodeError(f"range {value!r}: the start cannot be before the film's start")
    if end <= start:
        raise TimecodeError(f"range {value!r}: the end must come after the start")
    return start, end
