"""How much input a storyboard may ask of composer before it is refused.

Defaults suit any real film; each can be raised by an environment variable (for
a session) or by passing ``Limits`` to ``load``/``loads`` (for a program).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

from ..errors import SettingError
from ..timecode import Timecode

# Environment variable → Limits field; film length is a timecode ("4h", "90m").
ENV = {
    "COMPOSER_MAX_BOARD_BYTES": "max_bytes",
    "COMPOSER_MAX_YAML_DEPTH": "max_depth",
    "COMPOSER_MAX_YAML_NODES": "max_nodes",
    "COMPOSER_MAX_FILM": "max_film_seconds",
}


@dataclass(frozen=True)
class Limits:
    """Bounds on one storyboard: file size, YAML shape, film length."""

    max_bytes: int = 1 << 20  # 1 MiB: a 2000-scene board is about 200 kB
    max_depth: int = 32  # the language nests 5 deep; the rest is headroom
    max_nodes: int = 200_000  # values after alias expansion (an alias bomb stops here)
    max_film_seconds: Fraction = Fraction(4 * 3600)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Limits:
        """The defaults, overridden by any ``COMPOSER_MAX_*`` variable that is set."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for var, field in ENV.items():
            text = env.get(var, "").strip()
            if not text:
                continue
            try:
                if field == "max_film_seconds":
                    tc = Timecode.parse(text)
                    if tc.seconds is None or tc.seconds <= 0:
                        raise ValueError("a positive time such as 4h or 90m")
                    values[field] = tc.seconds
                else:
                    values[field] = int(text)
                    if values[field] <= 0:  # type: ignore[operator]
                        raise ValueError("a positive whole number")
            except ValueError as exc:
                raise SettingError(f"{var}={text!r} is not usable: {exc}") from None
        return cls(**values)  # type: ignore[arg-type]
